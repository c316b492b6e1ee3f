package executor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// lostThenEdited is a state store whose first commit of node's result
// fails with an error after which it may have gone through, though it did
// not (the connection was reset before the store had it); an edit of the
// node then commits (another writer), and the next loads fail (loads of
// them).
type lostThenEdited struct{ lostThenBlind } // its Load, and its fields

func (s *lostThenEdited) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	lose := false
	for _, c := range changes {
		if c.ID == s.node && c.State.Status == dirty.StatusClean && !s.lost {
			s.lost, lose = true, true
		}
	}
	s.mu.Unlock()
	if !lose {
		return s.MemoryStates.Commit(ctx, key, expect, changes)
	}
	snap, err := s.MemoryStates.Load(ctx, key)
	if err != nil {
		return 0, err
	}
	st := snap.States[s.node]
	st.Rev++
	st.Status = dirty.StatusDirty
	if _, err := s.MemoryStates.Commit(ctx, key, snap.Version, []executor.Change{{ID: s.node, State: st}}); err != nil {
		return 0, err
	}
	return 0, errReplyLost
}

// A commit of results that may have gone through but did not, whose
// reload failed, is made again with the same stamp; when it then
// conflicts with a real other writer (an edit of its node), the run does
// not take the conflict for its own commit's: the edit stays (the node
// has its new revision, and no result made from the old one is kept),
// and the result is not reported generated.
func TestReview10CommitUnsureThenAnEditConflicts(t *testing.T) {
	for _, loads := range []int{1, 2} {
		t.Run(fmt.Sprintf("loads=%d", loads), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				g := textChart(t)
				var mu sync.Mutex
				revs := map[string][]int64{}
				gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					mu.Lock()
					revs[req.NodeID] = append(revs[req.NodeID], req.Rev)
					mu.Unlock()
					return executor.Asset{Data: []byte(fmt.Sprintf("%s@%d", req.NodeID, req.Rev))}, nil
				})
				states := &lostThenEdited{lostThenBlind{MemoryStates: executor.NewMemoryStates(), node: "text:segment[0]", loads: loads}}
				e, err := executor.New(executor.Options{Generators: executor.Registry{"text": gen, "chart": gen}, States: states})
				require.NoError(t, err)
				defer e.Close(ctx)

				rep, _ := e.Run(ctx, executor.RunRequest{GraphKey: "deck", Graph: g})
				require.NotNil(t, rep)
				snap, err := states.MemoryStates.Load(ctx, "deck")
				require.NoError(t, err)
				text := snap.States["text:segment[0]"]
				require.Equal(t, int64(1), text.Rev, "the edit's revision")
				mu.Lock()
				defer mu.Unlock()
				t.Logf("report: generated %v superseded %v dirty %v failed %d; text %+v; revs %v",
					rep.Generated, rep.Superseded, rep.Dirty, len(rep.Failed), text, revs)
				if text.Status == dirty.StatusClean {
					// Made again, from the new revision.
					require.Equal(t, []int64{0, 1}, revs["text:segment[0]"])
					require.Contains(t, rep.Generated, "text:segment[0]")
				} else {
					require.NotContains(t, rep.Generated, "text:segment[0]")
					require.Contains(t, rep.Dirty, "text:segment[0]")
				}
			})
		})
	}
}
