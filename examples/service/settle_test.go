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
)

// A client that saw a run's final event, from one process of the
// service, and at once starts a run or saves an edit in another, was
// answered 409 "a run of this lecture is going on, in another process":
// the first process still held the lecture's lock, which it gives up
// once the run has ended. The request now waits a moment for a lock held
// after the lecture's newest run has ended; one held while that run goes
// on is still answered 409 at once.
func TestRequestRightAfterARunOfAnotherProcessEnded(t *testing.T) {
	roomToSettle(t)
	h := startService(t, time.Millisecond)
	other, err := pgstore.New(h.pg.Pool, pgstore.Options{Schema: h.pg.Schema}) // another process
	require.NoError(t, err)
	ended := executor.Record{ID: "run-ended", GraphKey: "l", Seconds: 10, TriggeredBy: "test", Status: executor.RunSucceeded,
		StartedAt: time.Now(), EndedAt: time.Now()}
	require.NoError(t, other.PutRun(t.Context(), ended))
	require.NoError(t, h.s.params.setSeconds(t.Context(), "l", 10))

	for _, req := range []struct{ path, body string }{
		{"/lectures/l/runs", `{"seconds": 10}`},
		{"/lectures/l/edits", `{"node": "script", "params": {"topic": "x"}}`},
	} {
		lock, err := other.TryLockGraph(t.Context(), "l") // its run has ended: it is giving the lock up
		require.NoError(t, err)
		released := make(chan struct{})
		go func() {
			defer close(released)
			time.Sleep(200 * time.Millisecond) // the other process's unlock, a moment later
			assert.NoError(t, lock.Unlock(t.Context()))
		}()
		var s started
		assert.Equal(t, http.StatusAccepted, h.do("POST", req.path, req.body, &s), req.path)
		<-released
		requireWholeRun(t, s.RunID, h.follow(s.RunID, ""))
		require.Eventually(t, func() bool { // the lecture is free again
			h.s.mu.Lock()
			defer h.s.mu.Unlock()
			return h.s.lectures["l"] == nil
		}, time.Minute, 10*time.Millisecond)
	}

	// A lock held while the lecture's newest run goes on: 409 at once.
	running := ended
	running.ID, running.Status, running.StartedAt, running.EndedAt = "run-running", executor.RunRunning, time.Now(), time.Time{}
	require.NoError(t, other.PutRun(t.Context(), running))
	lock, err := other.TryLockGraph(t.Context(), "l")
	require.NoError(t, err)
	var refused map[string]string
	assert.Equal(t, http.StatusConflict, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &refused))
	require.NoError(t, lock.Unlock(t.Context()))
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A queued run's row written after its run had started (the edit that
// queued it saved it as the run before ended, and the run started at
// once, its row deleted before it was written) stays until the
// retention, harmless elsewhere, since a run's record is read first. The
// wait for a lock given up after the lecture's newest run ended took it
// for a run still queued, and answered 409 at once, for a day.
func TestRequestRightAfterARunOfAnotherProcessEndedDespiteAQueuedRowLeftOver(t *testing.T) {
	roomToSettle(t)
	h := startService(t, time.Millisecond)
	other, err := pgstore.New(h.pg.Pool, pgstore.Options{Schema: h.pg.Schema}) // another process
	require.NoError(t, err)
	ended := executor.Record{ID: "run-ended", GraphKey: "l", Seconds: 10, TriggeredBy: "test", Status: executor.RunSucceeded,
		StartedAt: time.Now(), EndedAt: time.Now()}
	require.NoError(t, other.PutRun(t.Context(), ended))
	require.NoError(t, h.s.params.setSeconds(t.Context(), "l", 10))
	require.NoError(t, h.s.params.queue(t.Context(), ended.ID, "l", "run-before"), "the row left over")

	lock, err := other.TryLockGraph(t.Context(), "l") // its run has ended: it is giving the lock up
	require.NoError(t, err)
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(200 * time.Millisecond) // the other process's unlock, a moment later
		assert.NoError(t, lock.Unlock(t.Context()))
	}()
	var s map[string]string
	assert.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &s), "%v", s)
	<-released
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// roomToSettle makes settleWait a minute until the test ends: the other
// process here unlocks 200 ms after the request came, and on a loaded
// machine its wake-up and its round trip to Postgres may take much of
// the default 2s; the tests are of the wait, not of its bound.
func roomToSettle(t *testing.T) {
	old := settleWait
	settleWait = time.Minute
	t.Cleanup(func() { settleWait = old })
}
