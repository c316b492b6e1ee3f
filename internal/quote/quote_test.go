package quote_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/internal/quote"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short", "lecture-1", `"lecture-1"`},
		{"empty", "", `""`},
		{"exactly the most", strings.Repeat("k", quote.Max), `"` + strings.Repeat("k", quote.Max) + `"`},
		{"long", strings.Repeat("k", 100), `"` + strings.Repeat("k", quote.Max) + `"… (100 bytes)`},
		// A 3-byte character across the cut is left out whole.
		{"cut at a character", strings.Repeat("k", quote.Max-1) + "€tail", `"` + strings.Repeat("k", quote.Max-1) + `"… (70 bytes)`},
		{"control characters", "a\x00b\n", `"a\x00b\n"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, quote.Key(tc.in))
		})
	}
}

func ExampleKey() {
	fmt.Println(quote.Key("lecture-1"))
	fmt.Println(quote.Key("https://example.com/courses/" + strings.Repeat("x", 60)))
	// Output:
	// "lecture-1"
	// "https://example.com/courses/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"… (88 bytes)
}
