package redisstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Many readers of a run without any event yet (not started, or unknown;
// many browser tabs, with or without a Last-Event-ID) cost Redis what one
// reader costs: the first replays the stream and starts the run's shared
// reader, and the others join that shared reader without a read of their
// own.
func TestReadersOfAnEmptyRunShareTheirReads(t *testing.T) {
	const readers = 20
	for _, after := range []uint64{0, 7} {
		t.Run(fmt.Sprint("after ", after), func(t *testing.T) {
			s, r := newStream(t, redisstream.Options{BlockTime: 50 * time.Millisecond})
			ctx, run := context.Background(), sinktest.RunID(t)
			cmds := testenv.CountCommands(r.Client)
			tls := []*sinktest.Tailer{sinktest.StartTail(t, s, run, after)}
			require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
			for range readers - 1 {
				tls = append(tls, sinktest.StartTail(t, s, run, after))
			}
			require.Eventually(t, func() bool { return s.Stats().Readers == readers }, 10*time.Second, time.Millisecond)
			all := sinktest.Events(run, 1, after+2)
			all[after+1].Type = progress.RunFinished
			require.NoError(t, s.Publish(ctx, all...))
			for _, tl := range tls {
				tl.Expect(t, sinktest.Span(after+1, after+2))
			}
			wantLookups := 0
			if after > 0 {
				wantLookups = 1 // the first reader looks for the run's end
			}
			assert.Equal(t, 1, cmds.Count("xrange"), "XRANGEs for %d readers of an empty run", readers)
			assert.Equal(t, wantLookups, cmds.Count("xrevrange"), "XREVRANGEs for %d readers of an empty run", readers)
			require.Eventually(t, func() bool { return s.Stats().Runs == 0 }, 10*time.Second, time.Millisecond,
				"the shared reader stops once every reader has the final event")
			for _, tl := range tls {
				tl.Stop(t, context.Canceled)
			}
		})
	}
}

// While a reader follows the run's shared reader, LastEvent is answered by
// it, without a command, and as Redis would answer, once it holds an
// event: it starts after the events its first reader replayed.
func TestLastEventFromTheSharedReader(t *testing.T) {
	s, r := newStream(t, redisstream.Options{BlockTime: 50 * time.Millisecond})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 6)
	all[5].Type = progress.RunFinished
	require.NoError(t, s.Publish(ctx, all[:3]...))
	tl := onShared(t, s, run, 3)
	cmds := testenv.CountCommands(r.Client)
	for i := 3; i <= 5; i++ {
		if i > 3 {
			require.NoError(t, s.Publish(ctx, all[i-1]))
			tl.Expect(t, []uint64{uint64(i)})
		}
		e, ok, err := s.LastEvent(ctx, run)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Empty(t, sinktest.Diff(all[i-1:i], []progress.Event{e}), "LastEvent after seq %d", i)
	}
	assert.Equal(t, 1, cmds.Count("xrevrange"), "XREVRANGEs while the shared reader runs: only before it holds an event")
	require.NoError(t, s.Publish(ctx, all[5]))
	tl.Expect(t, []uint64{6})
	require.Eventually(t, func() bool { return s.Stats().Runs == 0 }, 10*time.Second, time.Millisecond)
	e, ok, err := s.LastEvent(ctx, run)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Empty(t, sinktest.Diff(all[5:], []progress.Event{e}), "from Redis once the shared reader stopped")
	assert.Equal(t, 2, cmds.Count("xrevrange"))
	tl.Stop(t, context.Canceled)
}
