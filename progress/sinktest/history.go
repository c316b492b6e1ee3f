package sinktest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
)

// NewHistory returns a fresh History: an archive to check by itself,
// without a Source in front of it.
type NewHistory func(t *testing.T) progress.History

// History runs the conformance subtests of a [progress.History] itself
// (an archive such as progress.MemoryHistory or progress/pghistory's)
// against Histories from newHistory; see the package documentation. A
// History that implements [progress.LastEventReader] is checked for that
// too.
func History(t *testing.T, newHistory NewHistory) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, newHistory NewHistory)
	}{
		{"Order", testHistoryOrder},
		{"Duplicates", testHistoryDuplicates},
		{"ReplayAfter", testHistoryReplayAfter},
		{"UnknownRun", testHistoryUnknownRun},
		{"CallbackError", testHistoryCallbackError},
		{"Cancel", testHistoryCancel},
		{"InvalidEvent", testHistoryInvalidEvent},
		{"RunsIsolated", testHistoryRunsIsolated},
		{"Text", testHistoryText},
		{"AllFields", testHistoryAllFields},
		{"LastEvent", testHistoryLastEvent},
		{"Concurrent", testHistoryConcurrent},
		{"CallerOwnsEvents", testHistoryCallerOwnsEvents},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newHistory) })
	}
}

// shuffled returns a copy of events in an order fixed by seed.
func shuffled(events []progress.Event, seed uint64) []progress.Event {
	out := append([]progress.Event(nil), events...)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// archiveInBatches appends events in batches of the given sizes, cycling.
func archiveInBatches(t *testing.T, h progress.History, events []progress.Event, sizes ...int) {
	t.Helper()
	for i := 0; len(events) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(events))
		archive(t, h, events[:n]...)
		events = events[n:]
	}
}

// replayHistory collects h.Replay(runID, after).
func replayHistory(t *testing.T, h progress.History, runID string, after uint64) []progress.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []progress.Event
	err := h.Replay(ctx, runID, after, func(e progress.Event) error {
		got = append(got, e)
		return nil
	})
	require.NoError(t, err, "History.Replay(%q, %d)", runID, after)
	return got
}

// testHistoryOrder appends a run out of order, in batches of several
// sizes, and replays it in Seq order, field for field, across pages of
// any size up to 1,000.
func testHistoryOrder(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	want := Events(run, 1, 1200)
	archiveInBatches(t, h, shuffled(want, 1), 1, 64, 7, 300, 2)
	if diff := Diff(want, replayHistory(t, h, run, 0)); diff != "" {
		t.Fatalf("Replay(0) after appending 1..1200 out of order (-want +got):\n%s", diff)
	}
}

// testHistoryDuplicates appends Seqs that are already held, within one
// call and across calls, with other contents: the first one stored stays.
func testHistoryDuplicates(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	all := Events(run, 1, 20)
	changed := func(events ...progress.Event) []progress.Event {
		out := append([]progress.Event(nil), events...)
		for i := range out {
			out[i].Message = "a duplicate, to be ignored"
			out[i].Done = -1
		}
		return out
	}
	archive(t, h, all[:10]...)
	archive(t, h, all[:10]...)                                        // a retried batch
	archive(t, h, changed(all[3], all[9])...)                         // held Seqs, other contents
	archive(t, h, append(all[10:15:15], changed(all[12])...)...)      // the same Seq twice in one call
	archive(t, h, append(all[15:20:20], changed(all[4:16]...)...)...) // new and held in one call
	archive(t, h, all[19], all[19], all[19])
	if diff := Diff(all, replayHistory(t, h, run, 0)); diff != "" {
		t.Fatalf("Replay(0) after duplicate appends (-want +got):\n%s", diff)
	}
}

