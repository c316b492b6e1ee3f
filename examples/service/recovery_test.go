package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
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

// childEnv is the environment variable that makes the test binary run
// the service (runChild) instead of the tests: the JSON of its arguments.
const childEnv = "REGEN_SERVICE_TEST_CHILD"

// runChild is the service as a process of its own, for the tests that
// kill it: TestMain runs it when childEnv is set, with the arguments
// that childEnv holds, until it is killed.
func runChild(raw string) int {
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, "service child:", err)
		return 2
	}
	return run(context.Background(), args, os.Stdout, os.Stderr)
}

// child is the service running in a process of its own.
type child struct {
	*harness // base and hc reach the child; the rest is unused
	cmd      *exec.Cmd
	done     chan struct{} // closed once its stdout is read to the end
	log      *childLog
	store    *pgstore.Store // of its schema
}

// childLog sends a child's log to the test's log, and keeps the ID of
// its process, which its "serving" line says.
type childLog struct {
	w       testWriter
	mu      sync.Mutex
	process string
}

var processAttr = regexp.MustCompile(`msg=serving .*process=([0-9a-f]+)`)

func (l *childLog) Write(p []byte) (int, error) {
	if m := processAttr.FindSubmatch(p); m != nil {
		l.mu.Lock()
		l.process = string(m[1])
		l.mu.Unlock()
	}
	return l.w.Write(p)
}

// startChild starts the service in a process of its own, on the schema of
// pg and under the prefix of rd, and waits until it serves. It is killed
// when the test ends, if not before.
func startChild(t *testing.T, pg *testenv.Postgres, rd *testenv.Redis, latency time.Duration) *child {
	t.Helper()
	// The start-up's recovery alone: the tests that kill it check what a
	// later start does.
	raw, err := json.Marshal([]string{"-addr", "127.0.0.1:0", "-schema", pg.Schema, "-prefix", rd.Prefix,
		"-latency", latency.String(), "-recover-every", "1h"})
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw), "REGEN_SERVICE_TOKEN="+token,
		"REGEN_POSTGRES_URL="+testenv.PostgresURL(), "REGEN_REDIS_URL="+testenv.RedisURL())
	log := &childLog{w: testWriter{t}}
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	c := &child{harness: &harness{t: t, hc: &http.Client{Transport: &http.Transport{}}, pg: pg}, cmd: cmd,
		done: make(chan struct{}), log: log, store: store}
	t.Cleanup(c.kill)
	addr := make(chan string, 1)
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Serving on "); ok {
				addr <- strings.TrimSuffix(rest, ". Try:")
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case a := <-addr:
		c.base = a
	case <-c.done:
		t.Fatal("the service's process exited before it served")
	case <-time.After(time.Minute): // a bound against a hang
		t.Fatal("the service's process did not serve within a minute")
	}
	return c
}

// kill kills the child with SIGKILL (its own PID only): it has no chance
// to shut down. It waits for the process's end, and for the server to
// free its process's lock (see service.procLock), which tells the other
// processes that the runs it queued are left: the server frees each
// lock once it sees its session end, the lectures' locks (see
// waitUnlocked) at about the same time, but not in any given order.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	_ = c.cmd.Wait()
	c.hc.CloseIdleConnections()
	c.log.mu.Lock()
	id := c.log.process
	c.log.mu.Unlock()
	if id == "" {
		return // it died before it served
	}
	p := newParamStore(c.pg.Pool, c.pg.Schema)
	require.Eventually(c.t, func() bool { // a bound against a hang, not a timing assertion
		held, err := p.heldLocks(context.Background())
		require.NoError(c.t, err)
		return !held[c.store.GraphLockKey(processLockKey(id))]
	}, time.Minute, 10*time.Millisecond, "the lock of the killed process %s is still held", id)
}

