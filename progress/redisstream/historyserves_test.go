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

// readsNoMore checks that s's readers no longer read Redis, which is
// down: no shared reader runs, and no read fails over a second, in which
// a reader still retrying (RetryDelay 20ms, doubling) would fail several
// times.
func readsNoMore(t *testing.T, s *redisstream.Stream) {
	t.Helper()
	assert.Zero(t, s.Stats().Runs, "a shared reader follows the run")
	before := s.Stats().ReadErrors
	time.Sleep(time.Second) // waiting for what must not happen; it cannot make the test fail wrongly
	assert.Equal(t, before, s.Stats().ReadErrors, "the reader still reads Redis")
}

// While Redis is down, a reader of a run whose events the History holds
// gets them from the History, in order, and finishes with the run's final
// event without Redis: from the start, from a Last-Event-ID in the middle,
// and at or past the final event (nothing to deliver). Where the History
// lacks an event (seq 10 of the gapped run, which reached Redis alone),
// the reader stops before it and waits for Redis, which delivers it once
// it is back: it never passes over it. Before, a reader got nothing until
// Redis was back (the front-end team's repro: 0 of 46 events for a 12 s
// outage).
func TestTailReadsAFinishedRunFromTheHistoryWhileRedisIsDown(t *testing.T) {
	p := newPrivateStream(t)
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 46)
	all[45].Type = progress.RunFinished
	require.NoError(t, fakeRun(ctx, p.sink, all))
	require.NoError(t, p.buffered.Flush(ctx))
	gapped := run + "-gapped"
	gappedAll := sinktest.Events(gapped, 1, 46)
	gappedAll[45].Type = progress.RunFinished
	require.NoError(t, p.stream.Publish(ctx, gappedAll...))
	require.NoError(t, p.history.Append(ctx, gappedAll[:9]...))
	require.NoError(t, p.history.Append(ctx, gappedAll[10:]...))
	n, err := p.client.XLen(ctx, p.stream.Key(run)).Result()
	require.NoError(t, err)
	require.Equal(t, int64(46), n, "Redis had the whole run")
	require.Equal(t, 46, p.history.Len(run))
	p.server.Kill()

	for _, tt := range []struct {
		name  string
		after uint64
	}{
		{"from the start", 0},
		{"from the middle", 20},
		{"at the final event", 46},
		{"past the final event", 50},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tl := sinktest.StartTail(t, p.stream, run, tt.after)
			var want []uint64
			if tt.after < 46 {
				want = sinktest.Span(tt.after+1, 46)
			}
			tl.Expect(t, want)
			readsNoMore(t, p.stream)
			assert.ErrorIs(t, tl.Stop(t, context.Canceled), context.Canceled)
		})
	}

	t.Run("a gap in the history", func(t *testing.T) {
		tl := sinktest.StartTail(t, p.stream, gapped, 0)
		tl.Expect(t, sinktest.Span(1, 9))
		p.server.Restart()
		require.NoError(t, p.stream.Publish(ctx, gappedAll[9:]...)) // as a Buffered's retry would
		tl.Expect(t, sinktest.Span(10, 46))
		assert.ErrorIs(t, tl.Stop(t, context.Canceled), context.Canceled)
	})
	assert.Zero(t, p.stream.Stats().Skipped, "events skipped")
}

// While Redis is down, a reader of a live run gets the events that the
// History holds without a gap after its position, those the run
// publishes during the outage too (the History is asked again every
// HistoryPoll), then waits for Redis, and follows the run once Redis is
// back, with no gap and no duplicate.
func TestTailFollowsALiveRunFromTheHistoryWhileRedisIsDown(t *testing.T) {
	p := newPrivateStream(t, func(o *redisstream.Options) { o.HistoryPoll = 200 * time.Millisecond })
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 40)
	all[39].Type = progress.RunFinished
	require.NoError(t, fakeRun(ctx, p.sink, all[:20]))
	require.NoError(t, p.buffered.Flush(ctx))
	p.server.Kill()

	fromStart := sinktest.StartTail(t, p.stream, run, 0)
	fromMiddle := sinktest.StartTail(t, p.stream, run, 12)
	fromStart.Expect(t, sinktest.Span(1, 20))
	fromMiddle.Expect(t, sinktest.Span(13, 20))

	require.NoError(t, fakeRun(ctx, p.sink, all[20:25]), "Publish never fails the run")
	require.NoError(t, p.buffered.Flush(ctx))
	fromStart.Expect(t, sinktest.Span(21, 25))
	fromMiddle.Expect(t, sinktest.Span(21, 25))

	p.server.Restart()
	require.NoError(t, fakeRun(ctx, p.sink, all[25:]))
	require.NoError(t, p.buffered.Flush(ctx))
	fromStart.Expect(t, sinktest.Span(26, 40))
	fromMiddle.Expect(t, sinktest.Span(26, 40))
	assert.ErrorIs(t, fromStart.Stop(t, context.Canceled), context.Canceled)
	assert.ErrorIs(t, fromMiddle.Stop(t, context.Canceled), context.Canceled)
	assert.Zero(t, p.stream.Stats().Skipped, "events skipped")
}

// While Redis is down, LastEvent answers from the History when it holds
// the run's final event, the run's newest event whatever Redis holds: so
// that progress/sse's handler answers 204 to a browser that resumes at
// the end of a finished run, rather than open a stream that says
// nothing until Redis is back. For a run whose final event the History
// lacks, it returns Redis's error, as Redis may hold newer events. Before,
// it returned Redis's error for both.
func TestLastEventFromTheHistoryWhileRedisIsDown(t *testing.T) {
	p := newPrivateStream(t)
	ctx := context.Background()
	finished, live := sinktest.RunID(t), sinktest.RunID(t)+"-live"
	all := sinktest.Events(finished, 1, 46)
	all[45].Type = progress.RunFinished
	require.NoError(t, fakeRun(ctx, p.sink, all))
	require.NoError(t, fakeRun(ctx, p.sink, sinktest.Events(live, 1, 10)))
	require.NoError(t, p.buffered.Flush(ctx))
	p.server.Kill()

	e, ok, err := p.stream.LastEvent(ctx, finished)
	require.NoError(t, err, "the History holds the run's final event")
	assert.True(t, ok)
	assert.Empty(t, sinktest.Diff(all[45:], []progress.Event{e}))
	_, _, err = p.stream.LastEvent(ctx, live)
	assert.ErrorContains(t, err, "redisstream: xrevrange", "Redis may hold events newer than the History's")
}
