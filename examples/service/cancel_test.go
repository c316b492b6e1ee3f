package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
)

// getRecord is GET /runs/{run} once the run has a record.
func (h *harness) getRecord(runID string) runView {
	h.t.Helper()
	var v runView
	require.EventuallyWithT(h.t, func(c *assert.CollectT) {
		v = runView{}
		require.Equal(c, http.StatusOK, h.do("GET", "/runs/"+runID, "", &v))
		require.NotNil(c, v.Record, "the record of run %s", runID)
	}, 20*time.Second, 10*time.Millisecond)
	return v
}

// POST /runs/{run}/cancel cancels a run going on, or a run queued after
// it, in the process that runs them: each is recorded as cancelled, for
// that request, its stream ending with a run.cancelled; the lecture is
// free then, and a later start resumes neither. A run that has ended is
// 409, an unknown one 404.
func TestCancelRun(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // the run goes on until cancelled
	leaks := h.leaks
	var running, queued started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &running))
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "x"}}`, &queued))

	var answer started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/runs/"+queued.RunID+"/cancel", "", &answer), "the queued run")
	assert.Equal(t, queued.RunID, answer.RunID)
	events := h.followAll(queued.RunID)
	require.Len(t, events, 1)
	assert.Equal(t, progress.RunCancelled, events[0].Type)
	v := h.getRecord(queued.RunID)
	assert.Equal(t, "cancelled", v.Status)
	assert.Contains(t, v.Record.Error, errCancelledByRequest.Error())

	require.Equal(t, http.StatusAccepted, h.do("POST", "/runs/"+running.RunID+"/cancel", "", &answer), "the run going on")
	events = h.followAll(running.RunID)
	assert.Equal(t, progress.RunCancelled, events[len(events)-1].Type)
	v = h.getRun(running.RunID)
	assert.Equal(t, "cancelled", v.Status)
	assert.Contains(t, v.Record.Error, errCancelledByRequest.Error())

	var refused map[string]string
	assert.Equal(t, http.StatusConflict, h.do("POST", "/runs/"+running.RunID+"/cancel", "", &refused), "a run that has ended")
	assert.Contains(t, refused["error"], "has ended")
	assert.Equal(t, http.StatusNotFound, h.do("POST", "/runs/run-none/cancel", "", &refused))
	assert.Equal(t, http.StatusUnauthorized, h.doAs("", "POST", "/runs/"+running.RunID+"/cancel", "", &refused))
	require.NoError(t, h.shutdown())

	h = startServiceOn(t, pg, rd, time.Hour, nil)
	h.s.mu.Lock()
	assert.Empty(t, h.s.lectures, "a run cancelled by a request is not resumed")
	h.s.mu.Unlock()
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, leaks)
}
