package redisstream_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// readerCtx marks the context of a reader started through marked: the
// History tells its reads apart from the run's shared reader's.
type readerCtx struct{}

// marked is a Source whose Tail calls mark their context (readerCtx).
type marked struct{ *redisstream.Stream }

func (m marked) Tail(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	return m.Stream.Tail(context.WithValue(ctx, readerCtx{}, true), runID, after, fn)
}

// view is a History that counts the reads after seq of readers started
// through marked, and, until fresh is set, shows those readers only the
// events up to readerTop and the run's shared reader only those up to
// hubTop (0: all): its answers are a moment old.
type view struct {
	progress.History
	seq               uint64
	n                 atomic.Int64
	readerTop, hubTop uint64
	fresh             atomic.Bool
}

func (h *view) Replay(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	reader := ctx.Value(readerCtx{}) != nil
	if reader && after == h.seq {
		defer h.n.Add(1)
	}
	top := h.hubTop
	if reader {
		top = h.readerTop
	}
	if top == 0 || h.fresh.Load() {
		return h.History.Replay(ctx, runID, after, fn)
	}
	return h.History.Replay(ctx, runID, after, func(e progress.Event) error {
		if e.Seq > top {
			return nil
		}
		return fn(e)
	})
}

// A reader that resumes inside a gap in the live entries (its
// Last-Event-ID is 6, which it got from the History, between 5 and 8,
// two entries of the stream) waits for the rest of the gap (7) as a
// reader at the gap does, rather than skip it at once: while the run's
// shared reader holds the gap, not having seen the History's 6 yet, and
// as the run's first reader, which the shared reader then holds the gap
// for.
func TestReaderInsideALiveGapWaitsForItsRest(t *testing.T) {
	for _, held := range []bool{true, false} {
		t.Run(fmt.Sprintf("held=%v", held), func(t *testing.T) {
			mem := progress.NewMemoryHistory()
			h := &view{History: mem, seq: 6, readerTop: 6, hubTop: 5}
			asks := &replaysAfter{History: h, seq: 5}
			s, _ := newStream(t, redisstream.Options{History: asks, HistoryPoll: time.Hour, RetryDelay: 20 * time.Millisecond})
			ctx := context.Background()
			run := sinktest.RunID(t)
			all := recent(sinktest.Events(run, 1, 10))
			require.NoError(t, progress.NewFanout(progress.NewArchive(mem), s).Publish(ctx, all[:5]...))
			var below *sinktest.Tailer
			if held {
				below = sinktest.StartTail(t, s, run, 0)
				below.Expect(t, sinktest.Span(1, 5))
				require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
				asks.n.Store(0)
			}
			require.NoError(t, s.Publish(ctx, all[7:]...))
			if held {
				require.Eventually(t, func() bool { return asks.n.Load() >= 2 }, 10*time.Second, time.Millisecond,
					"the shared reader holds the entries after 5")
			}
			require.NoError(t, mem.Append(ctx, all[5]))
			inside := sinktest.StartTail(t, marked{s}, run, 6)
			// It asked the History after 6 (for 7, which it lacks)
			// twice: it decided whether to wait, and skipped 7 if not.
			require.Eventually(t, func() bool { return h.n.Load() >= 2 }, 10*time.Second, time.Millisecond)
			require.NoError(t, mem.Append(ctx, all[6:]...))
			h.fresh.Store(true)
			inside.Expect(t, sinktest.Span(7, 10))
			inside.Stop(t, context.Canceled)
			if held {
				below.Expect(t, sinktest.Span(6, 10))
				below.Stop(t, context.Canceled)
			}
			assert.Zero(t, s.Stats().Skipped)
		})
	}
}

// When the reader that the run's shared reader held a gap for leaves
// while another reader, past the gap, follows the run, the shared
// reader does not pass over the gap at once: a browser that reconnects
// at the gap a moment later waits for the History to fill it, as it
// would had no other reader followed the run.
func TestHoldOutlivesItsReaderBesideAReaderPastIt(t *testing.T) {
	x := holdingRecent(t)
	past := sinktest.StartTail(t, x.s, x.run, 7)
	past.Expect(t, sinktest.Span(8, 10))
	x.tl.Stop(t, context.Canceled)
	// The shared reader asks the History again with no reader below the
	// gap.
	n := x.h.n.Load()
	require.Eventually(t, func() bool { return x.h.n.Load() > n+1 }, 10*time.Second, time.Millisecond,
		"the shared reader asks the History again for the gap (it passed over it if not)")
	back := sinktest.StartTail(t, x.s, x.run, 5)
	require.NoError(t, x.mem.Append(context.Background(), x.all[5:]...))
	back.Expect(t, sinktest.Span(6, 10))
	back.Stop(t, context.Canceled)
	past.Stop(t, context.Canceled)
	assert.Zero(t, x.s.Stats().Skipped)
}

