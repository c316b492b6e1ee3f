package pgstore_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// maintaining runs s.Maintain with opts in a goroutine until the test
// stops it: its passes come on the channel it returns (OnPass, which
// opts must not set, never blocks past the loop's end), and stop cancels
// its context with cause and returns Maintain's error.
func maintaining(t *testing.T, ctx context.Context, s *pgstore.Store, e *executor.Executor,
	opts pgstore.MaintainOptions) (passes <-chan pgstore.Pass, stop func(cause error) error) {
	t.Helper()
	return maintainingWith(t, ctx, s, e, lectureOf, opts)
}

// maintainingWith is maintaining with graphOf.
func maintainingWith(t *testing.T, ctx context.Context, s *pgstore.Store, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts pgstore.MaintainOptions) (passes <-chan pgstore.Pass, stop func(cause error) error) {
	t.Helper()
	mctx, cancel := context.WithCancelCause(ctx)
	ch := make(chan pgstore.Pass)
	opts.OnPass = func(p pgstore.Pass) {
		select {
		case ch <- p:
		case <-mctx.Done():
		}
	}
	if opts.Every > 0 && opts.Every < pgstore.MinMaintainEvery {
		pgstore.SetMinMaintainEvery(s, opts.Every) // many passes, fast
	}
	done := make(chan error, 1)
	go func() { done <- s.Maintain(mctx, e, graphOf, opts) }()
	stopped := false
	stop = func(cause error) error {
		stopped = true
		cancel(cause)
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			t.Fatalf("Maintain did not return once its context ended: %v", context.Cause(ctx))
			return nil
		}
	}
	t.Cleanup(func() {
		if !stopped {
			_ = stop(errors.New("test ended"))
		}
	})
	return ch, stop
}

// next returns the next pass of passes, or fails the test when ctx ends
// first.
func next(t *testing.T, ctx context.Context, passes <-chan pgstore.Pass) pgstore.Pass {
	t.Helper()
	select {
	case p := <-passes:
		return p
	case <-ctx.Done():
		t.Fatalf("no pass: %v", context.Cause(ctx))
		return pgstore.Pass{}
	}
}

// cancelledRun stores the record of a run of g on key that was cancelled
// with code, started at start.
func cancelledRun(t *testing.T, ctx context.Context, s *pgstore.Store, id, key, code string, g *graph.Graph, start time.Time) {
	t.Helper()
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: id, GraphKey: key, Seconds: g.Segments() * graph.SegmentSeconds,
		Graph: executor.Fingerprint(g), TriggeredBy: "alice", Reason: "edit", Status: executor.RunCancelled,
		StartedAt: start, EndedAt: start.Add(time.Second), Error: "cancelled", CancelledBy: code}))
}

