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

// A validator that outlived its attempt's timeout and then panicked was
// logged as a generator's panic ("generator panicked after its call was
// abandoned"), though the generator had returned, and the late panic of
// a bulk call's validator was not logged at all: the host looked for the
// fault in the wrong place, or found none. The record now says what
// panicked, for a single and a bulk call.
func TestLatePanicOfAValidatorSaysSo(t *testing.T) {
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
				reg := l.registry(l)
				if tc.bulk {
					reg[tc.kind] = &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
						outs := make([]executor.Outcome, len(reqs))
						for k, req := range reqs {
							outs[k].Asset, outs[k].Err = l.Generate(ctx, req)
						}
						return outs
					}}
				}
				var first atomic.Bool
				first.Store(true)
				var buf testenv.LogBuffer
				e := l.executor(executor.Options{Generators: reg, Logger: slog.New(slog.NewTextHandler(&buf, nil)),
					Kinds: map[string]executor.KindOptions{tc.kind: {Timeout: time.Minute,
						Validate: func(executor.Request, executor.Asset) error {
							if first.CompareAndSwap(true, false) {
								time.Sleep(time.Hour) // past its attempt's timeout
								panic("validator: late nil map")
							}
							return nil
						}}}})
				_, err := l.run(e)
				require.NoError(t, err, "the node's next attempt makes it")
				time.Sleep(2 * time.Hour) // the abandoned check panics
				synctest.Wait()

				var logged []string
				for line := range strings.Lines(buf.String()) {
					if strings.Contains(line, "late nil map") {
						logged = append(logged, line)
					}
				}
				require.Len(t, logged, 1, "one record:\n%s", buf.String())
				assert.Contains(t, logged[0], "panicked after its call was abandoned")
				assert.Contains(t, logged[0], "in=validator")
			})
		})
	}
}
