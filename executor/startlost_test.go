package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// lostPlanCommits fails, once armed, the next 5 commits (a plan's tries)
// with a lost connection: the applied'th of them (from 1; 0 for none)
// is applied and loses its reply, the others are not applied.
type lostPlanCommits struct {
	*executor.MemoryStates
	applied int

	mu      sync.Mutex
	armed   bool
	commits int // the armed commits so far
}

func (s *lostPlanCommits) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = true
}

func (s *lostPlanCommits) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	armed := s.armed
	if armed {
		s.commits++
		s.armed = s.commits < 5 // the plan's tries, no more
	}
	n := s.commits
	s.mu.Unlock()
	if !armed {
		return s.MemoryStates.Commit(ctx, key, expect, changes)
	}
	if n == s.applied {
		if _, err := s.MemoryStates.Commit(ctx, key, expect, changes); err != nil {
			return 0, err
		}
	}
	return 0, errors.New("read tcp 127.0.0.1:5432: connection reset by peer")
}

// A Start whose plan commit failed with a lost connection at each of its
// tries was recorded as failed, and returned the error, though its last
// try may have gone through: its graph was then the key's, its nodes
// dirty, and the run's record said failed, with nothing going on and
// nothing to resume it at a restart (a host resumes the records that say
// running). After the last try it now reloads, as it does after the
// earlier ones: if the commit went through, the run goes on; if not, it
// is recorded as failed, and the key's states are as they were.
func TestStartWhoseLastPlanCommitWasLost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		applied int // which of the 5 tries goes through, its reply lost; 0 for none
	}{
		{name: "the last try went through", applied: 5},
		{name: "no try went through"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				s := &lostPlanCommits{MemoryStates: l.states, applied: tc.applied}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: s, Assets: l.assets, Runs: l.runs})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "first"})
				require.NoError(t, err)
				before := l.snapshot()
				g4, err := graph.Build(graph.Lecture(), 40)
				require.NoError(t, err)

				s.arm()
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g4, RunID: "new"})
				if tc.applied == 0 {
					require.Error(t, err)
					assert.Contains(t, err.Error(), "connection reset by peer")
					assert.Equal(t, before, l.snapshot(), "a Start whose commit did not go through changed the key's states")
					rec, err := l.runs.GetRun(ctx, "new")
					require.NoError(t, err)
					assert.Equal(t, executor.RunFailed, rec.Status)
					_, err = e.Edit(ctx, l.g, "lecture", "script")
					require.NoError(t, err, "the key's graph is the first run's")
					return
				}
				require.NoError(t, err, "the plan was committed: the run goes on")
				rep, err := r.Wait()
				require.NoError(t, err)
				assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
				assert.Empty(t, rep.Dirty)
				assert.Positive(t, rep.Record.Counts.Generated)
				rec, err := l.runs.GetRun(ctx, "new")
				require.NoError(t, err)
				assert.Equal(t, executor.RunSucceeded, rec.Status)
				s.mu.Lock()
				assert.Equal(t, 5, s.commits, "the plan's commits")
				s.mu.Unlock()
				_, err = e.Edit(ctx, g4, "lecture", "script")
				require.NoError(t, err, "the key's graph is the new run's")
			})
		})
	}
}

// blindAfterLostPlan is a state store whose first commit after arm goes
// through and loses its reply, and whose every load after that fails, as
// over a connection that does not come back.
type blindAfterLostPlan struct {
	*executor.MemoryStates

	mu    sync.Mutex
	armed bool
	blind bool
}

func (s *blindAfterLostPlan) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	v, err := s.MemoryStates.Commit(ctx, key, expect, changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || !s.armed {
		return v, err
	}
	s.armed, s.blind = false, true
	return 0, errors.New("read tcp 127.0.0.1:5432: connection reset by peer")
}

func (s *blindAfterLostPlan) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	s.mu.Lock()
	blind := s.blind
	s.mu.Unlock()
	if blind {
		return executor.Snapshot{}, errors.New("dial tcp 127.0.0.1:5432: connection refused")
	}
	return s.MemoryStates.Load(ctx, key)
}

// A Start whose plan commit went through, its reply lost, and whose
// reloads then all failed returned only the reload's error ("load states
// of ..."), as if nothing had been committed, though the key's graph was
// then the run's and its nodes dirty: a host that took the doc's "a Start
// that fails changes nothing" at its word had no hint to resume it. The
// error now says that the commit may have gone through, with both causes.
func TestStartWhosePlanCommitWasLostAndReloadsFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		s := &blindAfterLostPlan{MemoryStates: l.states}
		e := ranOnce(t, l, s)
		g4, err := graph.Build(graph.Lecture(), 40)
		require.NoError(t, err)

		s.mu.Lock()
		s.armed = true
		s.mu.Unlock()
		_, err = e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g4, RunID: "new"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "commit the plan of \"lecture\": read tcp 127.0.0.1:5432: connection reset by peer")
		assert.Contains(t, err.Error(), "may have gone through")
		assert.Contains(t, err.Error(), "connection refused")
		rec, err := l.runs.GetRun(ctx, "new")
		require.NoError(t, err)
		assert.Equal(t, executor.RunFailed, rec.Status)
		assert.Contains(t, rec.Error, "may have gone through")
		snap, err := l.states.Load(ctx, "lecture")
		require.NoError(t, err)
		assert.Equal(t, executor.Fingerprint(g4), snap.States[executor.GraphStateID].InputHash, "the commit went through")
	})
}

// Edit's commit too: an Edit whose commit went through, its reply lost,
// and whose reloads then failed returned "edit: load ...", as if nothing
// had been committed. Its error now says that it may have gone through.
func TestEditWhoseCommitWasLostAndReloadsFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		s := &blindAfterLostPlan{MemoryStates: l.states}
		e := ranOnce(t, l, s)
		before, err := l.states.Load(ctx, "lecture")
		require.NoError(t, err)

		s.mu.Lock()
		s.armed = true
		s.mu.Unlock()
		_, err = e.Edit(ctx, l.g, "lecture", "script")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "edit: commit \"lecture\": read tcp 127.0.0.1:5432: connection reset by peer")
		assert.Contains(t, err.Error(), "may have gone through")
		assert.Contains(t, err.Error(), "connection refused")
		after, err := l.states.Load(ctx, "lecture")
		require.NoError(t, err)
		assert.Equal(t, before.States["script"].Rev+1, after.States["script"].Rev, "the commit went through")
	})
}

// ranOnce returns an executor on the lab's stores with states in place
// of its state store, closed at the test's end, after a first run of the
// lab's lecture (run ID "first").
func ranOnce(t *testing.T, l *lab, states executor.StateStore) *executor.Executor {
	t.Helper()
	e, err := executor.New(executor.Options{Generators: l.registry(l), States: states, Assets: l.assets, Runs: l.runs})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "first"})
	require.NoError(t, err)
	return e
}