// Periodic recovery lived only in examples/service: the library said to
// recover at start-up, and a run that a process left as it died waited
// for the next start-up of some process. Maintain's first pass, at once,
// resumes a run that a dead process left running (its record says
// running, and its key is unlocked), and a run cancelled with one of the
// codes asked for (a shutdown's), each under its key's lock; it leaves a
// run whose key a live process holds, and a user's cancel. The pass says
// so to OnPass, and Maintain returns ctx's cause once ctx ends.
func TestMaintainResumesWhatADeadProcessLeft(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	name := testenv.UniqueName(t)
	key := func(k string) string { return name + "-" + k }
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	leftRunning(t, ctx, s, "dead", key("dead"), g, base)
	leftRunning(t, ctx, s, "live", key("live"), g, base.Add(time.Second))
	cancelledRun(t, ctx, s, "shut", key("shut"), "shutdown", g, base.Add(2*time.Second))
	cancelledRun(t, ctx, s, "user", key("user"), executor.CancelledByCancel, g, base.Add(3*time.Second))
	other, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
	held, err := other.TryLockGraph(ctx, key("live")) // a live process runs it
	require.NoError(t, err)
	defer func() { require.NoError(t, held.Unlock(context.Background())) }()

	e := newExecutor(t, s, newProvider().registry())
	passes, stop := maintaining(t, ctx, s, e, pgstore.MaintainOptions{Every: time.Hour,
		ResumeCodes: []string{"shutdown", pgstore.CancelledByLockLost},
		Resume:      executor.ResumeOptions{Reason: "maintenance"}})
	p := next(t, ctx, passes)
	require.NoError(t, p.Err)
	if d := cmp.Diff([]outcome{{"dead", pgstore.Resumed}, {"live", pgstore.SkippedLocked}}, outcomes(p.LeftRunning)); d != "" {
		t.Errorf("the runs left running (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]outcome{{"shut", pgstore.Resumed}}, outcomes(p.Cancelled)); d != "" {
		t.Errorf("the cancelled runs (-want +got):\n%s", d)
	}
	assert.Equal(t, 2, p.Count(pgstore.Resumed))
	assert.Equal(t, 1, p.Count(pgstore.SkippedLocked))
	assert.False(t, p.Pruned, "no Retain: no pruning")
	for _, r := range append(p.LeftRunning, p.Cancelled...) {
		if r.Outcome != pgstore.Resumed {
			continue
		}
		rep, err := r.Wait() // the host may wait too, beside Maintain
		require.NoError(t, err, "the resume of %s", r.Record.ID)
		assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
		assert.Equal(t, r.Record.ID, rep.Record.Resumes)
		assert.Equal(t, "maintenance", rep.Record.Reason)
	}
	errStop := errors.New("service stopping")
	require.ErrorIs(t, stop(errStop), errStop, "Maintain returns ctx's cause")

	rec, err := s.GetRun(ctx, "dead")
	require.NoError(t, err)
	assert.Equal(t, executor.RunInterrupted, rec.Status, "the dead process's run, resumed")
	for id, want := range map[string]executor.RunStatus{"live": executor.RunRunning, "user": executor.RunCancelled} {
		rec, err := s.GetRun(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, rec.Status, "run %s, left alone", id)
	}
	for _, k := range []string{"user", "live"} {
		runs, err := s.ListRuns(ctx, key(k))
		require.NoError(t, err)
		assert.Len(t, runs, 1, "key %s: no resume", k)
	}
}

// countPruner is a Pruner that counts its calls, deletes n items at
// each, and fails the calls that fail says to.
type countPruner struct {
	mu    sync.Mutex
	calls []time.Duration // the ages it was called with
	n     int64
	fail  func(call int) error
}

func (c *countPruner) Prune(ctx context.Context, olderThan time.Duration) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, olderThan)
	if c.fail != nil {
		if err := c.fail(len(c.calls)); err != nil {
			return 0, err
		}
	}
	return c.n, ctx.Err()
}

func (c *countPruner) called() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.calls...)
}

