package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A reader whose context ends returns at once even while Redis does not
// answer (paused, or cut off by a network fault that sends no reset)
// rather than when the client's ReadTimeout ends the read in flight:
// go-redis does not interrupt a command when its context is cancelled.
// Before, each call here returned some 5s after its cancel (the default
// ReadTimeout of 5s in go-redis v9.22, and a retry), so that the SSE handler of a browser
// that had left kept its stream slot as long.
func TestReaderLeavesWhileRedisHangs(t *testing.T) {
	server, client := hungRedis(t)
	hist := progress.NewMemoryHistory()
	s, err := redisstream.New(client, redisstream.Options{History: hist, BlockTime: 100 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 3)
	ctx := context.Background()
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(ctx, all...))

	// The process goes on once the test ends, for the server's cleanup.
	server.Pause()
	ignore := func(progress.Event) error { return nil }
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Tail replaying", func(ctx context.Context) error { return s.Tail(ctx, run, 0, ignore) }},
		{"Tail ahead of the run", func(ctx context.Context) error { return s.Tail(ctx, run, 9, ignore) }},
		{"Replay", func(ctx context.Context) error { return s.Replay(ctx, run, 0, ignore) }},
		{"LastEvent", func(ctx context.Context) error { _, _, err := s.LastEvent(ctx, run); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- tc.call(cctx) }()
			time.Sleep(100 * time.Millisecond) // its read is in flight
			cancel()
			select {
			case err := <-done:
				assert.ErrorIs(t, err, context.Canceled)
			case <-time.After(hangBound):
				t.Fatalf("still reading %v after its context ended", hangBound)
			}
		})
	}
	server.Resume()
	assert.Eventually(t, func() bool { return s.Stats().Readers == 0 && s.Stats().Runs == 0 }, 10*time.Second, 10*time.Millisecond)
}

// Close ends the Tail calls in progress at once, with ErrClosed, even
// while Redis does not answer: before, a reader that followed the run's
// shared reader returned only once that reader's XREAD did, some 10s on
// (BlockTime, and go-redis's margin on a blocking command), and one that
// replayed once its XRANGE did.
func TestCloseWhileRedisHangs(t *testing.T) {
	server, client := hungRedis(t)
	s, err := redisstream.New(client, redisstream.Options{BlockTime: 100 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	run := sinktest.RunID(t)
	ctx := context.Background()
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 3)...))
	ignore := func(progress.Event) error { return nil }
	following := make(chan error, 1)
	go func() { following <- s.Tail(ctx, run, 0, ignore) }()
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // in a blocked XREAD

	server.Pause()
	replaying := make(chan error, 1)
	go func() { replaying <- s.Tail(ctx, run, 0, ignore) }()
	time.Sleep(100 * time.Millisecond) // its XRANGE is in flight
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	for name, done := range map[string]chan error{"following": following, "replaying": replaying} {
		select {
		case err := <-done:
			assert.ErrorIs(t, err, redisstream.ErrClosed, name)
		case <-time.After(hangBound):
			t.Errorf("the Tail %s was not ended by Close within %v", name, hangBound)
		}
	}
	server.Resume()
	<-closed
}

// While Redis does not answer, the run's shared reader still polls the
// History every HistoryPoll, so that its readers get the events that only
// the History holds, the run's end among them, as the package doc says
// ("in any case within HistoryPoll"). Before, it waited for its XREAD in
// flight, which go-redis gives 10s more than its block, between polls.
func TestHistoryPolledWhileRedisHangs(t *testing.T) {
	server, client := hungRedis(t)
	hist := progress.NewMemoryHistory()
	s, err := redisstream.New(client, redisstream.Options{History: hist, BlockTime: 100 * time.Millisecond,
		HistoryPoll: 500 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 5)
	all[4].Type = progress.RunFinished
	ctx := context.Background()
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(ctx, all[:3]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 3))
	time.Sleep(200 * time.Millisecond) // the shared reader is in a blocked XREAD

	server.Pause()
	time.Sleep(200 * time.Millisecond) // and in the next one
	start := time.Now()
	require.NoError(t, hist.Append(ctx, all[3:]...)) // Redis is stuck: the archive alone has the end
	tl.Expect(t, sinktest.Span(4, 5))
	assert.Less(t, time.Since(start), 3*time.Second, "the run's end, which the History alone holds, came")
	server.Resume()
	tl.Stop(t, context.Canceled)
}

