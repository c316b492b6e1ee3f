package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
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

// A run cut by a shutdown or a lost lock whose graph no template of the
// service builds (its template dropped in a deploy, say) was "abandoned",
// but Executor.Abandon leaves a record that does not say running as it
// is: the run stayed one to resume, and every start, and every pass of
// a live process that watched its lecture, took its lecture's lock to
// log the same error again. Its record now says that no start resumes
// it, and it is logged once.
func TestCutRunOfAnUnknownTemplateIsGivenUpOnce(t *testing.T) {
	passes := countPasses(t)
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, store.Migrate(t.Context()))
	now := time.Now().Add(-time.Hour)
	require.NoError(t, store.PutRun(t.Context(), executor.Record{ID: "old", GraphKey: "l", Seconds: 10,
		Graph: "a-template-gone", Status: executor.RunCancelled, Error: errShutdown.Error(), CancelledBy: codeShutdown,
		StartedAt: now, EndedAt: now.Add(time.Second)}))
	var logs testenv.LogBuffer
	leaks := goleak.IgnoreCurrent()
	for i, every := range []time.Duration{time.Hour, 20 * time.Millisecond} {
		c := config{addr: "127.0.0.1:0", postgresURL: testenv.PostgresURL(), redisURL: testenv.RedisURL(),
			schema: pg.Schema, prefix: rd.Prefix, token: token, latency: time.Millisecond, retain: time.Hour, pruneEvery: time.Hour, recoverEvery: every}
		s, err := start(context.Background(), c, slog.New(slog.NewTextHandler(&logs, nil)))
		require.NoError(t, err)
		if i == 1 {
			// As if a pass had seen a run of the lecture going on, since
			// ended: the lecture's newest run is looked at again.
			s.mu.Lock()
			s.watching["a-run-seen-going-on"] = "l"
			s.mu.Unlock()
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.serve(ctx, nil) }()
			passes.wait(t, s)
			stop()
			require.NoError(t, <-done)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		require.NoError(t, s.shutdown(ctx))
		cancel()
	}
	t.Log(logs.String())
	assert.Equal(t, 1, strings.Count(logs.String(), "no template builds its graph"), "the run given up, once")
	rec, err := store.GetRun(t.Context(), "old")
	require.NoError(t, err)
	assert.False(t, cutShort(rec), "no start resumes it: %+v", rec)
	assert.Contains(t, rec.Error, errShutdown.Error(), "its record still says what cut it")
	assert.Contains(t, rec.Error, "no template")
	goleak.VerifyNone(t, leaks)
}

// A run cut by a shutdown that the start found but did not resume (past
// -max-runs, say, which it logged as "a later recovery resumes it") was
// looked at by no later pass: they list the runs recorded as running
// alone, and watched none of its lecture. It was left to the next start.
// The start now watches the lectures of the runs cut that it found, and
// a later pass resumes the run once there is room.
func TestCutRunLeftByTheStartIsResumedByALaterPass(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, store.Migrate(t.Context()))
	g, err := graph.Build(graph.Lecture(), 10)
	require.NoError(t, err)
	now := time.Now().Add(-time.Minute)
	for _, rec := range []executor.Record{
		// Left running by a process that died: resumed first, it takes
		// the one run slot.
		{ID: "run-z", GraphKey: "z", Seconds: 10, Graph: executor.Fingerprint(g), Status: executor.RunRunning, StartedAt: now},
		{ID: "run-a", GraphKey: "a", Seconds: 10, Graph: executor.Fingerprint(g), Status: executor.RunCancelled,
			Error: errShutdown.Error(), CancelledBy: codeShutdown, StartedAt: now, EndedAt: now.Add(time.Second)},
	} {
		require.NoError(t, store.PutRun(t.Context(), rec))
	}
	h := startServiceOn(t, pg, rd, time.Hour, func(c *config) { // the resume of run-z goes on until it is cancelled
		c.maxRuns = 1
		c.recoverEvery = 20 * time.Millisecond
	})
	z := newestRun(t, store, "z")
	require.Equal(t, "run-z", z.Resumes, "run-z is resumed first")
	require.Equal(t, "run-a", newestRun(t, store, "a").ID, "no room for run-a at the start")
	require.Equal(t, http.StatusAccepted, h.do("POST", "/runs/"+z.ID+"/cancel", "", nil))
	var resumed executor.Record
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		resumed = newestRun(t, store, "a")
		return resumed.Resumes == "run-a"
	}, 30*time.Second, 10*time.Millisecond, "a resume of run-a once the slot is free")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// In a rolling deploy, the live process watched only the runs that its
// passes had seen going on: a run that the old process started after
// the new one's last pass, and that its shutdown cut, with the run it
// had queued, was seen by none, and left until some process started
// again (none does, once the deploy is done). The shutdown now saves the
// lectures whose runs it cut, and the live processes' passes look at
// them: the newest run is resumed.
func TestRunStartedAfterALiveProcesssLastPassIsFinishedAfterTheShutdown(t *testing.T) {
	pg, old, h, release := deployPair(t)
	run, queued := runQueued(t, old, "q")
	require.NoError(t, old.shutdown())
	requireCutQueuedRunResumed(t, pg, h, release, run, queued)
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		cut, err := h.s.params.cutLectures(t.Context())
		require.NoError(t, err)
		return len(cut) == 0
	}, 30*time.Second, 10*time.Millisecond, "the lecture is forgotten once its run is resumed")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// The shutdown saved the lectures of the runs it cut only once they had
