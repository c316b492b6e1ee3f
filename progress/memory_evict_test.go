package progress_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

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
	// Each evicted run's first event, and r0's second, which it forgot.
	assert.Equal(t, uint64(12), m.Stats().Evicted)
	e, ok, err := m.LastEvent(context.Background(), "r0")
	require.NoError(t, err)
	assert.False(t, ok, "forgotten: %+v", e)
}

// An evicted run that its newest event brings back, and whose ring trims
// that event then, counts it once in Evicted.
func TestMemoryCountsAnEvictedRunsNewestEventOnce(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1, Capacity: 2})
	require.NoError(t, m.Publish(ctx, sinktest.Events("a", 1, 2)...))
	require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts a
	require.NoError(t, m.Publish(ctx, sinktest.Events("a", 3, 4)...)) // evicts b; the ring trims 2
	s := m.Stats()
	assert.Equal(t, uint64(2), s.Evicted, "a's 1 and 2; not b's 1, its newest, kept")
	assert.Equal(t, 3, s.Events, "a's 3 and 4, and b's 1, kept")
}

// A Tail of a finished run that the Memory evicted, without a History,
// gets the run's final event, which the Memory kept, after the gap, and
// then ends with ErrEvicted: nothing more can come, and it lacks events.
// (It waited for its ctx to end, with nothing.) A tailer that lacks
// nothing, or follows a live run, waits as before.
func TestMemoryTailOfAnEvictedFinishedRunEnds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		run   []progress.Event
		after uint64
		want  []uint64
		gone  bool // Tail ends with ErrEvicted; else it waits
	}{
		{"finished", finished("a", 1, 5), 0, []uint64{5}, true},
		{"finished, after 3", finished("a", 1, 5), 3, []uint64{5}, true},
		{"finished, lacking none", finished("a", 1, 5), 4, []uint64{5}, false},
		{"finished, past the end", finished("a", 1, 5), 5, nil, false},
		{"live", sinktest.Events("a", 1, 5), 0, []uint64{5}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1})
				require.NoError(t, m.Publish(ctx, tc.run...))
				require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts a
				var got []uint64
				done := make(chan error, 1)
				go func() {
					done <- m.Tail(ctx, "a", tc.after, func(e progress.Event) error {
						got = append(got, e.Seq)
						return nil
					})
				}()
				synctest.Wait()
				var err error
				select {
				case err = <-done:
				default:
					cancel()
					err = <-done
				}
				assert.Equal(t, tc.want, got)
				if tc.gone {
					assert.ErrorIs(t, err, progress.ErrEvicted)
					assert.ErrorContains(t, err, `run "a"`)
				} else {
					assert.ErrorIs(t, err, context.Canceled, "Tail waits")
				}
			})
		})
	}
}

// A tailer behind a finished run when the run is evicted, without a
// History, gets the run's final event after the gap and ends with
// ErrEvicted.
func TestMemoryTailerBehindAnEvictedFinishedRunEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1})
		all := finished("a", 1, 5)
		require.NoError(t, m.Publish(ctx, all[:2]...))
		hold, at2, release := holdAt(2)
		tailer := tailSeqs(ctx, m, "a", hold)
		<-at2
		require.NoError(t, m.Publish(ctx, all[2:]...))
		require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts a
		close(release)
		synctest.Wait()
		select {
		case err := <-tailer.done:
			assert.ErrorIs(t, err, progress.ErrEvicted)
		default:
			tailer.stop(t)
			t.Error("the tailer waits for good")
		}
		assert.Equal(t, []uint64{1, 2, 5}, tailer.seqs())
		assert.Equal(t, uint64(2), m.Stats().Skipped)
	})
}

// A tailer of a live run that the Memory evicted, without a History, gets
// the run's newest event after the gap, and follows the run on when it
// publishes again.
func TestMemoryTailOfAnEvictedLiveRunFollowsIt(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1})
	require.NoError(t, m.Publish(ctx, sinktest.Events("a", 1, 5)...))
	require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts a
	tl := sinktest.StartTail(t, m, "a", 0)
	tl.Expect(t, []uint64{5})
	require.NoError(t, m.Publish(ctx, finished("a", 6, 7)...)) // evicts b
	tl.Expect(t, []uint64{6, 7})
	tl.Stop(t, context.Canceled)
	s := m.Stats()
	assert.Equal(t, uint64(4), s.Skipped)
	assert.Equal(t, uint64(2), s.EvictedLive)
}

