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
	"github.com/regengraph/regen/internal/testenv"
)

// A generator call abandoned at its timeout (it ignores its context)
// that panicked later left no trace: its outcome, a *PanicError with
// the stack, was thrown away unseen, as a late result is, while the
// same panic before the timeout is logged or kept in the node's error.
// It is now logged once, as a warning, with its stack, for a single
// call and for a bulk call.
func TestPanicOfAnAbandonedCallIsLogged(t *testing.T) {
	for _, tc := range []struct {
		name, kind string
		bulk       bool
		want       []string // in the record
	}{
		{"single", graph.KindScript, false, []string{"node=script", "kind=script", "attempt=1"}},
		{"bulk", graph.KindImage, true, []string{"kind=" + graph.KindImage, "batch_key=" + graph.KindImage}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				reg := latePanicking(l, tc.kind, tc.bulk)
				var buf testenv.LogBuffer
				e := l.executor(executor.Options{Generators: reg, Logger: slog.New(slog.NewTextHandler(&buf, nil)),
					Kinds: map[string]executor.KindOptions{tc.kind: {Timeout: time.Minute}}})
				_, err := l.run(e)
				require.NoError(t, err, "the node's next attempt makes it")
				l.requireAllClean()
				time.Sleep(2 * time.Hour) // the abandoned call panics
				synctest.Wait()

				var logged []string
				for line := range strings.Lines(buf.String()) {
					if strings.Contains(line, "panicked after its call was abandoned") {
						logged = append(logged, line)
					}
				}
				require.Len(t, logged, 1, "one record:\n%s", buf.String())
				assert.Contains(t, logged[0], "level=WARN")
				assert.Contains(t, logged[0], `panic="SDK: late nil map"`)
				assert.Contains(t, logged[0], "latepanic_test.go", "the stack of the panic")
				for _, want := range tc.want {
					assert.Contains(t, logged[0], want)
				}
			})
		})
	}
}

// latePanicking returns l's registry with kind's generator (a bulk one
// if bulk) replaced by one whose first call ignores its context for an
// hour, past its timeout, then panics; its other calls make l's output.
func latePanicking(l *lab, kind string, bulk bool) executor.Registry {
	var first atomic.Bool
	first.Store(true)
	late := func() {
		if first.CompareAndSwap(true, false) {
			time.Sleep(time.Hour) // past its timeout: it ignores its context
			panic("SDK: late nil map")
		}
	}
	reg := l.registry(l)
	if bulk {
		reg[kind] = &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
			late()
			outs := make([]executor.Outcome, len(reqs))
			for k, req := range reqs {
				outs[k].Asset, outs[k].Err = l.Generate(ctx, req)
			}
			return outs
		}}
	} else {
		reg[kind] = executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			late()
			return l.Generate(ctx, req)
		})
	}
	return reg
}
