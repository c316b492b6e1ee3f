package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A reader that finds, in its replay, a gap between two entries of the
// stream (Redis refused a batch, which went to the Buffered's fallback,
// and took the next) while no other reader follows the run waits for the
// History, a moment behind Redis, to fill it, as the readers that follow
// the run do: it does not skip the gap's events for good a moment before
// the History holds them.
func TestFirstReaderWaitsForALiveGap(t *testing.T) {
	for _, after := range []uint64{0, 3, 5} {
		t.Run("", func(t *testing.T) {
			mem := progress.NewMemoryHistory()
			h := &replaysAfter{History: mem, seq: 5}
			s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: time.Hour, RetryDelay: 20 * time.Millisecond})
			ctx := context.Background()
			run := sinktest.RunID(t)
			all := recent(sinktest.Events(run, 1, 10))
			require.NoError(t, progress.NewFanout(progress.NewArchive(mem), s).Publish(ctx, all[:5]...))
			require.NoError(t, s.Publish(ctx, all[7:]...))
			tl := sinktest.StartTail(t, s, run, after)
			tl.Expect(t, sinktest.Span(after+1, 5))
			require.Eventually(t, func() bool { return h.n.Load() >= 2 }, 10*time.Second, time.Millisecond,
				"the run's shared reader asks the History for 6 and 7 (it did not if the reader skipped them)")
			require.NoError(t, mem.Append(ctx, all[5:]...))
			tl.Expect(t, sinktest.Span(6, 10))
			tl.Stop(t, context.Canceled)
			assert.Zero(t, s.Stats().Skipped)
		})
	}
}

// A gap that does not start after an entry of the stream (the stream was
// trimmed, or lost with a Redis restart, below the reader) is not waited
// for: the reader skips what the History lacks at once.
func TestReaderDoesNotWaitForATrimmedGap(t *testing.T) {
	for _, after := range []uint64{0, 2} {
		t.Run("", func(t *testing.T) {
			s, _ := newStream(t, redisstream.Options{History: progress.NewMemoryHistory(), HistoryPoll: time.Hour})
			ctx := context.Background()
			run := sinktest.RunID(t)
			all := sinktest.Events(run, 1, 10)
			require.NoError(t, s.Publish(ctx, all[3:]...))
			tl := sinktest.StartTail(t, s, run, after)
			tl.Expect(t, sinktest.Span(4, 10))
			tl.Stop(t, context.Canceled)
			assert.Equal(t, 3-after, s.Stats().Skipped)
		})
	}
}

// A gap between two entries whose later event is older than HistoryPoll
// (a finished run whose History never got a batch that Redis refused)
// is not waited for: the History had its time to fill it, and each new
// reader would otherwise wait HistoryPoll at each such gap.
func TestReaderDoesNotWaitForAnOldGap(t *testing.T) {
	s, _ := newStream(t, redisstream.Options{History: progress.NewMemoryHistory(), HistoryPoll: time.Hour})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 10)
	old := time.Now().Add(-2 * time.Hour)
	for i := range all {
		all[i].Time = old
	}
	require.NoError(t, s.Publish(ctx, all[:5]...))
	require.NoError(t, s.Publish(ctx, all[7:]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, []uint64{1, 2, 3, 4, 5, 8, 9, 10})
	tl.Stop(t, context.Canceled)
	assert.Equal(t, uint64(2), s.Stats().Skipped)
}

// recent sets the Time of events to now: a reader waits for a gap in the
// live entries only if the event after it is younger than HistoryPoll.
func recent(events []progress.Event) []progress.Event {
	now := time.Now()
	for i := range events {
		events[i].Time = now
	}
	return events
}
