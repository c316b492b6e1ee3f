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

// The sweep for idle streams scans each shard of a Ring (and each master
// of a cluster) at once, in go-redis's goroutines, one a shard: before,
// each of them read and wrote the sweep's map of the streams it copied,
// with no lock (a data race, and a fatal "concurrent map writes" once two
// shards copied a stream at the same moment). Here streams idle on both
// shards of a Ring are copied by one sweep; -race reported it before.
func TestIdleSweepOfARingCopiesEachShard(t *testing.T) {
	const idleTTL = 2 * time.Second // a sweep every 500ms
	shards := map[string]string{}
	for _, name := range []string{"a", "b"} {
		shards[name] = testenv.StartRedisServer(t).Addr
	}
	ring := redis.NewRing(&redis.RingOptions{
		Addrs:      shards,
		MaxRetries: -1,
		NewClient:  func(o *redis.Options) *redis.Client { return testenv.NewRedisClient(o) },
	})
	t.Cleanup(func() { ring.Close() })
	h := progress.NewMemoryHistory()
	opts := redisstream.Options{History: h, IdleTTL: idleTTL, BlockTime: 100 * time.Millisecond, Logger: quiet()}
	s, err := redisstream.New(ring, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })

	ctx := context.Background()
	var runs []string
	for i := range 16 { // runs on both shards, in all likelihood
		run := fmt.Sprintf("%s-%d", sinktest.RunID(t), i)
		runs = append(runs, run)
		require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 3)...))
	}
	wait := testenv.Context(t, 6*idleTTL)
	for _, run := range runs {
		for ring.Exists(ctx, s.Key(run)).Val() == 1 {
			require.NoError(t, wait.Err(), "the stream of %s never expired", run)
			time.Sleep(20 * time.Millisecond) // polling Redis's expiry, bounded by wait
		}
	}
	for _, run := range runs {
		assert.Equal(t, 3, h.Len(run), "events of %s in the History once its stream expired", run)
	}
	assert.Zero(t, s.Stats().CopyErrors)
	assert.Zero(t, s.Stats().ReadErrors)
}
