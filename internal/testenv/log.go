package testenv

import (
	"bytes"
	"log"
	"log/slog"
	"sync"
	"testing"
)

// LogBuffer holds what a test's default logger wrote. It is safe for
// concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// DefaultLog makes slog's default logger write text to a buffer, which it
// returns, until the test ends. It then restores slog's default logger
// and the log package's output and flags: slog.SetDefault sends the log
// package's output to the logger it is given, and setting the earlier
// default back does not undo that, so that every default log line of the
// rest of the test binary would go on growing the buffer. Tests that
// call it must not run in parallel with others.
func DefaultLog(t testing.TB) *LogBuffer {
	t.Helper()
	prev, out, flags := slog.Default(), log.Writer(), log.Flags()
	t.Cleanup(func() {
		slog.SetDefault(prev)
		log.SetOutput(out)
		log.SetFlags(flags)
	})
	buf := new(LogBuffer)
	slog.SetDefault(slog.New(slog.NewTextHandler(buf, nil)))
	return buf
}
