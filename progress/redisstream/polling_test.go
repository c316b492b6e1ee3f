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
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// The reads of the runs beyond MaxBlockingReads, which do not block, come
// in bursts, once every BlockTime for all of them; they are capped too,
// at half MaxBlockingReads at once, so that with the blocked reads they
// never take every connection a client with MaxActiveConns may hold:
// go-redis fails a call at once, with "connection pool exhausted", when
// they are all busy. Without the cap, the 10 runs beyond the 2 blocking
// reads of a client of 4 connections made failed reads at every burst,
// and a Publish during one failed.
func TestReadsThatDoNotBlockLeaveConnections(t *testing.T) {
	r := testenv.NewRedis(t)
	opts, err := redis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	opts.PoolSize, opts.MaxActiveConns = 20, 4
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	s, err := redisstream.New(client, redisstream.Options{
		KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, BlockTime: 300 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })

	const runs = 12
	ids := make([]string, runs)
	tls := make([]*sinktest.Tailer, runs)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", sinktest.RunID(t), i)
		tls[i] = sinktest.StartTail(t, s, ids[i], 0)
	}
	require.Eventually(t, func() bool { return s.Stats().Runs == runs }, 10*time.Second, time.Millisecond)
	// Publish all along four bursts of reads.
	ctx := context.Background()
	for seq := range uint64(60) {
		id := ids[seq%runs]
		require.NoError(t, s.Publish(ctx, sinktest.Events(id, seq/runs+1, seq/runs+1)...), "publish %d of run %s", seq/runs+1, id)
		time.Sleep(20 * time.Millisecond)
	}
	for _, tl := range tls {
		tl.Expect(t, sinktest.Span(1, 5))
	}
	assert.Zero(t, s.Stats().ReadErrors, "reads failed for want of a connection")
	for _, tl := range tls {
		tl.Stop(t, context.Canceled)
	}
}
