package executor_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// A bulk call still running at its run's end was named "bulk call" in the
// warning, with no kind nor batch key, and a bulk call that timed out
// logged nothing, where a single node's attempt that timed out logs its
// node, kind and timeout: an operator could not tell which provider's
// bulk client ignores its context, or times out. A bulk call that times
// out now logs its batch key, kinds, size and timeout, whether it
// returns in its grace or is abandoned, and the warning at the run's end
// names a bulk call by its batch key and lists its kinds.
func TestBulkWarningsNameTheBatch(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "slide", PerSegment: true, BatchKey: "img", Concurrency: 3},
	}}
	g, err := graph.Build(tm, 3*graph.SegmentSeconds)
	require.NoError(t, err)
	for _, tc := range []struct {
		name      string
		ignores   bool // the bulk call ignores its context
		abandoned bool
	}{
		{name: "it returns in its grace"},
		{name: "it ignores its context", ignores: true, abandoned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				gen := &batchGen{
					one: func(context.Context, executor.Request) (executor.Asset, error) {
						return executor.Asset{Data: []byte("alone")}, nil
					},
					many: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
						out := make([]executor.Outcome, len(reqs))
						if tc.ignores {
							time.Sleep(time.Hour)
							return out
						}
						<-ctx.Done()
						for i := range out {
							out[i].Err = ctx.Err()
						}
						return out
					},
				}
				h := &logRecorder{}
				e, err := executor.New(executor.Options{Generators: executor.Registry{"slide": gen}, Logger: slog.New(h),
					Kinds: map[string]executor.KindOptions{"slide": {BatchTimeout: time.Minute}}})
				require.NoError(t, err)
				rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "deck-7", Graph: g, RunID: "r1"})
				require.NoError(t, err, "each node alone makes it")
				assert.Len(t, rep.Generated, 3)
				require.NoError(t, e.Close(ctx))

				timeouts := h.find("bulk call timed out")
				require.Len(t, timeouts, 1, "the bulk call timed out")
				assert.Equal(t, slog.LevelWarn, timeouts[0].level)
				assert.Equal(t, map[string]any{"run": "r1", "graph": "deck-7", "batch_key": "img", "kind": "slide",
					"requests": int64(3), "timeout": time.Minute, "abandoned": tc.abandoned}, timeouts[0].attrs)

				still := h.find("ignore their context")
				if !tc.ignores {
					assert.Empty(t, still)
					return
				}
				require.Len(t, still, 1)
				assert.Equal(t, []string{"bulk call of batch key img"}, still[0].attrs["nodes"])
				assert.Equal(t, []string{"slide"}, still[0].attrs["kinds"])
				assert.EqualValues(t, 1, still[0].attrs["calls"])
			})
		})
	}
}
