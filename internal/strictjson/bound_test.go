package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bound cuts a literal of the input that an error quotes whole, and
// keeps the error in the chain; a short one is left as it is.
func TestBound(t *testing.T) {
	long := strings.Repeat("9", 1<<20)
	var v struct{ N int8 }
	typeErr := json.Unmarshal([]byte(`{"N":`+long+`}`), &v)
	require.Error(t, typeErr)
	shortErr := json.Unmarshal([]byte(`{"N":300}`), &v)
	require.Error(t, shortErr)
	keyErr := Check([]byte(`{"`+strings.Repeat("k", 1<<20)+`":1}`), "n")
	require.Error(t, keyErr)
	_, timeErr := time.Parse(time.RFC3339, strings.Repeat("t", 1<<20))
	require.Error(t, timeErr)
	tests := []struct {
		name string
		err  error
		want string // in the bounded message
		as   any
	}{
		{"number", typeErr, "(1048576 bytes)", new(*json.UnmarshalTypeError)},
		{"key", keyErr, "(1048576 bytes)", new(*KeyError)},
		{"time", timeErr, "(1048576 bytes)", new(*time.ParseError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Bound(tt.err)
			assert.Less(t, len(b.Error()), 400, b.Error())
			assert.Contains(t, b.Error(), tt.want)
			assert.True(t, errors.Is(b, tt.err))
			assert.True(t, errors.As(b, tt.as))
		})
	}
	assert.Equal(t, shortErr, Bound(shortErr), "a short literal is left as it is")
	plain := errors.New("plain")
	assert.Equal(t, plain, Bound(plain))
}