// Replay of an evicted run reads what it lacks from the History: it says
// ErrEvicted only when the History lacks some of it too.
func TestMemoryReplayOfAnEvictedRunReadsTheHistory(t *testing.T) {
	ctx := context.Background()
	all := finished("a", 1, 5)
	for _, tc := range []struct {
		name     string
		archived []progress.Event
		want     []uint64
		gone     string // the error's detail; "" for none
	}{
		{"all archived", all, sinktest.Span(1, 5), ""},
		{"the start archived", all[:2], []uint64{1, 2, 5}, "2 of its events from seq 3 to 4 are gone"},
		{"none archived", nil, []uint64{5}, "4 of its events from seq 1 to 4 are gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := progress.NewMemoryHistory()
			require.NoError(t, h.Append(ctx, tc.archived...))
			m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1, History: h})
			require.NoError(t, m.Publish(ctx, all...))
			require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts a
			got, err := replayAll(m, "a", 0)
			assert.Equal(t, tc.want, got)
			if tc.gone == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, progress.ErrEvicted)
			assert.ErrorContains(t, err, tc.gone)
		})
	}
}

// Every event published is counted once, in Events while the Memory
// holds it (an evicted run's newest event, kept while the run is
// remembered, included) or in Evicted once it is gone, so that Events
// says what the Memory holds.
func TestMemoryStatsCountTheEventsKeptOfEvictedRuns(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1, Capacity: 2})
	steps := []struct {
		events []progress.Event
		runs   int
		held   int
	}{
		{sinktest.Events("a", 1, 3), 1, 2}, // the ring trims 1
		{finished("b", 1, 2), 1, 3},        // evicts a, keeps its 3
		{sinktest.Events("c", 1, 1), 1, 3}, // evicts b, keeps its 2
		{sinktest.Events("a", 4, 4), 1, 4}, // a back with 3; evicts c
		{sinktest.Events("a", 5, 5), 1, 4}, // the ring trims 3
	}
	for i, step := range steps {
		require.NoError(t, m.Publish(ctx, step.events...))
		s := m.Stats()
		assert.Equal(t, step.runs, s.Runs, "step %d: runs kept", i)
		assert.Equal(t, step.held, s.Events, "step %d: events held", i)
		assert.Equal(t, s.Published, uint64(s.Events)+s.Evicted, "step %d: each event published is held or evicted: %+v", i, s)
	}
	for i := range 12 { // the Memory forgets a, b, c, and the first runs rN
		require.NoError(t, m.Publish(ctx, sinktest.Events(fmt.Sprint("r", i), 1, 1)...))
	}
	s := m.Stats()
	assert.Equal(t, 11, s.Events, "r11's, and the 10 runs remembered")
	assert.Equal(t, s.Published, uint64(s.Events)+s.Evicted, "%+v", s)
}

// A run that the Memory forgot is unknown again, as one never published,
// whether or not a reader of it is still there: its events are taken
// anew, not as duplicates of the events it had, as they are once its
// readers left.
func TestMemoryForgottenRunIsUnknownWithOrWithoutReaders(t *testing.T) {
	for _, read := range []bool{false, true} {
		t.Run(fmt.Sprint("reader ", read), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1})
				require.NoError(t, m.Publish(ctx, sinktest.Events("a", 1, 3)...))
				done := make(chan error, 1)
				if read {
					go func() {
						done <- m.Tail(ctx, "a", 0, func(progress.Event) error { return nil })
					}()
					synctest.Wait()
				}
				for i := range 11 { // evict a, then forget it
					require.NoError(t, m.Publish(ctx, sinktest.Events(fmt.Sprint("r", i), 1, 1)...))
				}
				require.NoError(t, m.Publish(ctx, sinktest.Events("a", 1, 2)...))
				assert.Zero(t, m.Stats().Duplicates, "a's events are new")
				got, err := replayAll(m, "a", 0)
				assert.NoError(t, err)
				assert.Equal(t, []uint64{1, 2}, got)
				if read {
					cancel()
					assert.ErrorIs(t, <-done, context.Canceled)
				}
			})
		})
	}
}
