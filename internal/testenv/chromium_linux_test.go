package testenv_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
)

// Chromium.Stderr may be read while the browser still writes, as the
// browser tests do when a page posts nothing in time, before they stop
// it. Before, it read the buffer that the browser's stderr was copied
// into without a lock: a data race under -race. The browser here is a
// script that writes to its stderr until it is killed.
func TestChromiumStderrWhileItWrites(t *testing.T) {
	script := filepath.Join(t.TempDir(), "browser")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nwhile :; do echo line >&2; done\n"), 0o755))
	c := testenv.StartChromium(t, script, "http://127.0.0.1:1/")
	defer c.Stop()
	require.Eventually(t, func() bool { return c.Stderr(2) == "line\nline" }, 10*time.Second, time.Microsecond,
		"reads while it writes")
	c.Stop()
	assert.Equal(t, "line\nline", c.Stderr(2), "the last lines, once it has stopped")
}
