package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// leftRunning stores the record of a run of g on key that a process
// which stopped left running, started at start.
func leftRunning(t *testing.T, ctx context.Context, s *pgstore.Store, id, key string, g *graph.Graph, start time.Time) {
	t.Helper()
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: id, GraphKey: key, Seconds: g.Segments() * graph.SegmentSeconds,
		Graph: executor.Fingerprint(g), TriggeredBy: "alice", Reason: "edit", Status: executor.RunRunning, StartedAt: start}))
}

// lectureOf is a host's graphOf: the graph of the lecture template that
// the record names.
func lectureOf(rec executor.Record) (*graph.Graph, error) {
	return executor.GraphOf(rec, graph.Options{}, graph.Lecture())
}

// onTryLock is a pool tracer that calls do before the pool's
// pg_try_advisory_lock of a key.
type onTryLock struct {
	key int64
	do  func()
}

func (o *onTryLock) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "pg_try_advisory_lock") && len(d.Args) == 1 && d.Args[0] == o.key {
		o.do()
	}
	return ctx
}

func (o *onTryLock) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// outcome is a Recovery, summed up for comparison.
type outcome struct {
	ID      string
	Outcome pgstore.RecoveryOutcome
}

// outcomes sums up recs for comparison.
func outcomes(recs []pgstore.Recovery) []outcome {
	var got []outcome
	for _, rc := range recs {
		got = append(got, outcome{rc.Record.ID, rc.Outcome})
	}
	return got
}

