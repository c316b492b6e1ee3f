package pgstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// A host resumes at start-up the runs that a lost graph lock or its own
// shutdown cancelled, and not those that a user cancelled: it matched
// Record.Error's text for that. On Postgres, the record of a run that
// Hold or Guard cancelled for a lost lock now says CancelledByLockLost in
// CancelledBy, one cancelled with the host's code says that code, and a
// user's cancel says the executor's: GetRun, ListRuns and RunsByStatus
// give each back. The run's error still wraps ErrLockLost.
func TestCancelledRunsOnPostgresSayWhatCancelledThem(t *testing.T) {
	t.Parallel()
	errShutdown := errors.New("service stopping")
	for _, tc := range []struct {
		name   string
		cancel func(t *testing.T, l *cancelLab)
		want   string
		cause  error
	}{
		{"Hold of a lost lock", func(t *testing.T, l *cancelLab) {
			held := l.lock.Hold(l.r)
			endLockSession(t, l.ctx, l.pg, l.s, l.key)
			require.ErrorIs(t, receive(t, l.ctx, held), pgstore.ErrLockLost)
		}, pgstore.CancelledByLockLost, pgstore.ErrLockLost},
		{"Guard of a lost lock", func(t *testing.T, l *cancelLab) {
			l.lock.Guard(l.r)
			endLockSession(t, l.ctx, l.pg, l.s, l.key)
		}, pgstore.CancelledByLockLost, pgstore.ErrLockLost},
		{"the host's shutdown", func(_ *testing.T, l *cancelLab) {
			l.r.CancelCause(executor.CancelCode("shutdown", errShutdown))
		}, "shutdown", errShutdown},
		{"a user", func(_ *testing.T, l *cancelLab) { l.r.Cancel() }, executor.CancelledByCancel, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // its own schema
			s, pg, ctx, key, lock, r, _ := heldRun(t)
			tc.cancel(t, &cancelLab{s: s, pg: pg, ctx: ctx, key: key, lock: lock, r: r})
			rep, err := r.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
			if tc.cause != nil {
				require.ErrorIs(t, err, tc.cause)
			}
			assert.Equal(t, tc.want, rep.Record.CancelledBy, "Report.Record")

			got, err := s.GetRun(ctx, r.ID())
			require.NoError(t, err)
			assert.Equal(t, executor.RunCancelled, got.Status)
			assert.Equal(t, rep.Record.Error, got.Error)
			assert.Equal(t, tc.want, got.CancelledBy, "GetRun")
			list, err := s.ListRuns(ctx, key)
			require.NoError(t, err)
			require.Len(t, list, 1)
			assert.Equal(t, tc.want, list[0].CancelledBy, "ListRuns")
			cancelled, err := s.RunsByStatus(ctx, executor.RunCancelled)
			require.NoError(t, err)
			require.Len(t, cancelled, 1)
			assert.Equal(t, tc.want, cancelled[0].CancelledBy, "RunsByStatus")
		})
	}
}

// cancelLab is what heldRun gives, for the cancels of
// TestCancelledRunsOnPostgresSayWhatCancelledThem.
type cancelLab struct {
	s    *pgstore.Store
	pg   *testenv.Postgres
	ctx  context.Context
	key  string
	lock *pgstore.GraphLock
	r    *executor.Run
}

// A schema of layout 6, which this release has not migrated yet (a
// deployment that starts before its Migrate), has no cancelled_by
// column: the run records' calls say that the store is not migrated,
// naming the column; Migrate adds it, and the records of before read
// with no CancelledBy.
func TestRunsOfLayout6SayNotMigrated(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	old := executor.Record{ID: "old", GraphKey: "g", Seconds: 30, Graph: "fingerprint", Status: executor.RunCancelled,
		Error: "executor: run cancelled: run \"old\": service stopping"}
	rec := executor.Record{ID: "r", GraphKey: "g", Seconds: 30, Graph: "fingerprint", Status: executor.RunCancelled,
		CancelledBy: "shutdown"}
	requireRunsNotMigrated(t, s, pg, 6, "cancelled_by", old, rec)
}

// PutRun refuses a CancelledBy that Postgres cannot hold as text, as it
// does Error's, with a permanent *TextError, and writes nothing.
func TestPutRunChecksCancelledBy(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	err := s.PutRun(ctx, executor.Record{ID: "r", GraphKey: "g", Status: executor.RunCancelled, CancelledBy: "shut\x00down"})
	var te *pgstore.TextError
	require.ErrorAs(t, err, &te)
	assert.Contains(t, err.Error(), "CancelledBy")
	var pe *executor.PermanentError
	assert.ErrorAs(t, err, &pe)
	_, err = s.GetRun(ctx, "r")
	require.ErrorIs(t, err, executor.ErrNotFound)
}
