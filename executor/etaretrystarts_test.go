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

// A retry takes a start of its batch key's quota (d2fcc5c), but the ETA's
// rate model counted only the starts of first attempts, those that the
// run's schedule makes: a node in a retry's backoff counted as started,
// its coming start not among those the key still has to make, and the
// starts that retries took did not hold back the key's next start. Under
// a quota the ETA was then too optimistic by a window or more. Both now
// count.
func TestETACountsTheStartsOfRetries(t *testing.T) {
	const (
		voice = 5 * time.Second
		per   = 10 * time.Second
	)
	for _, tc := range []struct {
		name string
		// tm is the graph's template: voices of the batch key "tts", the
		// first failing its first attempt at once.
		tm     graph.Template
		starts int                       // the quota: starts of "tts" per 10 s
		at     func(progress.Event) bool // the event whose ETA is checked
		want   time.Duration             // the time left then, at least
	}{
		{
			// Two voices, one start every 10 s: the first voice's retry
			// takes the start at 10 s, the second voice the one at 20 s,
			// and ends at 25 s. When the retry's backoff starts, both
			// starts are still to make.
			name: "a retry in its backoff still takes a start",
			tm: graph.Template{Kinds: []graph.Kind{
				{Name: "brief"},
				{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}},
					BatchKey: "tts", Concurrency: 2},
			}},
			starts: 1,
			at:     func(ev progress.Event) bool { return ev.Type == progress.NodeRetrying },
			want:   2*per + voice - time.Second,
		},
		{
			// Two starts every 10 s: the voice's first attempt takes one
			// at 0 s, its retry the other at once; the effect, ready at
			// 1 s once the image is made, waits for 10 s, and ends at
			// 15 s. When the image ends, the effect's start is 9 s away.
			name: "a retry's start holds back the key's next",
			tm: graph.Template{Kinds: []graph.Kind{
				{Name: "brief"},
				{Name: "voice", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
				{Name: "image", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}},
				{Name: "effect", Deps: []graph.Dep{{Kind: "image", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
			}},
			starts: 2,
			at:     func(ev progress.Event) bool { return ev.Type == progress.NodeSucceeded && ev.Node == "image" },
			want:   per + voice - time.Second - time.Second,
		},
	} {
		for _, bulk := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: ", alone", true: ", bulk"}[bulk], func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					g, err := graph.Build(tc.tm, 2*graph.SegmentSeconds)
					require.NoError(t, err)
					sink := new(eventLog)
					var failed atomic.Bool
					one := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
						if req.ID.Kind == "voice" && failed.CompareAndSwap(false, true) {
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
						Generators: executor.Registry{"brief": sleepy(0), "image": sleepy(time.Second), "voice": tts, "effect": tts},
						Rates:      map[string]executor.Rate{"tts": {Starts: tc.starts, Per: per}},
						Kinds: map[string]executor.KindOptions{"voice": {Estimate: voice}, "effect": {Estimate: voice},
							"image": {Estimate: time.Second}, "brief": {Estimate: time.Millisecond}},
						Default: executor.KindOptions{Retry: executor.RetryPolicy{InitialInterval: 10 * time.Millisecond}},
						Sink:    sink,
					})
					require.NoError(t, err)
					_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "g", Graph: g})
					require.NoError(t, err)
					require.NoError(t, e.Close(context.Background()))
					evs := sink.events()
					at := firstEvent(evs, tc.at)
					require.NotNil(t, at, "the event checked")
					assert.GreaterOrEqual(t, at.ETA, tc.want, "the ETA then (%s %s)", at.Type, at.Node)
				})
			})
		}
	}
}
