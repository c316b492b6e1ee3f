package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A reader that resumes past the gap that the run's shared reader holds
// the live entries after (a browser whose Last-Event-ID is above it) had
// the gap's events already: it gets the live entries as they come, not
// once the hold ends (HistoryPoll, an hour here), while the reader below
// the gap still waits for the History.
func TestReaderPastAHeldGapIsNotHeld(t *testing.T) {
	x := holding(t, time.Hour, 14, 10)
	ctx := context.Background()
	past := sinktest.StartTail(t, x.s, x.run, 9)
	past.Expect(t, sinktest.Span(10, 10))
	require.NoError(t, x.s.Publish(ctx, x.all[10:12]...))
	past.Expect(t, sinktest.Span(11, 12))
	// A reader that connects past the gap while the hold goes on.
	late := sinktest.StartTail(t, x.s, x.run, 7)
	late.Expect(t, sinktest.Span(8, 12))
	require.NoError(t, x.s.Publish(ctx, x.all[12:]...))
	past.Expect(t, sinktest.Span(13, 14))
	late.Expect(t, sinktest.Span(13, 14))
	// The reader below the gap still waits for it, and gets it once the
	// History has it.
	require.NoError(t, x.mem.Append(ctx, x.all[5:]...))
	x.tl.Expect(t, sinktest.Span(6, 14))
	for _, tl := range []*sinktest.Tailer{past, late, x.tl} {
		tl.Stop(t, context.Canceled)
	}
	assert.Zero(t, x.s.Stats().Skipped)
}

// Replay reads what the stream and the History hold when it is called:
// it does not wait for a gap that the run's shared reader holds the live
// entries after, and skips the gap's events that the History lacks yet,
// counting them in Stats.Skipped, as its doc says.
func TestReplayDoesNotWaitForAHold(t *testing.T) {
	x := holding(t, time.Hour, 10, 10)
	got := sinktest.Replay(t, x.s, x.run, 0)
	assert.Equal(t, append(sinktest.Span(1, 5), sinktest.Span(8, 10)...), sinktest.Seqs(got))
	assert.Equal(t, uint64(2), x.s.Stats().Skipped)
	// The reader that follows the run still waits for the gap's events.
	require.NoError(t, x.mem.Append(context.Background(), x.all[5:]...))
	x.tl.Expect(t, sinktest.Span(6, 10))
	x.tl.Stop(t, context.Canceled)
}

// A reader past a held gap gets the live entries also when more entries
// follow the gap than one XREAD of the run's shared reader reads (its
// PageSize): the shared reader holds the first page after the gap, and
// the reader, past it, reads on from Redis itself.
func TestReaderPastALongHeldGapIsNotHeld(t *testing.T) {
	pastAHeldGap(t, holdingOn(t, redisstream.Options{HistoryPoll: time.Hour, PageSize: 5}, sinktest.Events(sinktest.RunID(t), 1, 24), 20), 15)
}
