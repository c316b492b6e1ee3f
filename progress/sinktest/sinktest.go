package sinktest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
)

// NewPair returns a fresh Sink and the Source that reads what it stores.
type NewPair func(t *testing.T) (progress.Sink, progress.Source)

// NewHistoryPair returns a fresh Sink, the Source that reads what it
// stores, and the History that the Source falls back to. The Sink may
// archive to the History too (a progress.Fanout with a progress.Archive),
// or not: the kit appends to the History itself what only the History is
// to hold.
type NewHistoryPair func(t *testing.T) (progress.Sink, progress.Source, progress.History)

// wait bounds every wait of the kit on the backend: each call, and each
// event a reader waits for, not a run of them. A variable for the kit's
// own tests.
var wait = 15 * time.Second

// Run runs the conformance subtests against pairs from newPair.
func Run(t *testing.T, newPair NewPair) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, newPair NewPair)
	}{
		{"Order", testOrder},
		{"ReplayAfter", testReplayAfter},
		{"ReplayUnknownRun", testReplayUnknownRun},
		{"TailAfter", testTailAfter},
		{"TailBeforeFirstEvent", testTailBeforeFirstEvent},
		{"TailPastEnd", testTailPastEnd},
		{"NoDuplicates", testNoDuplicates},
		{"Seam", testSeam},
		{"TailCallbackError", testTailCallbackError},
		{"CancelTail", testCancelTail},
		{"RunsIsolated", testRunsIsolated},
		{"InvalidEvent", testInvalidEvent},
		{"LastEvent", testLastEvent},
		{"ConcurrentRuns", testConcurrentRuns},
		{"CallerOwnsEvents", testCallerOwnsEvents},
		{"ReplayCallbackError", testReplayCallbackError},
		{"AllFields", testAllFields},
		{"Text", testText},
		{"Gap", testGap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newPair) })
	}
}

// RunHistory runs the conformance subtests of a Source that falls back to
// a History against triples from newPair; see the package documentation.
// A pair that passes it should pass [Run] too.
func RunHistory(t *testing.T, newPair NewHistoryPair) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, newPair NewHistoryPair)
	}{
		{"HistoryOnly", testHistoryOnly},
		{"HistoryThenLive", testHistoryThenLive},
		{"HistoryOnlyEnded", testHistoryOnlyEnded},
		{"HistoryLastEvent", testHistoryLastEventSource},
		{"HistoryPastLive", testHistoryPastLive},
		{"HistoryCallbackError", testHistoryCallbackErrorSource},
		{"HistoryFillsLiveGap", testHistoryFillsLiveGap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newPair) })
	}
}

// RunID returns a run ID unique to this test and this process, made of
// letters, digits, '-' and '_'.
func RunID(t testing.TB) string { return testenv.UniqueName(t) }

// Events returns events from..to (inclusive) of runID with every field
// set, deterministic for the same arguments. Times are in UTC and ETAs
// whole milliseconds, so that they survive the JSON form unchanged.
func Events(runID string, from, to uint64) []progress.Event {
	types := []progress.Type{
		progress.StageStarted, progress.NodeStarted, progress.Message, progress.NodeRetrying,
		progress.NodeSucceeded, progress.NodeSkipped, progress.StageFinished,
	}
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var out []progress.Event
	for s := from; s <= to && s >= from; s++ {
		e := progress.Event{
			RunID:    runID,
			GraphKey: "graph-" + runID,
			Seq:      s,
			Time:     base.Add(time.Duration(s) * 1001 * time.Microsecond),
			Type:     types[s%uint64(len(types))],
			Stage:    int(s % 4),
			Done:     int(s),
			Total:    int(to) + 10,
			ETA:      time.Duration(s%50) * time.Second,
		}
		if s == 1 {
			e.Type, e.Stage = progress.RunStarted, progress.NoStage
		}
		if e.Type != progress.StageStarted && e.Type != progress.StageFinished && s != 1 {
			e.Node = fmt.Sprintf("node/%d", s%17)
			e.Attempt = int(s%3) + 1
		}
		switch e.Type {
		case progress.Message:
			e.Message = fmt.Sprintf("step %d: \"quoted\" <b>&</b>\nsecond line ✓", s)
			e.PreviewURL = fmt.Sprintf("https://example.test/p/%d.png?a=1&b=2", s)
			e.Reasoning = "because"
		case progress.NodeRetrying:
			e.Error = fmt.Sprintf("provider: 503 (attempt %d)", e.Attempt)
		}
		out = append(out, e)
	}
	return out
}

