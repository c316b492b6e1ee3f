package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A node whose retry, past its backoff, waits for a start under
// Options.Rates when the run is drained is not retried, and is recorded
// as cancelled with its last attempt's error, as Run.Drain says, as a
// node drained during its backoff is: not with the drain's cause, which
// says nothing of why the node is left.
func TestDrainOfARetryWaitingForItsRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := graph.Template{Kinds: []graph.Kind{{Name: "voice", PerSegment: true, BatchKey: "tts", Concurrency: 1}}}
		g, err := graph.Build(tm, graph.SegmentSeconds)
		require.NoError(t, err)
		var mu sync.Mutex
		var events []progress.Event
		calls := 0
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			return executor.Asset{}, errors.New("provider busy")
		})
		e, err := executor.New(executor.Options{
			Generators: executor.Registry{"voice": gen},
			States:     executor.NewMemoryStates(), Assets: executor.NewMemoryAssets(), Runs: executor.NewMemoryRuns(),
			Sink: progress.SinkFunc(func(_ context.Context, evs ...progress.Event) error {
				mu.Lock()
				defer mu.Unlock()
				events = append(events, evs...)
				return nil
			}),
			Rates: map[string]executor.Rate{"tts": {Starts: 1, Per: time.Hour}},
			Default: executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 3,
				InitialInterval: time.Second, MaxInterval: time.Second}},
		})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "k", Graph: g})
		require.NoError(t, err)
		time.Sleep(time.Minute) // past the backoff: the retry waits for the rate
		r.Drain(nil)
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrDrained)
		assert.Equal(t, []string{g.NodeID(0)}, rep.Cancelled)
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, 1, calls)
		var cancelled []string
		for _, ev := range events {
			if ev.Type == progress.NodeCancelled {
				cancelled = append(cancelled, ev.Error)
			}
		}
		assert.Equal(t, []string{"provider busy"}, cancelled)
	})
}
