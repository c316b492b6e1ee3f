package executor_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// Options.Workers was documented as a global cap, but it caps one run's
// nodes at once: runs of one executor each have their own (Courseforge's
// 50 runs with Workers 4 had 200 calls in flight). The docs now say so,
// and point to Limits for a cap across the executor; this pins it.
func TestWorkersCapsOneRun(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{{Name: "voice", PerSegment: true, BatchKey: "tts", Concurrency: 4}}}
	g, err := graph.Build(tm, 4*graph.SegmentSeconds)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		now, most := 0, 0
		gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
			mu.Lock()
			now++
			most = max(most, now)
			mu.Unlock()
			time.Sleep(time.Second)
			mu.Lock()
			now--
			mu.Unlock()
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		})
		e, err := executor.New(executor.Options{Generators: executor.Registry{"voice": gen}, Workers: 1})
		require.NoError(t, err)
		var wg sync.WaitGroup
		for _, key := range []string{"a", "b", "c"} {
			wg.Go(func() {
				_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: key, Graph: g})
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		require.NoError(t, e.Close(context.Background()))
		assert.Equal(t, 3, most, "Workers 1 caps each of the 3 runs, not the executor")
	})
}
