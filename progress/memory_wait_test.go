package progress_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// lagTail runs a tailer of run "a" on a Memory with a ring of 5 and opts,
// whose History h lags: the tailer is held at Seq 5 while 6..20 are
// published (the ring keeps 16..20) and h holds 1..10; then it goes on,
// and after lag h gets 11..20 (never if lag is 0). It returns the Seqs
// the tailer had at each of the times in at, from its release.
func lagTail(t *testing.T, opts progress.MemoryOptions, lag time.Duration, at ...time.Duration) ([][]uint64, *progress.Memory) {
	t.Helper()
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	opts.Capacity, opts.History = 5, h
	m := progress.NewMemory(opts)
	all := sinktest.Events("a", 1, 20)
	require.NoError(t, m.Publish(ctx, all[:5]...))
	require.NoError(t, h.Append(ctx, all[:5]...))

	hold, at5, release := holdAt(5)
	tailer := tailSeqs(ctx, m, "a", hold)
	<-at5
	require.NoError(t, m.Publish(ctx, all[5:]...)) // trims 1..15 from the ring
	require.NoError(t, h.Append(ctx, all[5:10]...))
	start := time.Now()
	close(release)
	var seen [][]uint64
	for _, d := range at {
		if lag > 0 && time.Since(start) < lag && d >= lag {
			time.Sleep(lag - time.Since(start))
			require.NoError(t, h.Append(ctx, all[10:]...)) // the History catches up
		}
		time.Sleep(d - time.Since(start))
		synctest.Wait()
		seen = append(seen, tailer.seqs())
	}
	tailer.stop(t)
	return seen, m
}

// With MemoryOptions.HistoryWait, a tailer that falls behind the ring
// while the History lags (an archive written through a Buffered, as the
// package doc advises) waits, asking the History every HistoryPoll, for
// the History to hold the events the ring trimmed, up to HistoryWait,
// rather than skip them at once: it gets every event, in order. Before,
// it skipped them for good, as it still does by default and once
// HistoryWait has passed; the skip shows to the reader as a gap in the
// Seqs, and in MemoryStats.Skipped.
func TestMemoryTailerWaitsForALaggingHistory(t *testing.T) {
	all, gap := sinktest.Span(1, 20), append(sinktest.Span(1, 10), sinktest.Span(16, 20)...)
	tests := []struct {
		name    string
		opts    progress.MemoryOptions
		lag     time.Duration // 0: the History never catches up
		at      []time.Duration
		want    [][]uint64
		skipped uint64
	}{
		{"the default skips at once", progress.MemoryOptions{}, 3 * time.Second,
			[]time.Duration{0, 10 * time.Second}, [][]uint64{gap, gap}, 5},
		{"HistoryWait, the History catches up", progress.MemoryOptions{HistoryWait: 10 * time.Second}, 2500 * time.Millisecond,
			[]time.Duration{0, 2 * time.Second, 3*time.Second + 500*time.Millisecond, time.Minute},
			[][]uint64{sinktest.Span(1, 10), sinktest.Span(1, 10), all, all}, 0},
		{"HistoryWait and HistoryPoll", progress.MemoryOptions{HistoryWait: time.Minute, HistoryPoll: 10 * time.Second}, 3 * time.Second,
			[]time.Duration{0, 9 * time.Second, 11 * time.Second},
			[][]uint64{sinktest.Span(1, 10), sinktest.Span(1, 10), all}, 0},
		{"HistoryWait passes", progress.MemoryOptions{HistoryWait: 10 * time.Second}, 0,
			[]time.Duration{0, 9 * time.Second, 11 * time.Second},
			[][]uint64{sinktest.Span(1, 10), sinktest.Span(1, 10), gap}, 5},
		{"a negative HistoryWait skips at once", progress.MemoryOptions{HistoryWait: -time.Second}, 3 * time.Second,
			[]time.Duration{0}, [][]uint64{gap}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got, m := lagTail(t, tt.opts, tt.lag, tt.at...)
				assert.Equal(t, tt.want, got, "the Seqs at %v", tt.at)
				assert.Equal(t, tt.skipped, m.Stats().Skipped)
			})
		})
	}
}

