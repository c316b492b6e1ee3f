package main

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// getRecord is GET /runs/{run} once the run has a record.
func (h *harness) getRecord(runID string) runView {
	h.t.Helper()
	return h.awaitRun(runID, "record", func(v runView) bool { return v.Record != nil })
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

// A run that another process of the service runs, or has queued, was
// answered 409 "cancel it there", which a client behind a load balancer
// cannot do. The cancel is now saved for that process, which cancels the
// run within a moment (it polls every cancelPoll): 202, and the run ends
// as one cancelled in its own process does.
func TestCancelRunOfAnotherProcess(t *testing.T) {
	defer func(d time.Duration) { cancelPoll = d }(cancelPoll)
	cancelPoll = 20 * time.Millisecond
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h1 := startServiceOn(t, pg, rd, time.Hour, nil) // the run goes on until cancelled
	leaks := h1.leaks
	h2 := startServiceOn(t, pg, rd, time.Hour, nil)
	var running, queued started
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &running))
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "x"}}`, &queued))

	var answer started
	require.Equal(t, http.StatusAccepted, h2.do("POST", "/runs/"+queued.RunID+"/cancel", "", &answer), "the queued run")
	events := h2.followAll(queued.RunID)
	require.Len(t, events, 1)
	assert.Equal(t, progress.RunCancelled, events[0].Type)
	assert.Contains(t, h2.getRecord(queued.RunID).Record.Error, errCancelledByRequest.Error())

	require.Equal(t, http.StatusAccepted, h2.do("POST", "/runs/"+running.RunID+"/cancel", "", &answer), "the run going on")
	events = h2.followAll(running.RunID)
	assert.Equal(t, progress.RunCancelled, events[len(events)-1].Type)
	v := h1.getRun(running.RunID)
	assert.Equal(t, "cancelled", v.Status)
	assert.Contains(t, v.Record.Error, errCancelledByRequest.Error())
	require.Eventually(t, func() bool { // the saved cancels are deleted once carried out
		var n int
		require.NoError(t, pg.Pool.QueryRow(t.Context(), "SELECT count(*) FROM "+h1.s.params.cancels).Scan(&n))
		return n == 0
	}, time.Minute, 10*time.Millisecond)
	require.NoError(t, h2.shutdown())
	require.NoError(t, h1.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A run left running by a process that died, cancelled by a request to
// another process: the next start does not resume it, but records it as
// ended (abandoned), with the cancel as the reason.
func TestCancelledRunOfADeadProcessIsNotResumed(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // a live process, which knows nothing of the run
	leaks := h.leaks
	c := startChild(t, pg, rd, time.Hour)
	var running started
	require.Equal(t, http.StatusAccepted, c.do("POST", "/lectures/k/runs", `{"seconds": 10}`, &running))
	// Once its stream holds an event: the final event that ends a stream
	// left behind is numbered after the newest one (see
	// executor.Abandon), and a stream without any gets none.
	firstEvent(t, c.harness, running.RunID)
	c.kill()
	waitUnlocked(t, pg, h.s.store, "k")
	var answer started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/runs/"+running.RunID+"/cancel", "", &answer))
	require.NoError(t, h.shutdown())

	h = startServiceOn(t, pg, rd, time.Hour, nil)
	h.s.mu.Lock()
	assert.Empty(t, h.s.lectures, "the run cancelled is not resumed")
	h.s.mu.Unlock()
	v := h.getRecord(running.RunID)
	assert.Equal(t, "interrupted", v.Status)
	assert.Contains(t, v.Record.Error, errCancelledByRequest.Error())
	events := h.followAll(running.RunID)
	assert.True(t, events[len(events)-1].Type.Final(), "its stream ends")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, leaks)
}

// diedWithAQueuedRun has a child process of the service, beside h on the
// same database and Redis, start a run of lecture k and queue an edit's
// run after it, then kills it once the run's stream has an event (see
// TestCancelledRunOfADeadProcessIsNotResumed): the run is left running,
// the edit's run queued, and the lecture's lock free.
func diedWithAQueuedRun(t *testing.T, pg *testenv.Postgres, rd *testenv.Redis, h *harness) (running, queued started) {
	t.Helper()
	c := startChild(t, pg, rd, time.Hour)
	require.Equal(t, http.StatusAccepted, c.do("POST", "/lectures/k/runs", `{"seconds": 10}`, &running))
	require.Equal(t, http.StatusAccepted, c.do("POST", "/lectures/k/edits", `{"node": "script", "params": {"topic": "x"}}`, &queued))
	require.Equal(t, running.RunID, queued.QueuedAfter)
	firstEvent(t, c.harness, running.RunID)
	c.kill()
	waitUnlocked(t, pg, h.s.store, "k")
	return running, queued
}

// firstEvent waits until the run's stream holds its first event.
func firstEvent(t *testing.T, h *harness, runID string) {
	t.Helper()
	ctx := testenv.Context(t, time.Minute) // a bound against a hang, not a timing assertion
	errBegun := errors.New("begun")
	err := sse.NewClient(h.base+"/runs/"+runID+"/events", sse.ClientOptions{HTTPClient: h.hc,
		Header: http.Header{"Authorization": {"Bearer " + token}}, Retry: 100 * time.Millisecond}).
		Events(ctx, func(progress.Event) error { return errBegun })
	require.ErrorIs(t, err, errBegun)
}

// A run that ended without any event in its stream (its process was
// killed before its first events reached Redis, and the Abandon or
// Resume that ended it had none to number its final event after) kept
// its readers waiting for good: the stream had nothing, and never would.
// The service now answers 204 for such a run, as for one whose final
// event a reader has seen.
func TestEventsOfARunEndedWithoutEventsAre204(t *testing.T) {
	h := startService(t, time.Millisecond)
	rec := executor.Record{ID: "run-silent", GraphKey: "l", Seconds: 10, TriggeredBy: "test", Status: executor.RunInterrupted,
		StartedAt: time.Now(), EndedAt: time.Now(), Error: "interrupted: it ended without recording its outcome"}
	require.NoError(t, h.s.store.PutRun(t.Context(), rec))
	ctx := testenv.Context(t, 10*time.Second) // a bound against a hang, not a timing assertion
	req, err := http.NewRequestWithContext(ctx, "GET", h.base+"/runs/run-silent/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A run left running by a process that died, with a run queued after it
// by an edit, cancelled by a request to another process: the next start
// abandoned the run cancelled, and left the run queued after it queued
// (GET /runs/{run} said "queued", its readers waited) until a later
// start. As the documentation says of a cancel, the run queued after
// the one cancelled starts, under the ID its edit was given.
func TestRunQueuedAfterARunCancelledInADeadProcessStarts(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // a live process, which knows nothing of the runs
	leaks := h.leaks
	running, queued := diedWithAQueuedRun(t, pg, rd, h)
	var answer started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/runs/"+running.RunID+"/cancel", "", &answer))
	require.NoError(t, h.shutdown())

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	assert.Equal(t, "interrupted", h.getRecord(running.RunID).Status, "the run cancelled is not resumed")
	assert.Equal(t, testgraph.LectureIDs(t, 10), requireWholeRun(t, queued.RunID, h.follow(queued.RunID, "")),
		"the run queued after it starts")
	v := h.getRun(queued.RunID)
	assert.Equal(t, "succeeded", v.Status)
	assert.Empty(t, v.Record.Resumes, "it resumes nothing: the run before it was cancelled")
	_, ok, err := h.s.params.queuedRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	assert.False(t, ok, "the row is deleted once the run has started")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A run queued by an edit after a run of a process that died, cancelled
// by a request to another process, the run before it not: the next start
// resumed that run under the queued run's ID, then carried the cancel
// out on the resume, so that the run no request cancelled was never
// resumed. The queued run is now recorded as cancelled by the request,
// its stream ending with a run.cancelled, and the run before it is
// resumed under an ID of its own.
func TestCancelOfAQueuedRunOfADeadProcessSparesTheRunBefore(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // a live process, which knows nothing of the runs
	leaks := h.leaks
	running, queued := diedWithAQueuedRun(t, pg, rd, h)
	var answer started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/runs/"+queued.RunID+"/cancel", "", &answer))
	require.NoError(t, h.shutdown())

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	events := h.followAll(queued.RunID)
	require.Len(t, events, 1, "the queued run's events: its final one alone")
	assert.Equal(t, progress.RunCancelled, events[0].Type)
	v := h.getRecord(queued.RunID)
	assert.Equal(t, "cancelled", v.Status)
	assert.Contains(t, v.Record.Error, errCancelledByRequest.Error())
	assert.Empty(t, v.Record.Resumes, "the queued run resumes nothing")
	var resume executor.Record
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		resume = newestRun(t, h.s.store, "k")
		return resume.Status != executor.RunRunning && resume.ID != queued.RunID
	}, time.Minute, 10*time.Millisecond, "the run before the queued one is resumed")
	assert.Equal(t, running.RunID, resume.Resumes)
	assert.Equal(t, executor.RunSucceeded, resume.Status, "%s", resume.Error)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, leaks)
}

// cancelledByAShutdown starts two processes of the service on one
// database and one Redis, a run of lecture k in the first, which its
// shutdown then cancels once the run has begun: the second (h2) is a
// live process that knows nothing of the run.
func cancelledByAShutdown(t *testing.T) (*testenv.Postgres, *testenv.Redis, *harness, started) {
	t.Helper()
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h2 := startServiceOn(t, pg, rd, time.Hour, nil)
	h1 := startServiceOn(t, pg, rd, time.Hour, nil)
	var running started
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/k/runs", `{"seconds": 10}`, &running))
	firstEvent(t, h1, running.RunID)
	require.NoError(t, h1.shutdown())
	return pg, rd, h2, running
}

// A run that a shutdown cancelled is resumed by the next start: it has
// not ended for good. Its cancel, asked of another process meanwhile,
// was answered 409 "has ended: cancelled", and the next start resumed it
// all the same. The cancel is now saved (202), and the next start
// records the run as cancelled by the request rather than resume it, as
// do the starts after it.
func TestCancelOfARunAShutdownCancelled(t *testing.T) {
	pg, rd, h2, running := cancelledByAShutdown(t)
	leaks := h2.leaks
	require.Contains(t, h2.getRecord(running.RunID).Record.Error, errShutdown.Error())
	var body map[string]string
	require.Equal(t, http.StatusAccepted, h2.do("POST", "/runs/"+running.RunID+"/cancel", "", &body), "%v", body)
	require.NoError(t, h2.shutdown())

	for range 2 { // neither the next start nor the one after resumes it
		h := startServiceOn(t, pg, rd, time.Millisecond, nil)
		h.s.mu.Lock()
		assert.Empty(t, h.s.lectures, "the run cancelled is not resumed")
		h.s.mu.Unlock()
		v := h.getRecord(running.RunID)
		assert.Equal(t, "cancelled", v.Status)
		assert.Contains(t, v.Record.Error, errCancelledByRequest.Error())
		assert.Equal(t, running.RunID, newestRun(t, h.s.store, "k").ID, "no run of the lecture started")
		require.NoError(t, h.shutdown())
	}
	goleak.VerifyNone(t, leaks)
}

// A cancel of a run that a start resumes, asked of another process while
// the resume starts (the run's record still the lecture's newest, so
// answered 202 and saved for "that start"), was never carried out: the
// start read the saved cancels before it reserved the lecture, and then
// polled those of its new run's ID alone, so the resume went on. The
// cancel now cancels the resume, whose record and stream say it was
// cancelled by the request, whether it was saved while the lecture was
// reserved for the resume or once the resume had started (another
// process having read the run's record before the resume's).
func TestCancelOfARunBeingResumedCancelsTheResume(t *testing.T) {
	defer func(d time.Duration) { cancelPoll = d }(cancelPoll)
	cancelPoll = 20 * time.Millisecond
	for _, tc := range []struct {
		name    string
		started bool // the cancel is saved once the resume has started
	}{
		{"while the resume starts", false},
		{"once the resume has started", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg, rd, h2, running := cancelledByAShutdown(t)
			leaks := h2.leaks

			calls := 0
			resumeHook = func(runID string, started bool) {
				if runID != running.RunID || started != tc.started {
					return
				}
				calls++
				if !started {
					var body map[string]string
					assert.Equal(t, http.StatusAccepted, h2.do("POST", "/runs/"+runID+"/cancel", "", &body), "%v", body)
					return
				}
				// As h2 does once it has read the run's record before the
				// resume's: the resume's record is the newest now.
				assert.NoError(t, h2.s.params.requestCancel(t.Context(), runID))
			}
			defer func() { resumeHook = nil }()
			h := startServiceOn(t, pg, rd, time.Hour, nil) // the resume goes on until cancelled
			require.Equal(t, 1, calls, "the run is resumed")

			var resume executor.Record
			require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
				resume = newestRun(t, h.s.store, "k")
				return resume.ID != running.RunID && resume.Status != executor.RunRunning
			}, 20*time.Second, 10*time.Millisecond, "the resume ends")
			assert.Equal(t, running.RunID, resume.Resumes)
			assert.Equal(t, executor.RunCancelled, resume.Status)
			assert.Contains(t, resume.Error, errCancelledByRequest.Error())
			events := h.followAll(resume.ID)
			require.NotEmpty(t, events)
			assert.Equal(t, progress.RunCancelled, events[len(events)-1].Type)
			// The poll deletes the cancel once it has cancelled the resume,
			// which may end, and be recorded, first.
			require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
				ids, err := h.s.params.cancelsOf(t.Context(), []string{running.RunID})
				return err == nil && len(ids) == 0
			}, 20*time.Second, 10*time.Millisecond, "the cancel carried out is deleted")
			require.NoError(t, h.shutdown())
			require.NoError(t, h2.shutdown())
			goleak.VerifyNone(t, leaks)
		})
	}
}
