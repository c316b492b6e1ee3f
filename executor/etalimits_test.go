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
	"github.com/regengraph/regen/progress"
)

// Options.Limits caps a batch key's calls in flight across all the runs
// of an executor, but the ETA took a limit for a cap of the run's own
// calls: a run whose calls waited behind other runs' (100 lectures on
// one executor) gave an ETA 4 to 15 times too low. The calls of other
// runs in flight and waiting on a limited key now count, as other runs'
// starts count under Rates, and the same state gives the same ETA.
func TestETACountsOtherRunsCallsUnderALimit(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 4},
		{Name: "mix", Deps: []graph.Dep{{Kind: "voice", Scope: graph.ScopeAllSegments}}},
	}}
	g, err := graph.Build(tm, 4*graph.SegmentSeconds)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		sink := new(eventLog)
		const voice = 10 * time.Second
		e, err := executor.New(executor.Options{
			Generators: executor.Registry{"brief": sleepy(0), "mix": sleepy(0), "voice": sleepy(voice)},
			Limits:     map[string]int{"tts": 1},
			Kinds: map[string]executor.KindOptions{"voice": {Estimate: voice},
				"brief": {Estimate: time.Millisecond}, "mix": {Estimate: time.Millisecond}},
			Sink: sink,
		})
		require.NoError(t, err)
		var wg sync.WaitGroup
		wg.Go(func() {
			_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "first", Graph: g, RunID: "first"})
			assert.NoError(t, err)
		})
		synctest.Wait() // the first run's voices: one in flight, three waiting
		start := time.Now()
		var end time.Time
		wg.Go(func() {
			_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "second", Graph: g, RunID: "second"})
			assert.NoError(t, err)
			end = time.Now()
		})
		wg.Wait()
		require.NoError(t, e.Close(context.Background()))
		evs := sink.events()
		first := firstEvent(evs, func(ev progress.Event) bool { return ev.RunID == "second" && ev.ETA > 0 })
		require.NotNil(t, first)
		// Four calls of the first run, then the second's four, one at a
		// time.
		took := end.Sub(start)
		require.Equal(t, 8*voice, took.Round(time.Second))
		assert.GreaterOrEqual(t, first.ETA, 8*voice, "the second run's first ETA (%s), of a run that took %v", first.Type, took)
	})
}
