package executor

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestQuote: keys and run IDs in errors are quoted whole up to 64 bytes,
// and past that cut at a character boundary, with their length.
func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short", "lecture-1", `"lecture-1"`},
		{"64 bytes", strings.Repeat("k", 64), `"` + strings.Repeat("k", 64) + `"`},
		{"long", strings.Repeat("k", 1300), `"` + strings.Repeat("k", 64) + `"… (1300 bytes)`},
		{"a character across the cut", strings.Repeat("k", 63) + "é" + strings.Repeat("k", 10), `"` + strings.Repeat("k", 63) + `"… (75 bytes)`},
		{"quoted as %q quotes", "a\nb", `"a\nb"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, quote(tc.in))
		})
	}
}
