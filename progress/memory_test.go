package progress_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

func TestMemoryConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		m := progress.NewMemory(progress.MemoryOptions{})
		return m, m
	})
}

// The archive fanned out beside a small ring: the ring alone could not
// pass the kit (it keeps 100 events), the ring plus the History can.
func TestMemoryWithHistoryConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		h := progress.NewMemoryHistory()
		m := progress.NewMemory(progress.MemoryOptions{Capacity: 100, History: h})
		return progress.NewFanout(progress.NewArchive(h), m), m
	})
}

func TestMemoryHistoryConformance(t *testing.T) {
	t.Run("archived by the sink", func(t *testing.T) {
		sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
			h := progress.NewMemoryHistory()
			m := progress.NewMemory(progress.MemoryOptions{Capacity: 100, History: h})
			return progress.NewFanout(progress.NewArchive(h), m), m, h
		})
	})
	t.Run("History apart", func(t *testing.T) {
		sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
			h := progress.NewMemoryHistory()
			m := progress.NewMemory(progress.MemoryOptions{History: h})
			return m, m, h
		})
	})
}

func TestMemoryRingTrimsOldest(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{Capacity: 10})
	require.NoError(t, m.Publish(ctx, sinktest.Events("r", 1, 25)...))
	got := sinktest.Replay(t, m, "r", 0)
	assert.Equal(t, sinktest.Span(16, 25), sinktest.Seqs(got), "a ring of 10 keeps the newest 10")
	s := m.Stats()
	assert.Equal(t, progress.MemoryStats{Runs: 1, Events: 10, Published: 25, Evicted: 15, Skipped: 15}, s)
}

func TestMemoryFillsTrimmedEventsFromHistory(t *testing.T) {
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	m := progress.NewMemory(progress.MemoryOptions{Capacity: 10, History: h})
	sink := progress.NewFanout(progress.NewArchive(h), m)
	require.NoError(t, sink.Publish(ctx, sinktest.Events("r", 1, 25)...))

	tests := []struct {
		name  string
		after uint64
		want  []uint64
	}{
		{"from the start: archive then ring", 0, sinktest.Span(1, 25)},
		{"just before the ring's first", 15, sinktest.Span(16, 25)},
		{"inside the archive only", 9, sinktest.Span(10, 25)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sinktest.Replay(t, m, "r", tt.after)
			if diff := cmp.Diff(tt.want, sinktest.Seqs(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	// The seam while live: a tailer that starts in the archive.
	tl := sinktest.StartTail(t, m, "r", 3)
	tl.Next(t, 22)
	require.NoError(t, sink.Publish(ctx, sinktest.Events("r", 26, 40)...))
	got := tl.Next(t, 37)
	tl.Stop(t, context.Canceled)
	assert.Equal(t, sinktest.Span(4, 40), sinktest.Seqs(got))
	assert.Zero(t, m.Stats().Skipped)
}

// Events that only the archive has (published while the live sink was
// down) are found after the ring's newest event, too.
func TestMemoryEventsOnlyInHistory(t *testing.T) {
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	m := progress.NewMemory(progress.MemoryOptions{History: h})
	all := sinktest.Events("r", 1, 30)
	require.NoError(t, h.Append(ctx, all...))
	require.NoError(t, m.Publish(ctx, all[:10]...))   // 1..10 reached the ring
	require.NoError(t, m.Publish(ctx, all[20:25]...)) // 11..20 did not
	assert.Equal(t, sinktest.Span(1, 30), sinktest.Seqs(sinktest.Replay(t, m, "r", 0)))
	assert.Equal(t, sinktest.Span(6, 30), sinktest.Seqs(sinktest.Replay(t, m, "r", 5)))
}

func TestMemoryEvictsLeastRecentRun(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 2})
	require.NoError(t, m.Publish(ctx, sinktest.Events("a", 1, 3)...))
	require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 3)...))
	require.NoError(t, m.Publish(ctx, sinktest.Events("a", 1, 6)...)) // b is now the least recent
	require.NoError(t, m.Publish(ctx, sinktest.Events("c", 1, 3)...))
	assert.Len(t, sinktest.Replay(t, m, "a", 0), 6)
	got, err := replayAll(m, "b", 0)
	assert.ErrorIs(t, err, progress.ErrEvicted, "b was evicted")
	assert.Equal(t, []uint64{3}, got, "its newest event is kept")
	assert.Len(t, sinktest.Replay(t, m, "c", 0), 3)
	assert.Equal(t, 2, m.Stats().Runs)
	assert.Equal(t, uint64(2), m.Stats().Evicted, "b's newest event is kept")
}