// A HistoryWait below 1ms but positive is most likely a number without
// its unit (10, meant as 10s): Tail and Replay refuse it, naming it.
func TestMemoryRefusesAHistoryWaitWithoutItsUnit(t *testing.T) {
	for _, d := range []time.Duration{1, 10, time.Millisecond - 1} {
		t.Run(d.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := progress.MemoryOptions{History: progress.NewMemoryHistory(), HistoryWait: d}
				assertRefused(t, opts, fmt.Sprintf("HistoryWait %v is below 1ms", d))
			})
		})
	}
}

// A tailer waits for a History that lacks what the ring trimmed once per
// fall-behind: once HistoryWait has passed, it skips what the History
// lacks at once until it is back within the ring. Before, the events it
// had taken from the ring before the wait were stale once the wait ended
// (the ring had moved on meanwhile), so that right after them it found a
// new gap and waited HistoryWait again, and again: with a History that
// never caught up, it got a ring's batch (at most 16 events) per
// HistoryWait, while the run went on far ahead of it.
func TestMemoryTailerWaitsOncePerFallBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		h := progress.NewMemoryHistory()
		m := progress.NewMemory(progress.MemoryOptions{Capacity: 5, History: h, HistoryWait: 10 * time.Second})
		all := sinktest.Events("a", 1, 40)
		require.NoError(t, m.Publish(ctx, all[:10]...)) // the ring keeps 6..10
		require.NoError(t, h.Append(ctx, all[:3]...))   // the History lags at 3, for good

		tailer := tailSeqs(ctx, m, "a", nil)
		seen := func() []uint64 {
			synctest.Wait()
			return tailer.seqs()
		}
		assert.Equal(t, sinktest.Span(1, 3), seen(), "what the History holds, then the wait for 4..5")
		time.Sleep(5 * time.Second)
		require.NoError(t, m.Publish(ctx, all[10:20]...)) // the ring moves on to 16..20 during the wait
		assert.Equal(t, sinktest.Span(1, 3), seen())
		time.Sleep(5*time.Second + time.Millisecond)
		// The wait passed: 4..5 skipped, then 6..10 that the tailer held,
		// then 11..15, which the ring trimmed meanwhile, skipped at once.
		want := append(append(sinktest.Span(1, 3), sinktest.Span(6, 10)...), sinktest.Span(16, 20)...)
		assert.Equal(t, want, seen())
		assert.Equal(t, uint64(7), m.Stats().Skipped)

		// Back within the ring, a tailer that falls behind again waits
		// anew.
		require.NoError(t, m.Publish(ctx, all[20:30]...)) // 21..25 trimmed at once, as if the tailer were slow
		assert.Equal(t, want, seen(), "no wait for 21..25")
		require.NoError(t, h.Append(ctx, all[3:30]...))
		time.Sleep(time.Second)
		assert.Equal(t, append(want, sinktest.Span(21, 30)...), seen(), "21..25 from the History, after a poll")
		assert.Equal(t, uint64(7), m.Stats().Skipped)
		tailer.stop(t)
	})
}

// HistoryWait is for a tailer that fell behind the ring: one that follows
// the ring and meets a gap within it (a Seq never published here, as
// behind a Buffered that dropped it) fills it from the History or skips
// it at once, as without HistoryWait, and goes on with the live events.
// Before, every such tailer, live at the ring's head, stalled for
// HistoryWait at each such gap, the whole run's viewers behind it.
func TestMemoryTailerDoesNotWaitAtAGapInTheRing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		h := progress.NewMemoryHistory()
		m := progress.NewMemory(progress.MemoryOptions{History: h, HistoryWait: time.Minute})
		all := sinktest.Events("a", 1, 10)
		require.NoError(t, m.Publish(ctx, all[:3]...))
		require.NoError(t, h.Append(ctx, all[:3]...))

		tailer := tailSeqs(ctx, m, "a", nil)
		seen := func() []uint64 {
			synctest.Wait()
			return tailer.seqs()
		}
		assert.Equal(t, sinktest.Span(1, 3), seen())
		require.NoError(t, m.Publish(ctx, all[4:6]...)) // 4 never comes
		assert.Equal(t, []uint64{1, 2, 3, 5, 6}, seen(), "at once")
		assert.Equal(t, uint64(1), m.Stats().Skipped)
		require.NoError(t, h.Append(ctx, all[4:7]...))
		require.NoError(t, m.Publish(ctx, all[7:9]...)) // 7 comes to the History alone
		assert.Equal(t, []uint64{1, 2, 3, 5, 6, 7, 8, 9}, seen(), "at once")
		assert.Equal(t, uint64(1), m.Stats().Skipped)
		tailer.stop(t)
	})
}
