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
	release chan struct{}
	freed   sync.Once
}

func (o *outageReads) free() { o.freed.Do(func() { close(o.release) }) }

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
		done := make(chan progress.Event, 1)
		go func() {
			e, _, _ := s.LastEvent(ctx, run)
			done <- e
		}()
		select {
		case e := <-done:
			assert.Equal(t, uint64(46), e.Seq)
		case <-time.After(hangBound):
			t.Fatalf("LastEvent waited for Redis over %v", hangBound)
		}
	}
}

// finishedRunInOutage publishes a finished run of 46 events to a Stream
// with a MemoryHistory, on a client whose reads the returned outageReads
// makes fail or hang (its mode), and returns them with the run's ID.
func finishedRunInOutage(t *testing.T) (*redisstream.Stream, *outageReads, string) {
	t.Helper()
	r := testenv.NewRedis(t)
	reads := &outageReads{release: make(chan struct{})}
	client := testenv.NewRedisClient(r.Client.Options())
	client.AddHook(reads)
	t.Cleanup(func() { client.Close() })
	hist := progress.NewMemoryHistory()
	s, err := redisstream.New(client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
		History: hist, BlockTime: 100 * time.Millisecond, RetryDelay: 20 * time.Millisecond,
		MaxBlockingReads: 2, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	t.Cleanup(reads.free) // before the Stream's Close, which waits for the reads
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 46)
	all[45].Type = progress.RunFinished
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(context.Background(), all...))
	return s, reads, run
}
