package testenv_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestURLsFromEnv(t *testing.T) {
	t.Setenv("REGEN_REDIS_URL", "")
	t.Setenv("REGEN_POSTGRES_URL", "")
	assert.Equal(t, "redis://127.0.0.1:6379/0", testenv.RedisURL())
	assert.Equal(t, "postgres://root@127.0.0.1:5432/test?sslmode=disable", testenv.PostgresURL())
	t.Setenv("REGEN_REDIS_URL", "redis://127.0.0.2:7000/1")
	t.Setenv("REGEN_POSTGRES_URL", "postgres://u@127.0.0.3/db")
	assert.Equal(t, "redis://127.0.0.2:7000/1", testenv.RedisURL())
	assert.Equal(t, "postgres://u@127.0.0.3/db", testenv.PostgresURL())
}

// fakeTB records how a helper ended the test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, a ...any) {
	f.skipped = fmt.Sprintf(format, a...)
	panic(f)
}
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.failed = fmt.Sprintf(format, a...)
	panic(f)
}

func run(f *fakeTB, fn func()) {
	defer func() {
		if r := recover(); r != nil && r != f {
			panic(r)
		}
	}()
	fn()
}

func TestRequireReachableSkipsOrFailsInCI(t *testing.T) {
	unreachable := "redis://127.0.0.1:1/0" // port 1: nothing listens
	t.Setenv("CI", "")
	f := &fakeTB{TB: t}
	run(f, func() { testenv.RequireReachable(f, "Redis", unreachable) })
	assert.NotEmpty(t, f.skipped, "outside CI an unreachable server skips")
	assert.Empty(t, f.failed)

	t.Setenv("CI", "true")
	f = &fakeTB{TB: t}
	run(f, func() { testenv.RequireReachable(f, "Redis", unreachable) })
	assert.NotEmpty(t, f.failed, "in CI an unreachable server fails")
	assert.Empty(t, f.skipped)
}

// Every test that found the shared Redis unreachable waited about 2 s
// for go-redis's retries of the dial before it skipped: several minutes
// of skips in all on a machine without Redis. Once a test of the binary
// has found it unreachable, the tests after it skip at once, with the
// same message, and dial nothing.
func TestUnreachableRedisIsDialledOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var dials atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close() // no Redis here: every command fails
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	t.Setenv("REGEN_REDIS_URL", "redis://"+ln.Addr().String()+"/0")
	t.Setenv("CI", "")

	first := &fakeTB{TB: t}
	run(first, func() { testenv.NewRedis(first) })
	require.NotEmpty(t, first.skipped, "outside CI an unreachable Redis skips")
	require.Positive(t, dials.Load())
	before := dials.Load()
	second := &fakeTB{TB: t}
	run(second, func() { testenv.NewRedis(second) })
	assert.Equal(t, first.skipped, second.skipped, "the same message")
	assert.Equal(t, before, dials.Load(), "no dial")

	t.Setenv("CI", "true")
	third := &fakeTB{TB: t}
	run(third, func() { testenv.NewRedis(third) })
	assert.NotEmpty(t, third.failed, "in CI it fails")
}

func TestRedisPrefixIsCleanedUp(t *testing.T) {
	var prefix string
	t.Run("inner", func(t *testing.T) {
		r := testenv.NewRedis(t)
		prefix = r.Prefix
		ctx := context.Background()
		for _, k := range []string{"a", "b", "c"} {
			require.NoError(t, r.Client.Set(ctx, r.Key(k), "1", time.Minute).Err())
		}
		assert.Len(t, r.Keys(t), 3)
	})
	r := testenv.NewRedis(t)
	n, err := r.Client.Exists(context.Background(), prefix+"a", prefix+"b", prefix+"c").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the inner test's keys were deleted")
}

func TestRedisServerKillRestart(t *testing.T) {
	s := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(s.URL)
	require.NoError(t, err)
	c := testenv.NewRedisClient(opts)
	defer c.Close()
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	s.Kill()
	assert.False(t, s.Running())
	assert.Error(t, c.Ping(ctx).Err(), "killed")
	s.Restart()
	require.NoError(t, c.Ping(ctx).Err(), "the client reconnects to the same port")
	assert.ErrorIs(t, c.Get(ctx, "k").Err(), redis.Nil, "restarted empty: no persistence")
}

// occupied holds a loopback port with a listener that accepts and closes
// every connection, until the test ends.
func occupied(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed
			}
			c.Close()
		}
	})
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().(*net.TCPAddr).Port
}

