package redisstream_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// busyReads makes the reads of Redis (XRANGE, XREVRANGE, XREAD) fail at
// once (mode 1), as a connection reset does, or take their time and then
// get Redis's answer (mode 2), as on a Redis that is up but busy, or for
// a large page: the read holds its token of reads that do not block
// until released.
type busyReads struct {
	mode    atomic.Int32
	held    atomic.Int32 // the reads held (mode 2) so far
	release chan struct{}
	freed   sync.Once
}

func (b *busyReads) free() { b.freed.Do(func() { close(b.release) }) }

func (b *busyReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (b *busyReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "xrange", "xrevrange", "xread":
			switch b.mode.Load() {
			case 1:
				err := errors.New("read tcp: connection reset by peer")
				cmd.SetErr(err)
				return err
			case 2:
				b.held.Add(1)
				<-b.release
			}
		}
		return next(ctx, cmd)
	}
}
func (b *busyReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// busyStream returns a Stream without a History, with one token of reads
// that do not block (MaxBlockingReads 2), on a client that busyReads
// controls, and a run of 30 events published to it; one read of Redis
// has failed (a connection reset), and Redis has answered since, but no
// read has ended since; and one read, a Replay's, holds the token, as a
// busy Redis's does for a moment: the returned channel gets its error.
func busyStream(t *testing.T) (*redisstream.Stream, *busyReads, string, <-chan error) {
	t.Helper()
	r := testenv.NewRedis(t)
	reads := &busyReads{release: make(chan struct{})}
	client := testenv.NewRedisClient(r.Client.Options())
	client.AddHook(reads)
	t.Cleanup(func() { client.Close() })
	s, err := redisstream.New(client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
		BlockTime: 100 * time.Millisecond, RetryDelay: 20 * time.Millisecond, MaxBlockingReads: 2, Logger: quiet()})
	require.NoError(t, err)
	redisstream.SetReadWait(s, time.Minute) // as long as the test takes: the wait's bound is not what is tested
	t.Cleanup(func() { s.Close() })
	t.Cleanup(reads.free) // before the Stream's Close, which waits for the reads
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 30)...))

	reads.mode.Store(1)
	_, _, err = s.LastEvent(ctx, run) // a transient failure
	require.Error(t, err)
	reads.mode.Store(2)
	replayed := make(chan error, 1)
	go func() { // takes the only token, for as long as Redis takes
		replayed <- s.Replay(ctx, run, 0, func(progress.Event) error { return nil })
	}()
	deadline := time.Now().Add(hangBound)
	for reads.held.Load() == 0 {
		require.True(t, time.Now().Before(deadline), "the replay never reached Redis")
		time.Sleep(time.Millisecond) // polling a hook, bounded by the deadline
	}
	reads.mode.Store(0) // Redis answers every read that starts from now on
	return s, reads, run, replayed
}

// A read of Redis that failed once, long before, while Redis answers
// every read since, does not make LastEvent fail when no read can start
// at once because another is in flight (a busy Redis, browsers that
// connect together): it waits for its turn, as it does while no read has
// failed. Before (31e2885, 96ae54b), it failed at once until a read ended
// well, however long ago the failure was: progress/sse's handler then
// opened the stream of a browser that resumed at the end of a finished
// run without a History, or asked (with EmptyRunTimeout) for a run
// unknown, where it answers 204, and a HEAD request got 200 for them.
func TestLastEventWaitsForABusyRedisAfterAnOldFailure(t *testing.T) {
	s, reads, run, replayed := busyStream(t)
	done := make(chan error, 1)
	var got progress.Event
	go func() {
		e, _, err := s.LastEvent(context.Background(), run)
		got = e
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("LastEvent ended while the read before it was in flight, and Redis answers: %v", err)
	case <-time.After(100 * time.Millisecond): // it waits; no assertion on how long
	}
	reads.free()
	require.NoError(t, <-replayed)
	require.NoError(t, <-done)
	assert.Equal(t, uint64(30), got.Seq)
}

// Nor does it make a Tail's reads fail, and the reader wait with backoff,
// counted and logged as a read that failed, while Redis answers. Before
// (b4697c4), its first page failed at once.
func TestTailWaitsForABusyRedisAfterAnOldFailure(t *testing.T) {
	s, reads, run, replayed := busyStream(t)
	failed := s.Stats().ReadErrors
	tl := sinktest.StartTail(t, s, run, 0)
	time.Sleep(100 * time.Millisecond) // lets the Tail reach its read; no assertion on how long
	reads.free()
	require.NoError(t, <-replayed)
	tl.Expect(t, sinktest.Span(1, 30))
	tl.Stop(t, context.Canceled)
	assert.Equal(t, failed, s.Stats().ReadErrors, "reads counted as failed while Redis answers")
}

// stuckReads makes the reads of Redis hang (once hang is set), as while
// Redis is paused, each until the test fails one (one) or all
// (failAll), as the client's ReadTimeout does.
type stuckReads struct {
	hang    atomic.Bool
	hanging atomic.Int32 // the reads that hung so far
	one     chan struct{}
	all     chan struct{}
	freed   sync.Once
}

func (o *stuckReads) failAll() { o.freed.Do(func() { close(o.all) }) }

