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

// A tailer that the ring cannot serve (a run published by another
// process that shares the History, say) and whose HistoryWait passed
// once, at a gap that the History never filled, skipped every later gap
// inside the History at once for the rest of the run, as the ring never
// serves it: a browser on another replica than the run's lost each event
// that the History, written out of order, held a moment after the next
// one, though it had caught up with the History since. Once a read of
// the History finds no gap (the tailer caught up with it), a later gap is
// waited for anew, as a tailer that is back within the ring waits anew at
// its next fall-behind.
func TestMemoryTailerWaitsAgainOnceCaughtUpWithTheHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		all := sinktest.Events("a", 1, 9) // no final event: the run goes on
		h := progress.NewMemoryHistory()
		m := progress.NewMemory(progress.MemoryOptions{History: h, HistoryWait: 5 * time.Second})
		start := time.Now()
		at := func(d time.Duration, events ...progress.Event) {
			time.Sleep(d - time.Since(start))
			require.NoError(t, h.Append(ctx, events...))
		}
		// 4 never comes: skipped once the 5s have passed.
		require.NoError(t, h.Append(ctx, all[0], all[1], all[2], all[4]))
		tailer := tailSeqs(ctx, m, "a", nil)
		at(7*time.Second, all[5])
		synctest.Wait()
		time.Sleep(10*time.Second - time.Since(start))
		synctest.Wait()
		require.Equal(t, []uint64{1, 2, 3, 5, 6}, tailer.seqs(), "4 skipped, and 6 read: caught up with the History")
		// 8 before 7, which comes a second later, well within the wait.
		at(12*time.Second, all[7])
		at(13*time.Second, all[6])
		time.Sleep(20*time.Second - time.Since(start))
		synctest.Wait()
		got := tailer.seqs()
		tailer.stop(t)
		assert.Equal(t, []uint64{1, 2, 3, 5, 6, 7, 8}, got, "7 waited for")
		assert.Equal(t, uint64(1), m.Stats().Skipped, "4 alone skipped")
	})
}
