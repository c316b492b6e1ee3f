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

// runDownHistory is a History that fails for one run only (a partition
// of the host's database that is down).
type runDownHistory struct {
	*progress.MemoryHistory
	down string
}

func (h *runDownHistory) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	if run == h.down {
		return errHistoryDown
	}
	return h.MemoryHistory.Replay(ctx, run, after, fn)
}

func (h *runDownHistory) LastEvent(ctx context.Context, run string) (progress.Event, bool, error) {
	if run == h.down {
		return progress.Event{}, false, errHistoryDown
	}
	return h.MemoryHistory.LastEvent(ctx, run)
}

// A callback that fails with an error of the Stream itself, here
// LastEvent's for another run whose History is down, ends Replay and
// Tail with that error, as it is, at its first call, as any callback's
// error does. Before, the Stream took it for its own History's failure
// (an error of the package's marks it so): a Tail waited it out and
// called the callback again with the same event, every RetryDelay, for
// as long as the callback failed, and a Replay from the History wrapped
// it.
func TestCallbackErrorOfTheStreamEndsTheReader(t *testing.T) {
	for _, tc := range readerCases {
		t.Run(tc.name, func(t *testing.T) {
			run := sinktest.RunID(t)
			hist := &runDownHistory{MemoryHistory: progress.NewMemoryHistory(), down: run + "-other"}
			s, _ := newStream(t, redisstream.Options{History: hist, RetryDelay: 10 * time.Millisecond,
				HistoryPoll: 50 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			read := tc.reader(ctx, t, s, hist, run)
			var (
				got   []uint64
				first error
			)
			err := read(ctx, run, 0, func(e progress.Event) error {
				got = append(got, e.Seq)
				_, _, err := s.LastEvent(ctx, hist.down)
				if first == nil {
					first = err
				}
				return err
			})
			require.ErrorIs(t, first, errHistoryDown, "the other run's lookup fails")
			assert.Equal(t, first, err, "the callback's error, as it is")
			assert.Equal(t, []uint64{1}, got, "the callback is not called again")
		})
	}
}
