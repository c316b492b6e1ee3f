package redisstream_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A reader that jumps over events that the stream no longer has (trimmed,
// and no History) shows it while it reads, not once it ends: a browser
// follows a run for as long as the run goes on, and Stats.Skipped and the
// log are how an operator learns of the gap it was given.
func TestSkippedCountedWhileTheReaderFollows(t *testing.T) {
	var log syncBuffer
	s, r := newStream(t, redisstream.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 50)...))
	require.NoError(t, r.Client.XTrimMaxLen(ctx, s.Key(run), 10).Err())

	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(41, 50))
	assert.Equal(t, uint64(40), s.Stats().Skipped, "Stats.Skipped while the reader still follows the run")
	assert.Contains(t, log.String(), "skipped", "the gap is logged")
	tl.Stop(t, context.Canceled)
	assert.Equal(t, uint64(40), s.Stats().Skipped, "Stats.Skipped once the reader has left: counted once")
}