// AllFields returns one event of runID for each [progress.Type], from
// Seq from on, with every field set (ResumedBy included; CancelledBy,
// "drain", on the run.cancelled event alone, as the executor sets it; BatchKey, Round,
// StageDone, StageTotal, BatchDone and BatchTotal too, which a view's
// per-stage and per-key bars read; Counts, each count other than 0, on
// the final events alone, as the executor sets it; and Plan, an outline
// of two stages with single and batch groups, each number other than 0,
// on run.started and the message event, as the executor sets it on the
// message that starts a later round), deterministic for the same
// arguments. Times are in UTC with microseconds, ETAs whole
// milliseconds, so that they survive the JSON form unchanged.
func AllFields(runID string, from uint64) []progress.Event {
	types := []progress.Type{
		progress.RunStarted, progress.StageStarted, progress.NodeStarted, progress.Message, progress.NodeRetrying,
		progress.NodeSucceeded, progress.NodeUnchanged, progress.NodeFailed, progress.NodeSkipped,
		progress.NodeSuperseded, progress.NodeCancelled, progress.StageFinished, progress.RunFinished,
		progress.RunFailed, progress.RunCancelled,
	}
	base := time.Date(2025, 6, 7, 8, 9, 10, 123_456_000, time.UTC)
	out := make([]progress.Event, len(types))
	for i, typ := range types {
		s := from + uint64(i)
		out[i] = progress.Event{
			RunID:      runID,
			GraphKey:   "graph-" + runID,
			Seq:        s,
			Time:       base.Add(time.Duration(i) * 1_234_567 * time.Microsecond),
			Type:       typ,
			Node:       fmt.Sprintf("asset:narration:segment[%d]", i),
			Kind:       "asset:narration",
			BatchKey:   "asset:narration",
			Round:      i%2 + 1,
			Stage:      i % 3,
			StageDone:  i % 4,
			StageTotal: i%4 + 5,
			BatchDone:  i % 3,
			BatchTotal: i%3 + 2,
			Attempt:    i%4 + 1,
			Message:    fmt.Sprintf("message of %s ✓", typ),
			PreviewURL: fmt.Sprintf("https://example.test/preview/%d.png?a=1&b=2", i),
			Reasoning:  fmt.Sprintf("reasoning of %s", typ),
			Error:      fmt.Sprintf("error of %s: provider: 503", typ),
			Done:       i,
			Total:      len(types) + 3,
			ETA:        time.Duration(i)*time.Minute + 1234*time.Millisecond,
			ResumedBy:  fmt.Sprintf("run-after-%d", i),
		}
		if typ == progress.RunCancelled {
			out[i].CancelledBy = "drain"
		}
		if i%5 == 0 {
			out[i].Stage = progress.NoStage
		}
		if typ.Final() {
			out[i].Counts = &progress.Counts{Generated: i + 1, Unchanged: i + 2, Failed: i + 3, Skipped: i + 4,
				Superseded: i + 5, Cancelled: i + 6, Dirty: i + 7}
		}
		if typ == progress.RunStarted || typ == progress.Message {
			out[i].Plan = &progress.Outline{Stages: []progress.OutlineStage{
				{Nodes: i + 1, Groups: []progress.OutlineGroup{{Kind: "script", Nodes: i + 1}}},
				{Nodes: 2*i + 9, Groups: []progress.OutlineGroup{
					{Kind: "asset:narration", BatchKey: "asset:narration", Nodes: i + 2, Concurrency: i + 4},
					{BatchKey: "tts", Nodes: i + 3, Concurrency: i + 5},
					{Kind: "asset:music", Nodes: 4},
				}},
			}}
		}
	}
	return out
}

// Diff compares event lists the way the kit does: times by instant.
func Diff(want, got []progress.Event) string {
	return cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }))
}

// Seqs returns the Seqs of events, nil for none.
func Seqs(events []progress.Event) []uint64 {
	var out []uint64
	for _, e := range events {
		out = append(out, e.Seq)
	}
	return out
}

// Span returns from, from+1, ..., to.
func Span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to && s >= from; s++ {
		out = append(out, s)
	}
	return out
}

func publish(t *testing.T, sink progress.Sink, events ...progress.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, sink.Publish(ctx, events...), "Publish seq %d..", firstSeq(events))
}

// publishWithin is sink.Publish(events) with a deadline of wait: wait
// bounds each call, not a run of them, whose time a loaded machine
// (a -race run of every package at once on two cores) stretches to many
// times the call's.
func publishWithin(sink progress.Sink, events ...progress.Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return sink.Publish(ctx, events...)
}

func firstSeq(events []progress.Event) uint64 {
	if len(events) == 0 {
		return 0
	}
	return events[0].Seq
}

// publishInBatches publishes events in batches of the given sizes, cycling.
func publishInBatches(t *testing.T, sink progress.Sink, events []progress.Event, sizes ...int) {
	t.Helper()
	for i := 0; len(events) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(events))
		publish(t, sink, events[:n]...)
		events = events[n:]
	}
}

// Replay collects a replay of runID after after.
func Replay(t testing.TB, src progress.Source, runID string, after uint64) []progress.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []progress.Event
	err := src.Replay(ctx, runID, after, func(e progress.Event) error {
		got = append(got, e)
		return nil
	})
	require.NoError(t, err, "Replay(%q, %d)", runID, after)
	return got
}

// Tailer runs Source.Tail in a goroutine and collects what it delivers.
type Tailer struct {
	cancel context.CancelCauseFunc
	events chan progress.Event
	done   chan error
	got    []progress.Event
}

