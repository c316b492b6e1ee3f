package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// lostPlan, once armed, fails the next commit (a run's plan) with a lost
// connection, applied or not (applied), and lets another writer commit
// the node "script" (then) before the reply, as another run or an Edit
// does between the lost commit and the run's reload.
type lostPlan struct {
	*executor.MemoryStates
	applied bool
	then    func(st dirty.State) dirty.State

	mu    sync.Mutex
	armed bool
}

func (s *lostPlan) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	armed := s.armed
	s.armed = false
	s.mu.Unlock()
	if !armed {
		return s.MemoryStates.Commit(ctx, key, expect, changes)
	}
	v := expect
	if s.applied {
		var err error
		if v, err = s.MemoryStates.Commit(ctx, key, expect, changes); err != nil {
			return 0, err
		}
	}
	snap, err := s.MemoryStates.Load(ctx, key)
	if err != nil {
		return 0, err
	}
	other := s.then(snap.States["script"])
	other.UpdatedAt = time.Now().Add(time.Second)
	if _, err := s.MemoryStates.Commit(ctx, key, v, []executor.Change{{ID: "script", State: other}}); err != nil {
		return 0, err
	}
	return 0, errors.New("connection reset")
}

// A run whose plan commit (with an edited mark) went through, its reply
// lost, found on its reload that it had not when another commit of the
// node had landed meanwhile (stored compares whole states): it applied
// the edited mark again, and the node got two new revisions for one
// edit, as Edit did. The plan's edits now count as recorded when each
// edited node has at least the revision the lost commit gave it.
func TestRunWhoseLostPlanCommitWasFollowedByAnother(t *testing.T) {
	made := func(st dirty.State) dirty.State { // another run made the node, at its revision
		st.Status, st.OutputHash, st.AssetRef = dirty.StatusClean, "h", "ref"
		return st
	}
	edited := func(st dirty.State) dirty.State { // an Edit
		st.Rev++
		st.Status = dirty.StatusDirty
		return st
	}
	for _, tc := range []struct {
		name    string
		applied bool
		then    func(dirty.State) dirty.State
		rev     int64 // the script's, after the run
	}{
		{name: "applied, then the node made by another run", applied: true, then: made, rev: 1},
		{name: "applied, then edited", applied: true, then: edited, rev: 2},
		{name: "not applied, then edited", then: edited, rev: 1},
		{name: "not applied, then the node made by another run", then: made, rev: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				s := &lostPlan{MemoryStates: executor.NewMemoryStates(), applied: tc.applied, then: tc.then}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: s, Assets: l.assets, Runs: l.runs})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				req := executor.RunRequest{GraphKey: "lecture", Graph: l.g, TriggeredBy: "test"}
				_, err = e.Run(ctx, req)
				require.NoError(t, err)
				s.mu.Lock()
				s.armed = true
				s.mu.Unlock()
				req.Marks = []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}
				_, err = e.Run(ctx, req)
				require.NoError(t, err)
				snap, err := s.MemoryStates.Load(ctx, "lecture")
				require.NoError(t, err)
				assert.Equal(t, tc.rev, snap.States["script"].Rev, "the script's revision")
				assert.Equal(t, dirty.StatusClean, snap.States["script"].Status)
			})
		})
	}
}
