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

// TestWriteError: the curl command that watches the run, which the
// example is there to print, and its checks went to a stdout that failed
// every write, and the command still exited 0. It now says why on
// stderr and exits 1, as examples/plan and examples/lecture do.
func TestWriteError(t *testing.T) {
	t.Setenv("REGEN_REDIS_URL", "redis://127.0.0.1:1/0") // nothing listens on port 1
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-linger", "0", "-latency", "1ms", "-duration", "30"},
		failWriter{}, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "progress: write: disk full\n")
}
