package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/progress"
)

// Every LastEvent that a Redis hang finds waiting for a token of reads
// that do not block, before any read has failed, fails at the first read
// in flight that fails, also one queued behind a Replay, which waits its
// turn and takes the token that the first failed read gave back. Before,
// the token went from lookup to lookup, each failing, until the Replay
// took it and hung: the lookups queued behind it waited for its read to
// fail, one ReadTimeout (or more) later.
func TestLastEventQueuedBehindAReplayFailsAtTheFirstFailedRead(t *testing.T) {
	s, reads, run, _, first := hangingLookup(t, false, 0)
	ctx := context.Background()
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
