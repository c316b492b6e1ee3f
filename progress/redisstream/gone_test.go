package redisstream_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Once a run's stream is gone from Redis (it expired: its writer died
// and IdleTTL passed), a Stream without a History answers for it as a
// fresh process does, though a reader still follows it: no event, and a
// new reader gets nothing. Before, the run's shared reader kept serving
// its window as if Redis still held it: LastEvent said seq 6, so that the
// SSE handler opened a stream where a fresh process answered 204 after
// EmptyRunTimeout, and a reader from the start got seq 3 to 6, the
// events before the window counted as skipped, and waited for good.
func TestAStreamGoneIsGoneForEveryReader(t *testing.T) {
	ctx := context.Background()
	s, r := newStream(t, redisstream.Options{HubBuffer: 4})
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 6)
	require.NoError(t, s.Publish(ctx, all[:2]...))

	following, cancel := context.WithCancel(ctx)
	defer cancel()
	var seen atomic.Uint64
	done := make(chan error, 1)
	go func() {
		done <- s.Tail(following, run, 0, func(e progress.Event) error { seen.Store(e.Seq); return nil })
	}()
	require.Eventually(t, func() bool { return seen.Load() == 2 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, s.Publish(ctx, all[2:]...)) // to the follower through the run's shared reader
	require.Eventually(t, func() bool { return seen.Load() == 6 }, 10*time.Second, 10*time.Millisecond)
	_, ok, err := s.LastEvent(ctx, run)
	require.NoError(t, err)
	require.True(t, ok, "the stream holds the run's events")

	require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err()) // as its expiry would
	fresh, err := redisstream.New(r.Client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, Logger: quiet()})
	require.NoError(t, err)
	defer fresh.Close()
	_, ok, err = fresh.LastEvent(ctx, run)
	require.NoError(t, err)
	require.False(t, ok, "a fresh process finds no event")
	assert.Eventually(t, func() bool {
		_, ok, err := s.LastEvent(ctx, run)
		return err == nil && !ok
	}, 5*time.Second, 20*time.Millisecond, "LastEvent still finds an event of a stream gone")

	late, stop := context.WithTimeout(ctx, time.Second)
	defer stop()
	var got []uint64
	err = s.Tail(late, run, 0, func(e progress.Event) error { got = append(got, e.Seq); return nil })
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "Tail: %v", err)
	assert.Empty(t, got, "a new reader of a stream gone")

	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}
