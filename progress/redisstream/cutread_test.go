package redisstream_test

import (
	"context"
	"fmt"
	"sync"
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

// A read of a replay's page left in flight on a connection cut without a
// reset (a middlebox that drops it, a peer gone), on a client with a
// ReadTimeout of -1 (none), gives its token of reads that do not block
// back within go-redis's bound of a blocking command (10s after its
// block), so that the reads after it, on new connections, go on: a
// Replay that waits its turn gets the run. Before, the page's XRANGE
// waited for as long as TCP kept the connection (some 15 minutes), and
// with it the token, and every Replay and reader of the Stream behind
// it, its tokens all taken so by a few reads that a fault cut.
func TestAReadLeftOnACutConnectionGivesItsTokenBack(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for go-redis's bound of a blocking command, 10s")
	}
	ctx := context.Background()
	client, proxy := newProxiedClient(t)
	s, err := redisstream.New(client, redisstream.Options{MaxBlockingReads: 2, Logger: quiet()}) // one read that does not block
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	t.Cleanup(proxy.Cut) // first: Close waits for the reads left in flight
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 3)...))

	proxy.Silence() // the pooled connection answers nothing more
	left, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = s.Replay(left, run, 0, func(progress.Event) error { return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded, "the Replay's read is left in flight")

	waiting, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []uint64
	err = s.Replay(waiting, run, 0, func(e progress.Event) error {
		got = append(got, e.Seq)
		return nil
	})
	require.NoError(t, err, "a Replay behind the read left on a cut connection")
	assert.Equal(t, []uint64{1, 2, 3}, got)
}

// Close returns, on a client with a ReadTimeout of -1 (none), while the
// check of a run's shared reader that its stream is still there (after
// an XREAD that found nothing new, without a History) is left on a
// connection cut without a reset: the check ends within go-redis's bound
// of a blocking command (10s after its block), as the shared reader's
// XREADs do. Before, the check was an EXISTS, which no BLOCK bounds, and
// Close waited for it for as long as TCP kept the connection (some 15
// minutes).
func TestCloseWhileAStreamsCheckIsLeftOnACutConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for go-redis's bound of a blocking command, 10s")
	}
	ctx := context.Background()
	client, proxy := newProxiedClient(t)
	check := &silenceOnCheck{proxy: proxy, silenced: make(chan struct{})}
	client.AddHook(check)
	s, err := redisstream.New(client, redisstream.Options{BlockTime: 100 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	t.Cleanup(proxy.Cut) // first: Close waits for the check left in flight
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 5)
	require.NoError(t, s.Publish(ctx, all[:3]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 3))
	require.NoError(t, s.Publish(ctx, all[3:]...)) // the shared reader keeps them
	tl.Expect(t, sinktest.Span(4, 5))
	select {
	case <-check.silenced:
	case <-time.After(10 * time.Second):
		t.Fatal("the shared reader did not check that its stream is still there")
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second): // the check ends after 10s
		t.Error("Close still waits for the check of the stream after 30s")
	}
	assert.ErrorIs(t, tl.Stop(t, context.Canceled), redisstream.ErrClosed)
}

// newProxiedClient starts a private redis-server and returns a client of
// it through a [testenv.CutProxy] that the test can silence, with a
// ReadTimeout of -1 (none) and no retries, closed when the test ends.
func newProxiedClient(t *testing.T) (*redis.Client, *testenv.CutProxy) {
	t.Helper()
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	proxy := testenv.NewCutProxy(t, opts.Addr)
	opts.Addr = fmt.Sprintf("127.0.0.1:%d", proxy.Port())
	opts.ReadTimeout = -1
	opts.MaxRetries = -1
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	return client, proxy
}

// silenceOnCheck silences proxy as the run's shared
// reader checks that its stream is still there, once: an XRANGE, or an
// XREAD, of one entry from the stream's start.
type silenceOnCheck struct {
	proxy    *testenv.CutProxy
	once     sync.Once
	silenced chan struct{}
}

func (h *silenceOnCheck) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *silenceOnCheck) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		check := cmd.Name() == "xrange" && len(args) > 2 && fmt.Sprint(args[2], args[len(args)-1]) == "-1" ||
			cmd.Name() == "xread" && len(args) > 2 && fmt.Sprint(args[1], args[2]) == "count1" && fmt.Sprint(args[len(args)-1]) == "0-0"
		if check {
			h.once.Do(func() {
				h.proxy.Silence()
				close(h.silenced)
			})
		}
		return next(ctx, cmd)
	}
}
func (h *silenceOnCheck) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
