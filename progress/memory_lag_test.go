package progress_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// A tailer behind a run that is evicted from the ring while the History
// lags behind the ring (an archive written through a Buffered of its own,
// as the package doc advises for a database History) gets the events it
// missed once the History has them, the run's final event included: it
// does not wait for a later event of the run, which may never come.
func TestMemoryTailerBehindAnEvictedRunWaitsForALaggingHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		h := progress.NewMemoryHistory()
		m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1, History: h})
		all := sinktest.Events("a", 1, 10)
		all[9].Type = progress.RunFinished
		require.NoError(t, m.Publish(ctx, all[:5]...))
		require.NoError(t, h.Append(ctx, all[:5]...))

		hold, at5, release := holdAt(5)
		tailer := tailSeqs(ctx, m, "a", hold)
		<-at5
		require.NoError(t, m.Publish(ctx, all[5:]...))                    // the History has them a moment later
		require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts run a
		close(release)
		synctest.Wait() // the tailer has read the History, which lacks 6..10
		require.NoError(t, h.Append(ctx, all[5:]...))
		time.Sleep(time.Minute)
		synctest.Wait()
		tailer.stop(t)
		assert.Equal(t, sinktest.Span(1, 10), tailer.seqs())
		assert.Zero(t, m.Stats().Skipped)
	})
}

// A tailer of a run that the ring does not hold (evicted with no reader
// to keep it, or run by another process that shares the History) follows
// the History, which may lag behind where the run is published (an
// archive written through a Buffered), until the run's final event: no
// event of the run will come to the ring to wake it.
func TestMemoryTailerOfARunOnlyInTheHistoryFollowsIt(t *testing.T) {
	for _, after := range []uint64{0, 3, 7} {
		t.Run("", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				h := progress.NewMemoryHistory()
				m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1, History: h})
				all := sinktest.Events("a", 1, 10)
				all[9].Type = progress.RunFinished
				require.NoError(t, m.Publish(ctx, all...))
				require.NoError(t, h.Append(ctx, all[:5]...))                     // the History lags
				require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts run a, which no one reads

				var got []uint64
				tctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() {
					done <- m.Tail(tctx, "a", after, func(e progress.Event) error {
						got = append(got, e.Seq)
						return nil
					})
				}()
				synctest.Wait() // the tailer has what the History has, and waits
				require.NoError(t, h.Append(ctx, all[5:]...))
				time.Sleep(time.Minute)
				synctest.Wait()
				cancel()
				assert.ErrorIs(t, <-done, context.Canceled)
				assert.Equal(t, sinktest.Span(after+1, 10), got)
			})
		})
	}
}