// StartTail starts Tail(runID, after) in a goroutine that the returned
// Tailer owns; [Tailer.Stop] (or the test's cleanup) ends it. The
// cleanup fails t if Tail does not return within the kit's bound on each
// wait (15 s) of its context's cancellation.
func StartTail(t testing.TB, src progress.Source, runID string, after uint64) *Tailer {
	ctx, cancel := context.WithCancelCause(context.Background())
	tl := &Tailer{cancel: cancel, events: make(chan progress.Event, 8192), done: make(chan error, 1)}
	go func() {
		tl.done <- src.Tail(ctx, runID, after, func(e progress.Event) error {
			select {
			case tl.events <- e:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
	}()
	t.Cleanup(func() {
		tl.cancel(errors.New("sinktest: cleanup"))
		// Bounded, as every wait of the kit: a Tail that ignores its
		// context fails the test here, rather than hold it until the
		// test binary's timeout, which names no test.
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-tl.done:
		case <-timer.C:
			t.Errorf("Tail(%q, %d) did not return within %v of its context's cancellation, at the test's cleanup", runID, after, wait)
		}
	})
	return tl
}

// Next waits until the tailer has delivered n events in all, and returns
// all of them. It fails the test if Tail ends, or if an event takes too
// long to come: the bound is on each event, not on all of them, whose
// time a loaded machine stretches to many times theirs.
func (tl *Tailer) Next(t testing.TB, n int) []progress.Event {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(tl.got) < n {
		select {
		case e := <-tl.events:
			tl.got = append(tl.got, e)
			timer.Reset(wait)
		case err := <-tl.done:
			tl.done <- err
			t.Fatalf("Tail ended after %d of %d events: %v", len(tl.got), n, err)
		case <-timer.C:
			t.Fatalf("Tail delivered %d of %d events, then none for %v; last seqs %v", len(tl.got), n, wait, tail(Seqs(tl.got), 5))
		}
	}
	return tl.got
}

// Expect waits for the next events and fails the test at the first one
// whose Seq is not the next of want, or if one does not come in time (as
// Next, each). It returns the events it received.
func (tl *Tailer) Expect(t testing.TB, want []uint64) []progress.Event {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	start := len(tl.got)
	for i, seq := range want {
		select {
		case e := <-tl.events:
			tl.got = append(tl.got, e)
			timer.Reset(wait)
			if e.Seq != seq {
				t.Fatalf("Tail delivered seq %d where seq %d was due (previous: %v)", e.Seq, seq, tail(Seqs(tl.got[:len(tl.got)-1]), 5))
			}
		case err := <-tl.done:
			tl.done <- err
			t.Fatalf("Tail ended after %d of %d expected events: %v", i, len(want), err)
		case <-timer.C:
			t.Fatalf("Tail delivered %d of %d expected events, then none for %v; waiting for seq %d", i, len(want), wait, seq)
		}
	}
	return slices.Clone(tl.got[start:])
}

// Stop cancels the tail with cause, waits for Tail to return and returns
// its error. It fails the test if Tail does not return promptly, and if
// it delivered anything beyond what Next returned.
func (tl *Tailer) Stop(t testing.TB, cause error) error {
	t.Helper()
	tl.cancel(cause)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case err := <-tl.done:
		tl.done <- err
		close(tl.events)
		for e := range tl.events {
			t.Errorf("Tail delivered seq %d beyond the %d events expected", e.Seq, len(tl.got))
		}
		return err
	case <-timer.C:
		t.Fatalf("Tail did not return within %v of its context's cancellation", wait)
		return nil
	}
}

func tail(s []uint64, n int) []uint64 { return s[max(0, len(s)-n):] }

func testOrder(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	want := Events(run, 1, 300)
	publishInBatches(t, sink, want, 1, 7, 50, 2, 100)
	if diff := Diff(want, Replay(t, src, run, 0)); diff != "" {
		t.Fatalf("Replay(0) after publishing 1..300 (-want +got):\n%s", diff)
	}
}

func testReplayAfter(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 300)
	publishInBatches(t, sink, all, 64)
	tests := []struct {
		after uint64
		want  []uint64
	}{
		{0, Span(1, 300)},
		{1, Span(2, 300)},
		{150, Span(151, 300)},
		{299, []uint64{300}},
		{300, nil},
		{1 << 40, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("after=", tt.after), func(t *testing.T) {
			got := Replay(t, src, run, tt.after)
			if diff := cmp.Diff(tt.want, Seqs(got)); diff != "" {
				t.Errorf("Replay(%d) seqs (-want +got):\n%s", tt.after, diff)
			}
			if len(got) > 0 {
				assert.Empty(t, Diff(all[tt.after:], got), "Replay(%d) events differ from those published", tt.after)
			}
		})
	}
}

func testReplayUnknownRun(t *testing.T, newPair NewPair) {
	_, src := newPair(t)
	assert.Empty(t, Replay(t, src, RunID(t), 0), "Replay of a run never published")
}

// testTailAfter tails a run from a Seq, through its final event: Tail
// goes on past it until its context ends, as a reader may follow a run's
// stream before the run starts.
func testTailAfter(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 150)
	all[149].Type = progress.RunFinished
	publish(t, sink, all[:100]...)
	tl := StartTail(t, src, run, 40)
	got := tl.Expect(t, Span(41, 100))
	for _, e := range all[100:] {
		publish(t, sink, e)
	}
	got = append(got, tl.Expect(t, Span(101, 150))...)
	cause := errors.New("sinktest: done")
	err := tl.Stop(t, cause)
	assert.ErrorIs(t, err, cause, "Tail must return context.Cause of its context, and not end at the run's final event")
	if diff := Diff(all[40:], got); diff != "" {
		t.Fatalf("Tail(40) (-want +got):\n%s", diff)
	}
}

// testTailPastEnd tails from a Seq past the newest event held, as a
// reader does whose cursor is ahead of what the backend holds (its copy
// was trimmed or lost, or the reader saw the events from another): the
// events up to the cursor, as they are published, are not delivered. A
// second reader, from 0, shows when each event is out: the kit publishes
// the events up to the cursor one at a time, each once that reader has
// the one before, so that the first reader starts while the backend still
// holds less than its cursor.
func testTailPastEnd(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	for _, held := range []uint64{5, 0} { // a run with events, one with none yet
		t.Run(fmt.Sprint("held=", held), func(t *testing.T) {
			const after, last = 10, 15
			run := RunID(t)
			all := Events(run, 1, last)
			publish(t, sink, all[:held]...)
			past := StartTail(t, src, run, after)
			witness := StartTail(t, src, run, 0)
			witness.Expect(t, Span(1, held))
			for _, e := range all[held:after] {
				runtime.Gosched() // let the first reader start too, not only the witness
				publish(t, sink, e)
				witness.Expect(t, []uint64{e.Seq})
			}
			publishInBatches(t, sink, all[after:], 2)
			witness.Expect(t, Span(after+1, last))
			got := past.Expect(t, Span(after+1, last))
			past.Stop(t, context.Canceled) // fails the test if anything more came
			witness.Stop(t, context.Canceled)
			if diff := Diff(all[after:], got); diff != "" {
				t.Errorf("Tail(%d) of a run that held %d events (-want +got):\n%s", after, held, diff)
			}
		})
	}
}

func testTailBeforeFirstEvent(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	tl := StartTail(t, src, run, 0)
	all := Events(run, 1, 20)
	publishInBatches(t, sink, all, 1, 3)
	got := tl.Expect(t, Span(1, 20))
	tl.Stop(t, context.Canceled)
	if diff := Diff(all, got); diff != "" {
		t.Fatalf("Tail started before the run's first event (-want +got):\n%s", diff)
	}
}

