package main

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

// failWriter fails every write, as a full disk does.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestWriteError: the text output (display, summary table) went to a
// stdout that failed every write, and the command still exited 0, as if
// the lecture had been shown; -json exited 1. Both now say why on stderr
// and exit 1, as examples/plan does.
func TestWriteError(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "30"},
		{"-duration", "30", "-json"},
		{"-duration", "30", "-edit", "none"},
	} {
		var stderr bytes.Buffer
		code := runContext(context.Background(), append(args, fast...), failWriter{}, &stderr)
		assert.Equal(t, 1, code, "%q", args)
		assert.Equal(t, "lecture: write: disk full\n", stderr.String(), "%q", args)
	}
}
