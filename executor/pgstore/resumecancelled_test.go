package pgstore_test

import (
	"context"
	"errors"
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

// A host that resumed at start-up the runs that its shutdown or a lost
// lock cancelled wrote ResumeLeftRunning's delicate loop again, with a
// check that no later run had resumed or replaced the run. ResumeCancelled
// does it, by cancel code: of the runs cancelled with one of the codes,
// it resumes, under the key's lock, those that are still the newest of
// their key, and leaves out those that a user cancelled, that were
// resumed already, or that a later run of the key superseded; a run
// whose key another session holds is skipped, and one that another
// process resumed between the listing and the lock is superseded.
func TestResumeCancelledByCode(t *testing.T) {
	t.Parallel() // its own schema
	_, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	name := testenv.UniqueName(t)
	key := func(k string) string { return name + "-" + k }
	errStop := errors.New("service stopping")
	other, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
	var meanwhile string // the run that another process resumes between the listing and the lock
	var changed error
	s := poolStore(t, pg.Schema, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.Tracer = &onTryLock{key: other.GraphLockKey(key("f")), do: func() {
			changed = other.PutRun(ctx, executor.Record{ID: meanwhile + "-resume", GraphKey: key("f"), Seconds: 30,
				Resumes: meanwhile, Status: executor.RunRunning, StartedAt: time.Now()})
		}}
	})

	// The first process: every run waits in its videos until cancelled.
	slow := newProvider()
	slow.holdKind(graph.KindVideo)
	first := newExecutor(t, s, slow.registry())
	cancelled := func(k string, cause error) string {
		r, err := first.Start(context.Background(), executor.RunRequest{GraphKey: key(k), Graph: g})
		require.NoError(t, err)
		r.CancelCause(cause)
		_, err = r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		return r.ID()
	}
	shutdown := executor.CancelCode("shutdown", errStop)
	toResume := cancelled("a", shutdown)
	cancelled("b", nil) // a user's cancel
	resumedAlready := cancelled("c", shutdown)
	lost := cancelled("d", executor.CancelCode(pgstore.CancelledByLockLost, pgstore.ErrLockLost))
	locked := cancelled("e", shutdown)
	meanwhile = cancelled("f", shutdown)

	next := newExecutor(t, s, newProvider().registry())
	r, err := next.Resume(ctx, g, resumedAlready)
	require.NoError(t, err)
	_, err = r.Wait()
	require.NoError(t, err)
	_, err = next.Run(ctx, executor.RunRequest{GraphKey: key("d"), Graph: g}) // a user's run after the lost lock's
	require.NoError(t, err)
	held, err := other.TryLockGraph(ctx, key("e"))
	require.NoError(t, err)
	defer func() { require.NoError(t, held.Unlock(context.Background())) }()

	recs, err := s.ResumeCancelled(ctx, next, lectureOf, executor.ResumeOptions{}, "shutdown", pgstore.CancelledByLockLost)
	require.NoError(t, err)
	require.NoError(t, changed)
	want := []outcome{{toResume, pgstore.Resumed}, {locked, pgstore.SkippedLocked}, {meanwhile, pgstore.SkippedSuperseded}}
	if d := cmp.Diff(want, outcomes(recs)); d != "" {
		t.Fatalf("ResumeCancelled (-want +got):\n%s\n(lost lock's run %s)", d, lost)
	}
	rep, err := recs[0].Wait()
	require.NoError(t, err)
	assert.Equal(t, toResume, rep.Record.Resumes)
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)

	// Again: the resumed run is superseded by its resume, and left out.
	recs, err = s.ResumeCancelled(ctx, next, lectureOf, executor.ResumeOptions{}, "shutdown")
	require.NoError(t, err)
	if d := cmp.Diff([]outcome{{locked, pgstore.SkippedLocked}}, outcomes(recs)); d != "" {
		t.Errorf("ResumeCancelled again (-want +got):\n%s", d)
	}
}

