package redisstream_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// lookupHangingHistory is a History whose LastEvent, once hang is set,
// waits for its context to end; its Replay answers as ever.
type lookupHangingHistory struct {
	*progress.MemoryHistory
	hang    atomic.Bool
	entered atomic.Int64
}

func (h *lookupHangingHistory) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	if h.hang.Load() {
		h.entered.Add(1)
		<-ctx.Done()
		return progress.Event{}, false, ctx.Err()
	}
	return h.MemoryHistory.LastEvent(ctx, runID)
}

// A Close that ends a Tail's lookup of the run's end in the History (a
// reader that resumes at the newest event of a run still going) ends the
// Tail with ErrClosed, and counts no read error: nothing failed. Before,
// the lookup's end was taken for a failure of the History, counted in
// Stats.ReadErrors and logged as one.
func TestCloseDuringTheEndOfRunLookupCountsNoReadError(t *testing.T) {
	hist := &lookupHangingHistory{MemoryHistory: progress.NewMemoryHistory()}
	s, _ := newStream(t, redisstream.Options{History: hist})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 3)
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(ctx, all...))
	hist.hang.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.Tail(ctx, run, 3, func(progress.Event) error { return nil }) }()
	require.Eventually(t, func() bool { return hist.entered.Load() > 0 }, 10*time.Second, time.Millisecond,
		"the reader looks the run's end up in the History")
	require.NoError(t, s.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, redisstream.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the Tail")
	}
	assert.Zero(t, s.Stats().ReadErrors, "read errors counted for a Close")
}
