// Package quote quotes the keys and IDs that errors name: a host's graph
// keys, node IDs, run IDs and asset references may be long (a URL, a
// document's hash, up to the Postgres adapters' limits of 1,200 and 2,600
// bytes), and an error that quoted them whole would be mostly key.
package quote

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Max is the most bytes of a key that [Key] quotes.
const Max = 64

// Key returns s quoted, as %q does, cut after [Max] bytes at a character
// boundary with a note of its length.
func Key(s string) string {
	if len(s) <= Max {
		return strconv.Quote(s)
	}
	end := Max
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return strconv.Quote(s[:end]) + fmt.Sprintf("… (%d bytes)", len(s))
}
