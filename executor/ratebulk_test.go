package executor_test

import (
	"context"
	"fmt"
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

// stampedBulk is a bulk generator that records the start of every node
// it is called for, alone or in a bulk call; each call takes took.
type stampedBulk struct {
	took   time.Duration
	mu     sync.Mutex
	starts []time.Time
}

func (b *stampedBulk) stamp(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range n {
		b.starts = append(b.starts, time.Now())
	}
}

func (b *stampedBulk) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	b.stamp(1)
	time.Sleep(b.took)
	return executor.Asset{Data: []byte(req.NodeID)}, nil
}

func (b *stampedBulk) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	b.stamp(len(reqs))
	time.Sleep(b.took)
	out := make([]executor.Outcome, len(reqs))
	for i, r := range reqs {
		out[i].Asset = executor.Asset{Data: []byte(r.NodeID)}
	}
	return out
}

// mostInWindow returns the most of ts (sorted) within any window of per:
// the starts whose times t satisfy first <= t < first+per.
func mostInWindow(ts []time.Time, per time.Duration) int {
	most := 0
	for i := range ts {
		n := 0
		for j := i; j < len(ts) && ts[j].Sub(ts[i]) < per; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

// Options.Rates {tts: 4 per 300ms} with Options.Limits {tts: 3}, a bulk
// generator and several runs at once let 5 or 6 nodes start within 300ms
// (an embedder's finding): a bulk call took its quota starts one by one,
// each stamped when taken, so a call that got its first start early and
// waited for its last started all its nodes later, beside the next call,
// which its early stamp no longer held back. The window rule now holds
// for the nodes' real starts.
func TestRateHoldsForBulkCallsUnderLimits(t *testing.T) {
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
	const per = 300 * time.Millisecond
	for _, runs := range []int{1, 3} {
		for _, limit := range []int{0, 1, 2, 3} {
			t.Run(fmt.Sprintf("runs=%d limit=%d", runs, limit), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					tts := &stampedBulk{took: 30 * time.Millisecond}
					opts := executor.Options{
						Generators: executor.Registry{"brief": plain, "mix": plain, "chapter:voice": tts},
						Rates:      map[string]executor.Rate{"tts": {Starts: 4, Per: per}},
					}
					if limit > 0 {
						opts.Limits = map[string]int{"tts": limit}
					}
					e, err := executor.New(opts)
					require.NoError(t, err)
					var wg sync.WaitGroup
					for i := range runs {
						wg.Go(func() {
							_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: fmt.Sprint("g", i), Graph: g})
							assert.NoError(t, err)
						})
					}
					wg.Wait()
					require.NoError(t, e.Close(context.Background()))
					require.Len(t, tts.starts, 8*runs)
					slices.SortFunc(tts.starts, time.Time.Compare)
					assert.LessOrEqual(t, mostInWindow(tts.starts, per), 4, "starts within %v: want at most 4", per)
				})
			})
		}
	}
}
