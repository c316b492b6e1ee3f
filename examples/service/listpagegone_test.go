package main

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
)

// A page after a cursor whose records the retention deleted since is an
// empty page of a lecture that has records before the cursor, even
// without its length row (saved at a run's start, whose failure is only
// logged; records put by a host): since c1f7504 such a page was a 404,
// no lecture, where the lecture's first page lists its runs.
func TestListRunsEmptyLastPageOfALectureWithoutItsLength(t *testing.T) {
	h := startService(t, time.Hour)
	now := time.Now()
	require.NoError(t, h.s.store.PutRun(t.Context(), executor.Record{ID: "run-kept", GraphKey: "few", Seconds: 10,
		TriggeredBy: "test", Status: executor.RunSucceeded, StartedAt: now.Add(-3 * time.Hour), EndedAt: now}))
	require.NoError(t, h.s.store.PutRun(t.Context(), executor.Record{ID: "run-pruned", GraphKey: "few", Seconds: 10,
		TriggeredBy: "test", Status: executor.RunSucceeded, StartedAt: now.Add(-2 * time.Hour), EndedAt: now.Add(-2 * time.Hour)}))
	var first runPage
	require.Equal(t, http.StatusOK, h.do("GET", "/lectures/few/runs?limit=1", "", &first))
	require.Equal(t, []string{"run-kept"}, ids(first.Runs))
	require.NotEmpty(t, first.Next)
	_, err := h.s.store.PruneRuns(t.Context(), time.Hour)
	require.NoError(t, err)

	var page runPage
	assert.Equal(t, http.StatusOK, h.do("GET", "/lectures/few/runs?limit=1&after="+url.QueryEscape(first.Next), "", &page))
	assert.Empty(t, page.Runs)
	assert.Empty(t, page.Next)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
