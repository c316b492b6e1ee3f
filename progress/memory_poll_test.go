package progress_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// MemoryOptions.HistoryPoll sets how often a tailer that the ring cannot
// serve asks the History again: a host whose History is a database can
// ask it less often than every second for each such tailer, or a test
// more often. The default stays one second. Before, the period was fixed
// at one second.
func TestMemoryHistoryPoll(t *testing.T) {
	for _, tc := range []struct {
		poll          time.Duration
		before, after time.Duration // the events are not had at before, and are at after
	}{
		{0, 900 * time.Millisecond, 1100 * time.Millisecond},
		{-time.Second, 900 * time.Millisecond, 1100 * time.Millisecond},
		{10 * time.Second, 9 * time.Second, 11 * time.Second},
		{50 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond},
	} {
		t.Run(tc.poll.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				ch := &r10History{h: progress.NewMemoryHistory()}
				m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1, History: ch, HistoryPoll: tc.poll})
				all := sinktest.Events("a", 1, 10)
				all[9].Type = progress.RunFinished
				require.NoError(t, m.Publish(ctx, all...))
				require.NoError(t, ch.Append(ctx, all[:5]...))                    // the History lags
				require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts run a

				var mu sync.Mutex
				var got []uint64
				seqs := func() []uint64 {
					mu.Lock()
					defer mu.Unlock()
					return append([]uint64(nil), got...)
				}
				tctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() {
					done <- m.Tail(tctx, "a", 0, func(e progress.Event) error {
						mu.Lock()
						got = append(got, e.Seq)
						mu.Unlock()
						return nil
					})
				}()
				synctest.Wait() // the tailer has what the History has, and waits
				start := time.Now()
				require.NoError(t, ch.Append(ctx, all[5:]...))
				time.Sleep(tc.before)
				synctest.Wait()
				assert.Equal(t, sinktest.Span(1, 5), seqs(), "the events at %v", time.Since(start))
				time.Sleep(tc.after - tc.before)
				synctest.Wait()
				assert.Equal(t, sinktest.Span(1, 10), seqs(), "the events at %v", time.Since(start))
				cancel()
				assert.ErrorIs(t, <-done, context.Canceled)
			})
		})
	}
}

// A HistoryPoll below 1ms but positive is most likely a number without
// its unit (1, meant as a second): every tailer waiting on the History
// would ask it without pause. Tail and Replay refuse it, naming it.
func TestMemoryRefusesAHistoryPollWithoutItsUnit(t *testing.T) {
	for _, d := range []time.Duration{1, 5, time.Millisecond - 1} {
		t.Run(d.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := progress.MemoryOptions{History: progress.NewMemoryHistory(), HistoryPoll: d}
				assertRefused(t, opts, fmt.Sprintf("HistoryPoll %v is below 1ms", d))
			})
		})
	}
}