// Retention was a loop of each host's own. With Retain, Maintain's first
// pass prunes: the run records that ended more than Retain ago, the
// assets that no state refers to put more than Retain ago, and its
// Pruners (a pghistory History's place), with that age; never a record
// that says running, however old, nor what is younger. The next passes
// prune again only PruneEvery after.
func TestMaintainPrunes(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	name := testenv.UniqueName(t)
	key := func(k string) string { return name + "-" + k }
	now := time.Now()
	old := now.Add(-3 * time.Hour)
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "old", GraphKey: key("a"), Seconds: 30, Status: executor.RunSucceeded,
		StartedAt: old, EndedAt: old.Add(time.Minute)}))
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "young", GraphKey: key("a"), Seconds: 30, Status: executor.RunFailed,
		StartedAt: now.Add(-time.Minute), EndedAt: now}))
	leftRunning(t, ctx, s, "old-running", key("b"), g, old) // its process lives, and holds its key
	other, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
	held, err := other.TryLockGraph(ctx, key("b"))
	require.NoError(t, err)
	defer func() { require.NoError(t, held.Unlock(context.Background())) }()
	stale, err := s.Put(ctx, key("stale"), executor.Asset{Data: []byte("stale"), Hash: "h1"})
	require.NoError(t, err)
	fresh, err := s.Put(ctx, key("fresh"), executor.Asset{Data: []byte("fresh"), Hash: "h2"})
	require.NoError(t, err)
	_, err = pg.Pool.Exec(ctx, `UPDATE "`+pg.Schema+`".assets SET put_at = now() - interval '2 hours' WHERE key = $1`, key("stale"))
	require.NoError(t, err)

	e := newExecutor(t, s, newProvider().registry())
	pr := &countPruner{n: 7}
	passes, stop := maintaining(t, ctx, s, e, pgstore.MaintainOptions{Every: time.Millisecond,
		Retain: time.Hour, PruneEvery: time.Hour, Pruners: []pgstore.Pruner{pr}})
	p := next(t, ctx, passes)
	require.NoError(t, p.Err)
	assert.Equal(t, []outcome{{"old-running", pgstore.SkippedLocked}}, outcomes(p.LeftRunning))
	assert.True(t, p.Pruned, "the first pass prunes")
	assert.Equal(t, int64(1), p.PrunedRuns)
	assert.Equal(t, int64(1), p.PrunedAssets)
	assert.Equal(t, []int64{7}, p.PrunedByPruners)
	p = next(t, ctx, passes)
	require.NoError(t, p.Err)
	assert.False(t, p.Pruned, "the second pass, within PruneEvery")
	assert.Zero(t, p.PrunedRuns+p.PrunedAssets)
	require.ErrorIs(t, stop(context.Canceled), context.Canceled)
	assert.Equal(t, []time.Duration{time.Hour}, pr.called(), "the Pruner, once, with Retain")

	_, err = s.GetRun(ctx, "old")
	require.ErrorIs(t, err, executor.ErrNotFound, "a record that ended 3 h ago")
	for _, id := range []string{"young", "old-running"} {
		_, err := s.GetRun(ctx, id)
		require.NoError(t, err, "record %s is kept", id)
	}
	for ref, want := range map[string]bool{stale: false, fresh: true} {
		ok, err := s.Exists(ctx, ref)
		require.NoError(t, err)
		assert.Equal(t, want, ok, "asset %s", ref)
	}
}

// A pass that fails does not end the loop: each step of the pass runs
// whatever the others' errors (here the tables are missing, and a
// Pruner fails), the failure is logged as a warning and reported to
// OnPass, and the next pass, once the tables are there, succeeds.
func TestMaintainGoesOnAfterAFailingPass(t *testing.T) {
	t.Parallel() // its own schema
	pg := testenv.NewPostgres(t)
	s, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema}) // not migrated yet
	require.NoError(t, err)
	ctx := testenv.Context(t, 60*time.Second)
	errPrune := errors.New("history unreachable")
	pr := &countPruner{fail: func(call int) error {
		if call == 1 {
			return errPrune
		}
		return nil
	}}
	logs := new(testenv.LogBuffer)
	e := newExecutor(t, s, newProvider().registry())
	passes, stop := maintaining(t, ctx, s, e, pgstore.MaintainOptions{Every: time.Millisecond,
		ResumeCodes: []string{"shutdown"}, Retain: time.Hour, PruneEvery: time.Nanosecond,
		Pruners: []pgstore.Pruner{pr}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	p := next(t, ctx, passes)
	require.Error(t, p.Err)
	assert.ErrorIs(t, p.Err, pgstore.ErrNotMigrated)
	assert.ErrorIs(t, p.Err, errPrune)
	assert.Len(t, p.Err.(interface{ Unwrap() []error }).Unwrap(), 5,
		"ResumeLeftRunning, ResumeCancelled, PruneRuns, PruneAssets and the Pruner each failed: %v", p.Err)
	assert.True(t, p.Pruned)
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "maintenance pass failed")
	assert.Contains(t, logs.String(), errPrune.Error())

	require.NoError(t, s.Migrate(ctx))
	for p.Err != nil { // a pass may have begun before the Migrate
		p = next(t, ctx, passes)
	}
	assert.True(t, p.Pruned, "PruneEvery 1ns: each pass prunes")
	require.ErrorIs(t, stop(context.Canceled), context.Canceled)
}

