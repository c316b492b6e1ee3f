package executor_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// Options.Rates is for provider quotas, and a provider counts every call,
// a retry's too: a flaky provider whose first attempts all failed was
// called again after the backoff, past the quota (an embedder's trial
// saw 8 calls in a window of 4), since retries took no start. They now
// take one, as first attempts do, whatever the generator: alone or bulk.
func TestRateCountsRetries(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "chapter:voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 4},
		{Name: "mix", Deps: []graph.Dep{{Kind: "chapter:voice", Scope: graph.ScopeAllSegments}}},
	}}
	g, err := graph.Build(tm, 8*graph.SegmentSeconds)
	require.NoError(t, err)
	plain := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	const per = time.Second
	for _, bulk := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "bulk"}[bulk], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Every node's first attempt fails: in a bulk call, its
				// slot; alone, its call.
				var mu sync.Mutex
				var calls []time.Time
				failed := map[string]bool{}
				call := func(id string) error {
					mu.Lock()
					defer mu.Unlock()
					calls = append(calls, time.Now())
					if !failed[id] {
						failed[id] = true
						return errors.New("provider: try again")
					}
					return nil
				}
				one := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					if err := call(req.NodeID); err != nil {
						return executor.Asset{}, err
					}
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				var tts executor.Generator = one
				if bulk {
					tts = bulkOf{one}
				}
				e, err := executor.New(executor.Options{
					Generators: executor.Registry{"brief": plain, "mix": plain, "chapter:voice": tts},
					Rates:      map[string]executor.Rate{"tts": {Starts: 4, Per: per}},
					Default:    executor.KindOptions{Retry: executor.RetryPolicy{InitialInterval: 10 * time.Millisecond}},
				})
				require.NoError(t, err)
				rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "g", Graph: g})
				require.NoError(t, err)
				require.NoError(t, e.Close(context.Background()))
				assert.Len(t, rep.Generated, 10)
				mu.Lock()
				defer mu.Unlock()
				require.Len(t, calls, 16, "each voice twice")
				slices.SortFunc(calls, time.Time.Compare)
				assert.LessOrEqual(t, mostInWindow(calls, per), 4, "calls within %v: want at most 4", per)
			})
		})
	}
}