func testHistoryReplayAfter(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	all := Events(run, 1, 1100)
	archiveInBatches(t, h, all, 500)
	tests := []struct {
		after uint64
		want  []uint64
	}{
		{0, Span(1, 1100)},
		{1, Span(2, 1100)},
		{499, Span(500, 1100)},
		{500, Span(501, 1100)},
		{1000, Span(1001, 1100)},
		{1099, []uint64{1100}},
		{1100, nil},
		{1 << 40, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("after=", tt.after), func(t *testing.T) {
			got := replayHistory(t, h, run, tt.after)
			if diff := cmp.Diff(tt.want, Seqs(got)); diff != "" {
				t.Errorf("Replay(%d) seqs (-want +got):\n%s", tt.after, diff)
			}
			if len(got) > 0 {
				assert.Empty(t, Diff(all[tt.after:], got), "Replay(%d) events differ from those appended", tt.after)
			}
		})
	}
	// A run with a gap replays what it holds, gap and all.
	gap := RunID(t) + "-gap"
	events := Events(gap, 1, 10)
	archive(t, h, append(events[:3:3], events[6:]...)...)
	assert.Equal(t, []uint64{2, 3, 7, 8, 9, 10}, Seqs(replayHistory(t, h, gap, 1)), "Replay(1) of a run without 4..6")
	assert.Equal(t, []uint64{7, 8, 9, 10}, Seqs(replayHistory(t, h, gap, 4)), "Replay(4) of a run without 4..6")
}

func testHistoryUnknownRun(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	archive(t, h, Events(run, 1, 5)...)
	for _, other := range []string{RunID(t) + "-never", run + "x", run[:len(run)-1], strings.ToUpper(run)} {
		assert.Empty(t, replayHistory(t, h, other, 0), "Replay of run %q, never appended", other)
	}
}