// holdingRecent is holding(t, time.Hour, 10, 10) with events whose Time
// is now.
func holdingRecent(t *testing.T) *hold {
	t.Helper()
	mem := progress.NewMemoryHistory()
	h := &replaysAfter{History: mem, seq: 5}
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: time.Hour, RetryDelay: 20 * time.Millisecond})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := recent(sinktest.Events(run, 1, 10))
	require.NoError(t, progress.NewFanout(progress.NewArchive(mem), s).Publish(ctx, all[:5]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 5))
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	h.n.Store(0)
	require.NoError(t, s.Publish(ctx, all[7:]...))
	require.Eventually(t, func() bool { return h.n.Load() >= 2 }, 10*time.Second, time.Millisecond)
	waitHeldThrough(t, s, run, 10)
	return &hold{s: s, h: h, mem: mem, run: run, all: all, tl: tl}
}

// A reader whose replay stops at a gap in the live entries that the
// History does not fill yet, below the window of the run's shared
// reader (which started above the gap, for a reader that resumed past
// it), neither waits for the run's next event nor skips the entries
// after the gap that Redis holds: it gets the gap's events once the
// History has them, and the entries after it from Redis.
func TestReaderAtALiveGapBelowTheSharedReader(t *testing.T) {
	mem := progress.NewMemoryHistory()
	h := &view{History: mem, seq: 5}
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: time.Hour, RetryDelay: 20 * time.Millisecond})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := recent(sinktest.Events(run, 1, 12))
	require.NoError(t, progress.NewFanout(progress.NewArchive(mem), s).Publish(ctx, all[:5]...))
	require.NoError(t, s.Publish(ctx, all[7:10]...))
	ahead := sinktest.StartTail(t, s, run, 10)
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	below := sinktest.StartTail(t, marked{s}, run, 0)
	below.Expect(t, sinktest.Span(1, 5))
	// It asked the History after 5 in its replay and again as it
	// followed the shared reader: it waits at the gap.
	require.Eventually(t, func() bool { return h.n.Load() >= 4 }, 10*time.Second, time.Millisecond)
	require.NoError(t, mem.Append(ctx, all[5:7]...))
	below.Expect(t, sinktest.Span(6, 10))
	require.NoError(t, s.Publish(ctx, all[10:]...))
	below.Expect(t, sinktest.Span(11, 12))
	ahead.Expect(t, sinktest.Span(11, 12))
	below.Stop(t, context.Canceled)
	ahead.Stop(t, context.Canceled)
	assert.Zero(t, s.Stats().Skipped)
}

// The reader of TestReaderAtALiveGapBelowTheSharedReader waits for the
// History up to HistoryPoll by its own clock, not by the events' Time: a
// publisher whose clock is an hour ahead does not make it wait an hour
// for a gap that the History never fills. It then passes over the gap.
func TestReaderAtALiveGapBelowTheSharedReaderWithSkewedTimes(t *testing.T) {
	mem := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: mem, HistoryPoll: 200 * time.Millisecond, RetryDelay: 20 * time.Millisecond})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 12)
	for i := range all {
		all[i].Time = time.Now().Add(time.Hour)
	}
	require.NoError(t, progress.NewFanout(progress.NewArchive(mem), s).Publish(ctx, all[:5]...))
	require.NoError(t, s.Publish(ctx, all[7:10]...))
	ahead := sinktest.StartTail(t, s, run, 10)
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	below := sinktest.StartTail(t, s, run, 0)
	below.Expect(t, []uint64{1, 2, 3, 4, 5, 8, 9, 10})
	require.NoError(t, s.Publish(ctx, all[10:]...))
	below.Expect(t, sinktest.Span(11, 12))
	ahead.Expect(t, sinktest.Span(11, 12))
	below.Stop(t, context.Canceled)
	ahead.Stop(t, context.Canceled)
	assert.Equal(t, uint64(2), s.Stats().Skipped)
}

// A hold that outlives its last reader (for a browser that reconnects at
// the gap) ends within HistoryPoll also when the entries after the gap
// are gone from the stream (it expired, or Redis restarted without
// persistence): the run's shared reader stops, rather than read the
// empty stream until Close.
func TestIdleHoldEndsWhenTheStreamIsGone(t *testing.T) {
	x := holdingOn(t, redisstream.Options{HistoryPoll: time.Second}, recent(sinktest.Events(sinktest.RunID(t), 1, 10)), 10)
	x.tl.Stop(t, context.Canceled)
	require.NoError(t, x.r.Client.Del(context.Background(), x.s.Key(x.run)).Err())
	require.Eventually(t, func() bool { return x.s.Stats().Runs == 0 }, 10*time.Second, 10*time.Millisecond,
		"the run's shared reader stops once its hold has lasted HistoryPoll")
}

