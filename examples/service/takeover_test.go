package main

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
)

// passCounter counts the passes of the periodic recovery of each service
// of the test binary (see recoverHook).
type passCounter struct {
	mu sync.Mutex
	n  map[*service]int
}

func countPasses(t *testing.T) *passCounter {
	t.Helper()
	p := &passCounter{n: map[*service]int{}}
	recoverHook = func(s *service) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.n[s]++
	}
	t.Cleanup(func() { recoverHook = nil })
	return p
}

func (p *passCounter) count(s *service) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[s]
}

// wait waits until each service has made more passes from now on:
// at least one pass of each begun after the call.
func (p *passCounter) wait(t *testing.T, ss ...*service) {
	t.Helper()
	for _, s := range ss {
		from := p.count(s)
		require.Eventually(t, func() bool { return p.count(s) >= from+2 }, time.Minute, 10*time.Millisecond,
			"passes of the periodic recovery") // a bound against a hang, not a timing assertion
	}
}

// runQueued starts a run of lecture key in h's process, and an edit
// whose run is queued after it.
func runQueued(t *testing.T, h *harness, key string) (run, queued started) {
	t.Helper()
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/"+key+"/runs", `{"seconds": 10}`, &run))
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/"+key+"/edits", `{"node": "script", "params": {"topic": "x"}}`, &queued))
	require.Equal(t, run.RunID, queued.QueuedAfter)
	return run, queued
}

