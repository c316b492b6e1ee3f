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

// outageReads makes the reads of Redis (XRANGE, XREVRANGE, XREAD) fail at
// once (mode 1), as while Redis refuses connections, or hang until
// released (mode 2), as while Redis is paused and the client's
// ReadTimeout has yet to pass; writes go through.
type outageReads struct {
	mode    atomic.Int32
	hanging atomic.Int32 // the reads that hang (mode 2) so far
	release chan struct{}
	freed   sync.Once
}

func (o *outageReads) free() { o.freed.Do(func() { close(o.release) }) }

// failThenHang makes a read of Redis fail, the lookup of run's last
// event on s, and then makes Redis hang (mode 2).
func (o *outageReads) failThenHang(t *testing.T, s *redisstream.Stream, run string) {
	t.Helper()
	o.mode.Store(1)
	_, _, err := s.LastEvent(context.Background(), run) // its lookup in Redis fails
	require.Error(t, err)
	o.mode.Store(2)
}

// waitHanging waits, up to hangBound, for a read that o holds (mode 2);
// what names the caller whose read it is, in the failure.
func (o *outageReads) waitHanging(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for o.hanging.Load() == 0 {
		require.True(t, time.Now().Before(deadline), "%s never reached Redis", what)
		time.Sleep(time.Millisecond) // polling the hook, bounded by the deadline
	}
}

func (o *outageReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (o *outageReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "xrange", "xrevrange", "xread":
			switch o.mode.Load() {
			case 1:
				err := errors.New("dial tcp: connect: connection refused")
				cmd.SetErr(err)
				return err
			case 2:
				o.hanging.Add(1)
				<-o.release
				err := errors.New("read tcp: i/o timeout")
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}
func (o *outageReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// outageStream returns a Stream made with opts, with a fresh Redis
// prefix's KeyTemplate, a BlockTime of 100ms, a RetryDelay of 20ms and a
// quiet Logger, on a client whose reads the returned outageReads makes
// fail or hang (its mode). Its cleanups free the reads that hang before
// the Stream's Close, which waits for them.
func outageStream(t *testing.T, opts redisstream.Options) (*redisstream.Stream, *outageReads) {
	t.Helper()
	r := testenv.NewRedis(t)
	reads := &outageReads{release: make(chan struct{})}
	client := testenv.NewRedisClient(r.Client.Options())
	client.AddHook(reads)
	t.Cleanup(func() { client.Close() })
	opts.KeyTemplate = r.Prefix + redisstream.RunIDPlaceholder
	opts.BlockTime, opts.RetryDelay, opts.Logger = 100*time.Millisecond, 20*time.Millisecond, quiet()
	s, err := redisstream.New(client, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	t.Cleanup(reads.free)
	return s, reads
}

// Once a read of Redis has failed, a reader that connects during the
// outage (a browser, say) gets the events that the History holds
// without waiting for a read of Redis of its own to fail: so that while
// Redis hangs (paused, or cut off without a reset), where each read
// fails only at the client's ReadTimeout and holds one of the few tokens
// of reads that do not block (half MaxBlockingReads) until then, the
// readers of a finished run are not served one ReadTimeout after the
// other. Before, each waited for a read of its own to fail: with a
// paused Redis, 10 readers of a 46-event run, a ReadTimeout of 500ms and
// MaxBlockingReads 2 got the run 0.5 s, 1 s, ..., 5 s after they
// connected (with go-redis's defaults, 12 s a read for 5 at a time).
func TestReadersThatConnectDuringAnOutageDoNotQueueForRedis(t *testing.T) {
	s, reads, run := finishedRunInOutage(t)

	reads.mode.Store(1)
	first := sinktest.StartTail(t, s, run, 0)
	first.Expect(t, sinktest.Span(1, 46)) // at its first failed read
	reads.mode.Store(2)
	for _, after := range []uint64{0, 20, 46} {
		tl := sinktest.StartTail(t, s, run, after)
		var want []uint64
		if after < 46 {
			want = sinktest.Span(after+1, 46)
		}
		tl.Expect(t, want)
		defer tl.Stop(t, context.Canceled)
	}
	first.Stop(t, context.Canceled)
	assert.Zero(t, s.Stats().Skipped)
}

// Once a read of Redis has failed, LastEvent answers with the History's
// final event of a run, if it holds one, without waiting for a lookup in
// Redis to fail: so that while Redis hangs, progress/sse's handler
// answers 204 to browsers that resume at the end of a finished run at
// once, rather than each after a ReadTimeout, a few at a time. Before,
// each waited for its own lookup to fail.
func TestLastEventDuringAnOutageDoesNotQueueForRedis(t *testing.T) {
	s, reads, run := finishedRunInOutage(t)
	ctx := context.Background()

	reads.mode.Store(1)
	e, ok, err := s.LastEvent(ctx, run) // its lookup in Redis fails
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, uint64(46), e.Seq)
	reads.mode.Store(2)
	for range 3 {
		e, err := lastEventWithin(t, s, run)
		assert.NoError(t, err)
		assert.Equal(t, uint64(46), e.Seq)
	}
}

// finishedRunInOutage publishes a finished run of 46 events to a Stream
// with a MemoryHistory, on a client whose reads the returned outageReads
// makes fail or hang (its mode), and returns them with the run's ID.
func finishedRunInOutage(t *testing.T) (*redisstream.Stream, *outageReads, string) {
	t.Helper()
	hist := progress.NewMemoryHistory()
	s, reads := outageStream(t, redisstream.Options{History: hist, MaxBlockingReads: 2})
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 46)
	all[45].Type = progress.RunFinished
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(context.Background(), all...))
	return s, reads, run
}

// Once a read of Redis has failed, LastEvent of a run going on (whose
// final event the History lacks) does not queue for Redis either: while
// the reads that do not block are all in flight, held by a Redis that
// hangs until the client's ReadTimeout, it fails at once rather than
// wait its turn. So progress/sse's handler, whose lookup of a run (with
// CloseOnFinal and a Last-Event-ID, or with EmptyRunTimeout) comes before
// the stream, opens the streams of browsers that connect during the
// outage at once, and their Tail serves them from the History; its
// lookups again every KeepAlive do not pile up. Before, each lookup
// waited for those before it, a ReadTimeout each (a browser that
// connected during a 5 s pause of Redis with a ReadTimeout of 2s got no
// response, and no event, for the whole pause).
func TestLastEventOfALiveRunDuringAnOutageDoesNotQueueForRedis(t *testing.T) {
	s, reads, run := liveRunInOutage(t)
	ctx := context.Background()

	reads.failThenHang(t, s, run)
	hung := make(chan error, 1)
	go func() { // its read takes the only token of reads that do not block, and hangs
		_, _, err := s.LastEvent(ctx, run)
		hung <- err
	}()
	reads.waitHanging(t, "the first lookup")
	for range 3 {
		_, err := lastEventWithin(t, s, run)
		assert.Error(t, err, "LastEvent while Redis hangs")
	}
	reads.free()
	assert.Error(t, <-hung) // at readWait, its read left in flight
	waitReadsEnded(t, s)
	reads.mode.Store(0)
	e, ok, err := s.LastEvent(ctx, run) // Redis answers again
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(30), e.Seq)
}

