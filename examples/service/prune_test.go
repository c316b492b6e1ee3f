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
	// A row left over: its run has a record.
	require.NoError(t, h1.s.params.queue(t.Context(), first.ID, "l", "run-before"))
	for _, id := range []string{queued.RunID, first.ID} {
		ageQueued(t, h1, id, 2*h1.s.cfg.retain)
	}

	_, err = h1.s.pruneQueued(t.Context(), h1.s.cfg.retain)
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
