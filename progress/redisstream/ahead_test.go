package redisstream_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A reader positioned ahead of its run (a Last-Event-ID of 9 for a run at
// 3, or at nothing yet) waits; once the run ends below that position, the
// reader is past the end, as one that resumes there is: it lets go of the
// run's shared reader, which stops, and reads nothing more from Redis or
// the History. Its Tail lasts until its context ends.
func TestReaderAheadOfTheRunEndsWithTheRun(t *testing.T) {
	tests := []struct {
		name     string
		stored   uint64 // 1..stored are in Redis (and the History) when the reader starts
		end      uint64 // the run's final event
		history  bool   // a History is configured
		archived bool   // stored+1..end reach the History alone (the run ended during an outage)
	}{
		{"run under way", 3, 5, false, false},
		{"run not started", 0, 5, false, false},
		{"run under way, with a History", 3, 5, true, false},
		{"run ends in the History alone", 3, 5, true, true},
		{"run not started, ends in the History alone", 0, 5, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &countingHistory{MemoryHistory: progress.NewMemoryHistory()}
			opts := redisstream.Options{BlockTime: 10 * time.Millisecond, HistoryPoll: 10 * time.Millisecond}
			if tt.history {
				opts.History = h
			}
			s, r := newStream(t, opts)
			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, tt.end)
			all[tt.end-1].Type = progress.RunFailed
			sink := progress.NewFanout(progress.NewArchive(h), s)
			if tt.stored > 0 {
				require.NoError(t, sink.Publish(ctx, all[:tt.stored]...))
			}
			tl := sinktest.StartTail(t, s, run, 9)
			require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond,
				"the reader ahead of a run under way follows the run's shared reader")
			// Runs counts the shared reader before its goroutine is
			// scheduled.
			require.Eventually(t, func() bool { return sharedReaders() == 1 }, 10*time.Second, time.Millisecond,
				"the shared reader's goroutine, one")
			if tt.archived {
				require.NoError(t, h.Append(ctx, all[tt.stored:]...))
			} else {
				require.NoError(t, sink.Publish(ctx, all[tt.stored:]...))
			}
			require.Eventually(t, func() bool { return s.Stats().Runs == 0 }, 10*time.Second, time.Millisecond,
				"the run ended at seq %d, below the reader at 9, and its shared reader still runs", tt.end)
			// Its goroutine exits within BlockTime: an XREAD it began
			// as it was stopped may still be counted until then.
			require.Eventually(t, func() bool { return sharedReaders() == 0 }, 10*time.Second, time.Millisecond)
			cmds := testenv.CountCommands(r.Client)
			replays := h.replays.Load()
			time.Sleep(100 * time.Millisecond) // ordering only: ten XREADs and polls, were anything still reading
			assert.Zero(t, cmds.Count("xread", "xrange", "xrevrange"), "Redis read for a reader past the run's end")
			assert.Equal(t, replays, h.replays.Load(), "the History read for a reader past the run's end")
			assert.Equal(t, 1, s.Stats().Readers)
			cause := errors.New("left")
			assert.ErrorIs(t, tl.Stop(t, cause), cause, "Tail lasts until its context ends, having delivered nothing")
		})
	}
}

// A reader ahead of its run that the run then overtakes gets the events
// past its position, and the end.
func TestReaderAheadOfTheRunGetsWhatFollowsIt(t *testing.T) {
	for _, stored := range []uint64{0, 3} {
		s, _ := newStream(t, redisstream.Options{BlockTime: 10 * time.Millisecond})
		ctx, run := context.Background(), sinktest.RunID(t)
		all := sinktest.Events(run, 1, 12)
		all[11].Type = progress.RunFinished
		if stored > 0 {
			require.NoError(t, s.Publish(ctx, all[:stored]...))
		}
		tl := sinktest.StartTail(t, s, run, 9)
		require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
		for _, e := range all[stored:] {
			require.NoError(t, s.Publish(ctx, e))
		}
		tl.Expect(t, sinktest.Span(10, 12))
		require.Eventually(t, func() bool { return s.Stats().Runs == 0 }, 10*time.Second, time.Millisecond)
		tl.Stop(t, context.Canceled)
	}
}

// sharedReaders counts the goroutines of runs' shared readers
// (Stream.runHub) that have not exited yet, in every Stream of the test
// binary; tests in this package do not run in parallel.
func sharedReaders() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "redisstream.(*Stream).runHub(")
		}
		buf = make([]byte, 2*len(buf))
	}
}