// Once ctx ends, Maintain stops and returns its cause, having waited for
// the runs that its passes resumed: ctx is their context, so they are
// cancelled (with the cause's code, for a later ResumeCancelled) and
// have ended, their keys unlocked, when it returns; no goroutine of it
// is left (goleak, in TestMain). A ctx ended before the call makes no
// pass.
func TestMaintainStopsWithItsContext(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	key := testenv.UniqueName(t)
	leftRunning(t, ctx, s, "dead", key, g, time.Now().Add(-time.Minute))
	slow := newProvider()
	started, _ := slow.holdKind(graph.KindVideo) // until the run's context ends
	e := newExecutor(t, s, slow.registry())
	passes, stop := maintaining(t, ctx, s, e, pgstore.MaintainOptions{Every: time.Hour})
	p := next(t, ctx, passes)
	require.NoError(t, p.Err)
	require.Equal(t, []outcome{{"dead", pgstore.Resumed}}, outcomes(p.LeftRunning))
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the resumed run did not start its videos")
	}
	shutdown := executor.CancelCode("shutdown", errors.New("service stopping"))
	require.ErrorIs(t, stop(shutdown), shutdown)
	run := p.LeftRunning[0].Run
	select {
	case <-run.Done():
	default:
		t.Fatal("Maintain returned before the run it resumed had ended")
	}
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "the key unlocked once Maintain returns")
	rec, err := s.GetRun(ctx, run.ID())
	require.NoError(t, err)
	assert.Equal(t, executor.RunCancelled, rec.Status)
	assert.Equal(t, "shutdown", rec.CancelledBy)

	done, cancel := context.WithCancel(ctx)
	cancel()
	err = s.Maintain(done, e, lectureOf, pgstore.MaintainOptions{OnPass: func(pgstore.Pass) { t.Error("a pass after ctx ended") }})
	require.ErrorIs(t, err, context.Canceled)
}

