package redisstream_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// replaysAfter is a History that counts its replays after one Seq.
type replaysAfter struct {
	progress.History
	seq uint64
	n   atomic.Int64
}

func (h *replaysAfter) Replay(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	if after == h.seq {
		h.n.Add(1)
	}
	return h.History.Replay(ctx, runID, after, fn)
}

// hold is a run whose shared reader holds the live entries after a gap:
// events 1 to 5 reached Redis and the History, a tail from 0 (tl) got
// them, 6 and 7 reached neither, and 8 to up reached Redis alone; the
// History h, asked after 5 twice since, lacks 6 and 7 until the test
// appends them to mem.
type hold struct {
	s   *redisstream.Stream
	r   *testenv.Redis
	h   *replaysAfter
	mem *progress.MemoryHistory
	run string
	all []progress.Event // 1 to n
	tl  *sinktest.Tailer
}

// holding returns a hold on a new Stream whose HistoryPoll is poll, of a
// run of n events, 8 to up of which reached Redis.
func holding(t *testing.T, poll time.Duration, n uint64, up int) *hold {
	t.Helper()
	return holdingOn(t, redisstream.Options{HistoryPoll: poll}, sinktest.Events(sinktest.RunID(t), 1, n), up)
}

// holdingOn returns a hold on a new Stream made with o (its History the
// hold's; its RetryDelay 20ms unless set), of the run of events all (1
// to n), 8 to up of which reached Redis.
func holdingOn(t *testing.T, o redisstream.Options, all []progress.Event, up int) *hold {
	t.Helper()
	mem := progress.NewMemoryHistory()
	h := &replaysAfter{History: mem, seq: 5}
	o.History = h
	if o.RetryDelay == 0 {
		o.RetryDelay = 20 * time.Millisecond
	}
	s, r := newStream(t, o)
	ctx := context.Background()
	run := all[0].RunID
	require.NoError(t, progress.NewFanout(progress.NewArchive(mem), s).Publish(ctx, all[:5]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 5))
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	h.n.Store(0)
	require.NoError(t, s.Publish(ctx, all[7:up]...))
	require.Eventually(t, func() bool { return h.n.Load() >= 2 }, 10*time.Second, time.Millisecond)
	waitHeldThrough(t, s, run, uint64(up))
	return &hold{s: s, r: r, h: h, mem: mem, run: run, all: all, tl: tl}
}

// waitHeldThrough waits until the run's shared reader holds the entries
// after a gap and has read the stream through seq (or a whole page of
// it). Two asks of the History do not say so: an XREAD may return while
// Publish is still adding its entries (the first alone, say), and the
// History's poll asks it too; a test that then changes the stream (it
// deletes it) found the shared reader holding less than it wrote.
func waitHeldThrough(t *testing.T, s *redisstream.Stream, run string, seq uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		held, read, full, _ := redisstream.HubRead(s, run)
		return held && (read >= seq || full)
	}, 10*time.Second, time.Millisecond, "the run's shared reader holds the entries through seq %d", seq)
}

// A reader that connects while the run's shared reader holds the live
// entries after a gap, waiting for a History behind Redis to fill it,
// waits with the readers that follow the run: it gets the gap's events
// once the History has them, in order, rather than read past the gap in
// Redis and skip them for good a moment before the History holds them.
func TestReaderConnectingDuringAHoldWaitsForIt(t *testing.T) {
	// 6 and 7 are not in Redis, nor yet in the History; 8 to 10 are in
	// Redis. The shared reader asks the History after 5 again and again:
	// it holds 8 to 10 for the follower.
	x := holding(t, time.Hour, 10, 10)
	late := sinktest.StartTail(t, x.s, x.run, 0)
	late.Expect(t, sinktest.Span(1, 5))
	require.NoError(t, x.mem.Append(context.Background(), x.all[5:]...))
	late.Expect(t, sinktest.Span(6, 10))
	x.tl.Expect(t, sinktest.Span(6, 10))
	late.Stop(t, context.Canceled)
	x.tl.Stop(t, context.Canceled)
	assert.Zero(t, x.s.Stats().Skipped)
}

// When the run's shared reader has waited HistoryPoll for the History to
// fill a gap, it passes over that gap alone: a later gap, whose entries
// reached Redis during the wait, is waited for in its turn, so that the
// History, a moment behind Redis, fills it rather than the readers skip
// it with the first.
func TestAHoldPassesOverItsGapAlone(t *testing.T) {
	// 6 and 7 are lost for good; 8 to 10 reach Redis (the History, which
	// would let the shared reader's poll pass over the gap, gets them
	// later).
	x := holding(t, 2*time.Second, 15, 10)
	ctx := context.Background()
	// During the wait for 6 and 7, 13 to 15 reach Redis, and 11 and 12
	// reach the History only once the wait is over.
	require.NoError(t, x.s.Publish(ctx, x.all[12:]...))
	x.tl.Expect(t, sinktest.Span(8, 10))
	require.NoError(t, x.mem.Append(ctx, x.all[10:]...))
	x.tl.Expect(t, sinktest.Span(11, 15))
	x.tl.Stop(t, context.Canceled)
	assert.Equal(t, uint64(2), x.s.Stats().Skipped)
}

