package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestReview4BadFlagNewline: bad flags print one line on stderr, even
// when what was given holds a newline. The flag package names an unknown
// flag unquoted, so "-x\ny" printed two lines.
func TestReview4BadFlagNewline(t *testing.T) {
	for _, args := range [][]string{{"-x\ny"}, {"-json", "-x\ny=1"}, {"-\n"}} {
		r := runArgs(t, args...)
		assert.Equal(t, 2, r.code, "%q", args)
		assert.Empty(t, r.stdout, "%q", args)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line on stderr for %q: %q", args, r.stderr)
		assert.True(t, strings.HasPrefix(r.stderr, "lecture: "), "stderr %q", r.stderr)
	}
}
