package executor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// While generators return at once, one worker does the work and the
// others wait; a call that then takes time must not hold the rest: once
// no node settled for a moment, another worker starts the nodes that do
// not need it. Here every generator returns at once but narration 0's,
// which waits until every other node it does not hold back has been
// made: without the wake, the run would never end.
func TestSlowCallAmongInstantOnesHoldsNothingElse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Lecture(), 120)
		require.NoError(t, err)
		held := map[string]bool{"asset:narration:segment[0]": true, "asset:video:segment[0]": true, "timeline": true}
		others := g.Len() - len(held)
		var mu sync.Mutex
		made := 0
		allMade := make(chan struct{})
		var waited time.Duration
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if req.NodeID == "asset:narration:segment[0]" {
				start := time.Now()
				select {
				case <-allMade:
				case <-ctx.Done():
					return executor.Asset{}, ctx.Err()
				}
				waited = time.Since(start)
			} else {
				mu.Lock()
				if made++; made == others {
					close(allMade)
				}
				mu.Unlock()
			}
			return executor.Asset{Data: []byte(req.NodeID), Length: graph.SegmentLength}, nil
		})
		e, err := executor.New(executor.Options{Generators: registryFor(g, gen)})
		require.NoError(t, err)
		defer e.Close(context.Background())
		rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: g})
		require.NoError(t, err)
		assert.Len(t, rep.Generated, g.Len())
		assert.Less(t, waited, 10*time.Millisecond, "the other nodes were made while narration 0's call went on")
	})
}

// slowCommits is a state store whose commits take a millisecond, as a
// database's do, and counts them.
type slowCommits struct {
	executor.StateStore
	commits atomic.Int64
}

func (s *slowCommits) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.commits.Add(1)
	time.Sleep(time.Millisecond)
	return s.StateStore.Commit(ctx, key, expect, changes)
}

// While a worker commits on a slow store, the others go on making nodes,
// whose results the next commit takes together: generators that return
// at once must not leave one worker making a node, then waiting for its
// commit, node after node.
func TestSlowCommitsGroupTheResults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Lecture(), 600)
		require.NoError(t, err)
		states := &slowCommits{StateStore: executor.NewMemoryStates()}
		e, err := executor.New(executor.Options{Generators: registryFor(g, noop), States: states})
		require.NoError(t, err)
		defer e.Close(context.Background())
		rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: g})
		require.NoError(t, err)
		require.Len(t, rep.Generated, g.Len())
		assert.Less(t, states.commits.Load(), int64(g.Len()/3), "commits for %d nodes", g.Len())
	})
}
