package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// recoverRuns is the start-up recovery of the package documentation, as
// a host writes it: it lists the runs recorded as running on every key,
// and for each takes the key's lock, waiting while the process that runs
// it lives, reads the record again (another process may have resumed it
// while this one waited), resumes it if it still says running, waits for
// the resume, and unlocks. It returns the resumed runs' reports.
func recoverRuns(ctx context.Context, s *pgstore.Store, e *executor.Executor) ([]*executor.Report, error) {
	running, err := s.RunsByStatus(ctx, executor.RunRunning)
	if err != nil {
		return nil, err
	}
	var reports []*executor.Report
	for _, rec := range running {
		rep, err := func() (*executor.Report, error) {
			lock, err := s.LockGraph(ctx, rec.GraphKey)
			if err != nil {
				return nil, err
			}
			defer lock.Unlock(context.WithoutCancel(ctx)) //nolint:errcheck // a lost lock is seen below
			if rec, err = s.GetRun(ctx, rec.ID); err != nil || rec.Status != executor.RunRunning {
				return nil, err // resumed by another process meanwhile, or pruned
			}
			g, err := graph.Build(graph.Lecture(), rec.Seconds) // the host's template for rec.Graph
			if err != nil {
				return nil, err
			}
			r, err := e.Resume(ctx, g, rec.ID)
			if err != nil {
				return nil, err
			}
			lock.Guard(r) // another process may hold the key once it is lost
			rep, err := r.Wait()
			if errors.Is(err, executor.ErrRunFailed) {
				err = nil // the nodes that failed are in the report
			}
			return rep, errors.Join(err, lock.Unlock(ctx))
		}()
		if err != nil {
			return reports, fmt.Errorf("recover run %s: %w", rec.ID, err)
		}
		if rep != nil {
			reports = append(reports, rep)
		}
	}
	return reports, nil
}

// The whole recipe, across processes. Process 1 (a child) takes the
// key's lock, starts a run and dies (SIGKILL) in the middle, never
// unlocking. Process 2 starts meanwhile: while process 1 lives, its
// TryLockGraph is refused, so that it neither resumes the live run (which
// rewrote the live run's record as interrupted and paid for its nodes
// twice) nor starts the same work; its start-up recovery finds the run
// left running, takes the lock only once process 1 is gone (Postgres
// frees it when the session ends), and resumes the run to the end,
// regenerating only what process 1 did not commit.
func TestCrashRecoveryRecipe(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 120*time.Second)
	g := build(t, 60)
	key := testenv.UniqueName(t)
	held := "asset:video:segment[1]"
	c := startChild(t, childConfig{Schema: pg.Schema, GraphKey: key, Seconds: 60, Lock: true, Hold: []string{held}})
	c.waitLine(t, "locked")
	runID := c.waitLine(t, "run ")
	c.waitLine(t, "started "+held)

	// Process 2, while process 1 runs.
	p := newProvider()
	e := newExecutor(t, s, p.registry())
	_, err := s.TryLockGraph(ctx, key)
	require.ErrorIs(t, err, pgstore.ErrGraphLocked, "a Resume (or a second start) while process 1 runs the key")
	rec, err := s.GetRun(ctx, runID)
	require.NoError(t, err)
	assert.Equal(t, executor.RunRunning, rec.Status, "the live run's record")
	assert.Empty(t, p.called(), "process 2 made nothing")

	recovered := make(chan []*executor.Report, 1)
	go func() {
		reps, err := recoverRuns(ctx, s, e)
		assert.NoError(t, err)
		recovered <- reps
	}()
	awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), false, 1) // recovery waits for the lock
	select {
	case <-recovered:
		t.Fatal("recovery went on while process 1 held the lock")
	default:
	}
	assert.Empty(t, p.called(), "process 2 made nothing while process 1 lived")
	snap, err := s.Load(ctx, key)
	require.NoError(t, err)
	want := downstream(g, snap) // an upper bound: process 1 may commit more before it dies

	c.kill(t)
	var reps []*executor.Report
	select {
	case reps = <-recovered:
	case <-ctx.Done():
		t.Fatal("recovery did not end once process 1 died")
	}
	require.Len(t, reps, 1, "the run left running")
	rep := reps[0]
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	called := p.called()
	assert.Contains(t, called, held, "the node process 1 never finished")
	for id := range called {
		assert.True(t, want[id], "%s was committed clean by process 1 and was regenerated", id)
	}

	final, err := s.Load(ctx, key)
	require.NoError(t, err)
	assert.Empty(t, checkCurrent(t, s, g, final, true))
	rec, err = s.GetRun(ctx, runID)
	require.NoError(t, err)
	assert.Equal(t, executor.RunInterrupted, rec.Status, "process 1's record")
	assert.Contains(t, rec.Error, rep.Record.ID)
	running, err := s.RunsByStatus(ctx, executor.RunRunning)
	require.NoError(t, err)
	assert.False(t, slices.ContainsFunc(running, func(r executor.Record) bool { return r.GraphKey == key }),
		"a run of the key still recorded as running: %+v", running)
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "recovery unlocked")
}

