package executor_test

import (
	"context"
	"errors"
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

// A retry takes a start of the key's quota (4484197), and may wait for it
// after its backoff, but for the ETA its node counted as under way from
// the end of its backoff, as if its call had started: a retry that waited
// its cost away in the quota counted as done, and the run's ETA left it
// out. It now counts as waiting, as a first attempt does, until its call
// starts.
func TestETACountsARetryWaitingForTheQuota(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "voice", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 1},
		{Name: "image", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}},
		{Name: "mix", Deps: []graph.Dep{{Kind: "voice", Scope: graph.ScopeGlobal}, {Kind: "image", Scope: graph.ScopeGlobal}}},
	}}
	g, err := graph.Build(tm, graph.SegmentSeconds)
	require.NoError(t, err)
	const voice = 5 * time.Second
	for _, bulk := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "bulk"}[bulk], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sink := new(eventLog)
				var failed atomic.Bool
				one := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					if failed.CompareAndSwap(false, true) {
						return executor.Asset{}, errors.New("provider: 503") // at once
					}
					time.Sleep(voice)
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				var tts executor.Generator = one
				if bulk {
					tts = bulkOf{one}
				}
				e, err := executor.New(executor.Options{
					Generators: executor.Registry{"brief": sleepy(0), "mix": sleepy(0), "image": sleepy(6 * time.Second), "voice": tts},
					Rates:      map[string]executor.Rate{"tts": {Starts: 1, Per: 10 * time.Second}},
					Kinds: map[string]executor.KindOptions{"voice": {Estimate: voice}, "image": {Estimate: 6 * time.Second},
						"brief": {Estimate: time.Millisecond}, "mix": {Estimate: time.Millisecond}},
					Default: executor.KindOptions{Retry: executor.RetryPolicy{InitialInterval: 10 * time.Millisecond}},
					Sink:    sink,
				})
				require.NoError(t, err)
				_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "g", Graph: g})
				require.NoError(t, err)
				require.NoError(t, e.Close(context.Background()))
				evs := sink.events()
				var image *progress.Event
				for i, ev := range evs {
					if ev.Type == progress.NodeSucceeded && ev.Node == "image" {
						image = &evs[i]
					}
				}
				require.NotNil(t, image)
				// At 6s the voice's retry still waits for the quota (until
				// 10s), then takes 5s.
				assert.GreaterOrEqual(t, image.ETA, voice, "the ETA when the image ends, the voice's retry not started")
			})
		})
	}
}