// waitUnlocked waits until no session holds the lecture's lock: the
// server frees a dead process's lock once it sees its session end.
func waitUnlocked(t *testing.T, pg *testenv.Postgres, store *pgstore.Store, key string) {
	t.Helper()
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		var n int
		require.NoError(t, pg.Pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
	AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`, store.GraphLockKey(key)).Scan(&n))
		return n == 0
	}, time.Minute, 10*time.Millisecond, "the lock of lecture %q is still held", key)
}

// newestRun returns the newest run record of the lecture.
func newestRun(t *testing.T, store *pgstore.Store, key string) executor.Record {
	t.Helper()
	recs, err := store.ListRuns(t.Context(), key)
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	return recs[len(recs)-1]
}

// assetData returns the data of the node's current asset.
func assetData(t *testing.T, store *pgstore.Store, key, nodeID string) string {
	t.Helper()
	snap, err := store.Load(t.Context(), key)
	require.NoError(t, err)
	st, ok := snap.States[nodeID]
	require.True(t, ok, "the state of %s", nodeID)
	a, err := store.Get(t.Context(), st.AssetRef)
	require.NoError(t, err)
	return string(a.Data)
}

// A service killed with SIGKILL during a run leaves the run recorded as
// running, its lecture's lock freed by Postgres with the process's
// session, and its edit's parameters in the database. The service started
// again on the same schema resumes the run at start-up, under the lock;
// the resuming run, followed through SSE, makes every node, the edited
// one from the parameters that the killed process saved; the killed
// run's record ends interrupted.
func TestKilledServiceRunIsResumedAtStart(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	c := startChild(t, pg, rd, time.Hour) // its runs go on until it is killed
	var first, queued started
	require.Equal(t, http.StatusAccepted, c.do("POST", "/lectures/k/runs", `{"seconds": 10}`, &first))
	require.Equal(t, http.StatusAccepted, c.do("POST", "/lectures/k/edits",
		`{"node": "script", "params": {"topic": "persisted"}}`, &queued))
	require.Equal(t, first.RunID, queued.QueuedAfter)
	c.kill()

	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	rec, err := store.GetRun(t.Context(), first.RunID)
	require.NoError(t, err)
	require.Equal(t, executor.RunRunning, rec.Status, "the killed process's run")
	waitUnlocked(t, pg, store, "k")

	h := startServiceOn(t, pg, rd, time.Millisecond, nil)
	resumed := newestRun(t, store, "k")
	// Under the ID of the run that the killed process queued after it,
	// which the edit was given: its readers get the run that makes what
	// the edit affects (that ID was once never recorded: 404 for good).
	require.Equal(t, queued.RunID, resumed.ID, "the queued run resumes it")
	assert.Equal(t, first.RunID, resumed.Resumes)
	assert.Equal(t, testgraph.LectureIDs(t, 10), requireWholeRun(t, resumed.ID, h.follow(resumed.ID, "")))
	v := h.getRun(resumed.ID)
	assert.Equal(t, "succeeded", v.Status)
	assert.Contains(t, v.Record.Reason, first.RunID)
	assert.Equal(t, `script from {"topic":"persisted"}`, assetData(t, store, "k", "script"))
	rec, err = store.GetRun(t.Context(), first.RunID)
	require.NoError(t, err)
	assert.Equal(t, executor.RunInterrupted, rec.Status)
	_, ok, err := h.s.params.queuedRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	assert.False(t, ok, "the row of the queued run is deleted once it has started")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A run that a shutdown cancelled is resumed by the service's next start,
// if no later run of its lecture came after it; a start after that
// resumes nothing more.
func TestShutdownCancelledRunIsResumedAtStart(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // the run goes on until the shutdown
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	require.NoError(t, h.shutdown())
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	rec, err := store.GetRun(t.Context(), first.RunID)
	require.NoError(t, err)
	require.Equal(t, executor.RunCancelled, rec.Status)
	assert.Contains(t, rec.Error, errShutdown.Error(), "the record says why")
	assert.Equal(t, codeShutdown, rec.CancelledBy, "and its code")

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	resumed := newestRun(t, store, "l")
	require.NotEqual(t, first.RunID, resumed.ID, "a run that resumes it")
	assert.Equal(t, testgraph.LectureIDs(t, 10), requireWholeRun(t, resumed.ID, h.follow(resumed.ID, "")))
	assert.Equal(t, "succeeded", h.getRun(resumed.ID).Status)
	require.NoError(t, h.shutdown())

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	assert.Equal(t, resumed.ID, newestRun(t, store, "l").ID, "nothing more is resumed")
	h.s.mu.Lock()
	assert.Empty(t, h.s.lectures)
	h.s.mu.Unlock()
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// Two processes of the service share a schema: the second, started while
// the first runs a lecture, leaves that run alone (its lecture's lock is
// held: it is live, not left by a process that died); it refuses to start
// a run of the lecture, or to save an edit of it, with 409, as a run
// already going on in the same process is refused; other lectures are
// not held up, and once the run has ended the second process runs the
// lecture.
func TestSecondProcessCannotRunALectureTheFirstRuns(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h1 := startServiceOn(t, pg, rd, time.Hour, nil) // its run goes on until its shutdown
	leaks := h1.leaks
	var first started
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	h2 := startServiceOn(t, pg, rd, time.Millisecond, nil)
	h2.s.mu.Lock()
	assert.Empty(t, h2.s.lectures, "the second process resumed a live run")
	h2.s.mu.Unlock()
	rec, err := h2.s.store.GetRun(t.Context(), first.RunID)
	require.NoError(t, err)
	assert.Equal(t, executor.RunRunning, rec.Status, "the live run's record")

	var refused map[string]string
	assert.Equal(t, http.StatusConflict, h2.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &refused), "a second run of the lecture")
	assert.Contains(t, refused["error"], "another process")
	assert.Equal(t, http.StatusConflict, h2.do("POST", "/lectures/l/edits",
		`{"node": "script", "params": {"topic": "x"}}`, &refused), "an edit of the lecture")
	assert.Contains(t, refused["error"], "nothing was saved")
	params, err := h2.s.params.get(t.Context(), "l", "script")
	require.NoError(t, err)
	assert.JSONEq(t, `{}`, string(params), "the refused edit saved nothing")
	snap, err := h2.s.store.Load(t.Context(), "l")
	require.NoError(t, err)
	assert.Zero(t, snap.States["script"].Rev, "the refused edit recorded nothing")
	var other started
	require.Equal(t, http.StatusAccepted, h2.do("POST", "/lectures/m/runs", `{"seconds": 10}`, &other), "another lecture")
	requireWholeRun(t, other.RunID, h2.follow(other.RunID, ""))

	require.NoError(t, h1.shutdown()) // the run ends, cancelled, and the lock is freed
	var again started
	require.Equal(t, http.StatusAccepted, h2.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &again))
	requireWholeRun(t, again.RunID, h2.follow(again.RunID, ""))
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A lecture's length and its nodes' parameters survive a restart: the
// service started again builds the lecture's graph for an edit from the
// length it saved (the run records being pruned), and reads the
// parameters saved before.
func TestParametersSurviveARestart(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Millisecond, nil)
	var first, edited started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 30}`, &first))
	requireWholeRun(t, first.RunID, h.follow(first.RunID, ""))
	h.getRun(first.RunID) // its report is kept: the run has ended
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "kept"}}`, &edited))
	requireWholeRun(t, edited.RunID, h.follow(edited.RunID, ""))
	h.getRun(edited.RunID)
	require.NoError(t, h.shutdown())
	_, err := pg.Pool.Exec(t.Context(), fmt.Sprintf(`DELETE FROM %s.runs`, pgx.Identifier{pg.Schema}.Sanitize()))
	require.NoError(t, err)

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	params, err := h.s.params.get(t.Context(), "l", "script")
	require.NoError(t, err)
	assert.JSONEq(t, `{"topic": "kept"}`, string(params))
	var second started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits",
		`{"node": "asset:narration:segment[1]", "params": {"text": "Shorter."}}`, &second), "an edit after the restart")
	want := []string{"asset:narration:segment[1]", "asset:video:segment[1]", "timeline"}
	assert.Equal(t, want, requireWholeRun(t, second.RunID, h.follow(second.RunID, "")))
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A run whose lecture's lock is lost (here, the server ends the lock's
// session) is cancelled, with a cause that says so, as another process
// may take the lecture then, its record's code pgstore's; the lecture is
// free again afterwards (the next start resumes the run, if it is still
// the lecture's newest: see TestRunsCutByAShutdownOrALostLockAreFinishedByTheNextStart).
func TestRunIsCancelledWhenItsLockIsLost(t *testing.T) {
	h := startService(t, time.Hour) // the run goes on until it is cancelled
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	h.endLockSession("l")

	v := h.getRun(first.RunID)
	assert.Equal(t, "cancelled", v.Status)
	assert.Contains(t, v.Record.Error, pgstore.ErrLockLost.Error())
	assert.Equal(t, pgstore.CancelledByLockLost, v.Record.CancelledBy)
	var again started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &again), "the lecture is free")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// The runs that a start resumes take run slots as other runs do: past
// -max-runs, the rest are left for a later start.
func TestResumesAreCapped(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // the runs go on until the shutdown
	for _, key := range []string{"a", "b"} {
		require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/"+key+"/runs", `{"seconds": 10}`, &started{}))
	}
	require.NoError(t, h.shutdown()) // both are cancelled, to be resumed

	h = startServiceOn(t, pg, rd, time.Hour, func(c *config) { c.maxRuns = 1 })
	h.s.mu.Lock()
	assert.Len(t, h.s.lectures, 1, "the lectures resumed")
	h.s.mu.Unlock()
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A run queued after another takes the lecture's lock over from it: no
// other process starts a run of the lecture between the two.
func TestQueuedRunKeepsTheLectureLocked(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	// A lecture of 10 s takes 4 generator calls one after another: each
	// of its runs lasts at least 2 s.
	h1 := startServiceOn(t, pg, rd, 500*time.Millisecond, nil)
	leaks := h1.leaks
	h2 := startServiceOn(t, pg, rd, time.Millisecond, nil)
	var first, queued started
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	// The script, the first node, is being made: the edit makes the
	// whole lecture stale again, for the queued run.
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "b"}}`, &queued))
	require.Equal(t, first.RunID, queued.QueuedAfter)
	requireWholeRun(t, first.RunID, h1.follow(first.RunID, ""))
	// The queued run starts, or is about to, under the first run's lock.
	assert.Equal(t, http.StatusConflict, h2.do("POST", "/lectures/l/runs", `{"seconds": 10}`, nil), "a run from the other process between the two")
	assert.NotEmpty(t, requireWholeRun(t, queued.RunID, h1.follow(queued.RunID, "")))
	require.NoError(t, h1.shutdown())
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A run left running whose graph no template of the service builds (its
// template was dropped in a deploy, say) cannot be resumed: the start-up
// recovery abandons it (Executor.Abandon), so that it is not found, and
// refused, at every start.
func TestRunOfAnUnknownTemplateIsAbandonedAtStart(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Millisecond, nil) // it migrates the schema
	require.NoError(t, h.shutdown())
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, store.PutRun(t.Context(), executor.Record{ID: "old", GraphKey: "l", Seconds: 10,
		Graph: "a-template-gone", Status: executor.RunRunning, StartedAt: time.Now().Add(-time.Hour)}))

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	rec, err := store.GetRun(t.Context(), "old")
	require.NoError(t, err)
	assert.Equal(t, executor.RunInterrupted, rec.Status)
	assert.Contains(t, rec.Error, "not resumed: examples/service has no template for its graph")
	running, err := store.RunsByStatus(t.Context(), executor.RunRunning)
	require.NoError(t, err)
	assert.Empty(t, running)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A run queued in one process and recorded as not started, because
// another process took its lecture (see shelve), made every run of that
// process that started before the record was written look older than it:
// one of them that a shutdown cancelled was then not resumed by the next
// start, as if a later run had come after it. A queued run not started
// for that is no run that came after: the run is resumed.
func TestShutdownCancelledRunIsResumedPastAQueuedRunNotStarted(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // the run goes on until the shutdown
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	require.NoError(t, h.shutdown())
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	g, err := graph.Build(graph.Lecture(), 10)
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, store.PutRun(t.Context(), executor.Record{ID: "run-queued-elsewhere", GraphKey: "l", Seconds: 10,
		Graph: executor.Fingerprint(g), TriggeredBy: "examples/service", Reason: "edits made during run run-other",
		Status: executor.RunCancelled, StartedAt: now, EndedAt: now, CancelledBy: codeNotStarted,
		Error: notStarted("run-other", fmt.Errorf("the lecture's lock was not taken again: %w", errBusyElsewhere), "the lecture's next run regenerates what its edits affect")}))

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	resumed := newestRun(t, store, "l")
	assert.Equal(t, first.RunID, resumed.Resumes, "the newest run resumes the one the shutdown cancelled")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
