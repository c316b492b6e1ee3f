package testenv_test

import (
	"context"
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

func (f *fakeTB) Helper()                       {}
func (f *fakeTB) Skipf(format string, a ...any) { f.skipped = format; panic(f) }
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.failed = format
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