// hangBound is how soon after its context ends, or Close, a call must
// return while Redis hangs: a bound against a call that waits for Redis
// (the client's default ReadTimeout, 5s in go-redis v9.22, at the least), with room for a machine
// that runs every package's tests under -race at once, where a second
// left little.
const hangBound = 2 * time.Second

// hungRedis starts a private redis-server, which the test may pause to
// make Redis hang, and a client of it, closed when the test ends.
func hungRedis(t *testing.T) (*testenv.RedisServer, *redis.Client) {
	t.Helper()
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	return server, client
}

// Publish returns as soon as its context ends, even while Redis does not
// answer, so that a progress.Buffered's Timeout bounds it and its events
// go to the Fallback in time: go-redis applies a context's deadline to
// the socket only with redis.Options.ContextTimeoutEnabled, which the
// client here, as go-redis's default, leaves off. Before, a Publish with
// a deadline of 500ms returned some 5s later (the client's ReadTimeout of
// 3s, and a retry).
func TestPublishWhileRedisHangs(t *testing.T) {
	server, client := hungRedis(t)
	s, err := redisstream.New(client, redisstream.Options{Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 6)
	require.NoError(t, s.Publish(context.Background(), all[:2]...))

	server.Pause()
	for _, tc := range []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		events []progress.Event
		want   error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 500*time.Millisecond)
		}, all[2:4], context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(500*time.Millisecond, cancel)
			return ctx, cancel
		}, all[4:], context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			err := s.Publish(ctx, tc.events...)
			assert.ErrorIs(t, err, tc.want)
			assert.Less(t, time.Since(start), 500*time.Millisecond+hangBound, "Publish returned more than %v after its context ended", hangBound)
		})
	}
	assert.Equal(t, uint64(2), s.Stats().PublishErrors, "the calls that returned an error")
	server.Resume()
	// Writing them again, as Buffered does, is safe: those that reached
	// Redis after all are duplicates.
	require.NoError(t, s.Publish(context.Background(), all...))
	got, err := client.XLen(context.Background(), s.Key(run)).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(6), got)
}

// Close returns only once the reads of the readers that left while Redis
// did not answer have ended, so that nothing of the Stream goes on after
// it (and touches a client that the host closes next): before, a replay's
// XRANGE left in flight by a reader whose context ended went on after
// Close returned, until the client's ReadTimeout.
func TestCloseWaitsForReadsLeftWhileRedisHangs(t *testing.T) {
	server, client := hungRedis(t)
	s, err := redisstream.New(client, redisstream.Options{BlockTime: 100 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(context.Background(), sinktest.Events(run, 1, 3)...))

	server.Pause()
	before := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.Tail(ctx, run, 0, func(progress.Event) error { return nil }), context.DeadlineExceeded)
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		assert.NoError(t, goleak.Find(before), "Close returned while a read of the Stream went on")
	case <-time.After(500 * time.Millisecond):
	}
	server.Resume()
	<-closed
	assert.NoError(t, goleak.Find(before))
}

// With a client's ReadTimeout of -1 (none), the XREAD of a run's shared
// reader that reads without blocking (the runs beyond MaxBlockingReads)
// still ends while Redis does not answer, as a blocking one ends
// (go-redis gives a command with a BLOCK 10s over its block, whatever
// the ReadTimeout), so that Close returns. Before, it waited until Redis
// answered again: the test's Close was still waiting when it resumed
// Redis after 30s.
func TestCloseWithoutReadTimeoutWhileRedisHangs(t *testing.T) {
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	opts.ReadTimeout = -1
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	s, err := redisstream.New(client, redisstream.Options{BlockTime: 100 * time.Millisecond, MaxBlockingReads: 1, Logger: quiet()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ignore := func(progress.Event) error { return nil }
	tails := make(chan error, 2)
	for i, run := range []string{sinktest.RunID(t) + "-blocking", sinktest.RunID(t) + "-polling"} {
		require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 3)...))
		go func() { tails <- s.Tail(ctx, run, 0, ignore) }()
		require.Eventually(t, func() bool { return s.Stats().Runs == i+1 }, 5*time.Second, time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // each run's shared reader is in an XREAD

	server.Pause()
	time.Sleep(300 * time.Millisecond) // and in the next one, which Redis does not answer
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second): // the blocking XREAD ends after 10.1s
		t.Error("Close still waits for an XREAD while Redis does not answer")
	}
	server.Resume()
	<-closed
	for range 2 {
		assert.ErrorIs(t, <-tails, redisstream.ErrClosed)
	}
}