func testNoDuplicates(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 15)
	tl := StartTail(t, src, run, 0)
	publish(t, sink, all[:10]...)
	publish(t, sink, all[:10]...)            // the same batch again, as a retry would
	publish(t, sink, all[7:15]...)           // overlapping: 8..10 again, then 11..15
	publish(t, sink, all[14])                // the last one again
	publish(t, sink, all[2], all[4], all[9]) // old ones alone
	// Held Seqs again, with other contents: ignored, the first stays.
	changed := []progress.Event{all[3], all[14]}
	for i := range changed {
		changed[i].Message, changed[i].Done = "a duplicate, to be ignored", -1
	}
	publish(t, sink, changed...)
	want := Span(1, 15)
	if diff := Diff(all, Replay(t, src, run, 0)); diff != "" {
		t.Errorf("Replay after duplicate publishes (-want +got):\n%s", diff)
	}
	got := tl.Expect(t, want)
	tl.Stop(t, context.Canceled)
	if diff := cmp.Diff(want, Seqs(got)); diff != "" {
		t.Errorf("Tail across duplicate publishes (-want +got):\n%s", diff)
	}
}

// testSeam publishes while readers replay and switch to live: the window
// where a naive "replay, then subscribe from now" loses or repeats events.
func testSeam(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	const stored, total = 2000, 3000
	all := Events(run, 1, total)
	publishInBatches(t, sink, all[:stored], 100)

	starts := []uint64{0, 1000, 1999, 2000}
	tailers := make([]*Tailer, len(starts))
	published := make(chan error, 1)
	go func() {
		for _, e := range all[stored:] {
			if err := publishWithin(sink, e); err != nil {
				published <- fmt.Errorf("publish seq %d: %w", e.Seq, err)
				return
			}
		}
		published <- nil
	}()
	for i, after := range starts {
		tailers[i] = StartTail(t, src, run, after)
	}
	require.NoError(t, <-published)
	for i, after := range starts {
		got := tailers[i].Expect(t, Span(after+1, total))
		tailers[i].Stop(t, context.Canceled)
		if diff := cmp.Diff(Span(after+1, total), Seqs(got)); diff != "" {
			t.Errorf("Tail(%d) while %d..%d were published (-want +got):\n%s", after, stored+1, total, diff)
		}
	}
	if diff := cmp.Diff(Span(1, total), Seqs(Replay(t, src, run, 0))); diff != "" {
		t.Errorf("Replay(0) afterwards (-want +got):\n%s", diff)
	}
}

func testTailCallbackError(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	publish(t, sink, Events(run, 1, 10)...)
	stop := errors.New("sinktest: stop at 5")
	var got []uint64
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := src.Tail(ctx, run, 0, func(e progress.Event) error {
		got = append(got, e.Seq)
		if e.Seq == 5 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop, "Tail must return its callback's error")
	assert.Equal(t, Span(1, 5), got, "Tail must stop delivering at the callback's error")
}

// cancelBound is how soon Tail must return once its context is
// cancelled: generous for a loaded CI machine, yet short of what a reader
// that waits out a blocking read or a poll interval would take.
const cancelBound = 3 * time.Second

func testCancelTail(t *testing.T, newPair NewPair) {
	before := goleak.IgnoreCurrent()
	prompt := func(t *testing.T, took time.Duration, what string) {
		t.Helper()
		if took > cancelBound {
			t.Errorf("%s: Tail returned %v after its context's cancellation; want at most %v", what, took, cancelBound)
		}
	}
	t.Run("tail", func(t *testing.T) {
		sink, src := newPair(t)
		run := RunID(t)
		publish(t, sink, Events(run, 1, 5)...)

		// Waiting for live events.
		tl := StartTail(t, src, run, 0)
		tl.Expect(t, Span(1, 5))
		cause := errors.New("sinktest: reader left")
		start := time.Now()
		err := tl.Stop(t, cause)
		prompt(t, time.Since(start), "waiting for live events")
		assert.ErrorIs(t, err, cause, "Tail must return context.Cause of its context")

		// Waiting for the first event of a run that has none, and past
		// the newest event held: a reader may connect before its run
		// starts, or resume past what the backend holds, and leave.
		for _, w := range []struct {
			run   string
			after uint64
			what  string
		}{
			{RunID(t) + "-none", 0, "waiting for the first event of a run with none"},
			{run, 10, "waiting past the newest event held"},
		} {
			tl := StartTail(t, src, w.run, w.after)
			time.Sleep(10 * time.Millisecond) // lets Tail start waiting; a correct one passes without it
			start := time.Now()
			err := tl.Stop(t, cause)
			prompt(t, time.Since(start), w.what)
			assert.ErrorIs(t, err, cause, "%s: Tail must return context.Cause of its context", w.what)
		}

		// Cancelled while delivering stored events.
		ctx, cancel := context.WithCancelCause(context.Background())
		var cancelled time.Time
		err = src.Tail(ctx, run, 0, func(e progress.Event) error {
			if e.Seq == 2 {
				cancelled = time.Now()
				cancel(cause)
			}
			return nil
		})
		if !cancelled.IsZero() {
			prompt(t, time.Since(cancelled), "cancelled from its callback")
		}
		assert.ErrorIs(t, err, cause, "Tail cancelled from its callback")

		// Already cancelled.
		ctx, cancel = context.WithCancelCause(context.Background())
		cancel(cause)
		start = time.Now()
		err = src.Tail(ctx, RunID(t), 0, func(progress.Event) error { return nil })
		prompt(t, time.Since(start), "already cancelled")
		assert.ErrorIs(t, err, cause, "Tail with a cancelled context")
	})
	// The pair's cleanup has run: nothing the tails started may be left.
	// A goroutine of the backend's driver may still be ending a cancelled
	// query (pgx closes such a connection in the background): wait bounds
	// the look, as it bounds the rest of the kit.
	for deadline := time.Now().Add(wait); goleak.Find(before) != nil && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // polling the goroutines, bounded by the deadline
	}
	goleak.VerifyNone(t, before)
}