// picker returns a port picker that gives the ports first, then free
// ones, and counts its calls.
func picker(first ...int) (func() (int, error), *int) {
	calls := 0
	return func() (int, error) {
		calls++
		if calls <= len(first) {
			return first[calls-1], nil
		}
		return testenv.FreePort()
	}, &calls
}

func port(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

// TestRedisServerSkipsATakenPort takes the first port the picker gives
// before redis-server can bind it, as another process may: the server
// starts on the next port, and is the test's own.
func TestRedisServerSkipsATakenPort(t *testing.T) {
	for _, by := range []string{"a listener", "another redis-server"} {
		t.Run("by "+by, func(t *testing.T) {
			var taken int
			var other *redis.Client
			if by == "a listener" {
				taken = occupied(t)
			} else {
				o := testenv.StartRedisServer(t)
				taken = port(t, o.Addr)
				opts, err := redis.ParseURL(o.URL)
				require.NoError(t, err)
				other = testenv.NewRedisClient(opts)
				defer other.Close()
			}
			pick, calls := picker(taken)
			s := testenv.StartRedisServerWith(t, pick)
			assert.Equal(t, 2, *calls, "a second port was picked")
			assert.NotEqual(t, taken, port(t, s.Addr))
			assert.Equal(t, "redis://"+s.Addr+"/0", s.URL)

			opts, err := redis.ParseURL(s.URL)
			require.NoError(t, err)
			c := testenv.NewRedisClient(opts)
			defer c.Close()
			ctx := context.Background()
			require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
			s.Kill()
			assert.Error(t, c.Ping(ctx).Err(), "the server killed is the one started")
			if other != nil {
				require.NoError(t, other.Ping(ctx).Err(), "the other server still runs")
				assert.ErrorIs(t, other.Get(ctx, "k").Err(), redis.Nil, "and never saw the key")
			}
			s.Restart()
			assert.NoError(t, c.Ping(ctx).Err(), "restarted on the same port")
		})
	}
}

func TestRedisServerGivesUpWithAClearError(t *testing.T) {
	testenv.RequireRedisServer(t) // before the fake takes over
	taken := occupied(t)
	ports := make([]int, testenv.StartTries)
	for i := range ports {
		ports[i] = taken
	}
	pick, calls := picker(ports...)
	f := &fakeTB{TB: t}
	run(f, func() { testenv.StartRedisServerWith(f, pick) })
	t.Log(f.failed)
	assert.Equal(t, testenv.StartTries, *calls)
	assert.Contains(t, f.failed, fmt.Sprintf("testenv: start redis-server: %d tries failed, each on a port that was free when picked", testenv.StartTries))
	assert.Contains(t, f.failed, fmt.Sprintf("port %d: redis-server exited", taken))
	assert.Contains(t, f.failed, "Address already in use")
}

// TestRedisServerRestartRefusesATakenPort lets another redis-server take
// the port while the server is down: Restart fails the test, rather than
// hand it the other server.
func TestRedisServerRestartRefusesATakenPort(t *testing.T) {
	testenv.RequireRedisServer(t) // before the fake takes over
	f := &fakeTB{TB: t}
	s := testenv.StartRedisServerWith(f, testenv.FreePort)
	s.Kill()
	other := testenv.StartRedisServerWith(t, func() (int, error) { return port(t, s.Addr), nil })
	require.Equal(t, s.Addr, other.Addr)
	run(f, s.Restart)
	t.Log(f.failed)
	assert.Contains(t, f.failed, fmt.Sprintf("testenv: restart redis-server on port %d: ", port(t, s.Addr)))
	assert.False(t, s.Running())
	assert.True(t, other.Running())
}

// A private redis-server's port is below the kernel's ephemeral range, so
// that no outgoing connection takes it while the server is down.
func TestFreePortBelowTheEphemeralRange(t *testing.T) {
	low := testenv.EphemeralLow()
	for range 20 {
		port, err := testenv.FreePort()
		require.NoError(t, err)
		if low > 20100 {
			assert.GreaterOrEqual(t, port, 20000)
			assert.Less(t, port, low)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		require.NoError(t, err, "port %d is free", port)
		require.NoError(t, l.Close())
	}
}

// DefaultLog catches slog's default logger, and gives slog and the log
// package their own back at the end: without the log package's, every
// later default log line of the test binary would grow the buffer.
func TestDefaultLog(t *testing.T) {
	logger, out := slog.Default(), log.Writer()
	t.Run("caught", func(t *testing.T) {
		buf := testenv.DefaultLog(t)
		slog.Info("caught line")
		assert.Contains(t, buf.String(), "caught line")
	})
	assert.Same(t, logger, slog.Default())
	assert.Equal(t, out, log.Writer(), "the log package's output")
}
