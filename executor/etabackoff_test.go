package executor_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A node.retrying event gave the ETA of the event before it counted down
// (an embedder's finding): a node that failed 1.2s into a run, with a 3s
// backoff ahead of its retry, said ETA 1s, and the next event came 3s
// later. The docs say the ETA counts what is left of the nodes under way,
// of one that retries its backoff and its next attempt: the event's ETA
// is now computed with the backoff it announces.
func TestRetryingEventCountsItsBackoff(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "chapter:voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 4},
		{Name: "mix", Deps: []graph.Dep{{Kind: "chapter:voice", Scope: graph.ScopeAllSegments}}},
	}}
	g, err := graph.Build(tm, 4*graph.SegmentSeconds)
	require.NoError(t, err)
	for _, bulk := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "bulk"}[bulk], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				plain := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					time.Sleep(20 * time.Millisecond)
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				var failed atomic.Bool
				voice := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					if req.NodeID == "chapter:voice:segment[1]" && failed.CompareAndSwap(false, true) {
						time.Sleep(1200 * time.Millisecond)
						return executor.Asset{}, errors.New("provider: 503")
					}
					time.Sleep(20 * time.Millisecond)
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				var tts executor.Generator = voice
				if bulk {
					tts = bulkOf{voice}
				}
				sink := new(eventLog)
				e, err := executor.New(executor.Options{
					Generators: executor.Registry{"brief": plain, "mix": plain, "chapter:voice": tts},
					Default: executor.KindOptions{Estimate: 20 * time.Millisecond,
						Retry: executor.RetryPolicy{InitialInterval: 3 * time.Second, MaxAttempts: 2}},
					Sink: sink,
				})
				require.NoError(t, err)
				_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "podcast", Graph: g})
				require.NoError(t, err)
				require.NoError(t, e.Close(context.Background()))
				evs := sink.events()
				start := evs[0].Time
				var retrying []progress.Event
				for _, ev := range evs {
					if ev.Type == progress.NodeRetrying {
						retrying = append(retrying, ev)
					}
				}
				require.Len(t, retrying, 1)
				ev := retrying[0]
				// At 1.22s (the brief's 20ms, the call's 1.2s): its 3s
				// backoff, then its attempt and the mix, 20ms each.
				assert.Equal(t, 1220*time.Millisecond, ev.Time.Sub(start))
				assert.Equal(t, 3040*time.Millisecond, ev.ETA, "the ETA of the retrying event")
				assert.Equal(t, 4260*time.Millisecond, evs[len(evs)-1].Time.Sub(start), "the run's end")
			})
		})
	}
}

// The node.retrying of a node whose commit failed past its store retries,
// and which commits its output again after its kind's backoff, gave an
// ETA that left that backoff out (the node counted as a call under way
// since its call began): 10 s of backoff ahead, it said 20ms. Its ETA now
// counts the backoff, as a retried call's does.
func TestRecommitEventCountsItsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "a"},
			{Name: "b", Deps: []graph.Dep{{Kind: "a", Scope: graph.ScopeGlobal}}}}}, graph.SegmentSeconds)
		require.NoError(t, err)
		store := &downFor{MemoryStore: executor.NewMemoryStore(), down: "Commit", span: 2 * time.Second}
		gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
			time.Sleep(20 * time.Millisecond)
			if req.NodeID == "b" {
				store.armed.Store(true)
			}
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		})
		var mu sync.Mutex
		var retrying []progress.Event
		sink := progress.SinkFunc(func(_ context.Context, batch ...progress.Event) error {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range batch {
				if ev.Type == progress.NodeRetrying {
					retrying = append(retrying, ev)
				}
			}
			return nil
		})
		e, err := executor.New(executor.Options{Generators: registryFor(g, gen), States: store, Assets: store, Runs: store,
			Default: executor.KindOptions{Estimate: 20 * time.Millisecond,
				Retry: executor.RetryPolicy{InitialInterval: 10 * time.Second}},
			Sink: sink, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "key", Graph: g})
		require.NoError(t, err)
		require.NoError(t, e.Close(context.Background()))
		require.Len(t, retrying, 1)
		assert.GreaterOrEqual(t, retrying[0].ETA, 10*time.Second, "the backoff ahead")
		assert.Less(t, retrying[0].ETA, 11*time.Second)
	})
}
