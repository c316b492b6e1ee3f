package progress_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// finished returns events from..to of run, the last of them final.
func finished(run string, from, to uint64) []progress.Event {
	events := sinktest.Events(run, from, to)
	events[len(events)-1].Type = progress.RunFinished
	return events
}

// Beyond MaxRuns, a Memory evicts a finished run, the one that finished
// first, before any live run, however long that one has been quiet (a
// node may take minutes): a live run is evicted only when every run kept
// is live, and the counters say so.
func TestMemoryEvictsFinishedRunsFirst(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 3})
	require.NoError(t, m.Publish(ctx, sinktest.Events("live", 1, 3)...)) // quiet since
	require.NoError(t, m.Publish(ctx, finished("done1", 1, 3)...))
	require.NoError(t, m.Publish(ctx, finished("done2", 1, 3)...))
	require.NoError(t, m.Publish(ctx, sinktest.Events("new1", 1, 1)...)) // evicts done1
	require.NoError(t, m.Publish(ctx, sinktest.Events("new2", 1, 1)...)) // evicts done2
	assert.Equal(t, sinktest.Span(1, 3), sinktest.Seqs(sinktest.Replay(t, m, "live", 0)), "the live run is kept")
	s := m.Stats()
	assert.Equal(t, 3, s.Runs)
	assert.Equal(t, uint64(2), s.EvictedRuns)
	assert.Zero(t, s.EvictedLive)

	// Every run kept is live now: the least recently published goes.
	require.NoError(t, m.Publish(ctx, sinktest.Events("new1", 2, 2)...))
	require.NoError(t, m.Publish(ctx, sinktest.Events("new2", 2, 2)...))
	require.NoError(t, m.Publish(ctx, sinktest.Events("new3", 1, 1)...)) // evicts live
	assert.Equal(t, sinktest.Span(1, 2), sinktest.Seqs(sinktest.Replay(t, m, "new1", 0)))
	s = m.Stats()
	assert.Equal(t, uint64(3), s.EvictedRuns)
	assert.Equal(t, uint64(1), s.EvictedLive, "a live run was evicted")
}