// guardedRun starts a run of a new key, on a store of its own schema,
// under the key's lock and guarded by it, and returns once a video of it
// is being made: its videos wait until the run is cancelled.
func guardedRun(t *testing.T) (*pgstore.Store, *testenv.Postgres, context.Context, string, *pgstore.GraphLock, *executor.Run) {
	t.Helper()
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	key := testenv.UniqueName(t)
	p := newProvider()
	started := make(chan struct{}, 1)
	p.hook = func(ctx context.Context, req executor.Request) error {
		if req.ID.Kind == graph.KindVideo {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done() // until the run is cancelled
			return ctx.Err()
		}
		return nil
	}
	e := newExecutor(t, s, p.registry())
	lock, err := s.LockGraph(ctx, key)
	require.NoError(t, err)
	r, err := e.Start(ctx, executor.RunRequest{GraphKey: key, Graph: build(t, 30)})
	require.NoError(t, err)
	lock.Guard(r)
	<-started
	return s, pg, ctx, key, lock, r
}

// A process that holds a key's lock and loses it (its connection
// dropped: the server ended the session) learns it at once from Lost,
// and Guard cancels its run, which another process may now resume beside
// it. The run then ends cancelled, with the loss as its cause, its record
// saying so.
func TestLostLockCancelsTheRun(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r := guardedRun(t)

	endLockSession(t, ctx, pg, s, key)
	select {
	case <-r.Done():
	case <-ctx.Done():
		t.Fatal("the run was not cancelled when its lock was lost")
	}
	rep, err := r.Wait()
	require.ErrorIs(t, err, executor.ErrCancelled)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "the run's cause")
	assert.Equal(t, executor.RunCancelled, rep.Record.Status)
	assert.Contains(t, rep.Record.Error, "is not held any more")
	require.ErrorIs(t, lock.Unlock(ctx), pgstore.ErrLockLost)
}

// Guard's goroutine ends with a run that ends under a lock that is not
// lost (TestMain's goleak checks it), and an Unlock that frees the lock,
// even before the run's end, cancels nothing (one that finds it lost
// does: TestUnlockThatFindsTheLockLostCancelsTheGuardedRun).
func TestGuardEndsWithTheRun(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	key := testenv.UniqueName(t)
	p := newProvider()
	release := make(chan struct{})
	p.hook = func(ctx context.Context, req executor.Request) error {
		if req.ID.Kind == graph.KindTimeline {
			<-release
		}
		return nil
	}
	e := newExecutor(t, s, p.registry())
	lock, err := s.LockGraph(ctx, key)
	require.NoError(t, err)
	r, err := e.Start(ctx, executor.RunRequest{GraphKey: key, Graph: build(t, 30)})
	require.NoError(t, err)
	lock.Guard(r)
	require.NoError(t, lock.Unlock(ctx))
	close(release)
	rep, err := r.Wait()
	require.NoError(t, err)
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
}

