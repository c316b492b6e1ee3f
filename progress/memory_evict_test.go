package progress_test

import (
	"context"
	"fmt"
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

// replayAll replays run from after and returns the Seqs delivered and
// Replay's error.
func replayAll(m *progress.Memory, run string, after uint64) ([]uint64, error) {
	var got []uint64
	err := m.Replay(context.Background(), run, after, func(e progress.Event) error {
		got = append(got, e.Seq)
		return nil
	})
	return got, err
}

// Replay of a run that the Memory evicted says so with ErrEvicted, after
// the run's newest event, which the Memory keeps: it is not a run with no
// events yet, or one it never had, of which Replay delivers nothing and
// returns nil.
func TestMemoryReplayOfAnEvictedRunSaysSo(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1})
	require.NoError(t, m.Publish(ctx, finished("a", 1, 5)...))
	require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 3)...)) // evicts a
	require.NoError(t, m.Publish(ctx, sinktest.Events("c", 1, 1)...)) // evicts b, live

	for _, tc := range []struct {
		run    string
		after  uint64
		want   []uint64
		gone   bool
		detail string
	}{
		{"a", 0, []uint64{5}, true, `run "a"`},
		{"a", 3, []uint64{5}, true, `run "a"`},
		{"a", 4, []uint64{5}, false, ""}, // it lacks none
		{"a", 5, nil, false, ""},
		{"b", 0, []uint64{3}, true, `run "b"`},
		{"never", 0, nil, false, ""},
	} {
		t.Run(fmt.Sprint(tc.run, tc.after), func(t *testing.T) {
			got, err := replayAll(m, tc.run, tc.after)
			assert.Equal(t, tc.want, got)
			if !tc.gone {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, progress.ErrEvicted)
			assert.ErrorContains(t, err, tc.detail)
		})
	}

	// The Memory says the run's newest event, so that the executor
	// numbers an event after it; events up to it are duplicates.
	e, ok, err := m.LastEvent(ctx, "b")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, uint64(3), e.Seq)
	require.NoError(t, m.Publish(ctx, sinktest.Events("b", 2, 4)...))
	got, err := replayAll(m, "b", 0)
	assert.NoError(t, err, "b is kept again")
	assert.Equal(t, []uint64{3, 4}, got)
	assert.Equal(t, uint64(2), m.Stats().Duplicates)
}

// A Memory remembers the runs it evicted, for 10 × MaxRuns of them: one
// evicted before them is unknown again.
func TestMemoryForgetsTheOldestEvictedRuns(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1})
	for i := range 12 { // 11 evicted
		require.NoError(t, m.Publish(ctx, sinktest.Events(fmt.Sprint("r", i), 1, 2)...))
	}
	got, err := replayAll(m, "r0", 0)
	assert.NoError(t, err, "forgotten")
	assert.Empty(t, got)
	got, err = replayAll(m, "r1", 0)
	assert.ErrorIs(t, err, progress.ErrEvicted)
	assert.Equal(t, []uint64{2}, got)
}
