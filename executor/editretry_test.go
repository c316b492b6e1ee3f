package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// editOutage fails an Edit's store calls as told: its first loadFails
// Loads, and its commits by number, unapplied (failed) or applied with
// their reply lost (lost), with err.
type editOutage struct {
	*executor.MemoryStates
	err       error
	loadFails int
	failed    map[int]bool
	lost      map[int]bool
	failAll   bool // every commit fails unapplied

	mu      sync.Mutex
	loads   int
	commits int
}

func (s *editOutage) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	s.mu.Lock()
	s.loads++
	fail := s.loads <= s.loadFails
	s.mu.Unlock()
	if fail {
		return executor.Snapshot{}, s.err
	}
	return s.MemoryStates.Load(ctx, key)
}

func (s *editOutage) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	s.commits++
	n := s.commits
	s.mu.Unlock()
	if s.failAll || s.failed[n] {
		return 0, s.err
	}
	v, err := s.MemoryStates.Commit(ctx, key, expect, changes)
	if err == nil && s.lost[n] {
		return 0, s.err
	}
	return v, err
}

// Edit made each store call once: a lost connection on its Load or its
// Commit failed the edit, where a run's calls are made again with
// backoff, so a host told its user that the edit failed (and, as the
// service example does, put the old parameters back) though a retry
// would have saved it, or though the commit, whose reply alone was lost,
// had saved it, with its new revision. Edit now retries them as a run
// does (up to 5 calls, not an error wrapped in Permanent): after a
// commit that failed, it reloads, and finds it applied (then returns its
// version, with one new revision) or commits again.
func TestEditRetriesAPassingStoreError(t *testing.T) {
	reset := errors.New("connection reset")
	type outage struct {
		loadFails    int
		failed, lost map[int]bool
		failAll      bool
		err          error
	}
	for _, tc := range []struct {
		name    string
		s       outage
		wantErr bool
		commits int
		version int64 // the version Edit returns, on success
	}{
		{name: "a load that fails once", s: outage{loadFails: 1}, commits: 1, version: 1},
		{name: "a commit that fails once", s: outage{failed: map[int]bool{1: true}}, commits: 2, version: 1},
		{name: "a commit whose reply is lost", s: outage{lost: map[int]bool{1: true}}, commits: 1, version: 1},
		{name: "a commit that always fails", s: outage{failAll: true}, wantErr: true, commits: 5},
		{name: "a permanent failure", s: outage{failAll: true, err: executor.Permanent(errors.New("key too long"))},
			wantErr: true, commits: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				s := &editOutage{MemoryStates: executor.NewMemoryStates(), err: tc.s.err, loadFails: tc.s.loadFails,
					failed: tc.s.failed, lost: tc.s.lost, failAll: tc.s.failAll}
				if s.err == nil {
					s.err = reset
				}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: s})
				require.NoError(t, err)
				v, err := e.Edit(ctx, l.g, "lecture", "script")
				snap, lerr := s.MemoryStates.Load(ctx, "lecture")
				require.NoError(t, lerr)
				assert.Equal(t, tc.commits, s.commits, "commits")
				if tc.wantErr {
					require.Error(t, err)
					assert.ErrorIs(t, err, s.err)
					assert.Zero(t, snap.Version, "nothing committed")
					return
				}
				require.NoError(t, err)
				assert.Equal(t, tc.version, v)
				assert.Equal(t, tc.version, snap.Version)
				st := snap.States["script"]
				assert.Equal(t, int64(1), st.Rev, "one new revision")
				assert.Equal(t, dirty.StatusDirty, st.Status)
			})
		})
	}
}