// A process of the service killed with SIGKILL left its runs to the next
// start of a process: a browser that followed one waited until then,
// though other processes of the service lived on. The live processes
// now look for such runs every -recover-every: one of them, and one
// only, resumes the dead process's run (under the ID of the run it had
// queued after it), and a browser that followed the dead run through a
// live process gets its final event; the runs going on, and the runs
// queued, of the live processes (this one's and another's) are never
// taken, in passes made before the death or after the resume.
//
// The resume is looked for until it comes (a bound against a hang): the
// server frees the dead process's locks once it sees their sessions end,
// each at its own moment, and the next pass of either live process then
// takes it.
func TestLiveProcessTakesOverTheRunsOfAKilledOne(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	passes := countPasses(t)
	dead := startChild(t, pg, rd, time.Hour) // its runs go on until it is killed
	often := func(c *config) { c.recoverEvery = 100 * time.Millisecond }
	h1 := startServiceOn(t, pg, rd, time.Hour, often) // the runs go on until the shutdown
	leaks := h1.leaks
	h2 := startServiceOn(t, pg, rd, time.Hour, often)
	lectures := []struct {
		h   *harness
		key string
	}{{dead.harness, "a"}, {h1, "x"}, {h2, "y"}}
	runs := map[string][2]started{}
	for _, l := range lectures {
		run, queued := runQueued(t, l.h, l.key)
		runs[l.key] = [2]started{run, queued}
	}
	store := h1.s.store
	// untouched checks that the run of lecture key goes on, recorded as
	// running, with its queued run saved as queued and not recorded.
	untouched := func(key string) {
		t.Helper()
		rec, err := store.GetRun(t.Context(), runs[key][0].RunID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunRunning, rec.Status, "the run of lecture %s", key)
		_, err = store.GetRun(t.Context(), runs[key][1].RunID)
		assert.ErrorIs(t, err, executor.ErrNotFound, "the run queued on lecture %s", key)
		_, ok, err := h1.s.params.queuedRun(t.Context(), runs[key][1].RunID)
		require.NoError(t, err)
		assert.True(t, ok, "the run queued on lecture %s is saved as queued", key)
	}
	lecturesOf := func(h *harness) map[string]string {
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		m := map[string]string{}
		for k, l := range h.s.lectures {
			m[k] = l.runID
		}
		return m
	}

	passes.wait(t, h1.s, h2.s)
	for _, key := range []string{"a", "x", "y"} {
		untouched(key)
	}
	assert.Equal(t, map[string]string{"x": runs["x"][0].RunID}, lecturesOf(h1), "the first live process's lectures")
	assert.Equal(t, map[string]string{"y": runs["y"][0].RunID}, lecturesOf(h2), "the second live process's lectures")

	// A browser follows the run of the process about to die, through a
	// live one.
	firstEvent(t, dead.harness, runs["a"][0].RunID)
	followed := make(chan []progress.Event, 1)
	go func() { followed <- h1.followAll(runs["a"][0].RunID) }()
	dead.kill() // SIGKILL, by its PID; it waits until the server has freed its process's lock
	var recs []executor.Record
	require.EventuallyWithT(t, func(c *assert.CollectT) { // a bound against a hang, not a timing assertion
		var err error
		recs, err = store.ListRuns(t.Context(), "a")
		require.NoError(c, err)
		require.Len(c, recs, 2, "the runs of the dead process's lecture: %+v", recs)
		// Once the resume has started, the executor records the run it
		// resumes as interrupted.
		require.Equal(c, runs["a"][0].RunID, recs[0].ID)
		require.Equal(c, executor.RunInterrupted, recs[0].Status, "the dead process's run")
	}, time.Minute, 10*time.Millisecond)
	resumed := recs[1]
	assert.Equal(t, runs["a"][1].RunID, resumed.ID, "resumed under the ID of the run queued after it")
	assert.Equal(t, runs["a"][0].RunID, resumed.Resumes)
	assert.Equal(t, executor.RunRunning, resumed.Status)
	events := <-followed
	require.NotEmpty(t, events)
	assert.Equal(t, progress.RunCancelled, events[len(events)-1].Type, "the browser's stream ends")
	assert.Contains(t, events[len(events)-1].Message+events[len(events)-1].Error, resumed.ID, "naming the run that resumes it")
	l1, l2 := lecturesOf(h1), lecturesOf(h2)
	assert.True(t, (l1["a"] == resumed.ID) != (l2["a"] == resumed.ID), "one live process runs the resume: %v, %v", l1, l2)

	// More passes: nothing is resumed twice, and the live processes'
	// runs go on.
	passes.wait(t, h1.s, h2.s)
	recs, err := store.ListRuns(t.Context(), "a")
	require.NoError(t, err)
	assert.Len(t, recs, 2, "the runs of the dead process's lecture: %+v", recs)
	untouched("x")
	untouched("y")
	l1, l2 = lecturesOf(h1), lecturesOf(h2)
	delete(l1, "a")
	delete(l2, "a")
	assert.Equal(t, map[string]string{"x": runs["x"][0].RunID}, l1)
	assert.Equal(t, map[string]string{"y": runs["y"][0].RunID}, l2)

	require.NoError(t, h1.shutdown())
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A live process's run queued on a lecture whose lock it gave up a
// moment, to take it again (the lock was lost, and the run before the
// queued one cancelled for it), looked, to the lecture's lock alone, as
// left by a process that died: another process's recovery would have
// started it, while its process went on to start it too, or to record it
// as not started. The other process now sees its owner's lock held, and
// leaves it; its process starts it under the lock taken again.
func TestQueuedRunOfALiveProcessIsNotTakenWhileItsLectureIsUnlocked(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	passes := countPasses(t)
	h1 := startServiceOn(t, pg, rd, time.Hour, nil) // the runs go on until the shutdown
	leaks := h1.leaks
	h2 := startServiceOn(t, pg, rd, time.Hour, func(c *config) { c.recoverEvery = 100 * time.Millisecond })
	_, queued := runQueued(t, h1, "l")
	retaking, retake := make(chan struct{}), make(chan struct{})
	var once sync.Once
	retakeHook = func(string) {
		once.Do(func() {
			close(retaking)
			<-retake
		})
	}
	t.Cleanup(func() { retakeHook = nil })
	h1.endLockSession("l")
	select {
	case <-retaking:
	case <-time.After(time.Minute): // a bound against a hang, not a timing assertion
		t.Fatal("the first process never went to take the lecture's lock again")
	}
	store := h1.s.store
	waitUnlocked(t, pg, store, "l")

	passes.wait(t, h2.s)
	_, err := store.GetRun(t.Context(), queued.RunID)
	assert.ErrorIs(t, err, executor.ErrNotFound, "the queued run, while its process takes the lock again")
	h2.s.mu.Lock()
	assert.Empty(t, h2.s.lectures, "the second process's lectures")
	h2.s.mu.Unlock()
	close(retake)
	require.EventuallyWithT(t, func(c *assert.CollectT) { // a bound against a hang, not a timing assertion
		rec, err := store.GetRun(t.Context(), queued.RunID)
		require.NoError(c, err)
		require.Equal(c, executor.RunRunning, rec.Status, "the queued run: %s", rec.Error)
	}, time.Minute, 10*time.Millisecond)
	h1.s.mu.Lock()
	assert.Equal(t, queued.RunID, h1.s.lectures["l"].runID, "started by its process")
	h1.s.mu.Unlock()

	require.NoError(t, h1.shutdown())
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A pass of the recovery took a dead process's queued run over by the
// owner it had listed, whether or not that process had taken its lock
// again since (its session had ended, and it took it again at its next
// pass): a live process's run was taken, and then started twice, or
// started by one process and recorded as not started by the other. The
// run is now taken over only while its owner's lock is free.
func TestQueuedRunIsTakenOverOnlyWhileItsOwnersLockIsFree(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ownerLive bool
		want      bool
	}{
		{"owner's lock free", false, true},
		{"owner's lock taken again", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startService(t, time.Hour)
			leaks := h.leaks
			other := *h.s.params
			other.owner = "other-process"
			require.NoError(t, other.queue(t.Context(), "run-queued", "l", "run-before"))
			q, ok, err := h.s.params.queuedRun(t.Context(), "run-queued")
			require.NoError(t, err)
			require.True(t, ok)
			// The pass listed it while its owner's lock was free.
			held, err := h.s.params.heldLocks(t.Context())
			require.NoError(t, err)
			require.True(t, h.s.ownerGone(q, false, held))
			var lock *pgstore.GraphLock
			if tc.ownerLive { // it took its lock again since
				lock, err = h.s.store.TryLockGraph(t.Context(), processLockKey(other.owner))
				require.NoError(t, err)
				t.Cleanup(func() { _ = lock.Unlock(context.Background()) })
			}

			assert.Equal(t, tc.want, h.s.claimQueued(t.Context(), q), "taken over")
			q, ok, err = h.s.params.queuedRun(t.Context(), "run-queued")
			require.NoError(t, err)
			require.True(t, ok)
			want := other.owner
			if tc.want {
				want = h.s.id
			}
			assert.Equal(t, want, q.owner, "the owner of the queued run")
			if lock != nil {
				require.NoError(t, lock.Unlock(t.Context()))
			}
			require.NoError(t, h.shutdown())
			goleak.VerifyNone(t, leaks)
		})
	}
}

