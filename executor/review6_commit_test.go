package executor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// lostThenBlind is a state store whose first commit of node's result
// goes through but loses its reply, and whose next loads fail (loads
// of them), as over a connection that comes back slowly.
type lostThenBlind struct {
	*executor.MemoryStates
	node  string
	loads int

	mu     sync.Mutex
	lost   bool
	failed int
}

var errReplyLost = errors.New("connection reset")

func (s *lostThenBlind) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	v, err := s.MemoryStates.Commit(ctx, key, expect, changes)
	if err != nil {
		return v, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		if c.ID == s.node && c.State.Status == dirty.StatusClean && !s.lost {
			s.lost = true
			return 0, errReplyLost
		}
	}
	return v, nil
}

func (s *lostThenBlind) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	s.mu.Lock()
	blind := s.lost && s.failed < s.loads
	if blind {
		s.failed++
	}
	s.mu.Unlock()
	if blind {
		return executor.Snapshot{}, errReplyLost
	}
	return s.MemoryStates.Load(ctx, key)
}

// A commit of results whose reply was lost, although it went through,
// and whose reload failed too, was made again at the same version: it
// conflicted with itself, and the run took the conflict for another
// writer's. If the reload after the conflict failed too, it gave the
// results up: the nodes were reported failed ("record result: version
// conflict"), the run failed and their dependents were skipped, while
// the store held them clean; if that reload worked, it found them clean
// and reported them unchanged, as if another run had made them. The run
// now knows that the commit may have gone through until a reload says,
// and takes the conflict for its own commit's when it did.
func TestReview6CommitLostThenReloadFails(t *testing.T) {
	for _, loads := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("loads=%d", loads), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				states := &lostThenBlind{MemoryStates: executor.NewMemoryStates(), node: "text:segment[0]", loads: loads}
				requireMadeOnce(t, states, states.MemoryStates)
			})
		})
	}
}

// conflictThenBlind is a state store on which another writer commits
// just before the first commit of node's result, which then conflicts,
// and whose next loads fail (loads of them).
type conflictThenBlind struct {
	*executor.MemoryStates
	node  string
	loads int

	mu     sync.Mutex
	raced  bool
	failed int
}

func (s *conflictThenBlind) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	race := false
	for _, c := range changes {
		if c.ID == s.node && c.State.Status == dirty.StatusClean && !s.raced {
			s.raced, race = true, true
		}
	}
	s.mu.Unlock()
	if race {
		// Another writer's commit (an edit of another graph's node, say)
		// comes first.
		if _, err := s.MemoryStates.Commit(ctx, key, expect, nil); err != nil {
			return 0, err
		}
	}
	return s.MemoryStates.Commit(ctx, key, expect, changes)
}

func (s *conflictThenBlind) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	s.mu.Lock()
	blind := s.raced && s.failed < s.loads
	if blind {
		s.failed++
	}
	s.mu.Unlock()
	if blind {
		return executor.Snapshot{}, errReplyLost
	}
	return s.MemoryStates.Load(ctx, key)
}

// A commit of results that lost a race to another writer (a conflict)
// reloads the states and applies its results again; but when that reload
// failed once (a lost connection), the results were given up at once:
// the nodes, made and paid for, were reported failed ("record result:
// version conflict"), the run failed and their dependents were skipped,
// although a store call that fails so is retried up to 5 times. The
// commit is now made again, and reloads again, as after any failure
// that may pass.
func TestReview6CommitConflictThenReloadFails(t *testing.T) {
	for _, loads := range []int{1, 3} {
		t.Run(fmt.Sprintf("loads=%d", loads), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				states := &conflictThenBlind{MemoryStates: executor.NewMemoryStates(), node: "text:segment[0]", loads: loads}
				requireMadeOnce(t, states, states.MemoryStates)
			})
		})
	}
}

// requireMadeOnce runs a text and its chart, one segment, on a new
// executor with states (over mem), and requires that each was generated
// once, reported generated (not unchanged, nor dirty), and is clean in
// mem.
func requireMadeOnce(t *testing.T, states executor.StateStore, mem *executor.MemoryStates) {
	t.Helper()
	ctx := context.Background()
	g := textChart(t)
	var mu sync.Mutex
	calls := map[string]int{}
	gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		mu.Lock()
		calls[req.NodeID]++
		mu.Unlock()
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	e, err := executor.New(executor.Options{Generators: executor.Registry{"text": gen, "chart": gen}, States: states})
	require.NoError(t, err)
	defer e.Close(ctx)

	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "deck", Graph: g})
	require.NoError(t, err)
	require.Equal(t, []string{"chart:segment[0]", "text:segment[0]"}, rep.Generated)
	require.Empty(t, rep.Unchanged)
	require.Empty(t, rep.Dirty)
	require.Equal(t, map[string]int{"chart:segment[0]": 1, "text:segment[0]": 1}, calls)
	snap, err := mem.Load(ctx, "deck")
	require.NoError(t, err)
	for _, id := range []string{"text:segment[0]", "chart:segment[0]"} {
		require.Equal(t, dirty.StatusClean, snap.States[id].Status, id)
	}
}

// textChart builds a graph of one segment of a text and its chart.
func textChart(t *testing.T) *graph.Graph {
	t.Helper()
	tmpl := graph.Template{Kinds: []graph.Kind{
		{Name: "text", PerSegment: true},
		{Name: "chart", PerSegment: true, Deps: []graph.Dep{{Kind: "text", Scope: graph.ScopeSameSegment}}},
	}}
	g, err := graph.Build(tmpl, graph.SegmentSeconds)
	require.NoError(t, err)
	return g
}
