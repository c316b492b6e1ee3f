package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/internal/testgraph"
)

// The records of the runs that a process cancelled say what cancelled
// them as a code (Record.CancelledBy): its shutdown ("shutdown"), a lost
// lecture lock (pgstore's "lock-lost") or a request ("request"). The next
// process's start finishes the runs that the shutdown or the lost lock
// cut, each resumed as its lecture's newest run, and leaves the run that
// a request cancelled as it is. A lost lock's run was not resumed by any
// start, and the shutdown was told from a request by its record's text.
func TestRunsCutByAShutdownOrALostLockAreFinishedByTheNextStart(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // the runs go on until they are cancelled
	runs := map[string]started{}
	for _, key := range []string{"shut", "lost", "user"} {
		var s started
		require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/"+key+"/runs", `{"seconds": 10}`, &s))
		runs[key] = s
	}
	require.Equal(t, http.StatusAccepted, h.do("POST", "/runs/"+runs["user"].RunID+"/cancel", "", nil))
	assert.Equal(t, codeRequest, h.getRun(runs["user"].RunID).Record.CancelledBy)
	h.endLockSession("lost")
	lost := h.getRun(runs["lost"].RunID)
	require.Equal(t, "cancelled", lost.Status)
	assert.Equal(t, pgstore.CancelledByLockLost, lost.Record.CancelledBy)
	require.NoError(t, h.shutdown())

	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	rec, err := store.GetRun(t.Context(), runs["shut"].RunID)
	require.NoError(t, err)
	require.Equal(t, executor.RunCancelled, rec.Status)
	assert.Equal(t, codeShutdown, rec.CancelledBy, "the shutdown's code")

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	for _, key := range []string{"shut", "lost"} {
		resumed := newestRun(t, store, key)
		require.Equal(t, runs[key].RunID, resumed.Resumes, "lecture %s: the newest run resumes the one cut", key)
		assert.Equal(t, testgraph.LectureIDs(t, 10), requireWholeRun(t, resumed.ID, h.follow(resumed.ID, "")))
		assert.Equal(t, "succeeded", h.getRun(resumed.ID).Status)
	}
	assert.Equal(t, runs["user"].RunID, newestRun(t, store, "user").ID, "the run a request cancelled is not resumed")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A process started while another ran (a rolling deploy: the new process
// first, then the old one's shutdown) looked for the runs that a
// shutdown cancelled at its start alone, before the old process had
// cancelled any: the runs that the old process's shutdown cut, and the
// run it had queued and recorded as not started, were left until some
// process started again. The live process now watches the runs that it
// saw going on elsewhere, and its next pass finishes the lecture's
// newest run if a shutdown or a lost lock cut it; never one that a
// request cancelled.
func TestRunCutByAnotherProcesssShutdownIsFinishedByALiveProcess(t *testing.T) {
	passes := countPasses(t)
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	old := startServiceOn(t, pg, rd, time.Hour, nil) // the runs go on until they are cancelled
	run, queued := runQueued(t, old, "q")
	var user started
	require.Equal(t, http.StatusAccepted, old.do("POST", "/lectures/user/runs", `{"seconds": 10}`, &user))
	h := startServiceOn(t, pg, rd, time.Millisecond, func(c *config) { c.recoverEvery = 20 * time.Millisecond })
	passes.wait(t, h.s) // it has seen the old process's runs going on
	require.Equal(t, http.StatusAccepted, old.do("POST", "/runs/"+user.RunID+"/cancel", "", nil))
	old.getRun(user.RunID)
	require.NoError(t, old.shutdown())

	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	var resumed executor.Record
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		resumed = newestRun(t, store, "q")
		return resumed.Resumes != ""
	}, time.Minute, 10*time.Millisecond, "a resume of the run queued and cut by the shutdown")
	assert.Equal(t, queued.RunID, resumed.Resumes, "the lecture's newest run, queued after run %s", run.RunID)
	assert.Contains(t, requireWholeRun(t, resumed.ID, h.follow(resumed.ID, "")), "script", "its edit is made")
	assert.Equal(t, "succeeded", h.getRun(resumed.ID).Status)
	passes.wait(t, h.s)
	assert.Equal(t, user.RunID, newestRun(t, store, "user").ID, "the run a request cancelled is not resumed")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A run queued after another and cancelled by a request (POST
// /runs/{run}/cancel, while it waited) is recorded as not started, with
// the code "request". That record, written at the cancel, counted as a
// run of the lecture that started after the one going on: once the
// shutdown cut that run, no start resumed it, and its edits, and the
// cancelled run's, which stand, were left undone until the lecture's next
// request. A queued run that never started is no run that came after,
// whatever cancelled it.
func TestRunCutByAShutdownAfterItsQueuedRunWasCancelledIsResumed(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // the run goes on until it is cancelled
	run, queued := runQueued(t, h, "l")
	require.Equal(t, http.StatusAccepted, h.do("POST", "/runs/"+queued.RunID+"/cancel", "", nil))
	v := h.getRecord(queued.RunID)
	require.Equal(t, "cancelled", v.Status)
	require.Equal(t, codeRequest, v.Record.CancelledBy, "the queued run's record says a request cancelled it")
	require.NoError(t, h.shutdown())

	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	rec, err := store.GetRun(t.Context(), run.RunID)
	require.NoError(t, err)
	require.Equal(t, codeShutdown, rec.CancelledBy)

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	resumed := newestRun(t, store, "l")
	require.Equal(t, run.RunID, resumed.Resumes, "the newest run resumes the run the shutdown cut")
	assert.Contains(t, requireWholeRun(t, resumed.ID, h.follow(resumed.ID, "")), "script", "the cancelled run's edit is made")
	assert.Equal(t, "succeeded", h.getRun(resumed.ID).Status)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
