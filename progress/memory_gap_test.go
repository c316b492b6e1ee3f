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

// With MemoryOptions.HistoryWait, a tailer of a run that the ring does
// not hold (evicted before the reader came, or published by another
// process that shares the History) waits for a gap inside the History (a
// History written out of order, by a Buffered that retries a batch, has
// 7..10 before 6) for up to HistoryWait, asking it every HistoryPoll, at
// its first read of the History as at the later ones, rather than skip it.
func TestMemoryTailerWaitsForAGapInsideTheHistory(t *testing.T) {
	all := sinktest.Events("a", 1, 10)
	all[9].Type = progress.RunFinished
	gap := append(sinktest.Span(1, 5), sinktest.Span(7, 10)...)
	for _, tc := range []struct {
		name string
		wait time.Duration
		// first is what the History holds at the tailer's first read;
		// later what it gets at 2.5s, and 6 comes at fill (never if 0).
		first, later []progress.Event
		fill         time.Duration
		at           []time.Duration
		want         [][]uint64
		skipped      uint64
	}{
		{"the gap at the first read", 10 * time.Second, append(all[:5:5], all[6:]...), nil, 3500 * time.Millisecond,
			[]time.Duration{0, 2 * time.Second, 4*time.Second + 100*time.Millisecond},
			[][]uint64{sinktest.Span(1, 5), sinktest.Span(1, 5), sinktest.Span(1, 10)}, 0},
		{"the gap at a later read", 10 * time.Second, all[:5], all[6:], 3500 * time.Millisecond,
			[]time.Duration{0, 3*time.Second + 100*time.Millisecond, 4*time.Second + 100*time.Millisecond},
			[][]uint64{sinktest.Span(1, 5), sinktest.Span(1, 5), sinktest.Span(1, 10)}, 0},
		{"the wait passes at the first read", 10 * time.Second, append(all[:5:5], all[6:]...), nil, 0,
			[]time.Duration{0, 9 * time.Second, 11 * time.Second},
			[][]uint64{sinktest.Span(1, 5), sinktest.Span(1, 5), gap}, 1},
		{"no HistoryWait skips at once", 0, append(all[:5:5], all[6:]...), nil, 3 * time.Second,
			[]time.Duration{0, time.Minute}, [][]uint64{gap, gap}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				h := progress.NewMemoryHistory()
				m := progress.NewMemory(progress.MemoryOptions{History: h, HistoryWait: tc.wait})
				require.NoError(t, h.Append(ctx, tc.first...))
				start := time.Now()
				tailer := tailSeqs(ctx, m, "a", nil)
				var seen [][]uint64
				appended := map[time.Duration]bool{}
				for _, d := range tc.at {
					for _, ev := range []struct {
						at     time.Duration
						events []progress.Event
					}{{2500 * time.Millisecond, tc.later}, {tc.fill, all[5:6]}} {
						if ev.events != nil && ev.at > 0 && ev.at <= d && !appended[ev.at] {
							appended[ev.at] = true
							time.Sleep(ev.at - time.Since(start))
							require.NoError(t, h.Append(ctx, ev.events...))
						}
					}
					time.Sleep(d - time.Since(start))
					synctest.Wait()
					seen = append(seen, tailer.seqs())
				}
				tailer.stop(t)
				assert.Equal(t, tc.want, seen, "the Seqs at %v", tc.at)
				assert.Equal(t, tc.skipped, m.Stats().Skipped)
			})
		})
	}
}
