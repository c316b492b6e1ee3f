package redisstream_test

import (
	"context"
	"fmt"
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

// More runs watched than the client's pool has connections: only
// MaxBlockingReads (by default half the pool) of their shared readers
// block in XREAD at once, the others read without blocking once every
// BlockTime, so Publish always finds a connection, and every reader gets
// every event. Without the cap the blocked reads held the whole pool, and
// publishing failed once PoolTimeout passed.
func TestWatchingMoreRunsThanThePoolHolds(t *testing.T) {
	r := testenv.NewRedis(t) // the key prefix, and its keys deleted at the end
	opts, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	opts.PoolSize, opts.PoolTimeout = 4, 300*time.Millisecond
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	s, err := redisstream.New(client, redisstream.Options{
		KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, BlockTime: 2 * time.Second, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })

	const runs, events = 12, 10
	ctx := context.Background()
	ids := make([]string, runs)
	tls := make([]*sinktest.Tailer, runs)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", sinktest.RunID(t), i)
		tls[i] = sinktest.StartTail(t, s, ids[i], 0)
	}
	require.Eventually(t, func() bool { return s.Stats().Runs == runs }, 10*time.Second, time.Millisecond)
	for seq := range uint64(events) {
		for _, id := range ids {
			e := sinktest.Events(id, seq+1, seq+1)[0]
			if seq == events-1 {
				e.Type = progress.RunFinished
			}
			require.NoError(t, s.Publish(ctx, e), "publish %d of run %s", seq+1, id)
		}
	}
	for _, tl := range tls {
		tl.Expect(t, sinktest.Span(1, events))
	}
	assert.Zero(t, s.Stats().PublishErrors)
	assert.Zero(t, client.PoolStats().Timeouts, "no call waited out PoolTimeout")
	for _, tl := range tls {
		tl.Stop(t, context.Canceled)
	}
}

// A client whose MaxActiveConns is below its PoolSize holds no more
// connections than MaxActiveConns: the default MaxBlockingReads is half
// of that, so that the blocked reads leave Publish a connection (with
// half the PoolSize they took all four, and Publish failed at once with
// go-redis's "connection pool exhausted").
func TestMaxBlockingReadsHeedsMaxActiveConns(t *testing.T) {
	r := testenv.NewRedis(t)
	opts, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	opts.PoolSize, opts.MaxActiveConns, opts.PoolTimeout = 20, 4, time.Second
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	s, err := redisstream.New(client, redisstream.Options{
		KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, BlockTime: 2 * time.Second, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })

	const runs = 8
	ctx := context.Background()
	ids := make([]string, runs)
	tls := make([]*sinktest.Tailer, runs)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", sinktest.RunID(t), i)
		tls[i] = sinktest.StartTail(t, s, ids[i], 0)
	}
	require.Eventually(t, func() bool { return s.Stats().Runs == runs }, 10*time.Second, time.Millisecond)
	for seq := range uint64(3) {
		for _, id := range ids {
			require.NoError(t, s.Publish(ctx, sinktest.Events(id, seq+1, seq+1)...), "publish %d of run %s", seq+1, id)
		}
	}
	for _, tl := range tls {
		tl.Expect(t, sinktest.Span(1, 3))
	}
	for _, tl := range tls {
		tl.Stop(t, context.Canceled)
	}
}
