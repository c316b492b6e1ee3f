package main

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
)

// A last page after a cursor that holds no record (those after the
// cursor were deleted since the page before: the retention, a DELETE of
// the lecture) left out the run queued whose record was written between
// the page's read and its queued run's: its record, after the cursor,
// was taken for one of an earlier page, and the run was on no page. It
// is now on that page, and a row left over of a run recorded before the
// cursor is not.
func TestEmptyLastPageListsTheQueuedRunThatStartedMeanwhile(t *testing.T) {
	h := startServiceWith(t, time.Hour, func(c *config) { c.pruneEvery = time.Hour }) // no retention pass deletes the rows
	ctx := t.Context()
	t0 := time.Now().Add(-10 * time.Minute)
	rec := func(id string, at time.Time) executor.Record {
		return executor.Record{ID: id, GraphKey: "e", Seconds: 10, TriggeredBy: "test", Status: executor.RunSucceeded,
			StartedAt: at, EndedAt: at.Add(time.Second)}
	}
	require.NoError(t, h.s.store.PutRun(ctx, rec("run-a", t0)))
	require.NoError(t, h.s.store.PutRun(ctx, rec("run-b", t0.Add(time.Minute))))
	var first runPage
	require.Equal(t, http.StatusOK, h.do("GET", "/lectures/e/runs?limit=1", "", &first))
	require.Equal(t, []string{"run-a"}, ids(first.Runs))
	require.NotEmpty(t, first.Next)

	// Meanwhile: run-b's record is deleted, and two rows of queued runs
	// are there: run-a's, left over (its record is on the first page),
	// and run-q's, whose record is written once the next page is read.
	_, err := h.pg.Pool.Exec(ctx, `DELETE FROM `+pgx.Identifier{h.pg.Schema, "runs"}.Sanitize()+` WHERE id = 'run-b'`)
	require.NoError(t, err)
	_, err = h.pg.Pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{h.pg.Schema, "service_queued"}.Sanitize()+
		` (run_id, graph_key, after_run, owner) VALUES ('run-a', 'e', 'run-0', $1), ('run-q', 'e', 'run-b', $1)`, h.s.id)
	require.NoError(t, err)
	defer func() { listRunsPageHook = nil }()
	listRunsPageHook = func(key string) {
		assert.NoError(t, h.s.store.PutRun(ctx, rec("run-q", time.Now()))) // in the server's goroutine
	}
	var last runPage
	require.Equal(t, http.StatusOK, h.do("GET", "/lectures/e/runs?limit=1&after="+url.QueryEscape(first.Next), "", &last))
	listRunsPageHook = nil
	assert.Empty(t, last.Next)
	assert.Equal(t, []string{"run-q"}, ids(last.Runs), "the run that started meanwhile, once; not the one of the first page")

	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
