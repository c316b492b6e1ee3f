package executor_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// busyKey is a StateStore on whose keys another writer commits (the
// graph state, as it is) just before each commit of a run's results,
// from the first of them on, for busyFor (forever when negative), so that
// each such commit conflicts. It records when the run's commits of
// results were made.
type busyKey struct {
	*executor.MemoryStates
	busyFor time.Duration

	mu      sync.Mutex
	until   time.Time
	beaten  int         // commits of results that the other writer beat
	commits []time.Time // the run's commits of results
}

func (s *busyKey) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	results := slices.ContainsFunc(changes, func(c executor.Change) bool {
		return c.ID != executor.GraphStateID && c.State.Status == dirty.StatusClean
	})
	s.mu.Lock()
	now := time.Now()
	if results {
		if s.until.IsZero() {
			s.until = now.Add(s.busyFor)
		}
		s.commits = append(s.commits, now)
	}
	busy := results && (s.busyFor < 0 || now.Before(s.until))
	if busy {
		s.beaten++
	}
	s.mu.Unlock()
	if busy {
		snap, err := s.MemoryStates.Load(ctx, key)
		if err != nil {
			return 0, err
		}
		if _, err := s.MemoryStates.Commit(ctx, key, snap.Version,
			[]executor.Change{{ID: executor.GraphStateID, State: snap.States[executor.GraphStateID]}}); err != nil {
			return 0, err
		}
	}
	return s.MemoryStates.Commit(ctx, key, expect, changes)
}

func busyExecutor(t *testing.T, l *lab, s *busyKey) *executor.Executor {
	t.Helper()
	e, err := executor.New(executor.Options{Generators: l.registry(l), States: s, Assets: l.assets, Runs: l.runs, Sink: l})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	return e
}

// A run's commit of results that lost a race reloaded and committed again
// at once, up to 64 times: against another writer committing to the key
// for a moment (runs and edits of a busy lecture), it lost 64 races in a
// few microseconds and failed its nodes, their results paid for. It now
// pauses, jittered and growing, between the retries, so that a burst of
// about a quarter of a second passes, as it does for Edit and a plan's
// commit.
func TestResultsCommitOutlastsABusyKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		s := &busyKey{MemoryStates: l.states, busyFor: 250 * time.Millisecond}
		e := busyExecutor(t, l, s)
		_, err := l.run(e)
		require.NoError(t, err)
		l.requireAllClean()
		s.mu.Lock()
		defer s.mu.Unlock()
		assert.Greater(t, s.beaten, 10, "the other writer won races")
	})
}

// Against a key that stays busy the retries keep their bound: 64 commits
// in all, whose pauses add up to about a second at most.
func TestResultsCommitOnABusyKeyKeepsItsBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		s := &busyKey{MemoryStates: l.states}
		e := busyExecutor(t, l, s)
		_, err := l.run(e)
		require.NoError(t, err)
		var took []time.Duration
		for range 2 {
			s.mu.Lock()
			s.busyFor, s.commits = -1, nil
			s.mu.Unlock()
			_, err = l.run(e, dirty.Mark{ID: "timeline", Reason: dirty.ReasonForced})
			var re *executor.RunError
			require.ErrorAs(t, err, &re)
			require.Len(t, re.Failed, 1)
			assert.Equal(t, "timeline", re.Failed[0].Node)
			require.ErrorIs(t, err, executor.ErrConflict)
			assert.ErrorContains(t, err, "64 version conflicts in a row")
			s.mu.Lock()
			commits := slices.Clone(s.commits)
			s.mu.Unlock()
			require.Len(t, commits, 64, "the first commit and 63 retries")
			took = append(took, commits[63].Sub(commits[0]))
		}
		for _, d := range took {
			assert.Greater(t, d, 400*time.Millisecond, "a pause between the tries")
			assert.LessOrEqual(t, d, time.Second, "short pauses")
		}
		assert.NotEqual(t, took[0], took[1], "jittered")
	})
}

// lateStates counts the calls made to its store with a context that had
// ended (a store that ignores its context would make them), and, once
// armed, cancels the run at the first commit of results, which fail then
// fails, when it is set, after hold (ignoring its context).
type lateStates struct {
	executor.StateStore

	mu     sync.Mutex
	armed  bool
	fail   error
	hold   time.Duration
	cancel context.CancelFunc
	late   []string // the calls made with a context that had ended
}

func (s *lateStates) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	s.mu.Lock()
	if ctx.Err() != nil {
		s.late = append(s.late, "Load")
	}
	s.mu.Unlock()
	return s.StateStore.Load(ctx, key)
}

func (s *lateStates) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	results := slices.ContainsFunc(changes, func(c executor.Change) bool {
		return c.ID != executor.GraphStateID && c.State.Status == dirty.StatusClean
	})
	s.mu.Lock()
	if ctx.Err() != nil {
		s.late = append(s.late, "Commit")
	}
	armed, fail, hold := s.armed && results, s.fail, s.hold
	if armed {
		s.cancel()
	}
	s.mu.Unlock()
	if armed && fail != nil {
		time.Sleep(hold)
		return 0, fail
	}
	return s.StateStore.Commit(ctx, key, expect, changes)
}

// Once the run's store calls were past Options.StoreTimeout after its
// cancel, a commit of results whose wait before a retry that ended with
// them (a lost connection's) made one more Commit and Load, with the
// ended context: a store that ignores its context then wrote after the
// documented bound. The commit now stops with no store call once that
// context has ended, after a lost connection's wait as after a conflict's
// pause, and after a Commit that returned once it had ended (a store that
// ignores its context), when it reloaded before.
func TestResultsCommitStopsAtTheStoresBound(t *testing.T) {
	for _, c := range []struct {
		name string
		wrap func(*executor.MemoryStates) (executor.StateStore, func())
		fail error
		hold time.Duration // of the failed commit
	}{
		{"lost connection", func(m *executor.MemoryStates) (executor.StateStore, func()) { return m, func() {} },
			errors.New("state store: connection reset"), 0},
		{"commit past the bound", func(m *executor.MemoryStates) (executor.StateStore, func()) { return m, func() {} },
			errors.New("state store: connection reset"), time.Second},
		{"busy key", func(m *executor.MemoryStates) (executor.StateStore, func()) {
			s := &busyKey{MemoryStates: m}
			return s, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.busyFor = -1
			}
		}, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				inner, busy := c.wrap(l.states)
				s := &lateStates{StateStore: inner, fail: c.fail, hold: c.hold}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: s, Assets: l.assets,
					Runs: l.runs, Sink: l, StoreTimeout: 120 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
				_, err = l.run(e)
				require.NoError(t, err)

				busy()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				s.mu.Lock()
				s.armed, s.cancel = true, cancel
				s.mu.Unlock()
				_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
					Marks: []dirty.Mark{{ID: "timeline", Reason: dirty.ReasonForced}}})
				require.ErrorIs(t, err, executor.ErrCancelled)
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Empty(t, s.late, "store calls with the run's ended store context")
			})
		})
	}
}
