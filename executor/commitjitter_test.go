package executor_test

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/regengraph/regen/graph"
)

// herdStates is a StateStore whose commits, once armed, fail unapplied
// with err while fails lasts, one a commit (of results alone, with
// resultsOnly), and then the next Load of the commit's key (with
// failReload: a reload that fails too); it records when each of them
// failed, and when each store call came after that.
type herdStates struct {
	*executor.MemoryStates
	mu          sync.Mutex
	armed       bool
	fails       int
	err         error
	resultsOnly bool
	failReload  bool
	reloading   map[string]bool // keys whose next Load fails
	failedAt    []time.Time     // the commits that failed
	calls       []time.Time     // the Loads and Commits after the first failure
}

func (s *herdStates) arm(fails int, err error, resultsOnly, failReload bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed, s.fails, s.err, s.reloading = true, fails, err, map[string]bool{}
	s.resultsOnly, s.failReload = resultsOnly, failReload
}

func (s *herdStates) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	s.mu.Lock()
	fail := s.reloading[key]
	delete(s.reloading, key)
	if len(s.failedAt) > 0 && !fail {
		s.calls = append(s.calls, time.Now())
	}
	s.mu.Unlock()
	if fail {
		return executor.Snapshot{}, errors.New("state store: connection reset")
	}
	return s.MemoryStates.Load(ctx, key)
}

func (s *herdStates) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	fail := s.armed && s.fails > 0 && (!s.resultsOnly || slices.ContainsFunc(changes, func(c executor.Change) bool {
		return c.ID != executor.GraphStateID && c.State.Status == dirty.StatusClean
	}))
	if fail {
		s.fails--
		s.failedAt = append(s.failedAt, time.Now())
		if s.failReload {
			s.reloading[key] = true
		}
	} else if len(s.failedAt) > 0 {
		s.calls = append(s.calls, time.Now())
	}
	s.mu.Unlock()
	if fail {
		return 0, s.err
	}
	return s.MemoryStates.Commit(ctx, key, expect, changes)
}

// herdCallers are the calls that commit states and, when a commit fails
// with an error that may pass, commit again after a backoff: each with
// the setup that herd callers of it need, whose commits the test then
// makes fail together (resultsOnly: the commits of results alone;
// failReload: the reload after each fails too; conflict: with a
// conflict, not a lost connection).
var herdCallers = []struct {
	name string
	// setup returns the states, which the test arms, and the call of
	// caller i (of 0 to herd-1).
	setup       func(t *testing.T) (*herdStates, func(ctx context.Context, i int) error)
	resultsOnly bool
	failReload  bool
	conflict    bool
}{
	// Several hosts' users edit nodes of one lecture at once.
	{name: "Edit", setup: func(t *testing.T) (*herdStates, func(ctx context.Context, i int) error) {
		s, e, g := herdExecutor(t)
		return s, func(ctx context.Context, i int) error {
			_, err := e.Edit(ctx, g, "lecture", g.NodeID(graph.Node(i)))
			return err
		}
	}},
	{name: "Forget", setup: func(t *testing.T) (*herdStates, func(ctx context.Context, i int) error) {
		s, e, _ := herdExecutor(t)
		short, err := graph.Build(graph.Lecture(), 30)
		require.NoError(t, err)
		_, err = e.Run(t.Context(), executor.RunRequest{GraphKey: "lecture", Graph: short})
		require.NoError(t, err)
		return s, func(ctx context.Context, i int) error {
			_, err := e.Forget(ctx, short, "lecture")
			return err
		}
	}},
	// Processes start runs of one key at once: each commits its plan.
	{name: "plan", setup: func(t *testing.T) (*herdStates, func(ctx context.Context, i int) error) {
		s, _, g := herdExecutor(t)
		var es []*executor.Executor
		for range herd {
			e, err := executor.New(executor.Options{Generators: lectureRegistry(), States: s,
				Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
			es = append(es, e)
		}
		return s, func(ctx context.Context, i int) error {
			_, err := es[i].Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g,
				Marks: []dirty.Mark{{ID: g.NodeID(graph.Node(i)), Reason: dirty.ReasonEdited}}})
			return err
		}
	}},
	// Runs commit their results at once, each of its key.
	{name: "results", resultsOnly: true, setup: herdRuns},
	// A results' commit that lost a race, and whose reload failed.
	{name: "results' conflict", resultsOnly: true, failReload: true, conflict: true, setup: herdRuns},
}

// herd is how many callers fail together.
const herd = 8

