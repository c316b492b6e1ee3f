package redisstream_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Once a run's stream is gone from Redis (it expired: its writer died
// and IdleTTL passed), a Stream without a History answers for it as a
// fresh process does: no event, and a new reader gets nothing; the
// reader that followed it ends with ErrStreamGone. Before, the run's shared reader kept serving
// its window as if Redis still held it: LastEvent said seq 6, so that the
// SSE handler opened a stream where a fresh process answered 204 after
// EmptyRunTimeout, and a reader from the start got seq 3 to 6, the
// events before the window counted as skipped, and waited for good. With
// a client's ReadTimeout of -1 the shared reader checks with an XREAD,
// not an EXISTS (see TestCloseWhileAStreamsCheckIsLeftOnACutConnection).
func TestAStreamGoneIsGoneForEveryReader(t *testing.T) {
	for _, tc := range []struct {
		name        string
		readTimeout time.Duration
	}{{"default ReadTimeout", 0}, {"ReadTimeout -1", -1}} {
		t.Run(tc.name, func(t *testing.T) { testAStreamGoneIsGoneForEveryReader(t, tc.readTimeout) })
	}
}

func testAStreamGoneIsGoneForEveryReader(t *testing.T, readTimeout time.Duration) {
	ctx := context.Background()
	r := testenv.NewRedis(t)
	opts := *r.Client.Options()
	opts.ReadTimeout = readTimeout
	client := testenv.NewRedisClient(&opts)
	t.Cleanup(func() { client.Close() })
	s, err := redisstream.New(client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
		HubBuffer: 4, BlockTime: 100 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
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

	assert.ErrorIs(t, <-done, redisstream.ErrStreamGone, "the follower of a stream gone")
}

// A reader that follows a run whose stream goes from Redis still gets the
// events that the run's shared reader held for it, which it was due
// before the stream went (its client slow, it was behind), then ends with
// ErrStreamGone; a reader that Tails again from there (a browser's
// EventSource reconnects) gets what a late Publish writes again, while
// LastEvent and new readers find what Redis holds. Before, the shared
// reader dropped its window when it found the stream gone: the reader
// lost seq 3 to 5, counted as skipped.
func TestAStreamGoneKeepsWhatItsFollowersWereDue(t *testing.T) {
	ctx := context.Background()
	s, r := newStream(t, redisstream.Options{HubBuffer: 64}) // the follower stays in the window
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 9)
	require.NoError(t, s.Publish(ctx, all[:1]...))

	following, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var seen []uint64
	gate := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Tail(following, run, 0, func(e progress.Event) error {
			mu.Lock()
			seen = append(seen, e.Seq)
			mu.Unlock()
			if e.Seq == 2 {
				<-gate // a slow client
			}
			return nil
		})
	}()
	got := func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
	require.Eventually(t, func() bool { return slices.Equal(got(), []uint64{1}) }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, s.Publish(ctx, all[1:5]...))
	// A reader from seq 4 joins the run's shared reader, and reads
	// nothing else: once it has seq 5, the shared reader holds 2 to 5.
	var joined atomic.Uint64
	joinedDone := make(chan error, 1)
	go func() {
		joinedDone <- s.Tail(following, run, 4, func(e progress.Event) error { joined.Store(e.Seq); return nil })
	}()
	require.Eventually(t, func() bool { return joined.Load() == 5 }, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err()) // as Redis losing it would
	require.Eventually(t, func() bool {
		_, ok, err := s.LastEvent(ctx, run)
		return err == nil && !ok
	}, 5*time.Second, 20*time.Millisecond, "LastEvent of a stream gone")
	close(gate)
	assert.ErrorIs(t, <-done, redisstream.ErrStreamGone, "the follower, once it has its events")
	assert.Equal(t, []uint64{1, 2, 3, 4, 5}, got(), "the follower's events")
	assert.Zero(t, s.Stats().Skipped, "events skipped")
	assert.ErrorIs(t, <-joinedDone, redisstream.ErrStreamGone, "the reader that joined")
	assert.Equal(t, uint64(5), joined.Load())

	require.NoError(t, s.Publish(ctx, all[5:]...)) // a late Publish writes the stream again
	for _, tc := range []struct {
		name  string
		after uint64
	}{{"a reader that reconnects", 5}, {"a new reader", 0}} {
		late, stop := context.WithTimeout(ctx, time.Second)
		var fresh []uint64
		err := s.Tail(late, run, tc.after, func(e progress.Event) error { fresh = append(fresh, e.Seq); return nil })
		stop()
		assert.ErrorIs(t, err, context.DeadlineExceeded, tc.name)
		assert.Equal(t, []uint64{6, 7, 8, 9}, fresh, "%s gets what Redis holds", tc.name)
	}
	cancel()
}
