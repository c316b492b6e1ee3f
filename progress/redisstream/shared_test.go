package redisstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Many readers of a run without any event yet (not started, or unknown;
// many browser tabs, with or without a Last-Event-ID) cost Redis what one
// reader costs: the first replays the stream and starts the run's shared
// reader, and the others join that shared reader without a read of their
// own.
func TestReadersOfAnEmptyRunShareTheirReads(t *testing.T) {
	const readers = 20
	for _, after := range []uint64{0, 7} {
		t.Run(fmt.Sprint("after ", after), func(t *testing.T) {
			s, r := newStream(t, redisstream.Options{BlockTime: 50 * time.Millisecond})
			ctx, run := context.Background(), sinktest.RunID(t)
			cmds := testenv.CountCommands(r.Client)
			tls := []*sinktest.Tailer{sinktest.StartTail(t, s, run, after)}
			require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
			for range readers - 1 {
				tls = append(tls, sinktest.StartTail(t, s, run, after))
			}
			require.Eventually(t, func() bool { return s.Stats().Readers == readers }, 10*time.Second, time.Millisecond)
			all := sinktest.Events(run, 1, after+2)
			all[after+1].Type = progress.RunFinished
			require.NoError(t, s.Publish(ctx, all...))
			for _, tl := range tls {
				tl.Expect(t, sinktest.Span(after+1, after+2))
			}
			wantLookups := 0
			if after > 0 {
				wantLookups = 1 // the first reader looks for the run's end
			}
			assert.Equal(t, 1, cmds.Count("xrange"), "XRANGEs for %d readers of an empty run", readers)
			assert.Equal(t, wantLookups, cmds.Count("xrevrange"), "XREVRANGEs for %d readers of an empty run", readers)
			require.Eventually(t, func() bool { return s.Stats().Runs == 0 }, 10*time.Second, time.Millisecond,
				"the shared reader stops once every reader has the final event")
			for _, tl := range tls {
				tl.Stop(t, context.Canceled)
			}
		})
	}
}

// While a reader follows the run's shared reader, LastEvent is answered by
// it, without a command, and as Redis would answer, once it holds an
// event: it starts after the events its first reader replayed.
func TestLastEventFromTheSharedReader(t *testing.T) {
	s, r := newStream(t, redisstream.Options{BlockTime: 50 * time.Millisecond})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 6)
	all[5].Type = progress.RunFinished
	require.NoError(t, s.Publish(ctx, all[:3]...))
	tl := onShared(t, s, run, 3)
	cmds := testenv.CountCommands(r.Client)
	for i := 3; i <= 5; i++ {
		if i > 3 {
			require.NoError(t, s.Publish(ctx, all[i-1]))
			tl.Expect(t, []uint64{uint64(i)})
		}
		e, ok, err := s.LastEvent(ctx, run)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Empty(t, sinktest.Diff(all[i-1:i], []progress.Event{e}), "LastEvent after seq %d", i)
	}
	assert.Equal(t, 1, cmds.Count("xrevrange"), "XREVRANGEs while the shared reader runs: only before it holds an event")
	require.NoError(t, s.Publish(ctx, all[5]))
	tl.Expect(t, []uint64{6})
	require.Eventually(t, func() bool { return s.Stats().Runs == 0 }, 10*time.Second, time.Millisecond)
	e, ok, err := s.LastEvent(ctx, run)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Empty(t, sinktest.Diff(all[5:], []progress.Event{e}), "from Redis once the shared reader stopped")
	assert.Equal(t, 2, cmds.Count("xrevrange"))
	tl.Stop(t, context.Canceled)
}

// Redis loses a run's entries while many readers follow it (a restart
// without persistence; here the stream is deleted), and the run goes on
// in Redis past events that only the History has: the run's shared
// reader fills the gap from the History once, for all its readers,
// instead of each reader reading the History, which for a host's
// database is a query per browser tab at the moment Redis comes back.
func TestSharedReaderFillsAGapOnceForAllItsReaders(t *testing.T) {
	const readers = 20
	h := &countingHistory{MemoryHistory: progress.NewMemoryHistory()}
	s, r := newStream(t, redisstream.Options{History: h, BlockTime: 50 * time.Millisecond, HistoryPoll: time.Hour})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 20)
	all[19].Type = progress.RunFinished
	tls := followFromTheStart(t, s, h, all[:5], readers)
	// Seqs 6 and 7 reach both; then Redis loses the stream, 8..10
	// reach only the History, and 11..20 both again.
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[5:7]...))
	expectAll(t, tls, 6, 7)
	before := h.settled(t)
	require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err())
	require.NoError(t, h.Append(ctx, all[7:10]...))
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[10:]...))
	for _, tl := range tls {
		tl.Expect(t, sinktest.Span(8, 20))
	}
	assert.Equal(t, int64(1), h.settled(t)-before, "History reads to fill one gap for %d readers", readers)
	for _, tl := range tls {
		tl.Stop(t, context.Canceled)
	}
}

// A burst of entries (a Buffered sink's batch, a backlog after an outage)
// reaches every reader of the run through the shared reader's window;
// each reader copies what it delivers from there. Readers whose clients
// are slow, here blocked in their callback, must not each hold a copy of
// the whole burst meanwhile: memory per reader stays small, whatever the
// size of the burst.
func TestReadersOfABurstHoldLittleEach(t *testing.T) {
	const readers, burst = 100, 500
	s, _ := newStream(t, redisstream.Options{BlockTime: 50 * time.Millisecond})
	perReader := sinktest.HeldPerReader(t, s, s, readers, burst)
	t.Logf("%d readers held at the start of a burst of %d events: %.0f bytes each, the shared window included", readers, burst, perReader)
	assert.Less(t, perReader, 16e3, "bytes held per reader of a burst of %d events", burst)
}