// endProcessLockSession ends the Postgres session that holds the lock of
// h's process (an administrator, a restart of Postgres), and waits until
// the process has seen it lost.
func (h *harness) endProcessLockSession() {
	h.t.Helper()
	var ended int
	require.NoError(h.t, h.pg.Pool.QueryRow(h.t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
	WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`,
		h.s.store.GraphLockKey(processLockKey(h.s.id))).Scan(&ended))
	require.Equal(h.t, 1, ended, "the session that holds the lock of the process")
	h.s.procMu.Lock()
	lock := h.s.procLock
	h.s.procMu.Unlock()
	select {
	case <-lock.Lost():
	case <-time.After(time.Minute): // a bound against a hang, not a timing assertion
		h.t.Fatal("the process never saw its lock lost")
	}
}

// A process whose sessions all ended (a restart of Postgres) lost its
// lecture's lock and its own: another process's recovery took over the
// run it had queued, as a dead process's, and started it, while the
// first, which found the lecture's lock taken, recorded the same run as
// not started (its record overwritten, a run.cancelled on the stream of
// a run going on). A process now records its queued run as not started
// only if no other process took it over.
func TestQueuedRunTakenOverIsNotRecordedAsNotStartedByItsProcess(t *testing.T) {
	passed := make(chan error, 1)
	h1, h2, queued := losesItsSessions(t, func(h1, h2 *harness, queued started) {
		// The second one's pass comes first.
		passed <- h2.s.recoverRuns(context.Background(), false)
	})
	leaks, store := h1.leaks, h1.s.store
	require.NoError(t, <-passed)
	h2.s.mu.Lock()
	require.NotNil(t, h2.s.lectures["l"], "the second process took the queued run over")
	assert.Equal(t, queued.RunID, h2.s.lectures["l"].runID)
	h2.s.mu.Unlock()
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		h1.s.mu.Lock()
		defer h1.s.mu.Unlock()
		return len(h1.s.lectures) == 0
	}, time.Minute, 10*time.Millisecond, "the first process gave the lecture up")

	rec, err := store.GetRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	assert.Equal(t, executor.RunRunning, rec.Status, "the queued run, run by the second process: %s", rec.Error)
	require.NoError(t, h1.shutdown()) // its events are all archived
	require.NoError(t, h2.s.hist.Replay(t.Context(), queued.RunID, 0, func(e progress.Event) error {
		assert.NotEqual(t, progress.RunCancelled, e.Type, "an event of the run going on: %+v", e)
		return nil
	}))
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// The cancel of a run that its process had queued, and that another
// process took over while the first had lost its locks, was answered 202
// by the first process, which no longer ran it (it left the run to the
// other, recording nothing): the run went on. The cancel is now saved
// for the process that runs it, which cancels it.
func TestCancelOfAQueuedRunTakenOverReachesTheProcessThatRunsIt(t *testing.T) {
	cancelled := make(chan int, 1)
	h1, h2, queued := losesItsSessions(t, func(h1, h2 *harness, queued started) {
		// The second one takes the queued run over first, and a client
		// cancels it through the first.
		if err := h2.s.recoverRuns(context.Background(), false); err != nil {
			t.Error(err)
		}
		cancelled <- h1.do("POST", "/runs/"+queued.RunID+"/cancel", "", nil)
	})
	leaks, store := h1.leaks, h1.s.store
	require.Equal(t, http.StatusAccepted, <-cancelled)

	require.EventuallyWithT(t, func(c *assert.CollectT) { // a bound against a hang, not a timing assertion
		rec, err := store.GetRun(t.Context(), queued.RunID)
		require.NoError(c, err)
		require.Equal(c, executor.RunCancelled, rec.Status, "the queued run, taken over: %s", rec.Error)
		assert.Contains(c, rec.Error, errCancelledByRequest.Error())
	}, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		h2.s.mu.Lock()
		defer h2.s.mu.Unlock()
		return len(h2.s.lectures) == 0
	}, time.Minute, 10*time.Millisecond, "the second process gave the lecture up")

	require.NoError(t, h1.shutdown())
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// losesItsSessions starts two processes, whose runs go on until their
// shutdown, queues a run of lecture "l" behind another on the first, and
// ends both of the first one's sessions, as a restart of Postgres would:
// its own lock's and the lecture's. As the first goes to take the
// lecture's lock again (retakeHook), once that lock is free, during runs,
// once, before the first goes on.
func losesItsSessions(t *testing.T, during func(h1, h2 *harness, queued started)) (h1, h2 *harness, queued started) {
	t.Helper()
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h1 = startServiceOn(t, pg, rd, time.Hour, nil)
	h2 = startServiceOn(t, pg, rd, time.Hour, nil)
	_, queued = runQueued(t, h1, "l")
	var once sync.Once
	retakeHook = func(key string) {
		once.Do(func() {
			waitUnlocked(t, pg, h1.s.store, key)
			during(h1, h2, queued)
		})
	}
	t.Cleanup(func() { retakeHook = nil })
	h1.endProcessLockSession()
	h1.endLockSession("l")
	return h1, h2, queued
}

// Each pass of the recovery read pg_locks once per run queued by another
// process (whether its process lives), and tried the lock of each
// lecture that another process runs: in a deployment of P processes,
// each with runs going on and queued, some P² reads and round trips
// every -recover-every, and each read of pg_locks takes every partition
// of the server's lock table. A pass now reads the locks held once, and
// tries only the locks that it saw free.
func TestRecoveryPassReadsTheLocksOnce(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h1 := startServiceOn(t, pg, rd, time.Hour, nil) // the runs go on until the shutdown
	leaks := h1.leaks
	h2 := startServiceOn(t, pg, rd, time.Hour, nil)
	for _, key := range []string{"a", "b", "c"} {
		runQueued(t, h1, key)
	}
	var run started // and one without a run queued
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/d/runs", `{"seconds": 10}`, &run))
	var mu sync.Mutex
	reads, tries := 0, 0
	lockHook = func(what string) {
		mu.Lock()
		defer mu.Unlock()
		switch what {
		case "read":
			reads++
		case "try":
			tries++
		}
	}
	t.Cleanup(func() { lockHook = nil })

	require.NoError(t, h2.s.recoverRuns(t.Context(), false))
	mu.Lock()
	assert.Equal(t, 1, reads, "reads of the locks held")
	assert.Zero(t, tries, "locks tried, of lectures that the first process runs")
	mu.Unlock()
	h2.s.mu.Lock()
	assert.Empty(t, h2.s.lectures, "the second process's lectures")
	h2.s.mu.Unlock()

	require.NoError(t, h1.shutdown())
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}