// ResumeCancelled with no code, or an empty one, would resume nothing
// or runs that were not cancelled: it is refused before anything is
// done, as are the arguments that ResumeLeftRunning refuses. So is a
// code that no run is cancelled with, one that executor.CheckCancelCode
// refuses and not the executor's own ("Shutdown" for "shutdown"), which
// resumed nothing, silently.
func TestResumeCancelledRefusals(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	e := newExecutor(t, s, newProvider().registry())
	for _, tc := range []struct {
		name  string
		call  func() ([]pgstore.Recovery, error)
		about string
	}{
		{"no code", func() ([]pgstore.Recovery, error) {
			return s.ResumeCancelled(ctx, e, lectureOf, executor.ResumeOptions{})
		}, "no cancel code"},
		{"an empty code", func() ([]pgstore.Recovery, error) {
			return s.ResumeCancelled(ctx, e, lectureOf, executor.ResumeOptions{}, "shutdown", "")
		}, "an empty cancel code"},
		{"a code no run has", func() ([]pgstore.Recovery, error) {
			return s.ResumeCancelled(ctx, e, lectureOf, executor.ResumeOptions{}, "shutdown", "Shutdown")
		}, `cancel code "Shutdown", which no run is cancelled with: executor: invalid cancel code: code "Shutdown" has 'S' at byte 0`},
		{"no executor", func() ([]pgstore.Recovery, error) {
			return s.ResumeCancelled(ctx, nil, lectureOf, executor.ResumeOptions{}, "shutdown")
		}, "the executor is nil"},
		{"a run ID", func() ([]pgstore.Recovery, error) {
			return s.ResumeCancelled(ctx, e, lectureOf, executor.ResumeOptions{RunID: "x"}, "shutdown")
		}, `ResumeOptions.RunID "x" would name every resuming run`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := tc.call()
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.ErrorContains(t, err, "pgstore: resume the cancelled runs: "+tc.about)
			assert.Nil(t, recs)
		})
	}
}

// A run of the key that started in the same microsecond as the cancelled
// one (another process's, say) may be the later of the two: ListRuns
// sorts such a tie by ID, and ResumeCancelled took the cancelled run for
// the key's newest whenever its ID sorted last, and resumed it beside or
// after that run. A record of the key started at the same time as the
// cancelled run, or later, supersedes it.
func TestResumeCancelledLeavesARunTiedWithAnother(t *testing.T) {
	t.Parallel() // its own schema
	recs := resumeTied(t,
		executor.Record{ID: "b-cancelled", Status: executor.RunCancelled, CancelledBy: "shutdown"},
		executor.Record{ID: "a-user-run", Status: executor.RunSucceeded})
	assert.Empty(t, recs, "the cancelled run is tied with another run of its key")
}

// Every cancel code a run may be recorded with, the executor's own and
// pgstore's among them, is one that ResumeCancelled takes.
func TestResumeCancelledTakesEveryCode(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	e := newExecutor(t, s, newProvider().registry())
	recs, err := s.ResumeCancelled(t.Context(), e, lectureOf, executor.ResumeOptions{}, executor.CancelledByCancel,
		executor.CancelledByContext, executor.CancelledByDeadline, executor.CancelledByGraphReplaced,
		executor.CancelledByGraphDeleted, executor.CancelledByHost, executor.CancelledByDrain, pgstore.CancelledByLockLost, "acme:shutdown")
	require.NoError(t, err)
	assert.Empty(t, recs)
}

// Two runs of a key started in the same microsecond (two processes'),
// both cancelled with a code to resume: each is tied with the other,
// which is no run that went on, and ResumeCancelled left both, so that
// neither was ever finished. The one whose ID sorts last, as ListRuns
// sorts them, is resumed; the other is left out, as the resume of the
// first makes what the key needs.
func TestResumeCancelledResumesOneOfTwoTiedCancelledRuns(t *testing.T) {
	t.Parallel() // its own schema
	recs := resumeTied(t,
		executor.Record{ID: "b-cancelled", Status: executor.RunCancelled, CancelledBy: "shutdown"},
		executor.Record{ID: "a-cancelled", Status: executor.RunCancelled, CancelledBy: "shutdown"})
	require.Len(t, recs, 1, "one of the two tied runs is resumed")
	assert.Equal(t, "b-cancelled", recs[0].Record.ID)
	assert.Equal(t, pgstore.Resumed, recs[0].Outcome, "%v", recs[0].Err)
}

// resumeTied stores recs (ID, Status and CancelledBy set), all of one
// key and started in the same microsecond, a minute ago, in a store of
// the test's own schema; has ResumeCancelled resume those cancelled with
// "shutdown"; waits for the runs that it resumed; and returns its
// Recoveries.
func resumeTied(t *testing.T, recs ...executor.Record) []pgstore.Recovery {
	t.Helper()
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	key := testenv.UniqueName(t)
	at := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	for _, rec := range recs {
		rec.GraphKey, rec.Seconds, rec.Graph, rec.StartedAt, rec.EndedAt = key, 30, executor.Fingerprint(g), at, at.Add(time.Second)
		require.NoError(t, s.PutRun(ctx, rec))
	}
	e := newExecutor(t, s, newProvider().registry())
	recovered, err := s.ResumeCancelled(ctx, e, lectureOf, executor.ResumeOptions{}, "shutdown")
	require.NoError(t, err)
	for _, r := range recovered {
		if r.Run != nil {
			_, _ = r.Wait()
		}
	}
	return recovered
}
