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

// While Redis hangs, once a read has failed, a Tail's read that Redis has
// not answered within readWait goes on, holding its token of reads that
// do not block, and the Tail's next read may take another: so one Tail
// may hold every token (half MaxBlockingReads; the cap keeps Publish's
// share of the pool). That starves no other Tail: the reads that Redis
// holds are capped whoever made them, and a Tail that finds no token
// free serves itself from the History, at once as it connects and then
// every HistoryPoll, as one whose own read hangs does; once Redis
// answers, the reads in flight end, their tokens come back, and every
// Tail reads Redis again (at its next retry, RetryDelay at most 2s on).
// Tests only: it pins what the reads' cap promises.
func TestOneTailHoldingEveryReadStarvesNoOtherTail(t *testing.T) {
	hist := progress.NewMemoryHistory()
	s, reads := outageStream(t, redisstream.Options{History: hist, MaxBlockingReads: 4, HistoryPoll: 200 * time.Millisecond})
	redisstream.SetReadWait(s, 50*time.Millisecond)
	ctx := context.Background()
	run := sinktest.RunID(t)
	sink := progress.NewFanout(progress.NewArchive(hist), s)
	require.NoError(t, sink.Publish(ctx, sinktest.Events(run, 1, 30)...))

	reads.failThenHang(t, s, run)
	first := sinktest.StartTail(t, s, run, 0)
	first.Expect(t, sinktest.Span(1, 30))
	deadline := time.Now().Add(hangBound)
	// Both tokens held, by two reads of its own that Redis holds.
	for redisstream.ReadsInFlight(s) < 2 || reads.hanging.Load() < 2 {
		require.True(t, time.Now().Before(deadline), "the Tail never held both tokens")
		time.Sleep(time.Millisecond) // polling the tokens, bounded by the deadline
	}
	var others []*sinktest.Tailer // browsers that connect during the hang
	for range 8 {
		others = append(others, sinktest.StartTail(t, s, run, 0))
	}
	for _, tl := range others {
		tl.Expect(t, sinktest.Span(1, 30))
	}
	// The run goes on; its events reach the History alone.
	require.NoError(t, hist.Append(ctx, sinktest.Events(run, 31, 33)...))
	for _, tl := range append(others, first) {
		tl.Expect(t, sinktest.Span(31, 33))
	}
	reads.mode.Store(0)
	reads.free() // Redis answers again
	// To Redis alone.
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 34, 36)...))
	for _, tl := range append(others, first) {
		tl.Expect(t, sinktest.Span(34, 36))
	}
	for _, tl := range append(others, first) {
		tl.Stop(t, context.Canceled)
	}
	assert.Zero(t, s.Stats().Skipped)
}
