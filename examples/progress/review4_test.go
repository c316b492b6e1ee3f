package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestReview4BadArguments: exit status 2 on bad flags, with one line on
// stderr and nothing on stdout. A stray argument was ignored (the
// command ran a whole lecture and exited 0), and an unknown flag whose
// name holds a newline printed two lines.
func TestReview4BadArguments(t *testing.T) {
	for _, args := range [][]string{{"now"}, {"-duration", "30", "extra"}, {"-x\ny"}} {
		code, out, errOut := runExample(t, args...)
		assert.Equal(t, 2, code, "%q", args)
		assert.Empty(t, out, "%q", args)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line on stderr for %q: %q", args, errOut)
	}
}
