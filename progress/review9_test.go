package progress_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// A reader that jumps over events that the ring no longer has shows it in
// Stats.Skipped while it follows the run, not only once it leaves.
func TestMemorySkippedCountedWhileTheReaderFollows(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{Capacity: 10})
	require.NoError(t, m.Publish(ctx, sinktest.Events("r", 1, 25)...))
	tl := sinktest.StartTail(t, m, "r", 0)
	tl.Expect(t, sinktest.Span(16, 25))
	assert.Equal(t, uint64(15), m.Stats().Skipped, "Stats.Skipped while the reader still follows the run")
	tl.Stop(t, context.Canceled)
	assert.Equal(t, uint64(15), m.Stats().Skipped, "Stats.Skipped once the reader has left: counted once")
}

// Close is idempotent: once a Close has flushed the queue and the worker
// has exited, another Close has nothing to wait for and returns nil,
// whatever its ctx; it does not report the ctx's end as if it had given
// up on events.
func TestBufferedCloseAgainWithAnEndedContext(t *testing.T) {
	sink := progress.NewMemory(progress.MemoryOptions{})
	b := progress.NewBuffered(sink, progress.BufferedOptions{})
	require.NoError(t, b.Publish(context.Background(), sinktest.Events("r", 1, 3)...))
	require.NoError(t, b.Close(context.Background()))
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 64 {
		require.NoError(t, b.Close(ended), "Close #%d after the worker exited", i+2)
	}
	assert.Equal(t, uint64(3), b.Stats().Published)
}
