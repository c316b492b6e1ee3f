package executor_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// A bulk generator's panic left no stack anywhere, and no log: its
// nodes got a plain error, "bulk call panicked: ...", retried alone,
// while a single generator's panic is a *PanicError with its Stack. It
// is now a *PanicError too (In "bulk call", its text unchanged), still
// retried alone, which a node that fails of it keeps in its NodeError,
// and each call's panic is logged once, with the stack, as a warning.
func TestBulkPanicKeepsItsStack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		attempts int // the images' MaxAttempts
	}{
		{"retried alone", 0},
		{"no retry", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				var calls atomic.Int32
				b := &batchFunc{lab: l, fn: func(context.Context, []executor.Request) []executor.Outcome {
					calls.Add(1)
					panic("image SDK: nil map")
				}}
				reg := l.registry(l)
				reg[graph.KindImage] = b
				var buf bytes.Buffer
				e := l.executor(executor.Options{Generators: reg, Logger: slog.New(slog.NewTextHandler(&buf, nil)),
					Kinds: map[string]executor.KindOptions{graph.KindImage: {Retry: executor.RetryPolicy{MaxAttempts: tc.attempts}}}})
				_, err := l.run(e)
				require.Positive(t, calls.Load())

				var logged []string
				for line := range strings.Lines(buf.String()) {
					if strings.Contains(line, "bulk generator panicked") {
						logged = append(logged, line)
					}
				}
				require.Len(t, logged, int(calls.Load()), "one record a call:\n%s", buf.String())
				assert.Contains(t, logged[0], "level=WARN")
				assert.Contains(t, logged[0], "kind="+graph.KindImage)
				assert.Contains(t, logged[0], `panic="image SDK: nil map"`)
				assert.Contains(t, logged[0], "goroutine ", "the stack")
				assert.Contains(t, logged[0], "bulkpanic_test.go", "the stack of the panic")

				if tc.attempts == 0 {
					require.NoError(t, err, "each node retried alone")
					l.requireAllClean()
					return
				}
				var re *executor.RunError
				require.ErrorAs(t, err, &re)
				require.NotEmpty(t, re.Failed)
				for _, ne := range re.Failed {
					if !strings.HasPrefix(ne.Node, graph.KindImage) {
						continue
					}
					var pe *executor.PanicError
					require.True(t, errors.As(ne, &pe), "node %s: %v", ne.Node, ne.Err)
					assert.Equal(t, "image SDK: nil map", pe.Value)
					assert.Equal(t, "bulk call", pe.In)
					assert.Contains(t, string(pe.Stack), "bulkpanic_test.go")
					assert.Equal(t, "bulk call panicked: image SDK: nil map", ne.Err.Error(), "the text as before")
				}
			})
		})
	}
}
