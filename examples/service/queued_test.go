package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// followAll reads a run's events from the start to its final event, as
// follow does, without requiring a whole run.
func (h *harness) followAll(runID string) []progress.Event {
	h.t.Helper()
	c := sse.NewClient(h.base+"/runs/"+runID+"/events", sse.ClientOptions{HTTPClient: h.hc,
		Header: http.Header{"Authorization": {"Bearer " + token}}, Retry: 100 * time.Millisecond})
	var events []progress.Event
	ctx := testenv.Context(h.t, time.Minute) // a bound against a hang, not a timing assertion
	require.NoError(h.t, c.Follow(ctx, func(e progress.Event) error {
		events = append(events, e)
		return nil
	}), "follow run %s", runID)
	return events
}

// queuedInTwoProcesses starts two processes of the service on one
// database and one Redis, a run of lecture l in the first (h1), which
// goes on until its shutdown, and an edit of l there, whose run (queued)
// is queued after it; the second (h2) runs nothing.
func queuedInTwoProcesses(t *testing.T) (h1, h2 *harness, queued started) {
	t.Helper()
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h1 = startServiceOn(t, pg, rd, time.Hour, nil)
	h2 = startServiceOn(t, pg, rd, time.Millisecond, nil)
	var first started
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/edits",
		`{"node": "script", "params": {"topic": "x"}}`, &queued))
	require.Equal(t, first.RunID, queued.QueuedAfter)
	return h1, h2, queued
}

// Two processes of the service behind one address: the ID of a run that
// an edit queued in the first is known to the second too, while queued
// (it was answered 404 there, and its events' 404 stops an EventSource
// for good), and its events, followed there, end with it.
func TestQueuedRunIsKnownToAnotherProcess(t *testing.T) {
	h1, h2, queued := queuedInTwoProcesses(t)
	leaks := h1.leaks

	var v runView
	require.Equal(t, http.StatusOK, h2.do("GET", "/runs/"+queued.RunID, "", &v), "the other process's queued run")
	assert.Equal(t, runView{ID: queued.RunID, GraphKey: "l", Status: "queued"}, v)
	events := make(chan []progress.Event, 1)
	go func() { events <- h2.followAll(queued.RunID) }()
	// The shutdown records the queued run as cancelled, its stream ending
	// with a run.cancelled, which the second process's reader gets.
	require.NoError(t, h1.shutdown())
	got := <-events
	require.Len(t, got, 1)
	assert.Equal(t, progress.RunCancelled, got[0].Type)
	v = runView{}
	require.Equal(t, http.StatusOK, h2.do("GET", "/runs/"+queued.RunID, "", &v))
	assert.Equal(t, "cancelled", v.Status)
	_, ok, err := h2.s.params.queuedRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	assert.False(t, ok, "the row of a queued run recorded is deleted")
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A process that dies after the run before a queued run ended, and
// before it started the queued run, leaves it saved as queued: the next
// start runs it under its ID, which its edit was given, and its readers
// get the whole run.
func TestQueuedRunOfAProcessThatDiedIsStartedAtStart(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Millisecond, nil)
	leaks := h.leaks
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	requireWholeRun(t, first.RunID, h.follow(first.RunID, ""))
	require.NoError(t, h.shutdown())
	// What the dead process left: an edit recorded, its run queued.
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	p := newParamStore(pg.Pool, pg.Schema)
	save(t, p, "l", "script", `{"topic":"after"}`)
	e, err := executor.New(executor.Options{Generators: lectureGenerators(p, 0), States: store, Assets: store, Runs: store})
	require.NoError(t, err)
	g, err := graph.Build(graph.Lecture(), 10)
	require.NoError(t, err)
	_, err = e.Edit(t.Context(), g, "l", "script")
	require.NoError(t, err)
	require.NoError(t, e.Close(context.Background()))
	queuedID := newRunID()
	require.NoError(t, p.queue(t.Context(), queuedID, "l", first.RunID))

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	assert.Equal(t, testgraph.LectureIDs(t, 10), requireWholeRun(t, queuedID, h.follow(queuedID, "")))
	v := h.getRun(queuedID)
	assert.Equal(t, "succeeded", v.Status)
	assert.Contains(t, v.Record.Reason, first.RunID)
	assert.Equal(t, `script from {"topic":"after"}`, assetData(t, store, "l", "script"))
	_, ok, err := p.queuedRun(t.Context(), queuedID)
	require.NoError(t, err)
	assert.False(t, ok, "the row is deleted once the run has started")
	require.NoError(t, h.shutdown())

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	assert.Equal(t, queuedID, newestRun(t, store, "l").ID, "nothing more is started")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A run left running by a process that died, with a run queued after it,
// whose lecture another process ran meanwhile with a graph of another
// length: the next start resumed the run under the queued run's ID, the
// executor refused the resume (the graph was replaced) and recorded the
// run as interrupted, and the queued run was left queued, without a
// record (its readers waited) until a later start ran it. It now starts
// at once, as a run queued after a run that ended does, under its ID.
func TestQueuedRunStartsWhenTheRunBeforeCannotBeResumed(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Millisecond, nil) // a live process
	leaks := h.leaks
	running, queued := diedWithAQueuedRun(t, pg, rd, h)
	var other started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/k/runs", `{"seconds": 20}`, &other))
	requireWholeRun(t, other.RunID, h.follow(other.RunID, ""))
	require.NoError(t, h.shutdown())

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	assert.Empty(t, requireWholeRun(t, queued.RunID, h.follow(queued.RunID, "")),
		"the queued run: the other process's run made what its edit affects")
	assert.Equal(t, "succeeded", h.getRun(queued.RunID).Status)
	assert.Equal(t, "interrupted", h.getRecord(running.RunID).Status, "the run before it, not resumed")
	_, ok, err := h.s.params.queuedRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	assert.False(t, ok, "the row is deleted once the run has started")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A queued run that is not started has its record written as cancelled,
// then its run.cancelled published: a reader in another process that
// came between the two found the run ended with no event and was
// answered 204, which stops an EventSource, and never got the final
// event (a test failed so, once, under load). Such a reader now looks
// for the final event for a while after the record's end.
func TestReaderBetweenAShelvedRunsRecordAndEventGetsTheEvent(t *testing.T) {
	// The reader looks for the event up to finalGrace after the record's
	// end, which the record's write, the hook's 300 ms and the event's
	// way to Redis take from: 2s leaves little room on a loaded machine,
	// and the test is of the look, not of its bound.
	defer func(d time.Duration) { finalGrace = d }(finalGrace)
	finalGrace = time.Minute
	h1, h2, queued := queuedInTwoProcesses(t)
	leaks := h1.leaks

	recorded := make(chan struct{})
	shelveHook = func(runID string) {
		if runID == queued.RunID {
			close(recorded)
			time.Sleep(300 * time.Millisecond) // the event is on its way
		}
	}
	defer func() { shelveHook = nil }()
	shut := make(chan error, 1)
	go func() { shut <- h1.shutdown() }() // shelves the queued run
	<-recorded
	got := h2.followAll(queued.RunID)
	require.Len(t, got, 1, "the queued run's final event")
	assert.Equal(t, progress.RunCancelled, got[0].Type)
	assert.Contains(t, got[0].Message, shutdownRunsIt, "says who runs it")
	require.NoError(t, <-shut)
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}
