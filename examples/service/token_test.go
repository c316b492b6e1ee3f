package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// sameToken takes the token alone: not a prefix of it, nor one longer,
// nor one of another case; the comparison of their SHA-256 sums takes as
// long whatever their lengths.
func TestSameToken(t *testing.T) {
	for _, tc := range []struct {
		got  string
		want bool
	}{
		{"s3cret-token", true},
		{"s3cret-toke", false},
		{"s3cret-token!", false},
		{"S3CRET-TOKEN", false},
		{"", false},
	} {
		assert.Equal(t, tc.want, sameToken(tc.got, "s3cret-token"), "token %q", tc.got)
	}
}