// liveRunInOutage is finishedRunInOutage with a run going on: 30 events,
// none final.
func liveRunInOutage(t *testing.T) (*redisstream.Stream, *outageReads, string) {
	t.Helper()
	s, reads, run, _ := liveRunInOutageWith(t, 0)
	return s, reads, run
}

// liveRunInOutageWith is liveRunInOutage with a HistoryPoll of poll (0
// for the default), which also returns the History.
func liveRunInOutageWith(t *testing.T, poll time.Duration) (*redisstream.Stream, *outageReads, string, *progress.MemoryHistory) {
	t.Helper()
	hist := progress.NewMemoryHistory()
	s, reads := outageStream(t, redisstream.Options{History: hist, MaxBlockingReads: 2, HistoryPoll: poll})
	run := sinktest.RunID(t)
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(context.Background(), sinktest.Events(run, 1, 30)...))
	return s, reads, run, hist
}

// Once a read of Redis has failed, a reader does not queue for a token of
// reads that do not block either, while the reads in flight hold them all
// (a hung Redis holds each until the client's ReadTimeout): it takes its
// read for failed, and serves itself from the History every HistoryPoll
// as during any outage, so that it gets the events that a run going on
// adds to the History meanwhile. Before, after the History's events at
// its start, it waited in the queue for its turn, one ReadTimeout after
// the other, and got nothing more until then.
func TestReaderDuringAnOutageDoesNotQueueForRedis(t *testing.T) {
	s, reads, run, hist := liveRunInOutageWith(t, 200*time.Millisecond)
	ctx := context.Background()

	reads.failThenHang(t, s, run)
	go func() { _, _, _ = s.LastEvent(ctx, run) }() // its read takes the only token, and hangs
	reads.waitHanging(t, "the first lookup")
	from0 := sinktest.StartTail(t, s, run, 0)
	from0.Expect(t, sinktest.Span(1, 30))
	from30 := sinktest.StartTail(t, s, run, 30)
	// The run goes on; its events reach the History alone, while the
	// token is still held.
	require.NoError(t, hist.Append(ctx, sinktest.Events(run, 31, 33)...))
	from0.Expect(t, sinktest.Span(31, 33))
	from30.Expect(t, sinktest.Span(31, 33))
	from0.Stop(t, context.Canceled)
	from30.Stop(t, context.Canceled)
	assert.Zero(t, s.Stats().Skipped)
}

