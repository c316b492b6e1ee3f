package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Every LastEvent that a Redis hang finds waiting for a token of reads
// that do not block, before any read has failed, fails at the first read
// in flight that fails, also one queued behind a Replay, which waits its
// turn and takes the token that the first failed read gave back. Before,
// the token went from lookup to lookup, each failing, until the Replay
// took it and hung: the lookups queued behind it waited for its read to
// fail, one ReadTimeout (or more) later.
func TestLastEventQueuedBehindAReplayFailsAtTheFirstFailedRead(t *testing.T) {
	r := testenv.NewRedis(t)
	reads := &stuckReads{one: make(chan struct{}), all: make(chan struct{})}
	client := testenv.NewRedisClient(r.Client.Options())
	client.AddHook(reads)
	t.Cleanup(func() { client.Close() })
	s, err := redisstream.New(client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
		BlockTime: 100 * time.Millisecond, RetryDelay: 20 * time.Millisecond, MaxBlockingReads: 2, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	t.Cleanup(reads.failAll) // before the Stream's Close, which waits for the reads
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 30)...))

	reads.hang.Store(true)
	first := make(chan error, 1)
	go func() { // takes the only token of reads that do not block, and hangs
		_, _, err := s.LastEvent(ctx, run)
		first <- err
	}()
	deadline := time.Now().Add(hangBound)
	for reads.hanging.Load() == 0 {
		require.True(t, time.Now().Before(deadline), "the first lookup never reached Redis")
		time.Sleep(time.Millisecond) // polling a hook, bounded by the deadline
	}
	lookup := func() <-chan error {
		done := make(chan error, 1)
		go func() {
			_, _, err := s.LastEvent(ctx, run)
			done <- err
		}()
		time.Sleep(100 * time.Millisecond) // lets it queue; no assertion on how long
		return done
	}
	before := lookup()
	replay := make(chan error, 1)
	go func() {
		replay <- s.Replay(ctx, run, 0, func(progress.Event) error { return nil })
	}()
	time.Sleep(100 * time.Millisecond) // lets it queue; no assertion on how long
	after := lookup()

	reads.one <- struct{}{} // the first lookup's read fails
	assert.Error(t, <-first)
	for i, done := range []<-chan error{before, after} {
		select {
		case err := <-done:
			assert.Error(t, err, "LastEvent %d while Redis hangs", i)
		case <-time.After(hangBound):
			t.Fatalf("LastEvent %d waited for the Replay's read, after one had failed, over %v (reads hung: %d)", i, hangBound, reads.hanging.Load())
		}
	}
	reads.failAll()
	assert.Error(t, <-replay)
}