// herdExecutor returns an executor whose states are s, on which a 60 s
// lecture ran on key "lecture", and its graph. The executor is closed
// when the test ends.
func herdExecutor(t *testing.T) (*herdStates, *executor.Executor, *graph.Graph) {
	t.Helper()
	s := &herdStates{MemoryStates: executor.NewMemoryStates()}
	e, err := executor.New(executor.Options{Generators: lectureRegistry(), States: s, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	g, err := graph.Build(graph.Lecture(), 60)
	require.NoError(t, err)
	_, err = e.Run(t.Context(), executor.RunRequest{GraphKey: "lecture", Graph: g})
	require.NoError(t, err)
	return s, e, g
}

// herdRuns is the setup of runs, each of its key, on one executor.
func herdRuns(t *testing.T) (*herdStates, func(ctx context.Context, i int) error) {
	s := &herdStates{MemoryStates: executor.NewMemoryStates()}
	e, err := executor.New(executor.Options{Generators: lectureRegistry(), States: s, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	return s, func(ctx context.Context, i int) error {
		_, err := e.Run(ctx, executor.RunRequest{GraphKey: fmt.Sprintf("lecture-%d", i), Graph: g})
		return err
	}
}

// Callers whose commits failed together (a store that stalled for a
// moment) do not all try again at the same instant: the backoff of a
// commit that failed (Edit's, Forget's, a run's plan's and results') is
// jittered as the other store calls' is, each wait at most its
// documented length (100 ms before the second commit) and at least half
// of it. Before, 8 Edits of one lecture whose commits failed together
// all reloaded and committed again at +100 ms (and again at +300, +700,
// +1,500 ms while the store failed), and so did 8 runs of one key
// starting, and of many keys recording their results: writers retrying
// in lockstep against a store that struggles, and against each other on
// one key, where the reloads of all but one are wasted in a conflict.
func TestCommitRetriesOfConcurrentCallersAreSpread(t *testing.T) {
	for _, c := range herdCallers {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, call := c.setup(t)
				var err error = errors.New("state store: connection reset")
				if c.conflict {
					err = &executor.ConflictError{GraphKey: "lecture", Expected: 1, Actual: 2}
				}
				s.arm(herd, err, c.resultsOnly, c.failReload)
				errs := make([]error, herd)
				var wg sync.WaitGroup
				for i := range herd {
					wg.Go(func() { errs[i] = call(t.Context(), i) })
				}
				wg.Wait()
				for i, err := range errs {
					require.NoError(t, err, "caller %d", i)
				}

				s.mu.Lock()
				defer s.mu.Unlock()
				require.Len(t, s.failedAt, herd)
				first, last := s.failedAt[0], s.failedAt[herd-1]
				require.Equal(t, first, last, "the commits failed together")
				var retries []time.Duration
				for _, at := range s.calls {
					if !at.After(last) {
						continue // a caller's first try, or the reload right after a failure
					}
					assert.GreaterOrEqual(t, at.Sub(first), 50*time.Millisecond, "a retry waited less than half its backoff")
					if at.Sub(first) <= 100*time.Millisecond {
						retries = append(retries, at.Sub(first))
					}
				}
				assert.GreaterOrEqual(t, len(retries), herd, "each caller tried again within its backoff: %v", retries)
				// 8 draws over 50 ms, to the nanosecond: the same instant
				// for more than a few of them is not chance.
				assert.Greater(t, len(slices.Compact(slices.Clone(retries))), herd/2, "the retries' instants: %v", retries)
			})
		})
	}
}

// A commit that keeps failing with a lost connection (Edit's, Forget's, a
// run's plan's) is made 5 times in all, and its jittered waits still take
// at most the 1.5 s that the docs state (and at least half of it),
// however they are drawn.
func TestCommitRetriesKeepTheirBounds(t *testing.T) {
	for _, c := range conflictCallers {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, call := c.setup(t)
				var took []time.Duration
				for range 10 {
					s.mu.Lock()
					s.err, s.failAll = errors.New("connection reset"), true
					before := s.commits
					s.mu.Unlock()
					start := time.Now()
					err := call(t.Context())
					took = append(took, time.Since(start))
					assert.ErrorContains(t, err, "connection reset")
					s.mu.Lock()
					commits := s.commits - before
					s.mu.Unlock()
					assert.Equal(t, 5, commits, "the first commit and 4 retries")
				}
				for _, d := range took {
					assert.GreaterOrEqual(t, d, 750*time.Millisecond, "waits of half their backoff at least")
					assert.LessOrEqual(t, d, 1500*time.Millisecond, "waits of their backoff at most")
				}
				slices.Sort(took)
				assert.Greater(t, len(slices.Compact(took)), 5, "jittered: %v", took)
			})
		})
	}
}
