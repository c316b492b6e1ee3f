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

// racedCommit, once armed, fails the next commit with a lost
// connection, applied or not (applied), and lets another writer commit
// the node "script" (then) before the reply: as a run or an Edit does
// between the lost commit and the reload of the Edit or run that made
// it. commits counts the commits made through it, the failed one too.
type racedCommit struct {
	*executor.MemoryStates
	applied bool
	then    func(st dirty.State) dirty.State

	mu      sync.Mutex
	armed   bool
	commits int
}

// arm makes the next commit the one that fails.
func (s *racedCommit) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = true
}

func (s *racedCommit) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	s.commits++
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

// madeByARun and editedAgain are what racedCommit's other writer does to
// the node: a run makes it, at its revision; or an Edit gives it the next.
func madeByARun(st dirty.State) dirty.State {
	st.Status, st.OutputHash, st.AssetRef = dirty.StatusClean, "h", "ref"
	return st
}

func editedAgain(st dirty.State) dirty.State {
	st.Rev++
	st.Status = dirty.StatusDirty
	return st
}

// An Edit whose commit went through, its reply lost, found on its reload
// that it had not, when another commit of the node (a run that made it
// clean) had landed meanwhile: it committed again, and the node got two
// new revisions for one edit. Edit now takes its edit as done when each
// node's revision has grown since it loaded: by its own commit, or by
// another edit, which, committed after that load, came after the host
// saved the parameters too; it commits again only when none has.
func TestEditWhoseLostCommitWasFollowedByAnother(t *testing.T) {
	made, edited := madeByARun, editedAgain
	for _, tc := range []struct {
		name    string
		applied bool
		then    func(dirty.State) dirty.State
		commits int   // the Edit's
		rev     int64 // the node's
		version int64 // Edit's answer, and the graph's
	}{
		{name: "applied, then the node made by a run", applied: true, then: made, commits: 1, rev: 1, version: 2},
		{name: "applied, then edited again", applied: true, then: edited, commits: 1, rev: 2, version: 2},
		{name: "not applied, then edited by another", then: edited, commits: 1, rev: 1, version: 1},
		{name: "not applied, then the node made by a run", then: made, commits: 2, rev: 1, version: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				s := &racedCommit{MemoryStates: executor.NewMemoryStates(), applied: tc.applied, then: tc.then, armed: true}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: s})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				v, err := e.Edit(ctx, l.g, "lecture", "script")
				require.NoError(t, err)
				assert.Equal(t, tc.commits, s.commits, "the Edit's commits")
				snap, err := s.MemoryStates.Load(ctx, "lecture")
				require.NoError(t, err)
				assert.Equal(t, tc.version, snap.Version)
				assert.Equal(t, tc.version, v)
				assert.Equal(t, tc.rev, snap.States["script"].Rev, "the script's revision")
			})
		})
	}
}