// flakyHistory fails its replays while fail is set, and counts the
// replays after seq that it answers.
type flakyHistory struct {
	progress.History
	seq    uint64
	fail   atomic.Bool
	failed atomic.Int64
	n      atomic.Int64
}

func (h *flakyHistory) Replay(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	if h.fail.Load() {
		h.failed.Add(1)
		return errors.New("history down")
	}
	if after == h.seq {
		h.n.Add(1)
	}
	return h.History.Replay(ctx, runID, after, fn)
}

// A History that fails while the run's shared reader waits for it to
// fill a gap in the live entries does not end the wait: the readers do
// not get the entries after the gap to skip it on their own at the
// History's first answer, a moment before the History holds the gap's
// events.
func TestAHistoryOutageDoesNotEndAHold(t *testing.T) {
	mem := progress.NewMemoryHistory()
	h := &flakyHistory{History: mem, seq: 5}
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: time.Hour, RetryDelay: 20 * time.Millisecond})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 10)
	require.NoError(t, progress.NewFanout(progress.NewArchive(mem), s).Publish(ctx, all[:5]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 5))
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	h.fail.Store(true)
	require.NoError(t, s.Publish(ctx, all[7:]...))
	require.Eventually(t, func() bool { return h.failed.Load() >= 3 }, 10*time.Second, time.Millisecond)
	// The History answers again, without 6 and 7 yet; they come once it
	// has answered.
	h.n.Store(0)
	h.fail.Store(false)
	require.Eventually(t, func() bool { return h.n.Load() >= 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, mem.Append(ctx, all[5:7]...))
	tl.Expect(t, sinktest.Span(6, 10))
	tl.Stop(t, context.Canceled)
	assert.Zero(t, s.Stats().Skipped)
}

// Stats.Lag counts the entries that the run's shared reader holds after a
// gap, waiting for the History to fill it: its readers have yet to
// deliver them, for as long as HistoryPoll, and an operator sees them
// wait.
func TestLagCountsTheEntriesAHoldKeeps(t *testing.T) {
	x := holding(t, time.Hour, 10, 10)
	// Publish's pipeline writes 8, 9 and 10 one XADD at a time, and the
	// shared reader may read them in more than one XREAD: it holds all
	// three only once it has read 10.
	require.Eventually(t, func() bool { return x.s.Stats().Lag == 5 }, 10*time.Second, time.Millisecond,
		"10 read from Redis, 5 delivered: Lag is %d", x.s.Stats().Lag)
	require.NoError(t, x.mem.Append(context.Background(), x.all[5:7]...))
	x.tl.Expect(t, sinktest.Span(6, 10))
	x.tl.Stop(t, context.Canceled)
}

// A browser that was the only reader of its run, and reconnects while the
// run's shared reader held the live entries after a gap for it, waits
// for the History as it did before it left: the shared reader goes on
// holding, for no reader, until the History fills the gap or HistoryPoll
// passes, rather than stop with its last reader, which left the reader
// that reconnects to skip the gap at once.
func TestAReconnectDuringAHoldWaitsForIt(t *testing.T) {
	x := holding(t, time.Hour, 10, 10)
	x.tl.Stop(t, context.Canceled)

	again := sinktest.StartTail(t, x.s, x.run, 5) // the browser reconnects
	require.Eventually(t, func() bool { return x.s.Stats().Readers == 1 }, 10*time.Second, time.Millisecond)
	x.h.n.Store(0)
	require.Eventually(t, func() bool { return x.h.n.Load() >= 2 }, 10*time.Second, time.Millisecond)
	require.NoError(t, x.mem.Append(context.Background(), x.all[5:7]...))
	again.Expect(t, sinktest.Span(6, 10))
	again.Stop(t, context.Canceled)
	assert.Zero(t, x.s.Stats().Skipped)
}

// A shared reader that holds a gap for no reader stops once the History
// fills it: it outlives its last reader no longer than its hold.
func TestAHoldForNoReaderEnds(t *testing.T) {
	x := holding(t, time.Hour, 10, 10)
	x.tl.Stop(t, context.Canceled)
	require.NoError(t, x.mem.Append(context.Background(), x.all[5:7]...))
	require.Eventually(t, func() bool { return x.s.Stats().Runs == 0 }, 10*time.Second, time.Millisecond)
}
