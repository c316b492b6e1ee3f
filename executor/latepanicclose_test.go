package executor_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// panicAfterClose is a slog.Handler that reports whether a record of an
// abandoned call's panic was handled once Close had returned: it waits
// up to a minute (in the bubble's clock) for Close to return.
type panicAfterClose struct {
	closed chan struct{}
	late   atomic.Bool
	logged atomic.Int32
}

func (h *panicAfterClose) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicAfterClose) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *panicAfterClose) WithGroup(string) slog.Handler            { return h }
func (h *panicAfterClose) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "panicked after its call was abandoned") {
		return nil
	}
	h.logged.Add(1)
	select {
	case <-h.closed:
		h.late.Store(true)
	case <-time.After(time.Minute):
	}
	return nil
}

// The panic of an abandoned call was logged after the call was counted
// out of Close's wait: Close could return, and the host close what its
// Logger writes to (or end the test whose t.Log it calls), before the
// record was written. Close now returns only after it.
func TestPanicOfAnAbandonedCallIsLoggedBeforeCloseReturns(t *testing.T) {
	for _, tc := range []struct {
		name, kind string
		bulk       bool
	}{
		{"single", graph.KindScript, false},
		{"bulk", graph.KindImage, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				reg := latePanicking(l, tc.kind, tc.bulk)
				h := &panicAfterClose{closed: make(chan struct{})}
				e := l.executor(executor.Options{Generators: reg, Logger: slog.New(h),
					Kinds: map[string]executor.KindOptions{tc.kind: {Timeout: time.Minute}}})
				_, err := l.run(e)
				require.NoError(t, err, "the node's next attempt makes it")
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Hour)
				defer cancel()
				require.NoError(t, e.Close(ctx), "Close waits for the abandoned call")
				close(h.closed)
				synctest.Wait()
				assert.Equal(t, int32(1), h.logged.Load(), "the panic is logged once")
				assert.False(t, h.late.Load(), "logged after Close returned")
			})
		})
	}
}
