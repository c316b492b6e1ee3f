package sse_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/progress/sse"
)

func TestParseLastEventID(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr string
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"42", 42, ""},
		{"007", 7, ""},
		{"18446744073709551615", 1<<64 - 1, ""},
		{"18446744073709551616", 0, "out of range"},
		{"123456789012345678901", 0, "21 characters, at most 20 allowed"},
		{"-1", 0, "not all digits"},
		{"+1", 0, "not all digits"},
		{" 1", 0, "not all digits"},
		{"1.5", 0, "not all digits"},
		{"0-5", 0, "not all digits"},
		{"abc", 0, `"abc": not all digits; want the decimal sequence number`},
		{"٣", 0, "not all digits"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := sse.ParseLastEventID(tt.in)
			if tt.wantErr != "" {
				assert.ErrorIs(t, err, sse.ErrBadLastEventID)
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseLastEventID(f *testing.F) {
	for _, s := range []string{"", "0", "42", "007", "-1", "1e3", "18446744073709551616", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := sse.ParseLastEventID(s)
		if err != nil {
			assert.ErrorIs(t, err, sse.ErrBadLastEventID)
			assert.Less(t, len(err.Error()), 300, "the message quotes a bounded part of the input")
			return
		}
		if s == "" {
			assert.Zero(t, got)
			return
		}
		trimmed := strings.TrimLeft(s, "0")
		if trimmed == "" {
			trimmed = "0"
		}
		assert.Equal(t, trimmed, strconv.FormatUint(got, 10), "accepted %q", s)
	})
}