// Without a History too, LastEvent does not queue for Redis once a read
// of it has failed: while the reads that do not block are all in flight,
// it fails at once, so that progress/sse's handler opens the streams of
// the clients that connect during the outage (whose reads then wait for
// Redis with backoff), rather than hold their response's headers one
// ReadTimeout after the other, until a Client's HeaderTimeout ends its
// Stream for good with ErrHeaderTimeout.
func TestLastEventWithoutAHistoryDuringAnOutageDoesNotQueueForRedis(t *testing.T) {
	s, reads := outageStream(t, redisstream.Options{MaxBlockingReads: 2})
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 30)...))

	reads.failThenHang(t, s, run)
	hung := make(chan error, 1)
	go func() { // its read takes the only token of reads that do not block, and hangs
		_, _, err := s.LastEvent(ctx, run)
		hung <- err
	}()
	reads.waitHanging(t, "the first lookup")
	_, err := lastEventWithin(t, s, run)
	assert.Error(t, err, "LastEvent while Redis hangs")
	reads.free()
	assert.Error(t, <-hung) // at readWait, its read left in flight
	waitReadsEnded(t, s)
	reads.mode.Store(0)
	e, ok, err := s.LastEvent(ctx, run) // Redis answers again
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(30), e.Seq)
}

// lastEventWithin returns what s.LastEvent of run returns, and fails the
// test if it waits over hangBound (for a read of Redis that hangs).
func lastEventWithin(t *testing.T, s *redisstream.Stream, run string) (progress.Event, error) {
	t.Helper()
	type answer struct {
		e   progress.Event
		err error
	}
	done := make(chan answer, 1)
	go func() {
		e, _, err := s.LastEvent(context.Background(), run)
		done <- answer{e, err}
	}()
	select {
	case a := <-done:
		return a.e, a.err
	case <-time.After(hangBound):
		t.Fatalf("LastEvent waited for Redis over %v", hangBound)
		return progress.Event{}, nil
	}
}

// Once a read of Redis has failed, LastEvent's own read, which found a
// token free, does not wait for Redis past readWait (a second) either,
// as a Tail's does not: so progress/sse's handler, which looks the run
// up before it answers, does not hold a browser's headers while Redis
// hangs. Before, it waited for its read to fail, at the client's
// ReadTimeout (with go-redis's defaults, MaxRetries+1 of them).
func TestLastEventDuringAHangDoesNotWaitForItsOwnRead(t *testing.T) {
	s, reads, run := liveRunInOutage(t)
	ctx := context.Background()

	reads.failThenHang(t, s, run)
	require.Zero(t, redisstream.ReadsInFlight(s), "a token of reads that do not block is free")
	_, err := lastEventWithin(t, s, run)
	assert.Error(t, err, "LastEvent while Redis hangs")
	assert.EqualValues(t, 1, reads.hanging.Load(), "the lookup asked Redis")
	reads.free()
	waitReadsEnded(t, s)
	reads.mode.Store(0)
	e, ok, err := s.LastEvent(ctx, run) // Redis answers again
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(30), e.Seq)
}

// waitReadsEnded waits, up to hangBound, until the reads of s that do
// not block have all ended (those of calls that returned before their
// read ended among them), and so hold no token: a call that comes
// before one that failed has given its token back would take that
// failure for Redis's answer to its own wait (see LastEvent).
func waitReadsEnded(t *testing.T, s *redisstream.Stream) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for redisstream.ReadsInFlight(s) > 0 {
		require.True(t, time.Now().Before(deadline), "the reads of Redis never ended")
		time.Sleep(time.Millisecond) // polling the tokens, bounded by the deadline
	}
}