// testRunsIsolated publishes runs mixed in one batch, among them runs
// whose IDs are prefixes of one another's, or differ by a character that
// a pattern (a key pattern, a LIKE) takes for any: each replays alone,
// and each one's tailer, following it while they are published, gets its
// events alone (a pattern subscription would pass it the others').
func testRunsIsolated(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	base := RunID(t)
	runs := []string{base + "-a", base + "-b", base + "-a-b", base + "-a%", base + "_a", base + "*"}
	want := make(map[string][]progress.Event)
	for i, run := range runs {
		want[run] = Events(run, 1, uint64(15+i))
	}
	var mixed []progress.Event
	for s := range 20 {
		for _, run := range runs {
			if s < len(want[run]) {
				mixed = append(mixed, want[run][s])
			}
		}
	}
	tailers := make(map[string]*Tailer)
	for _, run := range runs {
		tailers[run] = StartTail(t, src, run, 0)
	}
	// Each run's first event, then, once every tailer has taken its own
	// (and so follows its run live), the rest: a pair that leaks another
	// run's live events into a tailer is caught whatever the timing.
	publishInBatches(t, sink, mixed[:len(runs)], 7)
	for _, run := range runs {
		tailers[run].Next(t, 1)
	}
	publishInBatches(t, sink, mixed[len(runs):], 7)
	for _, run := range runs {
		assert.Empty(t, Diff(want[run], Replay(t, src, run, 0)), "run %s", run)
	}
	for _, run := range runs {
		tl := tailers[run]
		tl.Expect(t, Seqs(want[run])[1:])
		tl.Stop(t, context.Canceled) // fails the test if anything more came
		assert.Empty(t, Diff(want[run], tl.got), "tail of run %s", run)
	}
}

