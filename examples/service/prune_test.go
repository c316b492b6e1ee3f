package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// ageQueued sets back the time at which run runID was saved as queued.
func ageQueued(t *testing.T, h *harness, runID string, by time.Duration) {
	t.Helper()
	tag, err := h.pg.Pool.Exec(t.Context(), fmt.Sprintf(`UPDATE %s SET queued_at = queued_at - make_interval(secs => $2) WHERE run_id = $1`,
		pgx.Identifier{h.pg.Schema, "service_queued"}.Sanitize()), runID, by.Seconds())
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), "the row of run %s", runID)
}

// The retention deleted the rows of the runs queued more than -retain
// ago, whether their runs had started or not: a run queued after one that
// lasted longer than -retain was lost to every other process (GET
// /runs/{run} answered 404 there), and to the start after its process
// died. Only the rows of runs that have a record are left over (see
// startOrQueue); the retention deletes those alone.
func TestRetentionKeepsARunQueuedLongerThanItsAge(t *testing.T) {
	h1, h2, queued := queuedInTwoProcesses(t) // the run before it goes on until h1's shutdown
	leaks := h1.leaks
	recs, err := h1.s.store.ListRuns(t.Context(), "l")
	require.NoError(t, err)
	require.Len(t, recs, 1)
	first := recs[0] // the run going on
	// A row left over: its run has a record. It is deleted whatever its
	// age (see TestRetentionDeletesNoRecordWhoseLeftOverRowItKeeps), by
	// this pass or one of the service's own.
	require.NoError(t, h1.s.params.queue(t.Context(), first.ID, "l", "run-before"))
	ageQueued(t, h1, queued.RunID, 2*h1.s.cfg.retain)

	_, err = h1.s.pruneQueued(t.Context())
	require.NoError(t, err)
	_, ok, err := h1.s.params.queuedRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	assert.True(t, ok, "the row of the run still queued is kept")
	var v runView
	require.Equal(t, http.StatusOK, h2.do("GET", "/runs/"+queued.RunID, "", &v), "the other process's queued run")
	assert.Equal(t, "queued", v.Status)
	_, ok, err = h1.s.params.queuedRun(t.Context(), first.ID)
	require.NoError(t, err)
	assert.False(t, ok, "the row left over is deleted")

	require.NoError(t, h1.shutdown())
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A row left over (see startOrQueue) outlived its run's record: the
// retention deleted the rows saved more than -retain ago whose runs had
// records, then, in a later statement with a later now(), the records
// that ended more than -retain ago. A row written after its run's
// record (its INSERT raced a short run's start and end), or a run queued,
// run and ended in the moments between the two statements, left the
// row younger than the cut-off and the record older: the record was
// deleted and the row kept, for good, with no record to say it is left
// over. GET /runs/{run} then answered the run "queued" for ever, and once
// its process died, a recovery ran the run again. The rows whose runs
// have records are now deleted whatever their age, so that no row
// outlives its record.
func TestRetentionDeletesNoRecordWhoseLeftOverRowItKeeps(t *testing.T) {
	h := startServiceWith(t, time.Millisecond, func(c *config) { c.pruneEvery = time.Hour }) // the test's passes alone
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	requireWholeRun(t, run.RunID, h.follow(run.RunID, ""))
	h.awaitRun(run.RunID, "ended", func(v runView) bool { return v.Status == "succeeded" })
	// Its row, written after its record, and the record's end, just
	// across the retention's cut-off from each other.
	require.NoError(t, h.s.params.queue(t.Context(), run.RunID, "l", "run-before"))
	age := h.s.cfg.retain
	_, err := h.pg.Pool.Exec(t.Context(), fmt.Sprintf(`UPDATE %s SET started_at = now() - make_interval(secs => $2),
	ended_at = now() - make_interval(secs => $2) WHERE id = $1`, pgx.Identifier{h.pg.Schema, "runs"}.Sanitize()),
		run.RunID, (age + time.Second).Seconds())
	require.NoError(t, err)
	ageQueued(t, h, run.RunID, age-time.Minute)

	_, err = h.s.pruneQueued(t.Context())
	require.NoError(t, err)
	n, err := h.s.store.PruneRuns(t.Context(), age)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the record is pruned")
	_, ok, err := h.s.params.queuedRun(t.Context(), run.RunID)
	require.NoError(t, err)
	assert.False(t, ok, "the row left over is deleted with its record")
	var e map[string]string
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/runs/"+run.RunID, "", &e), "a run pruned: %v", e)

	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