// followFromTheStart publishes first to the History and to s, starts
// readers Tails of their run from its start, and returns them once each
// has every event of first and the run's shared reader runs.
func followFromTheStart(t *testing.T, s *redisstream.Stream, h progress.History, first []progress.Event, readers int) []*sinktest.Tailer {
	t.Helper()
	run := first[0].RunID
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(context.Background(), first...))
	var tls []*sinktest.Tailer
	for range readers {
		tls = append(tls, sinktest.StartTail(t, s, run, 0))
	}
	expectAll(t, tls, 1, first[len(first)-1].Seq)
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	return tls
}

// expectAll waits for each tailer to deliver the events from to to.
func expectAll(t *testing.T, tls []*sinktest.Tailer, from, to uint64) {
	t.Helper()
	for _, tl := range tls {
		tl.Expect(t, sinktest.Span(from, to))
	}
}

// heldHistory holds the History's reads after the Seq at until release
// is closed.
type heldHistory struct {
	*countingHistory
	at      uint64
	release chan struct{}
}

func (h *heldHistory) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	if after == h.at {
		select {
		case <-h.release:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return h.countingHistory.Replay(ctx, run, after, fn)
}

// A gap that, with the entries an XREAD read after it, is more than the
// shared reader's window holds: the shared reader used to merge it all
// and add it to the window, which then dropped the start of the gap just
// filled, below every reader, so that each reader read the History on
// its own (one read per browser tab, plus the wasted one). Now it adds a
// window's worth and reads the entries after it again: here, the window
// holds 8..23, and the next XREAD (25 and 26) finds the gap at 24, whose
// History read waits until every reader has 8..23.
func TestSharedReaderFillsAGapLongerThanItsWindow(t *testing.T) {
	const readers = 10
	h := &heldHistory{countingHistory: &countingHistory{MemoryHistory: progress.NewMemoryHistory()}, at: 23, release: make(chan struct{})}
	s, r := newStream(t, redisstream.Options{History: h, BlockTime: 50 * time.Millisecond, HistoryPoll: time.Hour, HubBuffer: 16})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 26)
	all[25].Type = progress.RunFinished
	tls := followFromTheStart(t, s, h, all[:5], readers)
	// Seqs 6 and 7 come through the shared reader's XREAD, after its
	// first poll of the History.
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[5:7]...))
	expectAll(t, tls, 6, 7)
	before := h.settled(t)
	// Redis loses the stream; 8..20 and 24 reach only the History; the
	// others reach Redis too, at once (one transaction), so that one XREAD
	// reads 21..23 and 25..26.
	require.NoError(t, h.Append(ctx, all[7:]...))
	_, err := r.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.Key(run))
		for _, e := range all[20:] {
			if e.Seq == 24 {
				continue
			}
			p.XAdd(ctx, &redis.XAddArgs{Stream: s.Key(run), ID: fmt.Sprintf("0-%d", e.Seq), Values: []any{"event", mustJSON(t, e)}})
		}
		return nil
	})
	require.NoError(t, err)
	for _, tl := range tls {
		tl.Expect(t, sinktest.Span(8, 23))
	}
	close(h.release)
	for _, tl := range tls {
		tl.Expect(t, sinktest.Span(24, 26))
	}
	assert.Equal(t, int64(2), h.settled(t)-before, "History reads to fill a gap of a window's worth and one more for %d readers", readers)
	for _, tl := range tls {
		tl.Stop(t, context.Canceled)
	}
}

// The entries that the shared reader reads again after filling a window's
// worth of a gap are not counted again: a corrupt one among them is one
// entry skipped, counted (and logged) once, however many times the
// reader reads past it.
func TestSharedReaderCountsACorruptEntryOnce(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, r := newStream(t, redisstream.Options{History: h, BlockTime: 50 * time.Millisecond, HistoryPoll: time.Hour, HubBuffer: 4})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 11)
	all[10].Type = progress.RunFinished
	both := progress.NewFanout(progress.NewArchive(h), s)
	require.NoError(t, both.Publish(ctx, all[:2]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 2))
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, both.Publish(ctx, all[2]))
	tl.Expect(t, sinktest.Span(3, 3)) // through the shared reader's XREAD

	// 4..7 reach only the History; 8, 9 and 11 Redis too, with a corrupt
	// entry at 10, in one XREAD's reach: the shared reader fills 4..7,
	// a window's worth, and reads 8..11 again.
	require.NoError(t, h.Append(ctx, all[3:]...))
	cmds := testenv.CountCommands(r.Client)
	_, err := r.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range all[7:] {
			data := mustJSON(t, e)
			if e.Seq == 10 {
				data = "not an event"
			}
			p.XAdd(ctx, &redis.XAddArgs{Stream: s.Key(run), ID: fmt.Sprintf("0-%d", e.Seq), Values: []any{"event", data}})
		}
		return nil
	})
	require.NoError(t, err)
	tl.Expect(t, sinktest.Span(4, 11))
	// A reader that falls behind the window (under load) reads Redis
	// itself, with XRANGE, and counts the entry again, rightly: each of
	// its reads may count it once more, the shared reader's may not.
	assert.LessOrEqual(t, s.Stats().Corrupt, uint64(1+cmds.Count("xrange")))
	assert.GreaterOrEqual(t, s.Stats().Corrupt, uint64(1))
	tl.Stop(t, nil)
}