func testInvalidEvent(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tests := []struct {
		name   string
		events []progress.Event
	}{
		{"seq 0", []progress.Event{{RunID: run, Seq: 0, Type: progress.RunStarted}}},
		{"no run ID", []progress.Event{{Seq: 1, Type: progress.RunStarted}}},
		{"valid then invalid", append(Events(run, 1, 2), progress.Event{RunID: run})},
		{"time past the year 9999", []progress.Event{{RunID: run, Seq: 1, Type: progress.RunStarted,
			Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
	}
	for _, tt := range tests {
		err := sink.Publish(ctx, tt.events...)
		assert.ErrorIs(t, err, progress.ErrInvalidEvent, tt.name)
	}
	assert.Empty(t, Replay(t, src, run, 0), "a refused call must store nothing")
}

// testText checks that free text comes back as it was published (see
// texts), from a replay and a tail.
func testText(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	events := textEvents(run)
	tl := StartTail(t, src, run, 0)
	publishInBatches(t, sink, events, 3)
	if diff := Diff(events, Replay(t, src, run, 0)); diff != "" {
		t.Errorf("Replay(0) of events with every kind of text (-want +got):\n%s", diff)
	}
	got := tl.Expect(t, Seqs(events))
	tl.Stop(t, context.Canceled)
	if diff := Diff(events, got); diff != "" {
		t.Errorf("Tail(0) of events with every kind of text (-want +got):\n%s", diff)
	}
}

// testGap publishes a run with a gap in its Seqs, as a progress.Buffered
// leaves one downstream when its queue drops events or its sink fails a
// batch, which goes to the fallback: readers pass over the Seqs that no
// copy holds and go on, to the run's final event. One that stopped at
// the gap, or waited there for good, would never see the run's end.
func testGap(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 14)
	all[13].Type = progress.RunFinished
	held := append(slices.Clone(all[:5]), all[8:]...) // 6..8 never come
	following := StartTail(t, src, run, 0)
	publish(t, sink, all[:5]...)
	following.Expect(t, Span(1, 5))
	publish(t, sink, all[8:12]...)
	if diff := Diff(held[:9], Replay(t, src, run, 0)); diff != "" {
		t.Errorf("Replay(0) of a run without seqs 6..8 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Span(9, 12), Seqs(Replay(t, src, run, 6))); diff != "" {
		t.Errorf("Replay(6), inside the gap (-want +got):\n%s", diff)
	}
	following.Expect(t, Span(9, 12))
	late := StartTail(t, src, run, 3)
	late.Expect(t, Seqs(held[3:9]))
	publish(t, sink, all[12:]...)
	following.Expect(t, Span(13, 14))
	late.Expect(t, Span(13, 14))
	following.Stop(t, context.Canceled) // fails the test if anything more came
	late.Stop(t, context.Canceled)
	if diff := Diff(held, following.got); diff != "" {
		t.Errorf("Tail(0) across the gap (-want +got):\n%s", diff)
	}
	if diff := Diff(held[3:], late.got); diff != "" {
		t.Errorf("Tail(3) across the gap (-want +got):\n%s", diff)
	}
}

// testAllFields publishes an event of every type with every field set,
// ResumedBy included: a replay returns each field for field.
func testAllFields(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	want := append(Events(run, 1, 5), AllFields(run, 6)...)
	publishInBatches(t, sink, want, 4)
	if diff := Diff(want, Replay(t, src, run, 0)); diff != "" {
		t.Fatalf("Replay(0) of events of every type with every field set (-want +got):\n%s", diff)
	}
}

// testReplayCallbackError stops a replay with its callback's error.
func testReplayCallbackError(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	publish(t, sink, Events(run, 1, 10)...)
	for _, at := range []uint64{1, 5, 10} {
		stop := fmt.Errorf("sinktest: stop at %d", at)
		var got []uint64
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := src.Replay(ctx, run, 0, func(e progress.Event) error {
			got = append(got, e.Seq)
			if e.Seq == at {
				return stop
			}
			return nil
		})
		cancel()
		assert.ErrorIs(t, err, stop, "Replay must return its callback's error")
		assert.Equal(t, Span(1, at), got, "Replay must stop delivering at the callback's error (at %d)", at)
	}
}

// testCallerOwnsEvents checks that a sink neither changes the events
// slice it is given nor reads it once Publish has returned: the caller
// reuses it for its next batch, as progress.Buffered does, or hands it to
// the next sink, as progress.Fanout does.
func testCallerOwnsEvents(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 40)
	batch := slices.Clone(all[:20])
	publish(t, sink, batch...)
	if diff := Diff(all[:20], batch); diff != "" {
		t.Errorf("Publish changed the caller's events (-before +after):\n%s", diff)
	}
	copy(batch, all[20:]) // the next batch, in the same slice
	publish(t, sink, batch...)
	if diff := Diff(all[20:], batch); diff != "" {
		t.Errorf("Publish changed the caller's events (-before +after):\n%s", diff)
	}
	for i := range batch { // and the slice reused for something else
		batch[i].Message, batch[i].Done = "overwritten by the caller after Publish returned", -1
	}
	if diff := Diff(all, Replay(t, src, run, 0)); diff != "" {
		t.Fatalf("Replay(0) after the caller reused the slices it published (-want +got):\n%s", diff)
	}
	for _, r := range []any{sink, src} {
		if lr, ok := r.(progress.LastEventReader); ok {
			assertLast(t, lr, fmt.Sprintf("the %T's", r), run, &all[39], "after the caller reused the slices it published")
		}
	}
}

// assertLast checks that r's LastEvent of runID is want, or that r holds
// none of its events when want is nil. One that cannot say may fail with
// [progress.ErrUnsupported], as progress.Buffered does over a sink
// without LastEvent: the executor then publishes no final event for an
// interrupted run, which is better than one under a Seq already used.
func assertLast(t *testing.T, r progress.LastEventReader, what, runID string, want *progress.Event, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	e, found, err := r.LastEvent(ctx, runID)
	if errors.Is(err, progress.ErrUnsupported) {
		return
	}
	if !assert.NoError(t, err, "%s LastEvent(%q) %s", what, runID, why) {
		return
	}
	if want == nil {
		assert.False(t, found, "%s LastEvent(%q) %s: found seq %d, want none", what, runID, why, e.Seq)
		return
	}
	if assert.True(t, found, "%s LastEvent(%q) %s: found none, want seq %d", what, runID, why, want.Seq) {
		assert.Empty(t, Diff([]progress.Event{*want}, []progress.Event{e}), "%s LastEvent(%q) %s", what, runID, why)
	}
}

// testLastEvent checks the Source's [progress.LastEventReader], and the
// Sink's, when they implement it: the event with the highest Seq held,
// field for field, whatever duplicates came after it, and none for a run
// never published. The executor numbers the final event of a run it found
// interrupted after it: an answer too low gives that event a Seq already
// used, which every sink drops as a duplicate.
func testLastEvent(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	var readers []progress.LastEventReader
	var names []string
	if lr, ok := src.(progress.LastEventReader); ok {
		readers, names = append(readers, lr), append(names, "the source's")
	}
	if lr, ok := sink.(progress.LastEventReader); ok {
		readers, names = append(readers, lr), append(names, "the sink's")
	}
	if len(readers) == 0 {
		t.Skip("neither the sink nor the source implements progress.LastEventReader")
	}
	// The other run's ID starts with run's, and its newest Seq is
	// higher: a lookup by a prefix (a key pattern, a LIKE) finds it.
	run := RunID(t)
	other := run + "-other"
	all := Events(run, 1, 30)
	all[29].Type = progress.RunFinished
	for i, r := range readers {
		assertLast(t, r, names[i], run, nil, "of a run never published")
	}
	publishInBatches(t, sink, all[:20], 7)
	for i, r := range readers {
		assertLast(t, r, names[i], run, &all[19], "after 1..20")
	}
	publishInBatches(t, sink, all[20:], 4)
	// A retry publishes old events again, one with other contents.
	old := all[6]
	old.Message = "a duplicate, to be ignored"
	publish(t, sink, all[4], all[5], old)
	publish(t, sink, Events(other, 1, 40)...)
	for i, r := range readers {
		assertLast(t, r, names[i], run, &all[29], "after 1..30 and duplicates of older events")
		assertLast(t, r, names[i], other, &Events(other, 40, 40)[0], "of another run")
		assertLast(t, r, names[i], run[:len(run)-1], nil, "of a run never published, whose ID prefixes the runs'")
	}
}

// testConcurrentRuns publishes several runs at once, each from a
// goroutine of its own, as executors sharing one sink do: a sink must be
// safe for concurrent use, and each run replays whole.
func testConcurrentRuns(t *testing.T, newPair NewPair) {
	sink, src := newPair(t)
	const runs, each = 6, 300
	base := RunID(t)
	all := make([][]progress.Event, runs)
	for r := range all {
		all[r] = Events(fmt.Sprintf("%s-%d", base, r), 1, each)
	}
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for r, events := range all {
		wg.Go(func() {
			for i := 0; len(events) > 0; i++ {
				n := min(1+(i+r)%9, len(events))
				if err := publishWithin(sink, events[:n]...); err != nil {
					errs[r] = fmt.Errorf("run %d: publish seq %d..: %w", r, events[0].Seq, err)
					return
				}
				events = events[n:]
			}
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, want := range all {
		if diff := Diff(want, Replay(t, src, want[0].RunID, 0)); diff != "" {
			t.Errorf("Replay(0) of run %s, published while %d others were (-want +got):\n%s", want[0].RunID, runs-1, diff)
		}
	}
}

func archive(t *testing.T, h progress.History, events ...progress.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, h.Append(ctx, events...), "History.Append seq %d..", firstSeq(events))
}

// testHistoryOnly reads a run that only the History holds, then follows
// it as the live copy gets the next events, some of them again.
func testHistoryOnly(t *testing.T, newPair NewHistoryPair) {
	sink, src, hist := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 260)
	archive(t, hist, all[:200]...)
	if diff := Diff(all[:200], Replay(t, src, run, 0)); diff != "" {
		t.Fatalf("Replay(0) of a run only the History holds (-want +got):\n%s", diff)
	}
	for _, after := range []uint64{150, 199, 200, 1 << 40} {
		if diff := cmp.Diff(Span(after+1, 200), Seqs(Replay(t, src, run, after))); diff != "" {
			t.Errorf("Replay(%d) of a run only the History holds (-want +got):\n%s", after, diff)
		}
	}
	starts := []uint64{0, 50, 200}
	tailers := make([]*Tailer, len(starts))
	for i, after := range starts {
		tailers[i] = StartTail(t, src, run, after)
		tailers[i].Expect(t, Span(after+1, 200))
	}
	// The live copy gets 195..260: 195..200 again, then the run goes on.
	publishInBatches(t, sink, all[194:], 3, 20)
	for i, after := range starts {
		got := tailers[i].Expect(t, Span(201, 260))
		tailers[i].Stop(t, context.Canceled)
		if diff := Diff(all[200:], got); diff != "" {
			t.Errorf("Tail(%d) after the History's events (-want +got):\n%s", after, diff)
		}
	}
	if diff := cmp.Diff(Span(1, 260), Seqs(Replay(t, src, run, 0))); diff != "" {
		t.Errorf("Replay(0) afterwards (-want +got):\n%s", diff)
	}
}

// testHistoryThenLive reads a run whose start only the History holds and
// whose rest only the live copy holds.
func testHistoryThenLive(t *testing.T, newPair NewHistoryPair) {
	sink, src, hist := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 160)
	archive(t, hist, all[:100]...)
	publishInBatches(t, sink, all[100:150], 7)
	if diff := Diff(all[:150], Replay(t, src, run, 0)); diff != "" {
		t.Fatalf("Replay(0) across the History and the live copy (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Span(51, 150), Seqs(Replay(t, src, run, 50))); diff != "" {
		t.Errorf("Replay(50) (-want +got):\n%s", diff)
	}
	tl := StartTail(t, src, run, 0)
	tl.Expect(t, Span(1, 150))
	publishInBatches(t, sink, all[150:], 4)
	tl.Expect(t, Span(151, 160))
	tl.Stop(t, context.Canceled)
}

// testHistoryOnlyEnded reads a finished run that only the History holds:
// a reader gets its end, and one at or past it gets nothing, each until
// its context ends.
func testHistoryOnlyEnded(t *testing.T, newPair NewHistoryPair) {
	_, src, hist := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 50)
	all[49].Type = progress.RunFinished
	archive(t, hist, all...)
	if diff := Diff(all[10:], Replay(t, src, run, 10)); diff != "" {
		t.Fatalf("Replay(10) of a finished run only the History holds (-want +got):\n%s", diff)
	}
	for _, after := range []uint64{10, 50, 80} {
		tl := StartTail(t, src, run, after)
		if after < 50 {
			tl.Expect(t, Span(after+1, 50))
		}
		cause := errors.New("sinktest: reader left")
		err := tl.Stop(t, cause) // fails the test if anything more came
		assert.ErrorIs(t, err, cause, "Tail(%d) of a finished run must last until its context ends", after)
	}
}

// testHistoryPastLive reads a run whose live copy got its start only
// and whose History got more of it (the live copy's backend was down
// while the archive went on): a reader gets every event once, the
// History's past the live copy's newest included, then the live ones.
func testHistoryPastLive(t *testing.T, newPair NewHistoryPair) {
	sink, src, hist := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 70)
	publish(t, sink, all[:20]...)
	archive(t, hist, all[:60]...)
	if diff := Diff(all[:60], Replay(t, src, run, 0)); diff != "" {
		t.Fatalf("Replay(0) of a run the live copy holds 1..20 of, the History 1..60 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Span(31, 60), Seqs(Replay(t, src, run, 30))); diff != "" {
		t.Errorf("Replay(30) (-want +got):\n%s", diff)
	}
	tl := StartTail(t, src, run, 10)
	tl.Expect(t, Span(11, 60))
	publishInBatches(t, sink, all[60:], 3)
	tl.Expect(t, Span(61, 70))
	tl.Stop(t, context.Canceled)
}

// testHistoryFillsLiveGap follows a run whose live copy misses events
// while a reader follows it (its backend refused a batch that the archive
// took, as a Buffered over the live copy beside an Archive does): the
// reader gets them from the History, in order, at the gap, not only when
// it starts.
func testHistoryFillsLiveGap(t *testing.T, newPair NewHistoryPair) {
	sink, src, hist := newPair(t)
	run := RunID(t)
	all := Events(run, 1, 30)
	all[29].Type = progress.RunFinished
	publish(t, sink, all[:20]...)
	tl := StartTail(t, src, run, 0)
	tl.Expect(t, Span(1, 20))
	archive(t, hist, all[20:25]...) // the live copy never gets 21..25
	publishInBatches(t, sink, all[25:], 2)
	tl.Expect(t, Span(21, 30))
	tl.Stop(t, context.Canceled) // fails the test if anything more came
	if diff := Diff(all, tl.got); diff != "" {
		t.Errorf("Tail(0) across a gap of the live copy that the History fills (-want +got):\n%s", diff)
	}
	if diff := Diff(all, Replay(t, src, run, 0)); diff != "" {
		t.Errorf("Replay(0) afterwards (-want +got):\n%s", diff)
	}
}

// testHistoryCallbackErrorSource stops a replay and a tail with their
// callback's error at an event that only the History holds.
func testHistoryCallbackErrorSource(t *testing.T, newPair NewHistoryPair) {
	_, src, hist := newPair(t)
	run := RunID(t)
	archive(t, hist, Events(run, 1, 50)...)
	for name, read := range map[string]func(context.Context, string, uint64, func(progress.Event) error) error{
		"Replay": src.Replay, "Tail": src.Tail,
	} {
		stop := errors.New("sinktest: stop at 20")
		var got []uint64
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := read(ctx, run, 0, func(e progress.Event) error {
			got = append(got, e.Seq)
			if e.Seq == 20 {
				return stop
			}
			return nil
		})
		cancel()
		assert.ErrorIs(t, err, stop, "%s of a run only the History holds must return its callback's error", name)
		assert.Equal(t, Span(1, 20), got, "%s of a run only the History holds must stop delivering at the callback's error", name)
	}
}

// testHistoryLastEventSource checks the Source's LastEvent, if it has
// one, against what its History holds: "a Source counts what its History
// holds", whether the History holds a run's start, all of it, or more
// of it than the live copy.
func testHistoryLastEventSource(t *testing.T, newPair NewHistoryPair) {
	sink, src, hist := newPair(t)
	lr, ok := src.(progress.LastEventReader)
	if !ok {
		t.Skip("the source does not implement progress.LastEventReader")
	}
	const what = "the source's"
	run := RunID(t)
	all := Events(run, 1, 120)
	archive(t, hist, all[:100]...)
	assertLast(t, lr, what, run, &all[99], "of a run only the History holds (1..100)")
	publishInBatches(t, sink, all[94:], 9)
	assertLast(t, lr, what, run, &all[119], "of a run the History holds 1..100 of, the live copy 95..120")

	// A finished run that only the History holds.
	ended := RunID(t) + "-ended"
	events := Events(ended, 1, 30)
	events[29].Type = progress.RunFinished
	archiveInBatches(t, hist, events, 11)
	assertLast(t, lr, what, ended, &events[29], "of a finished run only the History holds")

	// The live copy holds the start, the History the whole run.
	whole := RunID(t) + "-whole"
	events = Events(whole, 1, 60)
	publish(t, sink, events[:20]...)
	archive(t, hist, events...)
	assertLast(t, lr, what, whole, &events[59], "of a run the live copy holds 1..20 of, the History 1..60")
}

// HeldPerReader measures what readers of a burst of events hold while
// their clients are slow: it publishes one event of a new run to sink,
// starts readers Tail calls on src, holds each in its callback at that
// event while a burst of burst more events is published, then at the
// burst's first event, and returns the heap that the burst added, per
// reader, measured after a GC while they are held there (the source's
// own copy of the burst included). It fails t unless every reader then
// gets the whole burst: at once, rather than wait, if a reader's Tail
// ends first, and if a reader does not get its next event within the
// kit's bound on each wait (15 s). It returns once every reader's Tail
// has returned, t failed or not, and 0 if the heap shrank; burst and
// readers must be at least 1.
// A source whose readers each copy the burst at once holds it per
// reader; one that reads it in small batches holds a batch.
func HeldPerReader(t testing.TB, sink progress.Sink, src progress.Source, readers, burst int) float64 {
	t.Helper()
	if readers < 1 || burst < 1 {
		t.Fatalf("sinktest: HeldPerReader with %d readers and a burst of %d: want at least 1 of each", readers, burst)
	}
	run := RunID(t)
	all := Events(run, 1, uint64(burst)+1)
	require.NoError(t, publishWithin(sink, all[0]))
	ctx, cancel := context.WithCancel(context.Background())
	hold1, hold2 := make(chan struct{}), make(chan struct{})
	release1 := sync.OnceFunc(func() { close(hold1) })
	release2 := sync.OnceFunc(func() { close(hold2) })
	at1, at2 := make(chan struct{}, readers), make(chan struct{}, readers)
	errEnd := errors.New("sinktest: end of the burst")
	done := make(chan error, readers)
	returned := 0 // the readers whose Tail returned, taken from done
	defer func() {
		// However HeldPerReader ends, t failed included: no reader is
		// left held, and each one's Tail has returned.
		release1()
		release2()
		cancel()
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for ; returned < readers; returned++ {
			select {
			case <-done:
			case <-timer.C:
				t.Errorf("%d of %d readers' Tail did not return within %v of its context's cancellation", readers-returned, readers, wait)
				return
			}
		}
	}()
	holdAt := func(at chan<- struct{}, hold <-chan struct{}) error {
		select {
		case at <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		select {
		case <-hold:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	for range readers {
		go func() {
			done <- src.Tail(ctx, run, 0, func(e progress.Event) error {
				switch e.Seq {
				case 1: // before the burst
					return holdAt(at1, hold1)
				case 2: // a slow client, at the start of the burst
					return holdAt(at2, hold2)
				case uint64(burst) + 1:
					return errEnd
				}
				return nil
			})
		}()
	}
	// arrive waits for every reader at at, failing t if a reader's Tail
	// ends first, or if a reader takes longer than wait.
	arrive := func(at <-chan struct{}, seq uint64) {
		t.Helper()
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for i := range readers {
			select {
			case <-at:
				timer.Reset(wait)
			case err := <-done:
				returned++
				t.Fatalf("a reader's Tail ended before it got seq %d (%d of %d readers did): %v", seq, i, readers, err)
			case <-timer.C:
				t.Fatalf("%d of %d readers did not get seq %d within %v", readers-i, readers, seq, wait)
			}
		}
	}
	arrive(at1, 1)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	require.NoError(t, publishWithin(sink, all[1:]...))
	release1()
	arrive(at2, 2)
	// A heap that shrank meanwhile (something else freed more than the
	// burst added) counts as 0, rather than wrap around.
	perReader := float64(max(int64(heap())-int64(before), 0)) / float64(readers)
	release2()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for returned < readers {
		select {
		case err := <-done:
			returned++
			require.ErrorIs(t, err, errEnd, "a reader's Tail ended before the end of the burst")
			timer.Reset(wait)
		case <-timer.C:
			t.Fatalf("%d of %d readers did not receive the whole burst", readers-returned, readers)
		}
	}
	return perReader
}
