package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
)

// idleLecture records a finished run of lecture key, of 10 s, as a
// process before this one would have: the lecture is there, and idle.
func idleLecture(t *testing.T, h *harness, key string) {
	t.Helper()
	store, err := pgstore.New(h.pg.Pool, pgstore.Options{Schema: h.pg.Schema})
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, store.PutRun(context.Background(), executor.Record{ID: "run-old-" + key, GraphKey: key, Seconds: 10,
		Status: executor.RunSucceeded, StartedAt: now, EndedAt: now}))
}

// answer is a request's status and error text.
type answer struct {
	status int
	err    string
}

// Requests of the same idle lecture at once: the first took the
// lecture's lock, and the others found it held and were answered 409 "in
// another process of the service" (an edit lost, though 409 is for a
// lecture another process runs). They now wait for the first: an edit
// then queues its run after the first's, and a run is refused as one of
// a lecture running in this process.
func TestRequestsOfAnIdleLectureAtOnceWaitForEachOther(t *testing.T) {
	h := startServiceWith(t, time.Hour, func(c *config) { c.maxRuns = 16 }) // the runs go on until the shutdown
	post := func(path, body string) answer {
		var e map[string]string
		status := h.do("POST", path, body, &e)
		return answer{status, e["error"]}
	}
	for round := range 5 {
		edits := fmt.Sprintf("l%d", round)
		idleLecture(t, h, edits)
		mixed := fmt.Sprintf("m%d", round)
		idleLecture(t, h, mixed)
		answers := make([]answer, 5)
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				answers[i] = post("/lectures/"+edits+"/edits", fmt.Sprintf(`{"node": "script", "params": {"topic": "t%d"}}`, i))
			})
		}
		wg.Go(func() { answers[3] = post("/lectures/"+mixed+"/edits", `{"node": "script", "params": {"topic": "x"}}`) })
		wg.Go(func() { answers[4] = post("/lectures/"+mixed+"/runs", `{"seconds": 10}`) })
		wg.Wait()
		for i, a := range answers[:4] {
			assert.Equal(t, http.StatusAccepted, a.status, "round %d, edit %d: %s", round, i, a.err)
		}
		run := answers[4]
		if run.status != http.StatusAccepted {
			assert.Equal(t, http.StatusConflict, run.status, "round %d, the run: %s", round, run.err)
			assert.NotContains(t, run.err, "another process", "round %d, the run", round)
		}
	}
	require.NoError(t, h.shutdown())
}

// waiters is the number of requests waiting for the one that takes or
// holds the lock of lecture key (see waitLocking).
func waiters(s *service, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.locking[key]; l != nil {
		return l.waiters
	}
	return 0
}

// An edit read its lecture's length before it waited for the lecture: a
// run of another length that started meanwhile made Executor.Edit refuse
// the edit's graph ("the graph given ... is not the key's graph"), and
// the client got 500. The edit now takes its lecture's graph once it has
// its turn: the running one's, when its run is queued after it.
func TestEditWhileTheLectureChangesLength(t *testing.T) {
	h := startService(t, time.Hour) // the runs go on until the shutdown
	idleLecture(t, h, "k")          // 10 s
	ctx := t.Context()
	sl, err := h.s.holdSlot(ctx, "k") // as a request that is about to start a run of 20 s
	require.NoError(t, err)
	edited := make(chan map[string]string, 1)
	go func() {
		var e map[string]string
		status := h.do("POST", "/lectures/k/edits", `{"node": "script", "params": {"topic": "x"}}`, &e)
		e["status"] = fmt.Sprint(status)
		edited <- e
	}()
	require.Eventually(t, func() bool { return waiters(h.s, "k") == 1 }, 20*time.Second, time.Millisecond,
		"the edit waits for the request that holds its lecture") // a bound against a hang, not a timing assertion
	g, err := graph.Build(graph.Lecture(), 20)
	require.NoError(t, err)
	runID, after, err := h.s.startOrQueue(ctx, "k", g, "a lecture of 20 s", sl)
	require.NoError(t, err)
	require.Empty(t, after)
	sl.release()
	a := <-edited
	require.Equal(t, "202", a["status"], a["error"])
	assert.Equal(t, runID, a["queuedAfter"], "the edit's run is queued after the run of 20 s")
	require.Equal(t, http.StatusOK, h.do("GET", "/runs/"+runID, "", nil))
	require.NoError(t, h.shutdown())
}

// A run of another length and an edit of a lecture at once: the edit,
// woken once the run was reserved but before it had started, recorded
// itself on the run's graph while the lecture's graph was still the old
// one, and was refused ("changed while the edit was saved"). A request
// now waits until the run has started.
func TestEditRacingARunOfAnotherLength(t *testing.T) {
	h := startService(t, 2*time.Millisecond)
	for round := range 5 {
		key := fmt.Sprintf("k%d", round)
		var first started
		require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/"+key+"/runs", `{"seconds": 10}`, &first))
		requireWholeRun(t, first.RunID, h.follow(first.RunID, ""))
		var edit, run answer
		var wg sync.WaitGroup
		wg.Go(func() {
			var e map[string]string
			edit.status = h.do("POST", "/lectures/"+key+"/edits", `{"node": "script", "params": {"topic": "x"}}`, &e)
			edit.err = e["error"]
		})
		wg.Go(func() {
			var e map[string]string
			run.status = h.do("POST", "/lectures/"+key+"/runs", `{"seconds": 20}`, &e)
			run.err = e["error"]
		})
		wg.Wait()
		assert.Equal(t, http.StatusAccepted, edit.status, "round %d, the edit: %s", round, edit.err)
		if run.status != http.StatusAccepted {
			assert.Equal(t, http.StatusConflict, run.status, "round %d, the run: %s", round, run.err)
			assert.NotContains(t, run.err, "another process", "round %d, the run", round)
		}
	}
	require.NoError(t, h.shutdown())
}