// The doc of Guard said that an Unlock before the run's end does not
// cancel it, but an Unlock that finds the lock lost already (its session
// no longer held it, as under a pooler in transaction mode) closes Lost,
// and Guard then cancels the run. That is kept, and now said: the lock
// was lost while the run went on, which another process may have
// resumed beside it, as when the watcher or Check finds the loss. An
// Unlock that frees the lock cancels nothing (TestGuardEndsWithTheRun).
func TestUnlockThatFindsTheLockLostCancelsTheGuardedRun(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r := guardedRun(t)

	require.NoError(t, pgstore.UnlockInSession(ctx, lock))
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "no session holds the lock")
	select {
	case <-lock.Lost():
		t.Fatal("Lost closed before Check or Unlock found the loss")
	default:
	}
	err := lock.Unlock(ctx)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "Unlock finds the lock lost")
	select {
	case <-lock.Lost():
	default:
		t.Fatal("Unlock found the lock lost, and did not close Lost")
	}
	select {
	case <-r.Done():
	case <-ctx.Done():
		t.Fatal("the run was not cancelled when Unlock found its lock lost")
	}
	rep, err := r.Wait()
	require.ErrorIs(t, err, executor.ErrCancelled)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "the run's cause")
	assert.Equal(t, executor.RunCancelled, rep.Record.Status)
	assert.Contains(t, rep.Record.Error, "did not hold it at Unlock")
}

// Two executors on two pools, as two processes: the first runs a key
// under its lock; the second is asked to resume that run (a user's retry,
// a recovery that took the live run for a crashed one). Before, its
// Resume was accepted: it rewrote the live run's record as interrupted
// and made the nodes again. Under the recipe its TryLockGraph is refused:
// it resumes nothing, the live record stays running, and the first run
// ends as it would have.
func TestResumeRefusedWhileLockedElsewhere(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	s2, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
	key := testenv.UniqueName(t)
	g := build(t, 30)

	p1 := newProvider()
	started, release := p1.holdKind(graph.KindVideo)
	e1 := newExecutor(t, s, p1.registry())
	lock, err := s.LockGraph(ctx, key)
	require.NoError(t, err)
	r1, err := e1.Start(ctx, executor.RunRequest{GraphKey: key, Graph: g})
	require.NoError(t, err)
	<-started

	p2 := newProvider()
	e2 := newExecutor(t, s2, p2.registry())
	resume := func() error { // the second process's handler of "resume run r1"
		l, err := s2.TryLockGraph(ctx, key)
		if err != nil {
			return err
		}
		defer l.Unlock(ctx) //nolint:errcheck // the test fails before
		r, err := e2.Resume(ctx, g, r1.ID())
		if err != nil {
			return err
		}
		_, err = r.Wait()
		return err
	}
	err = resume()
	var le *pgstore.LockedError
	require.ErrorAs(t, err, &le, "a Resume while the run goes on under the lock elsewhere")
	assert.Equal(t, key, le.GraphKey)
	rec, err := s2.GetRun(ctx, r1.ID())
	require.NoError(t, err)
	assert.Equal(t, executor.RunRunning, rec.Status, "the live run's record")
	assert.Empty(t, p2.called(), "the second process made nothing")

	close(release)
	rep, err := r1.Wait()
	require.NoError(t, err)
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	assert.Len(t, rep.Generated, g.Len())
	require.NoError(t, lock.Unlock(ctx))
}

// Guard of a nil run (the run of a Start whose error the host did not
// check) panicked in the goroutine it started, which no recover of the
// host's can catch, and crashed the process with a nil dereference that
// named neither pgstore nor Guard. It now panics in the caller's
// goroutine, saying what was wrong.
func TestGuardOfANilRunPanicsInTheCaller(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	lock, err := s.LockGraph(ctx, testenv.UniqueName(t))
	require.NoError(t, err)
	defer func() { require.NoError(t, lock.Unlock(ctx)) }()
	assert.PanicsWithValue(t, "pgstore: GraphLock.Guard with a nil run", func() { lock.Guard(nil) })
}