// A reader of an evicted run keeps waiting and gets the run's later events.
func TestMemoryReaderSurvivesEviction(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1})
	require.NoError(t, m.Publish(ctx, sinktest.Events("a", 1, 3)...))
	tl := sinktest.StartTail(t, m, "a", 0)
	tl.Next(t, 3)
	require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 3)...)) // evicts a
	require.NoError(t, m.Publish(ctx, sinktest.Events("a", 4, 5)...))
	got := tl.Next(t, 5)
	tl.Stop(t, context.Canceled)
	assert.Equal(t, sinktest.Span(1, 5), sinktest.Seqs(got))
}

func TestMemoryStatsReaders(t *testing.T) {
	m := progress.NewMemory(progress.MemoryOptions{})
	tl := sinktest.StartTail(t, m, "r", 0)
	require.NoError(t, m.Publish(context.Background(), sinktest.Events("r", 1, 2)...))
	tl.Next(t, 2)
	assert.Equal(t, 1, m.Stats().Readers)
	tl.Stop(t, context.Canceled)
	assert.Equal(t, 0, m.Stats().Readers)
}

// countingHistory counts the events its Replay delivers.
type countingHistory struct {
	progress.History
	read int
}

func (h *countingHistory) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return h.History.Replay(ctx, run, after, func(e progress.Event) error {
		h.read++
		return fn(e)
	})
}

func TestMemoryLastEvent(t *testing.T) {
	ctx := context.Background()
	all := sinktest.Events("r", 1, 30)
	all[29].Type = progress.RunFinished
	tests := []struct {
		name     string
		ring     []progress.Event // published to the ring
		archived []progress.Event // appended to the History only
		want     uint64           // 0: none
		maxRead  int              // events the History may replay
	}{
		{"unknown run", nil, nil, 0, 0},
		{"ring only", all[:10], nil, 10, 0},
		{"History ahead of the ring", all[:10], all[10:20], 20, 10},
		{"History only", nil, all[:20], 20, 20},
		{"final event in the ring", all, all, 30, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mh := progress.NewMemoryHistory()
			h := &countingHistory{History: replayOnly{mh}}
			m := progress.NewMemory(progress.MemoryOptions{History: h})
			require.NoError(t, m.Publish(ctx, tt.ring...))
			require.NoError(t, mh.Append(ctx, tt.archived...))
			e, ok, err := m.LastEvent(ctx, "r")
			require.NoError(t, err)
			assert.Equal(t, tt.want != 0, ok)
			assert.Equal(t, tt.want, e.Seq)
			assert.LessOrEqual(t, h.read, tt.maxRead, "a History without LastEvent is read after the ring's newest only")

			// With a History that has LastEvent, one lookup.
			m = progress.NewMemory(progress.MemoryOptions{History: mh})
			require.NoError(t, m.Publish(ctx, tt.ring...))
			e, ok, err = m.LastEvent(ctx, "r")
			require.NoError(t, err)
			assert.Equal(t, tt.want != 0, ok)
			assert.Equal(t, tt.want, e.Seq)
		})
	}
	_, _, err := progress.NewMemory(progress.MemoryOptions{History: failingHistory{errors.New("db down")}}).LastEvent(ctx, "r")
	assert.ErrorContains(t, err, "history: db down")
}

// A tailer that is behind when its run is evicted from the ring reads
// the events it has not had from the History: the ring will never have
// them again, and no later event of the run may come to make it look.
func TestMemoryTailerBehindAnEvictedRunReadsTheHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		h := progress.NewMemoryHistory()
		m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1, History: h})
		sink := progress.NewFanout(progress.NewArchive(h), m)
		all := sinktest.Events("a", 1, 40)
		all[39].Type = progress.RunFinished
		require.NoError(t, sink.Publish(ctx, all[:3]...))

		tailer := tailSeqs(ctx, m, "a", func(e progress.Event) {
			if e.Seq == 4 {
				// While the tailer is behind, run b evicts run a.
				assert.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...))
			}
		})
		synctest.Wait() // the tailer has 1..3 and waits for more
		require.NoError(t, sink.Publish(ctx, all[3:]...))
		synctest.Wait() // the tailer has all it will get
		tailer.stop(t)
		assert.Equal(t, sinktest.Span(1, 40), tailer.seqs())
		assert.Zero(t, m.Stats().Skipped)
	})
}