// A host's start-up recovery was some 40 lines of delicate code
// (RunsByStatus, TryLockGraph, GetRun again under the lock, GraphOf,
// Resume, Guard, Wait, Unlock) with no helper, and a careful team's
// first try skipped the GetRun. ResumeLeftRunning does it, and says per
// run what it did: resumed (the run guarded by the key's lock, which is
// released when it ends), skipped as another session holds the key's
// lock, skipped as the record read under the lock no longer says
// running, or not resumed, with why: graphOf failed (the host then
// abandons it), or Resume refused it. Of two runs of one key left
// running, the newer is resumed, and the older recorded as interrupted,
// superseded by it.
func TestResumeLeftRunning(t *testing.T) {
	t.Parallel() // its own schema
	_, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	name := testenv.UniqueName(t)
	key := func(s string) string { return name + "-" + s }
	other, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
	var changed error
	s := poolStore(t, pg.Schema, func(cfg *pgxpool.Config) {
		// Another process abandons run c between the listing and the lock.
		cfg.ConnConfig.Tracer = &onTryLock{key: other.GraphLockKey(key("c")), do: func() {
			rec, err := other.GetRun(ctx, "c")
			if err == nil {
				rec.Status, rec.Error = executor.RunInterrupted, "abandoned meanwhile"
				err = other.PutRun(ctx, rec)
			}
			changed = err
		}}
	})
	for i, r := range []struct{ id, key string }{
		{"a", "a"}, {"b", "b"}, {"c", "c"}, {"d", "d"}, {"e", "e"}, {"f1", "f"}, {"f2", "f"},
	} {
		leftRunning(t, ctx, s, r.id, key(r.key), g, base.Add(time.Duration(i)*time.Second))
	}
	held, err := other.TryLockGraph(ctx, key("b")) // a live process runs b
	require.NoError(t, err)

	release := make(chan struct{})
	p := newProvider()
	p.hook = func(ctx context.Context, req executor.Request) error {
		select { // the resumed runs go on until released
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e := newExecutor(t, s, p.registry())
	errNoTemplate := errors.New("no template of the host builds it")
	graphOf := func(rec executor.Record) (*graph.Graph, error) {
		switch rec.GraphKey {
		case key("d"):
			// Abandoned under the key's lock, as the doc advises.
			require.NoError(t, e.Abandon(ctx, rec.ID, "no template builds its graph"))
			return nil, errNoTemplate
		case key("e"):
			return build(t, 60), nil // not the run's graph: Resume refuses it
		}
		return lectureOf(rec)
	}
	recs, err := s.ResumeLeftRunning(ctx, e, graphOf, executor.ResumeOptions{Reason: "start-up recovery"})
	require.NoError(t, err)
	require.NoError(t, changed)
	got := outcomes(recs)
	want := []outcome{{"a", pgstore.Resumed}, {"b", pgstore.SkippedLocked}, {"c", pgstore.SkippedNotRunning},
		{"d", pgstore.NotResumed}, {"e", pgstore.NotResumed}, {"f1", pgstore.SkippedSuperseded}, {"f2", pgstore.Resumed}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	for i, r := range recs {
		assert.Equal(t, r.Outcome == pgstore.Resumed, r.Run != nil, "run %s: a Run for a resumed run only", r.Record.ID)
		assert.Equal(t, r.Outcome == pgstore.NotResumed, r.Err != nil, "run %s: an Err for a run not resumed only", r.Record.ID)
		assert.Equal(t, want[i].Outcome.String(), r.Outcome.String())
	}
	assert.Equal(t, executor.RunInterrupted, recs[2].Record.Status, "c: the record read under the lock")
	assert.ErrorIs(t, recs[3].Err, errNoTemplate, "d: graphOf's error")
	var ge *pgstore.GraphOfError
	require.ErrorAs(t, recs[3].Err, &ge)
	assert.Equal(t, "d", ge.RunID)
	assert.False(t, errors.As(recs[4].Err, &ge), "e: Resume's refusal is no GraphOfError")
	assert.ErrorIs(t, recs[4].Err, executor.ErrInvalidRequest, "e: Resume's refusal")
	assert.Equal(t, executor.RunInterrupted, recs[5].Record.Status, "f1: recorded as interrupted, superseded by f2's resume")
	assert.Equal(t, "interrupted: it ended without recording its outcome; resumed by run "+recs[6].Run.ID(), recs[5].Record.Error,
		"f1: resumed by the run that took over, as a resume by it would say")

	// The resumed runs hold their keys' locks while they go on; the keys
	// of the others are free at once, but b's, which the other process
	// holds.
	for _, k := range []string{"a", "f"} {
		_, err := other.TryLockGraph(ctx, key(k))
		require.ErrorIs(t, err, pgstore.ErrGraphLocked, "key %s while its resumed run goes on", k)
	}
	for _, k := range []string{"c", "d", "e"} {
		awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key(k)), true, 0)
	}
	close(release)
	for _, i := range []int{0, 6} {
		rep, err := recs[i].Wait()
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
		assert.Equal(t, recs[i].Record.ID, rep.Record.Resumes)
		assert.Equal(t, "start-up recovery", rep.Record.Reason)
		assert.Equal(t, "alice", rep.Record.TriggeredBy)
		assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(rep.Record.GraphKey), true), "unlocked once Wait returns")
		rec, err := s.GetRun(ctx, recs[i].Record.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, rec.Status)
	}
	rep, err := recs[1].Wait()
	assert.Nil(t, rep)
	require.NoError(t, err, "Wait of a skipped run")
	_, err = recs[3].Wait()
	require.ErrorIs(t, err, errNoTemplate, "Wait of a run not resumed")

	// What was not resumed stays running, for the host, but d, which its
	// graphOf abandoned: b's process goes on; e is found again by the
	// next call.
	running, err := s.RunsByStatus(ctx, executor.RunRunning)
	require.NoError(t, err)
	var ids []string
	for _, r := range running {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []string{"b", "e"}, ids)
	rec, err := s.GetRun(ctx, "d")
	require.NoError(t, err)
	assert.Equal(t, executor.RunInterrupted, rec.Status, "d, abandoned")
	assert.Contains(t, rec.Error, "not resumed: no template builds its graph")
	require.NoError(t, held.Unlock(ctx))

	// A second call: b's process is gone, and b is resumed; e is refused
	// again.
	recs, err = s.ResumeLeftRunning(ctx, e, graphOf, executor.ResumeOptions{})
	require.NoError(t, err)
	got = got[:0]
	for _, r := range recs {
		got = append(got, outcome{r.Record.ID, r.Outcome})
		_, err := r.Wait()
		if r.Outcome == pgstore.Resumed {
			require.NoError(t, err)
		}
	}
	want = []outcome{{"b", pgstore.Resumed}, {"e", pgstore.NotResumed}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("outcomes of the second call (-want +got):\n%s", diff)
	}
}

// A nil executor or graphOf, or a ResumeOptions.RunID, which would name
// every resuming run, is refused before anything is done.
func TestResumeLeftRunningRefusesBadArguments(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	e := newExecutor(t, s, newProvider().registry())
	for _, tc := range []struct {
		name    string
		e       *executor.Executor
		graphOf func(executor.Record) (*graph.Graph, error)
		opts    executor.ResumeOptions
		says    string
	}{
		{"nil executor", nil, lectureOf, executor.ResumeOptions{}, "the executor is nil"},
		{"nil graphOf", e, nil, executor.ResumeOptions{}, "graphOf is nil"},
		{"a run ID", e, lectureOf, executor.ResumeOptions{RunID: "r"}, `ResumeOptions.RunID "r" would name every resuming run`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := s.ResumeLeftRunning(ctx, tc.e, tc.graphOf, tc.opts)
			assert.Nil(t, recs)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.Contains(t, err.Error(), tc.says)
		})
	}
}

