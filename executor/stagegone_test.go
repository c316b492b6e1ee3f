package executor_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// replaceAtVideo is a StateStore on which another run replaces the key's
// graph just before the first commit of video 0's result.
type replaceAtVideo struct {
	*executor.MemoryStates
	mu   sync.Mutex
	done bool
}

func (s *replaceAtVideo) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done && slices.ContainsFunc(changes, func(c executor.Change) bool {
		return c.ID == "asset:video:segment[0]" && c.State.Status == dirty.StatusClean
	}) {
		s.done = true
		snap, err := s.MemoryStates.Load(ctx, key)
		if err != nil {
			return 0, err
		}
		other := snap.States[executor.GraphStateID]
		other.InputHash = "another graph"
		if _, err := s.MemoryStates.Commit(ctx, key, snap.Version, []executor.Change{{ID: executor.GraphStateID, State: other}}); err != nil {
			return 0, err
		}
	}
	return s.MemoryStates.Commit(ctx, key, expect, changes)
}

// A stage none of whose nodes started or settled before its run was
// cancelled gets no event, as the package doc says: here the videos'
// stage, whose one node early cutoff kept (its narration made again with
// the same output) as the run stopped because its graph was replaced, so
// that the node settled as unstarted, with no event. Before, the stage
// got a stage.started and a stage.finished once the stage before it
// finished (its music cancelled), with no event of a node between them.
func TestAStageOfNodesThatNeverStartedGetsNoEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 20)
		_, err := l.run(l.executor(executor.Options{}))
		require.NoError(t, err)
		states := &replaceAtVideo{MemoryStates: l.states}
		e, err := executor.New(executor.Options{States: states, Assets: l.assets, Runs: l.runs, Sink: l,
			Generators: l.registry(l)})
		require.NoError(t, err)
		defer func() { assert.NoError(t, e.Close(context.Background())) }()
		rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "asset:narration:segment[0]", Reason: dirty.ReasonForced},
				{ID: "asset:music", Reason: dirty.ReasonForced}}})
		require.ErrorIs(t, err, executor.ErrGraphReplaced)
		require.True(t, states.done, "the commit the test meant")

		l.mu.Lock()
		defer l.mu.Unlock()
		var got []string
		for _, ev := range l.events {
			if ev.RunID == rep.Record.ID {
				got = append(got, fmt.Sprintf("%s %d %s", ev.Type, ev.Stage, ev.Node))
			}
		}
		// The narration and the music start at the same instant, each on
		// a worker of its own: their node.started events come in either
		// order (the music's first some 1 run in 80 under -cpu 4).
		if i := slices.Index(got, "node.started 0 asset:narration:segment[0]"); i > 0 && got[i-1] == "node.started 0 asset:music" {
			got[i-1], got[i] = got[i], got[i-1]
		}
		want := []string{
			"run.started -1 ",
			"stage.started 0 ",
			"node.started 0 asset:narration:segment[0]",
			"node.started 0 asset:music",
			"node.succeeded 0 asset:narration:segment[0]",
			"node.cancelled 0 asset:music",
			"stage.finished 0 ",
			"run.cancelled -1 ",
		}
		assert.Empty(t, cmp.Diff(want, got), "the run's events (-want +got)")
	})
}