// testHistoryCallbackError stops a replay that spans several pages.
func testHistoryCallbackError(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	archiveInBatches(t, h, Events(run, 1, 1200), 400)
	for _, at := range []uint64{1, 5, 700, 1200} {
		stop := fmt.Errorf("sinktest: stop at %d", at)
		var got []uint64
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := h.Replay(ctx, run, 0, func(e progress.Event) error {
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

func testHistoryCancel(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	archiveInBatches(t, h, Events(run, 1, 1200), 600)
	cause := errors.New("sinktest: reader left")

	// Already cancelled: nothing is delivered.
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	var n int
	err := h.Replay(ctx, run, 0, func(progress.Event) error { n++; return nil })
	assert.ErrorIs(t, err, cause, "Replay with a cancelled context must return context.Cause")
	assert.Zero(t, n, "Replay with a cancelled context delivered events")

	// Cancelled from the callback: the replay stops, with the cause, at
	// the latest at the end of the page it read (however large: a History
	// may read a run at once).
	ctx, cancel = context.WithCancelCause(context.Background())
	defer cancel(nil)
	err = h.Replay(ctx, run, 0, func(e progress.Event) error {
		if e.Seq == 2 {
			cancel(cause)
		}
		return nil
	})
	assert.ErrorIs(t, err, cause, "Replay cancelled from its callback must return context.Cause")
}

// testHistoryInvalidEvent checks that an invalid event fails the whole
// call, with nothing stored, whatever its place in the call.
func testHistoryInvalidEvent(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	valid := Events(run, 1, 3)
	tests := []struct {
		name   string
		events []progress.Event
	}{
		{"seq 0", []progress.Event{{RunID: run, Seq: 0, Type: progress.RunStarted}}},
		{"no run ID", []progress.Event{{Seq: 1, Type: progress.RunStarted}}},
		{"valid then invalid", append(valid[:2:2], progress.Event{RunID: run, Seq: 0})},
		{"invalid then valid", append([]progress.Event{{Seq: 4}}, valid...)},
		{"time past the year 9999", append(valid[:1:1], progress.Event{RunID: run, Seq: 2, Type: progress.Message,
			Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})},
	}
	for _, tt := range tests {
		err := h.Append(ctx, tt.events...)
		assert.ErrorIs(t, err, progress.ErrInvalidEvent, tt.name)
	}
	assert.Empty(t, replayHistory(t, h, run, 0), "a refused call must store nothing")
	if lr, ok := h.(progress.LastEventReader); ok {
		_, found, err := lr.LastEvent(ctx, run)
		require.NoError(t, err)
		assert.False(t, found, "LastEvent after refused calls only")
	}
	require.NoError(t, h.Append(ctx), "Append of no events")
}

// testHistoryRunsIsolated appends runs in one call, among them runs whose
// IDs are prefixes of one another.
func testHistoryRunsIsolated(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	base := RunID(t)
	runs := []string{base, base + "-a", base + "-a-b", base + "%", base + "_"}
	var mixed []progress.Event
	want := make(map[string][]progress.Event)
	for i, run := range runs {
		want[run] = Events(run, 1, uint64(10+i))
	}
	for s := range 15 {
		for _, run := range runs {
			if s < len(want[run]) {
				mixed = append(mixed, want[run][s])
			}
		}
	}
	archiveInBatches(t, h, mixed, 7, 100)
	for _, run := range runs {
		assert.Empty(t, Diff(want[run], replayHistory(t, h, run, 0)), "run %q", run)
	}
}

// texts are the kinds of free text a backend must keep as they are: line
// breaks, quotes, HTML, control characters and NUL, non-ASCII letters and
// emoji, spaces at either end, and 64 KiB of it.
var texts = []string{
	"line 1\nline 2\r\n\ttabbed",
	`"quoted" \backslash\ 'single'`,
	"<b>bold</b> & <script>alert(1)</script>",
	"nul \x00 in the middle, and \x01\x1f\x7f",
	"Grüße, 東京, ✓, 🎬",
	"\u2028\u2029 line and paragraph separators",
	" \t spaces at either end \n ",
	strings.Repeat("0123456789abcdef", 4096),
}

// textEvents returns an event of runID for each of texts, from Seq 1 on,
// with the text in each of its free-text fields.
func textEvents(runID string) []progress.Event {
	events := Events(runID, 1, uint64(len(texts)))
	for i, s := range texts {
		events[i].Message, events[i].Error, events[i].Reasoning = s, s, s
		events[i].Node, events[i].Kind, events[i].GraphKey, events[i].PreviewURL = s, s, s, s
		events[i].BatchKey = s
		events[i].ResumedBy = s
	}
	return events
}

// testHistoryText checks that free text comes back as it went in (see
// texts).
func testHistoryText(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	events := textEvents(run)
	archive(t, h, events...)
	if diff := Diff(events, replayHistory(t, h, run, 0)); diff != "" {
		t.Fatalf("Replay(0) of events with every kind of text (-want +got):\n%s", diff)
	}
}

// testHistoryAllFields appends an event of every type with every field
// set, ResumedBy included: a replay returns each field for field.
func testHistoryAllFields(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	want := append(Events(run, 1, 5), AllFields(run, 6)...)
	archive(t, h, shuffled(want, 3)...)
	if diff := Diff(want, replayHistory(t, h, run, 0)); diff != "" {
		t.Fatalf("Replay(0) of events of every type with every field set (-want +got):\n%s", diff)
	}
}

func testHistoryLastEvent(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	lr, ok := h.(progress.LastEventReader)
	if !ok {
		t.Skip("the History does not implement progress.LastEventReader")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	last := func(run string) (progress.Event, bool) {
		t.Helper()
		e, found, err := lr.LastEvent(ctx, run)
		require.NoError(t, err, "LastEvent(%q)", run)
		return e, found
	}
	run := RunID(t)
	_, found := last(run)
	assert.False(t, found, "LastEvent of a run never appended")

	all := Events(run, 1, 700)
	all[699].Type = progress.RunFinished
	archive(t, h, all[600:650]...)
	archive(t, h, all[:10]...)
	e, found := last(run)
	require.True(t, found, "LastEvent of a run with events")
	assert.Empty(t, Diff([]progress.Event{all[649]}, []progress.Event{e}), "LastEvent after out-of-order appends")

	archiveInBatches(t, h, shuffled(all, 2), 128)
	e, found = last(run)
	require.True(t, found)
	assert.Empty(t, Diff([]progress.Event{all[699]}, []progress.Event{e}), "LastEvent once the run is whole")

	dup := all[699]
	dup.Message = "a duplicate, to be ignored"
	archive(t, h, dup)
	e, _ = last(run)
	assert.Empty(t, Diff([]progress.Event{all[699]}, []progress.Event{e}), "LastEvent after a duplicate of the last event")

	// Runs whose IDs start with run's, with higher Seqs: a lookup by a
	// prefix (a LIKE) finds them.
	archive(t, h, Events(run+"-other", 1, 800)...)
	archive(t, h, Events(run+"%", 1, 900)...)
	e, _ = last(run)
	assert.Empty(t, Diff([]progress.Event{all[699]}, []progress.Event{e}), "LastEvent after runs whose IDs start with its own got more events")
	_, found = last(run[:len(run)-1])
	assert.False(t, found, "LastEvent of a run never appended, whose ID prefixes others'")
	_, found = last(run + "-oth")
	assert.False(t, found, "LastEvent of a run never appended, whose ID prefixes another's")
}

// testHistoryConcurrent appends one run from several goroutines at once,
// each a share of the run in batches, with overlaps: every event is held
// once.
func testHistoryConcurrent(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	const writers, total = 8, 1600
	all := Events(run, 1, total)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			// Writer w takes every writers-th batch of 16, and the
			// batch after it again, as a retry would.
			for b := w; b*16 < total; b += writers {
				lo, hi := b*16, min(b*16+32, total)
				ctx, cancel := context.WithTimeout(context.Background(), wait) // each call: see publishWithin
				err := h.Append(ctx, shuffled(all[lo:hi], uint64(b))...)
				cancel()
				if err != nil {
					errs[w] = fmt.Errorf("writer %d: append seq %d..%d: %w", w, lo+1, hi, err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	if diff := Diff(all, replayHistory(t, h, run, 0)); diff != "" {
		t.Fatalf("Replay(0) after concurrent appends (-want +got):\n%s", diff)
	}
}

// testHistoryCallerOwnsEvents checks that a History neither changes the
// events slice it is given (it may get them out of order, and must not
// sort them in place) nor reads it once Append has returned: an Archive
// behind a progress.Buffered is handed the Buffered's batch, which the
// Buffered reuses for its next one.
func testHistoryCallerOwnsEvents(t *testing.T, newHistory NewHistory) {
	h := newHistory(t)
	run := RunID(t)
	all := Events(run, 1, 40)
	batch := shuffled(all[:20], 5)
	given := slices.Clone(batch)
	archive(t, h, batch...)
	if diff := Diff(given, batch); diff != "" {
		t.Errorf("Append changed the caller's events (-before +after):\n%s", diff)
	}
	copy(batch, shuffled(all[20:], 6)) // the next batch, in the same slice
	given = slices.Clone(batch)
	archive(t, h, batch...)
	if diff := Diff(given, batch); diff != "" {
		t.Errorf("Append changed the caller's events (-before +after):\n%s", diff)
	}
	for i := range batch { // and the slice reused for something else
		batch[i].Message, batch[i].Done = "overwritten by the caller after Append returned", -1
	}
	if diff := Diff(all, replayHistory(t, h, run, 0)); diff != "" {
		t.Fatalf("Replay(0) after the caller reused the slices it appended (-want +got):\n%s", diff)
	}
	if lr, ok := h.(progress.LastEventReader); ok {
		assertLast(t, lr, "the History's", run, &all[39], "after the caller reused the slices it appended")
	}
}