// ended, as the last thing it wrote: a process killed in between (its
// grace period over while its runs were ending: SIGKILL), or whose write
// stalled past its bound, saved none, and the runs it had cut, seen by
// no pass, were left until some process started again. The shutdown now
// saves them before it cuts its runs too: the live process resumes them.
func TestRunCutByAShutdownThatStalledBeforeItsLastWriteIsFinished(t *testing.T) {
	pg, old, h, release := deployPair(t)
	run, queued := runQueued(t, old, "q")
	// From the moment the shutdown has cut its runs, the table of the
	// lectures cut is locked: the shutdown's write there waits until its
	// bound, and fails, as a process killed then writes nothing more.
	// What the shutdown wrote as the cut began is waited for first (10 s
	// at most: a bound against a hang, then the table is locked anyway).
	tx, err := pg.Pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	table := pgx.Identifier{pg.Schema, "service_cut"}.Sanitize()
	var once sync.Once
	var lockErr error
	shelveHook = func(runID string) {
		if runID == queued.RunID {
			once.Do(func() {
				for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
					var n int
					if err := pg.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil || n > 0 {
						break
					}
				}
				_, lockErr = tx.Exec(context.Background(), "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE")
			})
		}
	}
	t.Cleanup(func() { shelveHook = nil })
	require.NoError(t, old.shutdown())
	require.NoError(t, lockErr)
	require.NoError(t, tx.Rollback(t.Context()))
	requireCutQueuedRunResumed(t, pg, h, release, run, queued)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// deployPair starts the two processes of a rolling deploy on one
// schema: old, whose runs go on until they are cancelled, and the live
// h, whose passes of the recovery are held after one (it sees no run
// from then on) until release.
func deployPair(t *testing.T) (pg *testenv.Postgres, old, h *harness, release func()) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	pause := pausePasses(t)
	old = startServiceOn(t, pg, rd, time.Hour, nil)
	h = startServiceOn(t, pg, rd, time.Millisecond, func(c *config) { c.recoverEvery = 20 * time.Millisecond })
	pause.after(t, h.s)
	return pg, old, h, pause.release
}

// requireCutQueuedRunResumed requires that queued, the run queued after
// run, is recorded as cut by its process's shutdown, lets h's passes go
// on (release), and that h resumes it, whole, its edit made. It returns
// the resuming run's record.
func requireCutQueuedRunResumed(t *testing.T, pg *testenv.Postgres, h *harness, release func(), run, queued started) executor.Record {
	t.Helper()
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	rec, err := store.GetRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	require.Equal(t, codeShutdown, rec.CancelledBy, "the run queued after run %s, recorded as cut by the shutdown", run.RunID)
	release()

	var resumed executor.Record
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		resumed = newestRun(t, store, "q")
		return resumed.Resumes != ""
	}, 30*time.Second, 10*time.Millisecond, "a resume of the run queued and cut by the shutdown")
	assert.Equal(t, queued.RunID, resumed.Resumes)
	assert.Contains(t, requireWholeRun(t, resumed.ID, h.follow(resumed.ID, "")), "script", "its edit is made")
	return resumed
}

// passPause holds the passes of the periodic recovery of one service,
// after one, until released (see pausePasses).
type passPause struct {
	mu      sync.Mutex
	s       *service
	paused  chan struct{}
	resume  chan struct{}
	release func() // lets the passes go on; the test's end calls it too
}

// pausePasses sets recoverHook to hold the passes of the service that
// after names; the test's end releases them, before the services' own
// shutdowns (which wait for their passes), if registered after this.
func pausePasses(t *testing.T) *passPause {
	t.Helper()
	p := &passPause{paused: make(chan struct{}, 1), resume: make(chan struct{})}
	var once sync.Once
	p.release = func() { once.Do(func() { close(p.resume) }) }
	recoverHook = func(s *service) {
		p.mu.Lock()
		is := s == p.s
		p.mu.Unlock()
		if is {
			select {
			case p.paused <- struct{}{}:
			default:
			}
			<-p.resume
		}
	}
	t.Cleanup(func() { recoverHook = nil })
	return p
}

// after holds the passes of s from the end of its next one, and returns
// then: s sees no run start from now on, until release.
func (p *passPause) after(t *testing.T, s *service) {
	t.Helper()
	t.Cleanup(p.release) // before the shutdowns registered earlier
	p.mu.Lock()
	p.s = s
	p.mu.Unlock()
	<-p.paused
}

// A run whose lecture's lock was lost (the server ended its session)
// before any pass saw it going on was watched by no pass, and left, cut
// by the lost lock, to the next start, though the live process (its own)
// resumes those it saw. Its end now saves its lecture as a shutdown's
// cut does, and the next pass resumes it.
func TestRunCutByALostLockBeforeAnyPassSawItIsResumed(t *testing.T) {
	pause := pausePasses(t)
	h := startServiceWith(t, time.Hour, func(c *config) { c.recoverEvery = 20 * time.Millisecond }) // the run goes on until it is cancelled
	pause.after(t, h.s)
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	h.endLockSession("l")
	lost := h.getRun(first.RunID)
	require.Equal(t, pgstore.CancelledByLockLost, lost.Record.CancelledBy)
	pause.release()

	var resumed executor.Record
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		recs, err := h.s.store.ListRuns(t.Context(), "l")
		require.NoError(t, err)
		resumed = recs[len(recs)-1]
		return resumed.Resumes != ""
	}, 30*time.Second, 10*time.Millisecond, "a resume of the run cut by its lost lock")
	assert.Equal(t, first.RunID, resumed.Resumes)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