// Two processes that start at once, on one schema, both call
// ResumeLeftRunning: each run left running is resumed exactly once,
// whatever the interleaving. The other process finds the key's lock held,
// or, read again under the lock once the resume has ended, the record no
// longer running, or the run not listed at all.
func TestResumeLeftRunningTwoProcessesAtOnce(t *testing.T) {
	t.Parallel() // its own schema
	_, pg := newStore(t)
	ctx := testenv.Context(t, 120*time.Second)
	g := build(t, 10)
	name := testenv.UniqueName(t)
	type process struct {
		s *pgstore.Store
		e *executor.Executor
	}
	var procs [2]process
	for i := range procs {
		s, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
		procs[i] = process{s, newExecutor(t, s, newProvider().registry())}
	}
	base := time.Now().Add(-time.Hour)
	const rounds, runs = 4, 6
	for round := range rounds {
		var ids []string
		for i := range runs {
			id := fmt.Sprintf("r%d-%d", round, i)
			leftRunning(t, ctx, procs[0].s, id, fmt.Sprintf("%s-%d-%d", name, round, i), g, base.Add(time.Duration(round*runs+i)*time.Second))
			ids = append(ids, id)
		}
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			got   [2][]pgstore.Recovery
		)
		for i, p := range procs {
			wg.Go(func() {
				<-start
				recs, err := p.s.ResumeLeftRunning(ctx, p.e, lectureOf, executor.ResumeOptions{})
				assert.NoError(t, err)
				got[i] = recs
			})
		}
		close(start)
		wg.Wait()
		resumed := map[string]int{}
		for i := range got {
			for _, r := range got[i] {
				switch r.Outcome {
				case pgstore.Resumed:
					resumed[r.Record.ID]++
					rep, err := r.Wait()
					require.NoError(t, err)
					assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
				case pgstore.SkippedLocked, pgstore.SkippedNotRunning:
				default:
					t.Errorf("round %d: process %d: run %s: %v: %v", round, i, r.Record.ID, r.Outcome, r.Err)
				}
			}
		}
		for _, id := range ids {
			assert.Equal(t, 1, resumed[id], "round %d: resumes of run %s", round, id)
		}
		for i := range runs {
			recs, err := procs[0].s.ListRuns(ctx, fmt.Sprintf("%s-%d-%d", name, round, i))
			require.NoError(t, err)
			assert.Len(t, recs, 2, "round %d: the run left running and the one run that resumed it", round)
		}
	}
	running, err := procs[0].s.RunsByStatus(ctx, executor.RunRunning)
	require.NoError(t, err)
	assert.Empty(t, running)
}

// A resumed run is guarded by its key's lock: when the lock is lost (the
// server ended its session), the run is cancelled with the loss as its
// cause, as another process may now take the key; Wait says so once, and
// the lock's goroutines end (TestMain's goleak checks it).
func TestResumeLeftRunningGuardsTheRun(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	key := testenv.UniqueName(t)
	leftRunning(t, ctx, s, "a", key, build(t, 30), time.Now().Add(-time.Hour))
	p := newProvider()
	p.hook = func(ctx context.Context, req executor.Request) error {
		<-ctx.Done() // until the run is cancelled
		return ctx.Err()
	}
	e := newExecutor(t, s, p.registry())
	recs, err := s.ResumeLeftRunning(ctx, e, lectureOf, executor.ResumeOptions{})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, pgstore.Resumed, recs[0].Outcome, "%v", recs[0].Err)

	endLockSession(t, ctx, pg, s, key)
	select {
	case <-recs[0].Run.Done():
	case <-ctx.Done():
		t.Fatal("the resumed run was not cancelled when its lock was lost")
	}
	rep, err := recs[0].Wait()
	require.ErrorIs(t, err, executor.ErrCancelled)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "the run's cause")
	assert.Equal(t, 1, strings.Count(err.Error(), "is not held any more"), "the loss, said once: %v", err)
	assert.Equal(t, executor.RunCancelled, rep.Record.Status)
}

// A ctx that ends while ResumeLeftRunning handles the last run it listed
// gives ctx's cause, as the doc says of a ctx that ends during the call,
// with the recoveries made until then: before, the cause was checked only
// before each run, and the call returned nil. Wait of a Recovery that the
// host built itself returns its Err rather than panicking.
func TestResumeLeftRunningGivesTheCauseOfACtxEndedAtTheLastRun(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	e := newExecutor(t, s, newProvider().registry())
	g, err := graph.Build(graph.Lecture(), 20)
	require.NoError(t, err)
	leftRunning(t, ctx, s, "last", "k-last", g, time.Now().Add(-time.Minute))
	cause := errors.New("the host shuts down")
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	recs, err := s.ResumeLeftRunning(cctx, e, func(rec executor.Record) (*graph.Graph, error) {
		cancel(cause)
		return nil, cause
	}, executor.ResumeOptions{})
	require.ErrorIs(t, err, cause)
	require.Len(t, recs, 1)
	assert.Equal(t, pgstore.NotResumed, recs[0].Outcome)

	rep, err := pgstore.Recovery{Outcome: pgstore.Resumed, Err: cause}.Wait()
	assert.Nil(t, rep)
	assert.ErrorIs(t, err, cause)
}
