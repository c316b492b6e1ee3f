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

// A bulk call's nodes counted for the ETA as under way from when the
// call was formed, while they still waited for room under Limits or for
// the key's quota, where a single's node counts once its call starts: a
// bulk call that waited its cost away in the quota (another run's call
// had taken its starts) counted as done, and the run's ETA left it out.
// Its nodes now count as under way from the call's start, as singles do.
func TestETACountsABulkCallWaitingForTheQuota(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
		{Name: "image", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}},
		{Name: "mix", Deps: []graph.Dep{{Kind: "voice", Scope: graph.ScopeAllSegments}, {Kind: "image", Scope: graph.ScopeGlobal}}},
	}}
	g, err := graph.Build(tm, 2*graph.SegmentSeconds)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		sink := new(eventLog)
		const voice = 5 * time.Second
		e, err := executor.New(executor.Options{
			Generators: executor.Registry{"brief": sleepy(0), "mix": sleepy(0), "image": sleepy(6 * time.Second),
				"voice": bulkOf{sleepy(voice)}},
			Rates: map[string]executor.Rate{"tts": {Starts: 2, Per: 10 * time.Second}},
			Kinds: map[string]executor.KindOptions{"voice": {Estimate: voice}, "image": {Estimate: 6 * time.Second},
				"brief": {Estimate: time.Millisecond}, "mix": {Estimate: time.Millisecond}},
			Sink: sink,
		})
		require.NoError(t, err)
		var wg sync.WaitGroup
		wg.Go(func() {
			_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "first", Graph: g, RunID: "first"})
			assert.NoError(t, err)
		})
		synctest.Wait() // the first run's voice call has the quota's starts
		wg.Go(func() {
			_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "second", Graph: g, RunID: "second"})
			assert.NoError(t, err)
		})
		wg.Wait()
		require.NoError(t, e.Close(context.Background()))
		evs := sink.events()
		var image *progress.Event
		for i, ev := range evs {
			if ev.RunID == "second" && ev.Type == progress.NodeSucceeded && ev.Node == "image" {
				image = &evs[i]
			}
		}
		require.NotNil(t, image)
		// At 6s the second run's voice call still waits for the quota
		// (until 10s), then takes 5s.
		assert.GreaterOrEqual(t, image.ETA, voice, "the ETA when the image ends, the voice call not started")
	})
}
