package redisstream_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// downHistory is a History (a host's database) that fails while down.
type downHistory struct {
	*progress.MemoryHistory
	down atomic.Bool
}

var errHistoryDown = errors.New("history is down")

func (h *downHistory) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	if h.down.Load() {
		return errHistoryDown
	}
	return h.MemoryHistory.Replay(ctx, run, after, fn)
}

func (h *downHistory) LastEvent(ctx context.Context, run string) (progress.Event, bool, error) {
	if h.down.Load() {
		return progress.Event{}, false, errHistoryDown
	}
	return h.MemoryHistory.LastEvent(ctx, run)
}

// The History is read for what the stream lacks. While it is down (its
// database restarts) and Redis holds the whole run, readers from the
// start and readers that resume at the stream's end follow the run from
// Redis, live events included, and the History is read again once it is
// back. Before, every Tail ended with the History's error right after its
// replay (or at once, for one that resumed at the end), before any live
// event: each SSE stream ended, and every browser reconnected every few
// seconds for as long as the History was down.
func TestTailOutlivesAHistoryOutage(t *testing.T) {
	h := &downHistory{MemoryHistory: progress.NewMemoryHistory()}
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: 50 * time.Millisecond})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 8)
	h.down.Store(true)
	require.NoError(t, s.Publish(ctx, all[:3]...))

	fromStart := sinktest.StartTail(t, s, run, 0)
	atTheEnd := sinktest.StartTail(t, s, run, 3)
	fromStart.Expect(t, sinktest.Span(1, 3))
	require.NoError(t, s.Publish(ctx, all[3:5]...))
	fromStart.Expect(t, sinktest.Span(4, 5))
	atTheEnd.Expect(t, sinktest.Span(4, 5))

	// Back: what reached only the History is read from it.
	require.NoError(t, h.Append(ctx, all...))
	h.down.Store(false)
	fromStart.Expect(t, sinktest.Span(6, 8))
	atTheEnd.Expect(t, sinktest.Span(6, 8))
	assert.ErrorIs(t, fromStart.Stop(t, context.Canceled), context.Canceled)
	assert.ErrorIs(t, atTheEnd.Stop(t, context.Canceled), context.Canceled)

	// A gap that only the History can fill (seqs 4 and 5 never reached
	// Redis) is waited for, with backoff, and then filled: not skipped.
	h.down.Store(true)
	gapRun := sinktest.RunID(t) + "-gap"
	gapped := sinktest.Events(gapRun, 1, 8)
	require.NoError(t, h.Append(ctx, gapped...))
	require.NoError(t, s.Publish(ctx, gapped[:3]...))
	require.NoError(t, s.Publish(ctx, gapped[5:]...))
	reader := sinktest.StartTail(t, s, gapRun, 0)
	reader.Expect(t, sinktest.Span(1, 3))
	h.down.Store(false)
	reader.Expect(t, sinktest.Span(4, 8))
	assert.ErrorIs(t, reader.Stop(t, context.Canceled), context.Canceled)
	assert.Zero(t, s.Stats().Skipped)
}
