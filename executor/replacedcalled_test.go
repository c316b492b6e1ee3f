package executor_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// takenThenReplaced is a StateStore on which, at the first commit of the
// two images' results, another run commits the first image's same take
// first (a conflict, after which the run holds that image's result as
// unchanged), and at the next one, the key's graph is replaced.
type takenThenReplaced struct {
	*executor.MemoryStates
	mu   sync.Mutex
	step int
}

func (s *takenThenReplaced) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	has := func(id string) int { // a result of the node
		return slices.IndexFunc(changes, func(c executor.Change) bool {
			return c.ID == id && c.State.Status == dirty.StatusClean
		})
	}
	i0, i1 := has("asset:image:segment[0]"), has("asset:image:segment[1]")
	switch {
	case s.step == 0 && i0 >= 0 && i1 >= 0:
		s.step++
		_, err := s.MemoryStates.Commit(ctx, key, expect, []executor.Change{changes[i0]})
		if err != nil {
			return 0, err
		}
	case s.step == 1 && i1 >= 0:
		s.step++
		snap, err := s.MemoryStates.Load(ctx, key)
		if err != nil {
			return 0, err
		}
		other := snap.States[executor.GraphStateID]
		other.InputHash = "another graph"
		if _, err := s.MemoryStates.Commit(ctx, key, snap.Version,
			[]executor.Change{{ID: executor.GraphStateID, State: other}}); err != nil {
			return 0, err
		}
	}
	return s.MemoryStates.Commit(ctx, key, expect, changes)
}

// A node that was called gets a settling event, and is in a list of the
// Report, when its run stops because its graph was replaced: here an
// image of a bulk call, whose result the run took as unchanged once
// another run committed the same take, then lost to the replacement.
// Before, it settled as unstarted, as a node that early cutoff kept: its
// node.started had no settling event, and the Report did not list it.
func TestACalledNodeOfARunWhoseGraphIsReplacedSettles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 20)
		_, err := l.run(l.executor(executor.Options{}))
		require.NoError(t, err)
		states := &takenThenReplaced{MemoryStates: l.states}
		e, err := executor.New(executor.Options{Generators: l.registry(bulkOf{l.Generate}),
			States: states, Assets: l.assets, Runs: l.runs, Sink: l})
		require.NoError(t, err)
		defer func() { assert.NoError(t, e.Close(context.Background())) }()
		rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "asset:image:segment[0]", Reason: dirty.ReasonForced},
				{ID: "asset:image:segment[1]", Reason: dirty.ReasonForced}}})
		require.ErrorIs(t, err, executor.ErrGraphReplaced)
		require.Equal(t, 2, states.step, "the commits the test meant")

		listed := slices.Concat(rep.Generated, rep.Unchanged, rep.Failed, rep.Skipped, rep.Superseded, rep.Cancelled)
		started := map[string]bool{}
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, ev := range l.events {
			if ev.RunID != rep.Record.ID {
				continue
			}
			switch ev.Type {
			case progress.NodeStarted:
				started[ev.Node] = true
			case progress.NodeSucceeded, progress.NodeUnchanged, progress.NodeFailed, progress.NodeSuperseded,
				progress.NodeCancelled:
				delete(started, ev.Node)
			}
		}
		assert.Empty(t, started, "nodes started with no settling event")
		assert.Contains(t, listed, "asset:image:segment[0]")
		assert.Contains(t, rep.Superseded, "asset:image:segment[0]")
	})
}
