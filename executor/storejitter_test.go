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

// getOutage is an AssetStore (without the optional interfaces, so that
// dependencies are read one by one) whose Gets fail while fails lasts,
// one a call, and which records when each Get came.
type getOutage struct {
	executor.AssetStore
	mu    sync.Mutex
	fails int
	fail  []time.Time // the Gets that failed
	pass  []time.Time // the Gets that passed
}

func (s *getOutage) Get(ctx context.Context, ref string) (executor.Asset, error) {
	s.mu.Lock()
	fail := s.fails > 0
	s.fails--
	if fail {
		s.fail = append(s.fail, time.Now())
	} else {
		s.pass = append(s.pass, time.Now())
	}
	s.mu.Unlock()
	if fail {
		return executor.Asset{}, errors.New("asset store: connection reset")
	}
	return s.AssetStore.Get(ctx, ref)
}

// Many nodes whose reads of one asset failed together (a store that
// stalled for a moment) do not all read it again at the same instant: the
// store calls' backoff is jittered, each wait at most its documented
// length (100 ms before the second call) and at least half of it. Before,
// 13 nodes whose Get of one brief failed retried together at +100 ms
// (and again at +300, +700, +1,500 ms): a thundering herd on a store that
// struggles.
func TestStoreRetriesOfConcurrentReadsAreSpread(t *testing.T) {
	const nodes = 13
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Template{Kinds: []graph.Kind{
			{Name: "brief"},
			{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}},
				BatchKey: "tts", Concurrency: nodes},
		}}, nodes*graph.SegmentSeconds)
		require.NoError(t, err)
		gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		})
		assets := &getOutage{AssetStore: executor.NewMemoryAssets(), fails: nodes}
		e, err := executor.New(executor.Options{
			Generators: executor.Registry{"brief": gen, "voice": gen},
			Assets:     assets,
			Workers:    nodes,
		})
		require.NoError(t, err)
		_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "g", Graph: g})
		require.NoError(t, err)
		require.NoError(t, e.Close(context.Background()))

		assets.mu.Lock()
		defer assets.mu.Unlock()
		require.Len(t, assets.fail, nodes)
		require.Len(t, assets.pass, nodes)
		first, last := assets.fail[0], assets.fail[nodes-1]
		require.Less(t, last.Sub(first), time.Millisecond, "the first reads came together")
		var waits []time.Duration
		for _, at := range assets.pass {
			assert.GreaterOrEqual(t, at.Sub(first), 50*time.Millisecond, "a retry waited less than half its backoff")
			assert.LessOrEqual(t, at.Sub(last), 100*time.Millisecond, "a retry waited past its documented backoff")
			waits = append(waits, at.Sub(first))
		}
		slices.Sort(waits)
		// 13 draws over 50 ms, to the nanosecond: the same instant for
		// more than a few of them is not chance.
		assert.Greater(t, len(slices.Compact(slices.Clone(waits))), nodes/2, "the retries' waits: %v", waits)
	})
}
