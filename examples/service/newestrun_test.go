package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
)

// The reads that need a lecture's newest record alone (the recovery's
// and the cut lectures' passes, an edit of a lecture whose length was
// not saved) read every record of the lecture with ListRuns, at each
// pass: on a lecture with a long history, every record, every pass. They
// now read the newest records only (Store.LatestRuns): an old record
// that cannot be read (its counts column is not JSON of counts), which
// ListRuns fails on, no longer fails them.
func TestNewestRecordReadsLeaveTheOldRecordsUnread(t *testing.T) {
	s, pg, leaks := startUnserved(t)
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.shutdown(ctx)
		goleak.VerifyNone(t, leaks)
	}()
	ctx := t.Context()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	old := executor.Record{ID: "old", GraphKey: "l", Seconds: 20, TriggeredBy: "test", Status: executor.RunSucceeded,
		StartedAt: t0, EndedAt: t0.Add(time.Minute)}
	cut := executor.Record{ID: "cut", GraphKey: "l", Seconds: 10, TriggeredBy: "test", Status: executor.RunCancelled,
		CancelledBy: codeShutdown, StartedAt: t0.Add(time.Hour), EndedAt: t0.Add(time.Hour + time.Minute),
		Counts: executor.Counts{Planned: 1}}
	require.NoError(t, s.store.PutRun(ctx, old))
	for i := range newestRunsPage + 1 { // more than a page of newestRun
		require.NoError(t, s.store.PutRun(ctx, executor.Record{ID: fmt.Sprintf("between-%d", i), GraphKey: "l", Seconds: 30,
			TriggeredBy: "test", Status: executor.RunSucceeded, StartedAt: t0.Add(time.Duration(i+1) * time.Minute),
			EndedAt: t0.Add(time.Duration(i+2) * time.Minute), Counts: executor.Counts{Planned: 1}}))
	}
	require.NoError(t, s.store.PutRun(ctx, cut))
	_, err := pg.Pool.Exec(ctx, `UPDATE `+pgx.Identifier{pg.Schema, "runs"}.Sanitize()+` SET counts = '"unreadable"' WHERE id = 'old'`)
	require.NoError(t, err)
	_, err = s.store.ListRuns(ctx, "l")
	require.Error(t, err, "ListRuns reads the old record, and fails on it")

	// An edit of a lecture whose length was not saved: its newest run's.
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/lectures/l/edits", nil)
	_, seconds, ok := s.editGraph(ctx, w, r, "l")
	require.True(t, ok, "editGraph answered %d: %s", w.Code, w.Body)
	assert.Equal(t, cut.Seconds, seconds, "the newest run's length")

	assert.True(t, s.endedElsewhere(ctx, "l"), "the newest run has ended, and none is queued")

	why, resume, err := s.toResume(ctx, cut)
	require.NoError(t, err)
	assert.True(t, resume, "the newest run, cut by a shutdown, is to resume")
	assert.Equal(t, "cancelled by a shutdown", why)

	got := s.watched(ctx, nil, map[string]time.Time{"l": t0})
	require.Len(t, got, 1, "the cut lecture's newest run is to resume")
	assert.Equal(t, "cut", got[0].ID)
}
