package main

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/pghistory"
)

// queuedBehindARun starts a service whose runs go on until they are
// cancelled, a run of lecture l (first), and an edit of l, whose run
// (queued) is queued after it.
func queuedBehindARun(t *testing.T) (h *harness, first, queued started) {
	t.Helper()
	h = startService(t, time.Hour)
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "b"}}`, &queued))
	require.Equal(t, first.RunID, queued.QueuedAfter)
	return h, first, queued
}

// endLockSession ends the Postgres session that holds the lock of
// lecture key (an administrator, a failover): the service loses the lock.
func (h *harness) endLockSession(key string) {
	h.t.Helper()
	var ended int
	require.NoError(h.t, h.pg.Pool.QueryRow(h.t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
	WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`,
		h.s.store.GraphLockKey(key)).Scan(&ended))
	require.Equal(h.t, 1, ended, "the session that holds the lock of lecture %q", key)
}

// lockHolders returns how many sessions hold the lock of lecture key.
func (h *harness) lockHolders(key string) (n int) {
	h.t.Helper()
	require.NoError(h.t, h.pg.Pool.QueryRow(h.t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
	AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`, h.s.store.GraphLockKey(key)).Scan(&n))
	return n
}

// refuseRecords makes the service's runs table refuse every write of run
// id's record, and only those whose row also meets and (SQL on NEW, such
// as " AND NEW.status <> 'cancelled'"; "" for all).
func refuseRecords(t *testing.T, h *harness, id, and string) {
	t.Helper()
	schema := pgx.Identifier{h.pg.Schema}.Sanitize()
	_, err := h.pg.Pool.Exec(t.Context(), `CREATE FUNCTION `+schema+`.refuse() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`)
	require.NoError(t, err)
	_, err = h.pg.Pool.Exec(t.Context(), `CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON `+schema+`.runs
	FOR EACH ROW WHEN (NEW.id = '`+id+`'`+and+`) EXECUTE FUNCTION `+schema+`.refuse()`)
	require.NoError(t, err)
}

// A run cancelled because its lecture's lock was lost handed that lost
// lock over to the run an edit had queued after it: the queued run
// started without holding the lecture's lock (no session held it, so
// another process could take the lecture), and its watcher cancelled it
// at once, for the lock lost before it started: the edit, answered 202,
// got no run. The queued run now takes the lock again, as one queued
// while the lock is given up does.
func TestQueuedRunAfterALostLockTakesTheLockAgain(t *testing.T) {
	h, first, queued := queuedBehindARun(t)
	h.endLockSession("l")
	assert.Contains(t, h.getRun(first.RunID).Record.Error, pgstore.ErrLockLost.Error())

	// The queued run's record is written once it has started.
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		_, err := h.s.store.GetRun(t.Context(), queued.RunID)
		return err == nil
	}, 20*time.Second, 10*time.Millisecond, "the queued run never started")
	assert.Equal(t, 1, h.lockHolders("l"), "the lecture's lock, held by a session for the queued run")
	rec, err := h.s.store.GetRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	assert.NotContains(t, rec.Error, pgstore.ErrLockLost.Error())
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// holdOnRetake makes a session of the test take the lecture's lock, as
// soon as it is free, when the service first goes to take it again
// after losing it (retakeHook), and hold it 300 ms, as the lost session
// does until Postgres has ended it. The channel gets the Unlock's error.
func (h *harness) holdOnRetake() <-chan error {
	h.t.Helper()
	other, err := pgstore.New(h.pg.Pool, pgstore.Options{Schema: h.pg.Schema})
	require.NoError(h.t, err)
	unlocked := make(chan error, 1)
	var once sync.Once
	retakeHook = func(key string) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			lock, err := other.LockGraph(ctx, key)
			if err != nil {
				unlocked <- err
				return
			}
			go func() {
				time.Sleep(300 * time.Millisecond)
				unlocked <- lock.Unlock(context.Background())
			}()
		})
	}
	h.t.Cleanup(func() { retakeHook = nil })
	return unlocked
}

// A run queued after one whose lecture's lock was lost found the lock
// still held when the session that had held it had not ended yet
// (Postgres frees a killed session's locks a moment after), and was
// dropped as if another process had taken the lecture: the edit,
// answered 202, got no run (a test failed so under load). The queued run
// now tries the lock again for a while. Here a session of the test holds
// the lock for 300 ms after the lost session frees it.
func TestQueuedRunWaitsForTheLostLocksSessionToEnd(t *testing.T) {
	h, _, queued := queuedBehindARun(t)
	unlocked := h.holdOnRetake()
	h.endLockSession("l")

	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		_, err := h.s.store.GetRun(t.Context(), queued.RunID)
		return err == nil
	}, 20*time.Second, 10*time.Millisecond, "the queued run was never recorded")
	require.NoError(t, <-unlocked)
	rec, err := h.s.store.GetRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	assert.Equal(t, "running", string(rec.Status), "the queued run, started: %s", rec.Error)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// An edit holds the lecture's lock from before it saves anything until
// its run starts (holdSlot): a lock lost meanwhile (its session ended
// while the edit was being saved) was handed to the edit's run, which
// then started without holding it, and was cancelled at once by its
// watcher, for the loss that came before it started: the edit, answered
// 202, got no run. The run now takes the lock again.
func TestEditRunAfterItsLockWasLostTakesTheLockAgain(t *testing.T) {
	h := startService(t, time.Hour) // the run goes on until the shutdown
	g, err := graph.Build(graph.Lecture(), 10)
	require.NoError(t, err)
	sl, err := h.s.holdSlot(t.Context(), "l")
	require.NoError(t, err)
	require.NotNil(t, sl.lock, "the edit holds the lecture's lock")
	h.endLockSession("l")
	select {
	case <-sl.lock.Lost():
	case <-time.After(20 * time.Second): // a bound against a hang, not a timing assertion
		t.Fatal("the lock's loss was never seen")
	}

	runID, after, err := h.s.startOrQueue(t.Context(), "l", g, "edit of script", sl)
	sl.release() // as the edit's handler does
	require.NoError(t, err)
	assert.Empty(t, after)
	assert.Equal(t, 1, h.lockHolders("l"), "the lecture's lock, held by a session for the edit's run")
	require.NoError(t, h.shutdown())
	store, err := pgstore.New(h.pg.Pool, pgstore.Options{Schema: h.pg.Schema})
	require.NoError(t, err)
	rec, err := store.GetRun(context.Background(), runID)
	require.NoError(t, err)
	assert.NotContains(t, rec.Error, pgstore.ErrLockLost.Error(), "the edit's run")
	goleak.VerifyNone(t, h.leaks)
}

// The edit's run of TestEditRunAfterItsLockWasLostTakesTheLockAgain
// found the lock still held when the lost session had not ended yet
// (Postgres frees its locks a moment after), and the edit was refused as
// if another process ran the lecture (that test failed so under load).
// It now tries the lock again for a while.
func TestEditRunWaitsForTheLostLocksSessionToEnd(t *testing.T) {
	h := startService(t, time.Hour) // the run goes on until the shutdown
	g, err := graph.Build(graph.Lecture(), 10)
	require.NoError(t, err)
	unlocked := h.holdOnRetake()
	sl, err := h.s.holdSlot(t.Context(), "l")
	require.NoError(t, err)
	h.endLockSession("l")
	select {
	case <-sl.lock.Lost():
	case <-time.After(20 * time.Second): // a bound against a hang, not a timing assertion
		t.Fatal("the lock's loss was never seen")
	}

	_, _, err = h.s.startOrQueue(t.Context(), "l", g, "edit of script", sl)
	sl.release() // as the edit's handler does
	require.NoError(t, err, "the edit's run")
	require.NoError(t, <-unlocked)
	assert.Equal(t, 1, h.lockHolders("l"), "the lecture's lock, held by a session for the edit's run")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A run queued after another whose lecture's lock was lost, and taken
// by another process before the queued run could take it again, was
// dropped with a log line alone: the edit had been answered 202 with
// the run's ID, which then had no record (GET /runs/{run} 404 once the
// lecture was freed) and no final event (its readers waited for good).
// It is now recorded as cancelled, with a run.cancelled that says why,
// and is not a run that the next start resumes.
func TestQueuedRunIsRecordedWhenAnotherProcessTakesTheLecture(t *testing.T) {
	h, _, queued := queuedBehindARun(t)

	// The lock is lost, and another process (the test) takes it before
	// the first run's end is handled: the service is held meanwhile.
	other, err := pgstore.New(h.pg.Pool, pgstore.Options{Schema: h.pg.Schema})
	require.NoError(t, err)
	var lock *pgstore.GraphLock
	func() {
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		h.endLockSession("l")
		require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
			lock, err = other.TryLockGraph(t.Context(), "l")
			return err == nil
		}, 20*time.Second, 10*time.Millisecond, "the lecture's lock was never free")
	}()

	events := h.follow(queued.RunID, "")
	require.Len(t, events, 1, "the queued run's events: its final one alone")
	e := events[0]
	assert.Equal(t, progress.RunCancelled, e.Type)
	assert.Contains(t, e.Error, errBusyElsewhere.Error())
	var v runView
	require.Equal(t, http.StatusOK, h.do("GET", "/runs/"+queued.RunID, "", &v))
	assert.Equal(t, "cancelled", v.Status)
	require.NotNil(t, v.Record)
	assert.Contains(t, v.Record.Error, errBusyElsewhere.Error())
	assert.Equal(t, codeNotStarted, v.Record.CancelledBy, "not a run to resume at the next start")
	require.NoError(t, lock.Unlock(t.Context()))
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A queued run not started, whose record could not be written, had no
// final event either: the readers of its stream waited for one that
// never came. Its stream now ends with a run.cancelled all the same,
// which says that it was not recorded.
func TestQueuedRunNotRecordedStillEndsItsStream(t *testing.T) {
	h, _, queued := queuedBehindARun(t)
	refuseRecords(t, h, queued.RunID, ``)

	require.NoError(t, h.shutdown()) // the queued run is not started, nor recorded
	hist, err := pghistory.New(h.pg.Pool, pghistory.Options{Schema: h.pg.Schema})
	require.NoError(t, err)
	e, ok, err := hist.LastEvent(t.Context(), queued.RunID)
	require.NoError(t, err)
	require.True(t, ok, "the queued run's final event")
	assert.Equal(t, progress.RunCancelled, e.Type)
	assert.Equal(t, uint64(1), e.Seq)
	assert.Contains(t, e.Message, "not written")
	assert.NotContains(t, e.Message, shutdownRunsIt)
	goleak.VerifyNone(t, h.leaks)
}

// A run queued after another that failed to start for another cause
// than the shutdown or another process's taking its lecture (a store
// error: its first record refused) was only logged: the edit had been
// answered 202 with its ID, which then had no record and no final
// event. It is now recorded as cancelled, with a cause that says why,
// and a run.cancelled ends its stream; no start resumes it.
func TestQueuedRunThatFailsToStartIsRecorded(t *testing.T) {
	h, _, queued := queuedBehindARun(t)
	refuseRecords(t, h, queued.RunID, ` AND NEW.status <> 'cancelled'`)
	// The first run is cancelled for its lost lock; the queued run takes
	// the lock again, and its start fails.
	h.endLockSession("l")

	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		_, err := h.s.store.GetRun(t.Context(), queued.RunID)
		return err == nil
	}, 20*time.Second, 10*time.Millisecond, "the queued run was never recorded")
	events := h.follow(queued.RunID, "")
	require.Len(t, events, 1, "the queued run's events: its final one alone")
	assert.Equal(t, progress.RunCancelled, events[0].Type)
	assert.Contains(t, events[0].Error, "refused by the test")
	var v runView
	require.Equal(t, http.StatusOK, h.do("GET", "/runs/"+queued.RunID, "", &v))
	assert.Equal(t, "cancelled", v.Status)
	require.NotNil(t, v.Record)
	assert.Contains(t, v.Record.Error, "not started")
	assert.Contains(t, v.Record.Error, "refused by the test")
	assert.True(t, droppedQueued(*v.Record), "not a run to resume at the next start")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
