package redisstream_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A reader that jumps over events that the stream no longer has (trimmed,
// and no History) shows it while it reads, not once it ends: a browser
// follows a run for as long as the run goes on, and Stats.Skipped and the
// log are how an operator learns of the gap it was given.
func TestSkippedCountedWhileTheReaderFollows(t *testing.T) {
	var log testenv.LogBuffer
	s, r := newStream(t, redisstream.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 50)...))
	require.NoError(t, r.Client.XTrimMaxLen(ctx, s.Key(run), 10).Err())

	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(41, 50))
	assert.Equal(t, uint64(40), s.Stats().Skipped, "Stats.Skipped while the reader still follows the run")
	assert.Contains(t, log.String(), "skipped", "the gap is logged")
	tl.Stop(t, context.Canceled)
	assert.Equal(t, uint64(40), s.Stats().Skipped, "Stats.Skipped once the reader has left: counted once")
}

// In the production wiring the History is behind a progress.Buffered of
// its own, and may get events a moment after Redis got later ones: when
// Redis refused a batch (it went to the Buffered's fallback) and took
// the next, the run's shared reader finds a gap that the History cannot
// fill yet. Readers that follow the run get the missing events once the
// History has them, in order, rather than skip them for good while the
// History holds them a moment later; a gap that the History still lacks
// after HistoryPoll is passed over, and counted.
func TestFollowersWaitForAHistoryBehindRedis(t *testing.T) {
	tests := []struct {
		name     string
		archived bool // the History gets 6 and 7, 50 ms after Redis got 8
		want     []uint64
		skipped  uint64
	}{
		{"the History catches up", true, sinktest.Span(6, 10), 0},
		{"the History never has them", false, sinktest.Span(8, 10), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := progress.NewMemoryHistory()
			s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: 2 * time.Second, RetryDelay: 20 * time.Millisecond})
			ctx := context.Background()
			run := sinktest.RunID(t)
			all := sinktest.Events(run, 1, 10)
			require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[:5]...))
			tl := sinktest.StartTail(t, s, run, 0)
			tl.Expect(t, sinktest.Span(1, 5))
			require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
			// 6 and 7 never reach Redis; 8 to 10 do.
			require.NoError(t, s.Publish(ctx, all[7:]...))
			if tt.archived {
				time.Sleep(50 * time.Millisecond)
				require.NoError(t, h.Append(ctx, all[5:]...))
			} else {
				require.NoError(t, h.Append(ctx, all[7:]...))
			}
			tl.Expect(t, tt.want)
			tl.Stop(t, context.Canceled)
			assert.Equal(t, tt.skipped, s.Stats().Skipped)
		})
	}
}

// The run's shared reader waits for the History to fill a gap only while
// a reader that follows it still needs the gap's events: once the reader
// that did has left, a reader that resumed past the hole (its browser
// had those events before Redis lost them) gets the next live event at
// once, not after HistoryPoll.
func TestFollowersPastAGapDoNotWaitForIt(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: time.Hour, RetryDelay: 20 * time.Millisecond})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 31)
	// Redis has 1 to 5; 6 to 30 never reached it, and the History lacks
	// 6 and 7 for good.
	require.NoError(t, s.Publish(ctx, all[:5]...))
	require.NoError(t, h.Append(ctx, all[:5]...))
	require.NoError(t, h.Append(ctx, all[7:30]...))
	behind := sinktest.StartTail(t, s, run, 0)
	behind.Expect(t, sinktest.Span(1, 5))
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	past := sinktest.StartTail(t, s, run, 7)
	past.Expect(t, sinktest.Span(8, 30))
	behind.Stop(t, context.Canceled)
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[30]))
	past.Expect(t, []uint64{31}) // within the kit's wait, far below HistoryPoll
	past.Stop(t, context.Canceled)
}
