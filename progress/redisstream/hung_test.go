package redisstream_test

import (
	"context"
	"strconv"
	"strings"
	"syscall"
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

// A reader whose context ends returns at once even while Redis does not
// answer (paused, or cut off by a network fault that sends no reset)
// rather than when the client's ReadTimeout ends the read in flight:
// go-redis does not interrupt a command when its context is cancelled.
// Before, each call here returned some 5s after its cancel (the default
// ReadTimeout of 3s, and a retry), so that the SSE handler of a browser
// that had left kept its stream slot as long.
func TestReaderLeavesWhileRedisHangs(t *testing.T) {
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	pid := redisPID(t, client)
	hist := progress.NewMemoryHistory()
	s, err := redisstream.New(client, redisstream.Options{History: hist, BlockTime: 100 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 3)
	ctx := context.Background()
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(ctx, all...))

	// The process goes on once the test ends, for the server's cleanup.
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
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
			case <-time.After(time.Second):
				t.Fatal("still reading a second after its context ended")
			}
		})
	}
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	assert.Eventually(t, func() bool { return s.Stats().Readers == 0 && s.Stats().Runs == 0 }, 10*time.Second, 10*time.Millisecond)
}

// Close ends the Tail calls in progress at once, with ErrClosed, even
// while Redis does not answer: before, a reader that followed the run's
// shared reader returned only once that reader's XREAD did, some 10s on
// (BlockTime, and go-redis's margin on a blocking command), and one that
// replayed once its XRANGE did.
func TestCloseWhileRedisHangs(t *testing.T) {
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	pid := redisPID(t, client)
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

	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
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
		case <-time.After(time.Second):
			t.Errorf("the Tail %s was not ended by Close within a second", name)
		}
	}
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	<-closed
}

// While Redis does not answer, the run's shared reader still polls the
// History every HistoryPoll, so that its readers get the events that only
// the History holds, the run's end among them, as the package doc says
// ("in any case within HistoryPoll"). Before, it waited for its XREAD in
// flight, which go-redis gives 10s more than its block, between polls.
func TestHistoryPolledWhileRedisHangs(t *testing.T) {
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	pid := redisPID(t, client)
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

	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	time.Sleep(200 * time.Millisecond) // and in the next one
	start := time.Now()
	require.NoError(t, hist.Append(ctx, all[3:]...)) // Redis is stuck: the archive alone has the end
	tl.Expect(t, sinktest.Span(4, 5))
	assert.Less(t, time.Since(start), 3*time.Second, "the run's end, which the History alone holds, came")
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	tl.Stop(t, context.Canceled)
}

// redisPID returns the process ID of the redis-server that client talks
// to: a private one that the test started.
func redisPID(t *testing.T, client *redis.Client) int {
	t.Helper()
	info, err := client.Info(context.Background(), "server").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			require.NoError(t, err)
			return pid
		}
	}
	t.Fatal("INFO server has no process_id")
	return 0
}
