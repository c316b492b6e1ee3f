package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
)

// runList is the answer of GET /lectures/{key}/runs.
type runList struct {
	Runs []runView `json:"runs"`
}

// GET /lectures/{key}/runs lists the lecture's runs, oldest first, each
// with its record, and the run queued after the one going on last; a
// lecture without runs is 404, and the list needs the token.
func TestListRunsOfALecture(t *testing.T) {
	h := startService(t, time.Hour) // the run goes on until the shutdown
	old := executor.Record{ID: "run-old", GraphKey: "l", Seconds: 10, TriggeredBy: "test", Status: executor.RunSucceeded,
		StartedAt: time.Now().Add(-time.Minute), EndedAt: time.Now().Add(-time.Minute)}
	require.NoError(t, h.s.store.PutRun(t.Context(), old))
	var running, queued started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &running))
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "x"}}`, &queued))

	var list runList
	require.Equal(t, http.StatusOK, h.do("GET", "/lectures/l/runs", "", &list))
	var got [][2]string
	for _, v := range list.Runs {
		got = append(got, [2]string{v.ID, v.Status})
		assert.Equal(t, "l", v.GraphKey)
		assert.Equal(t, v.Status != "queued", v.Record != nil, "run %s: a record for every run but the queued one", v.ID)
	}
	assert.Equal(t, [][2]string{{"run-old", "succeeded"}, {running.RunID, "running"}, {queued.RunID, "queued"}}, got)

	// A lecture whose records the retention deleted is still a lecture:
	// an edit of it works (its length is saved).
	require.NoError(t, h.s.params.setSeconds(t.Context(), "pruned", 10))
	list = runList{}
	require.Equal(t, http.StatusOK, h.do("GET", "/lectures/pruned/runs", "", &list))
	assert.Empty(t, list.Runs)
	assert.NotNil(t, list.Runs, "[], not null")

	var refused map[string]string
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/lectures/none/runs", "", &refused))
	assert.Contains(t, refused["error"], `no lecture "none"`)
	assert.Equal(t, http.StatusBadRequest, h.do("GET", "/lectures/a%20b/runs", "", &refused))
	assert.Equal(t, http.StatusUnauthorized, h.doAs("", "GET", "/lectures/l/runs", "", &refused))
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