// Bad arguments and options are refused before any pass, with a
// *MaintainOptionsError naming the field, the value and what is allowed,
// which wraps executor.ErrInvalidRequest: options that would do nothing
// (Pruners or PruneEvery without Retain), prune what runs still read (a
// Retain under a minute, a negative one), or name every resuming run.
// ResumeCodes are refused exactly as ResumeCancelled refuses its codes.
// A PassTimeout under MinMaintainEvery (one given in the wrong unit, 10
// for 10 s) was taken: every pass then timed out before its first query
// answered, and no run was ever resumed; it is refused, as such an Every
// is.
func TestMaintainRefusesBadOptions(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	e := newExecutor(t, s, newProvider().registry())
	noPass := func(pgstore.Pass) { t.Error("a pass with bad options") }
	pr := &countPruner{}
	for _, tc := range []struct {
		name    string
		e       *executor.Executor
		graphOf func(executor.Record) (*graph.Graph, error)
		opts    pgstore.MaintainOptions
		field   string
		is      error
	}{
		{"nil executor", nil, lectureOf, pgstore.MaintainOptions{}, "e", nil},
		{"nil graphOf", e, nil, pgstore.MaintainOptions{}, "graphOf", nil},
		{"negative Every", e, lectureOf, pgstore.MaintainOptions{Every: -time.Second}, "Every", nil},
		{"Every under MinMaintainEvery", e, lectureOf, pgstore.MaintainOptions{Every: time.Millisecond}, "Every", nil},
		{"Every of a nanosecond", e, lectureOf, pgstore.MaintainOptions{Every: time.Nanosecond}, "Every", nil},
		{"a RunID", e, lectureOf, pgstore.MaintainOptions{Resume: executor.ResumeOptions{RunID: "r"}}, "Resume.RunID", nil},
		{"a Reason not text", e, lectureOf, pgstore.MaintainOptions{Resume: executor.ResumeOptions{Reason: "a\x00b"}}, "Resume.Reason", nil},
		{"negative Retain", e, lectureOf, pgstore.MaintainOptions{Retain: -time.Hour}, "Retain", pgstore.ErrInvalidAge},
		{"Retain under MinRetain", e, lectureOf, pgstore.MaintainOptions{Retain: 10 * time.Second}, "Retain", nil},
		{"negative PruneEvery", e, lectureOf, pgstore.MaintainOptions{Retain: time.Hour, PruneEvery: -time.Hour}, "PruneEvery", nil},
		{"PruneEvery without Retain", e, lectureOf, pgstore.MaintainOptions{PruneEvery: time.Hour}, "PruneEvery", nil},
		{"Pruners without Retain", e, lectureOf, pgstore.MaintainOptions{Pruners: []pgstore.Pruner{pr}}, "Pruners", nil},
		{"a nil Pruner", e, lectureOf, pgstore.MaintainOptions{Retain: time.Hour, Pruners: []pgstore.Pruner{pr, nil}}, "Pruners[1]", nil},
		{"an empty code", e, lectureOf, pgstore.MaintainOptions{ResumeCodes: []string{"shutdown", ""}}, "ResumeCodes[1]", executor.ErrInvalidCancelCode},
		{"negative Retake", e, lectureOf, pgstore.MaintainOptions{Retake: -time.Second}, "Retake", nil},
		{"negative PassTimeout", e, lectureOf, pgstore.MaintainOptions{PassTimeout: -time.Second}, "PassTimeout", nil},
		{"PassTimeout of a nanosecond", e, lectureOf, pgstore.MaintainOptions{PassTimeout: time.Nanosecond}, "PassTimeout", nil},
		{"PassTimeout under MinMaintainEvery", e, lectureOf, pgstore.MaintainOptions{PassTimeout: 10 * time.Millisecond}, "PassTimeout", nil},
		{"a code no run has", e, lectureOf, pgstore.MaintainOptions{ResumeCodes: []string{"Shutdown"}}, "ResumeCodes[0]", executor.ErrInvalidCancelCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.OnPass = noPass
			// ctx ended: options taken return its error rather than loop.
			gone, cancel := context.WithCancel(ctx)
			cancel()
			err := s.Maintain(gone, tc.e, tc.graphOf, tc.opts)
			var oe *pgstore.MaintainOptionsError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, tc.field, oe.Field)
			assert.ErrorIs(t, err, executor.ErrInvalidRequest)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			assert.Contains(t, err.Error(), "pgstore: maintain: "+tc.field)
			assert.Contains(t, err.Error(), "want ")
			if tc.field == "Every" || tc.opts.PassTimeout > 0 {
				assert.Contains(t, err.Error(), "at least "+pgstore.MinMaintainEvery.String(), "the floor, named")
			}
		})
	}
	assert.Empty(t, pr.called())

	// The codes: those that ResumeCancelled refuses, and only those.
	done, cancel := context.WithCancel(ctx)
	cancel() // a good code then returns at once, with ctx's error
	for _, code := range []string{"shutdown", pgstore.CancelledByLockLost, executor.CancelledByCancel,
		executor.CancelledByContext, "acme:deploy", "", "Shutdown", "two words", "host"} {
		_, rerr := s.ResumeCancelled(ctx, e, lectureOf, executor.ResumeOptions{}, code)
		merr := s.Maintain(done, e, lectureOf, pgstore.MaintainOptions{ResumeCodes: []string{code}, OnPass: noPass})
		var oe *pgstore.MaintainOptionsError
		assert.Equal(t, rerr != nil, errors.As(merr, &oe), "code %q: ResumeCancelled's error %v, Maintain's %v", code, rerr, merr)
	}
}

// The waits between passes are jittered, so that processes started
// together spread their passes: within a fifth of Every either way.
func TestMaintainJitter(t *testing.T) {
	every := 10 * time.Second
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := pgstore.Jitter(every)
		require.GreaterOrEqual(t, d, 8*time.Second)
		require.LessOrEqual(t, d, 12*time.Second)
		seen[d] = true
	}
	assert.Greater(t, len(seen), 900, "the waits vary")
	assert.Equal(t, time.Duration(3), pgstore.Jitter(3), "too short to jitter")
}