// The same while Redis is down: the run's shared reader, with no reader
// and its hold over, stops rather than retry Redis until it comes back.
func TestIdleHoldEndsWhileRedisIsDown(t *testing.T) {
	var h *replaysAfter
	p := newPrivateStream(t, func(o *redisstream.Options) {
		h = &replaysAfter{History: o.History, seq: 5}
		o.History, o.HistoryPoll = h, time.Second
	})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := recent(sinktest.Events(run, 1, 10))
	require.NoError(t, progress.NewFanout(progress.NewArchive(p.history), p.stream).Publish(ctx, all[:5]...))
	tl := sinktest.StartTail(t, p.stream, run, 0)
	tl.Expect(t, sinktest.Span(1, 5))
	require.Eventually(t, func() bool { return p.stream.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	h.n.Store(0)
	require.NoError(t, p.stream.Publish(ctx, all[7:]...))
	require.Eventually(t, func() bool { return h.n.Load() >= 2 }, 10*time.Second, time.Millisecond)
	tl.Stop(t, context.Canceled)
	p.server.Kill()
	require.Eventually(t, func() bool { return p.stream.Stats().Runs == 0 }, 10*time.Second, 10*time.Millisecond,
		"the run's shared reader stops once its hold has lasted HistoryPoll")
}

// A reader at a held gap whose entries after it are then gone from the
// stream gets the held entries once the hold has lasted HistoryPoll, the
// gap skipped, rather than wait for good for a History that lacks
// everything after the gap.
func TestReaderAtAHoldWhoseStreamIsGone(t *testing.T) {
	x := holdingOn(t, redisstream.Options{HistoryPoll: time.Second}, recent(sinktest.Events(sinktest.RunID(t), 1, 10)), 10)
	require.NoError(t, x.r.Client.Del(context.Background(), x.s.Key(x.run)).Err())
	x.tl.Expect(t, sinktest.Span(8, 10))
	x.tl.Stop(t, context.Canceled)
	assert.Equal(t, uint64(2), x.s.Stats().Skipped)
}

// A reader past a held gap gets the live entries also when the run's
// shared reader holds fewer of the entries after the gap than it read
// (a HubBuffer below PageSize: it holds a window's worth): past what it
// holds, the reader reads on from Redis itself, rather than wait for the
// hold to end (HistoryPoll, an hour here).
func TestReaderPastAHeldGapBeyondASmallWindow(t *testing.T) {
	x := holdingOn(t, redisstream.Options{HistoryPoll: time.Hour, PageSize: 20, HubBuffer: 4},
		recent(sinktest.Events(sinktest.RunID(t), 1, 24)), 20)
	pastAHeldGap(t, x, 10)
}

// pastAHeldGap checks, on hold x of 24 events (8 to 20 in Redis), that a
// reader from seq past, above the gap, gets the entries after it at once,
// 21 to 24 as they come, and the hold's tail all of them once the
// History has the gap's.
func pastAHeldGap(t *testing.T, x *hold, past uint64) {
	t.Helper()
	ctx := context.Background()
	tl := sinktest.StartTail(t, x.s, x.run, past)
	tl.Expect(t, sinktest.Span(past+1, 20))
	require.NoError(t, x.s.Publish(ctx, x.all[20:]...))
	tl.Expect(t, sinktest.Span(21, 24))
	require.NoError(t, x.mem.Append(ctx, x.all[5:]...))
	x.tl.Expect(t, sinktest.Span(6, 24))
	tl.Stop(t, context.Canceled)
	x.tl.Stop(t, context.Canceled)
	assert.Zero(t, x.s.Stats().Skipped)
}

// The run's first events that missed Redis (it was down when the run
// started: they went to the Buffered's fallback) while the History, a
// moment behind, lacks them yet, are a gap below the stream's first
// entry that trimming did not leave: a reader from the run's start waits
// for the History to fill it, as at a gap between two entries, rather
// than skip those events for good.
func TestReaderWaitsForTheRunsFirstEventsThatMissedRedis(t *testing.T) {
	mem := progress.NewMemoryHistory()
	h := &view{History: mem, seq: 0}
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: time.Hour, RetryDelay: 20 * time.Millisecond})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := recent(sinktest.Events(run, 1, 10))
	require.NoError(t, s.Publish(ctx, all[3:]...))
	tl := sinktest.StartTail(t, marked{s}, run, 0)
	// It asked the History for the run's start: it skipped 1 to 3 then
	// if it does not wait.
	require.Eventually(t, func() bool { return h.n.Load() >= 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, mem.Append(ctx, all...))
	tl.Expect(t, sinktest.Span(1, 10))
	tl.Stop(t, context.Canceled)
	assert.Zero(t, s.Stats().Skipped)
}

// A gap below the stream's first entry that trimming left is not waited
// for, young as its entries are: the reader skips at once what the
// History lacks.
func TestReaderDoesNotWaitForAYoungTrimmedGap(t *testing.T) {
	s, r := newStream(t, redisstream.Options{History: progress.NewMemoryHistory(), HistoryPoll: time.Hour})
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, recent(sinktest.Events(run, 1, 10))...))
	require.NoError(t, r.Client.XTrimMinID(ctx, s.Key(run), "0-4").Err())
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(4, 10))
	tl.Stop(t, context.Canceled)
	assert.Equal(t, uint64(3), s.Stats().Skipped)
}
