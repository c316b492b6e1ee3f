package progress_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// r10History counts the replays of the History it wraps, and hides
// its LastEventReader unless last is set.
type r10History struct {
	h       *progress.MemoryHistory
	replays atomic.Int64
}

func (c *r10History) Append(ctx context.Context, events ...progress.Event) error {
	return c.h.Append(ctx, events...)
}

func (c *r10History) Replay(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	c.replays.Add(1)
	return c.h.Replay(ctx, runID, after, fn)
}

type r10LastHistory struct{ *r10History }

func (c r10LastHistory) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	return c.h.LastEvent(ctx, runID)
}

// A tailer that resumes at, or past, the final event of a run that the
// ring does not hold (a browser reconnecting after the run ended, its run
// since evicted) has nothing more to get: it does not ask the History
// again every second for as long as it stays, which it did since 6c37685.
func TestReview10MemoryTailerResumedAtTheFinalEventOfAHistoryOnlyRunDoesNotPoll(t *testing.T) {
	for _, tc := range []struct {
		name     string
		after    uint64
		lastRead bool
	}{
		{"at the final event", 10, false},
		{"at the final event, LastEventReader", 10, true},
		{"past the final event, LastEventReader", 12, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				ch := &r10History{h: progress.NewMemoryHistory()}
				var h progress.History = ch
				if tc.lastRead {
					h = r10LastHistory{ch}
				}
				all := sinktest.Events("a", 1, 10)
				all[9].Type = progress.RunFinished
				require.NoError(t, h.Append(ctx, all...))
				m := progress.NewMemory(progress.MemoryOptions{History: h})

				tctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				var got atomic.Int64
				go func() {
					done <- m.Tail(tctx, "a", tc.after, func(progress.Event) error {
						got.Add(1)
						return nil
					})
				}()
				time.Sleep(time.Hour)
				synctest.Wait()
				replays := ch.replays.Load()
				cancel()
				assert.ErrorIs(t, <-done, context.Canceled)
				assert.Zero(t, got.Load())
				assert.LessOrEqual(t, replays, int64(2), "History replays in an hour")
			})
		})
	}
}

// A MemoryHistory replay that finds nothing new, as the replay of a
// Memory tailer that follows the History every second mostly does,
// allocates nothing: it allocated a buffer of 256 events (78 KB) each
// time, so 78 KB a second for each such tailer.
func TestReview10MemoryHistoryReplayOfNothingNewAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	require.NoError(t, h.Append(ctx, sinktest.Events("a", 1, 10)...))
	fn := func(progress.Event) error { return nil }
	for _, run := range []string{"a", "unknown"} {
		allocs := testing.AllocsPerRun(20, func() {
			require.NoError(t, h.Replay(ctx, run, 10, fn))
		})
		assert.Zero(t, allocs, run)
	}
	var got []uint64
	require.NoError(t, h.Replay(ctx, "a", 4, func(e progress.Event) error {
		got = append(got, e.Seq)
		return nil
	}))
	assert.Equal(t, sinktest.Span(5, 10), got)
}