func (o *stuckReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (o *stuckReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "xrange", "xrevrange", "xread":
			if o.hang.Load() {
				o.hanging.Add(1)
				select {
				case <-o.one:
				case <-o.all:
				}
				err := errors.New("read tcp: i/o timeout")
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}
func (o *stuckReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A LastEvent that a Redis hang finds waiting for a token of reads that
// do not block, before any read has failed, fails as soon as a read in
// flight fails, as one that comes after: it does not go on to wait for
// its own read to fail. Before, it had chosen to wait its turn when it
// came, and did, one ReadTimeout after the other (with go-redis's
// defaults MaxRetries+1 of them a read, 12s): progress/sse's handler held
// the headers of the browsers that connected in the first moments of
// the hang as long as 31e2885 and 96ae54b spared those that came later.
func TestLastEventQueuedAtAHangFailsAtTheFirstFailedRead(t *testing.T) {
	s, reads, run, _, first := hangingLookup(t, false, 0)
	ctx := context.Background()
	queued := make(chan error, 2)
	for range 2 {
		go func() {
			_, _, err := s.LastEvent(ctx, run)
			queued <- err
		}()
	}
	time.Sleep(100 * time.Millisecond) // lets them queue; no assertion on how long
	reads.one <- struct{}{}            // the first lookup's read fails
	assert.Error(t, <-first)
	for range 2 {
		select {
		case err := <-queued:
			assert.Error(t, err, "LastEvent while Redis hangs")
		case <-time.After(hangBound):
			t.Fatalf("LastEvent waited for a read of its own to fail, after one had, over %v (reads hung: %d)", hangBound, reads.hanging.Load())
		}
	}
	reads.hang.Store(false)
	reads.failAll()
	e, ok, err := s.LastEvent(ctx, run) // Redis answers again
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(30), e.Seq)
}

// Nor does a Tail's read that waited for a token since before any read
// failed wait for a read of its own to fail: at the first that does, it
// counts as failed, and the reader serves itself from the History. Before,
// it took the token and hung in its turn, and got nothing meanwhile.
func TestTailQueuedAtAHangServesTheHistoryAtTheFirstFailedRead(t *testing.T) {
	s, reads, run, _, first := hangingLookup(t, true, 0)
	tl := sinktest.StartTail(t, s, run, 0)
	time.Sleep(100 * time.Millisecond) // lets it queue; no assertion on how long
	reads.one <- struct{}{}            // the lookup's read fails
	assert.Error(t, <-first)
	tl.Expect(t, sinktest.Span(1, 30))
	tl.Stop(t, context.Canceled)
}

// hungStream returns a Stream with a History of a run of 30 events going
// on, on a client whose reads stuckReads makes hang; one read has hung
// and failed, and the token of reads that do not block is free. The
// Stream's wait for a read of a Tail is d.
func hungStream(t *testing.T, d time.Duration) (*redisstream.Stream, *stuckReads, string, *progress.MemoryHistory) {
	t.Helper()
	s, reads, run, hist, first := hangingLookup(t, true, d)
	reads.one <- struct{}{} // fails, as at the client's ReadTimeout
	require.Error(t, <-first)
	return s, reads, run, hist
}

// hangingLookup returns a Stream of a run of 30 events going on (with a
// History that holds them too if withHistory, and its wait for a read of
// a Tail set to d if d is above 0), on a client whose reads stuckReads
// makes hang, once a LastEvent of the run has taken the only token of
// reads that do not block and hangs: first receives its error.
func hangingLookup(t *testing.T, withHistory bool, d time.Duration) (*redisstream.Stream, *stuckReads, string, *progress.MemoryHistory, <-chan error) {
	t.Helper()
	r := testenv.NewRedis(t)
	reads := &stuckReads{one: make(chan struct{}), all: make(chan struct{})}
	client := testenv.NewRedisClient(r.Client.Options())
	client.AddHook(reads)
	t.Cleanup(func() { client.Close() })
	opts := redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
		BlockTime: 100 * time.Millisecond, RetryDelay: 20 * time.Millisecond, MaxBlockingReads: 2, Logger: quiet()}
	var hist *progress.MemoryHistory
	if withHistory {
		hist = progress.NewMemoryHistory()
		opts.History, opts.HistoryPoll = hist, 200*time.Millisecond
	}
	s, err := redisstream.New(client, opts)
	require.NoError(t, err)
	if d > 0 {
		redisstream.SetReadWait(s, d)
	}
	t.Cleanup(func() { s.Close() })
	t.Cleanup(reads.failAll) // before the Stream's Close, which waits for the reads
	ctx := context.Background()
	run := sinktest.RunID(t)
	var sink progress.Sink = s
	if hist != nil {
		sink = progress.NewFanout(progress.NewArchive(hist), s)
	}
	require.NoError(t, sink.Publish(ctx, sinktest.Events(run, 1, 30)...))

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
	return s, reads, run, hist, first
}

// Once a read of Redis has failed, a Tail's read that finds a token free
// asks Redis, but does not wait for that read past readWait (a second):
// the reader serves itself from the History every HistoryPoll,
// as its doc says, rather than once at each of its reads' failures, a
// ReadTimeout or more apart. Before, it got the events that the History
// got after its first read only once that read failed.
func TestTailDuringAHangDoesNotWaitForItsOwnRead(t *testing.T) {
	s, _, run, hist := hungStream(t, 50*time.Millisecond)
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 30)) // before its first read
	require.NoError(t, hist.Append(context.Background(), sinktest.Events(run, 31, 33)...))
	tl.Expect(t, sinktest.Span(31, 33))
	tl.Stop(t, context.Canceled)
}
