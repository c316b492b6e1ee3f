package redisstream_test

import (
	"cmp"
	"context"
	"slices"
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

// spoils make a run's key one where Redis refuses the run's events for
// good: another writer's entry above them, or a key of another type.
var spoils = []struct {
	name  string
	spoil func(ctx context.Context, c *redis.Client, key string) error
}{
	{"foreign entry", func(ctx context.Context, c *redis.Client, key string) error {
		return c.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: map[string]any{"x": "1"}}).Err()
	}},
	{"wrong type", func(ctx context.Context, c *redis.Client, key string) error {
		return c.Set(ctx, key, "not a stream", 0).Err()
	}},
}

// ttlModes are the two ways Publish writes: with IdleTTL (EVAL), and
// with FinishedTTL alone (XADD NOMKSTREAM, then a transaction).
var ttlModes = []struct {
	name string
	opts redisstream.Options
}{
	{"defaults", redisstream.Options{}},
	{"FinishedTTL alone", redisstream.Options{FinishedTTL: time.Hour, IdleTTL: -1}},
}

// A run's events that Redis refuses for good, for another writer's entry
// or a key of another type, make Publish's error wrap
// progress.ErrInvalidEvent, so that a progress.Buffered hands them to its
// fallback instead of retrying them; the call's other events are written.
func TestPublishRefusedForGoodWrapsErrInvalidEvent(t *testing.T) {
	for _, mode := range ttlModes {
		for _, sp := range spoils {
			t.Run(mode.name+"/"+sp.name, func(t *testing.T) {
				ctx := context.Background()
				r := testenv.NewRedis(t)
				opts := mode.opts
				opts.KeyTemplate, opts.Logger = r.Prefix+redisstream.RunIDPlaceholder, quiet()
				s, err := redisstream.New(r.Client, opts)
				require.NoError(t, err)
				t.Cleanup(func() { s.Close() })
				require.NoError(t, sp.spoil(ctx, r.Client, s.Key("bad")))

				// The bad run's later events, beside another run's first.
				good := sinktest.Events("good", 1, 2)
				err = s.Publish(ctx, slices.Concat(sinktest.Events("bad", 1, 2), good)...)
				require.ErrorIs(t, err, progress.ErrInvalidEvent)
				assert.ErrorContains(t, err, `2 of 4 events not written`)
				assert.ErrorContains(t, err, `run "bad"`)
				n, err := r.Client.XLen(ctx, s.Key("good")).Result()
				require.NoError(t, err)
				assert.Equal(t, int64(2), n, "the good run's events")
				// Repeated, the good run's events are duplicates: the
				// call fails for the bad run's alone.
				err = s.Publish(ctx, good...)
				require.NoError(t, err)
				require.ErrorIs(t, s.Publish(ctx, sinktest.Events("bad", 3, 3)...), progress.ErrInvalidEvent)
			})
		}
	}
}

// Behind a default progress.Buffered (Attempts 0), a run whose key Redis
// refuses its events for good no longer holds back the events of every
// other run until the queue fills: its events go to the fallback, the
// others' reach Redis.
func TestBufferedHandsARefusedRunToItsFallback(t *testing.T) {
	ctx := context.Background()
	r := testenv.NewRedis(t)
	s, err := redisstream.New(r.Client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	var mu sync.Mutex
	var fallback []progress.Event
	b := progress.NewBuffered(s, progress.BufferedOptions{Logger: quiet(), RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond,
		Fallback: progress.SinkFunc(func(_ context.Context, events ...progress.Event) error {
			mu.Lock()
			defer mu.Unlock()
			fallback = append(fallback, events...)
			return nil
		})})
	t.Cleanup(func() { b.Close(testenv.Context(t, 5*time.Second)) })
	for _, sp := range spoils {
		require.NoError(t, sp.spoil(ctx, r.Client, s.Key(sp.name)))
	}

	var bad []progress.Event
	for seq := uint64(1); seq <= 3; seq++ {
		for _, sp := range spoils {
			e := sinktest.Events(sp.name, seq, seq)
			bad = append(bad, e...)
			require.NoError(t, b.Publish(ctx, e...))
		}
		require.NoError(t, b.Publish(ctx, sinktest.Events("other", seq, seq)...))
	}
	// Without the fix, the first batch is retried until the queue fills,
	// and Flush waits for as long.
	require.NoError(t, b.Flush(testenv.Context(t, 20*time.Second)))

	n, err := r.Client.XLen(ctx, s.Key("other")).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(3), n, "the other run's events")
	mu.Lock()
	defer mu.Unlock()
	byRun := func(a, b progress.Event) int {
		return cmp.Or(cmp.Compare(a.RunID, b.RunID), cmp.Compare(a.Seq, b.Seq))
	}
	slices.SortFunc(fallback, byRun)
	slices.SortFunc(bad, byRun)
	assert.Equal(t, bad, fallback, "the fallback gets the refused run's events")
	assert.Equal(t, uint64(3), b.Stats().Published)
}

// A failure that may pass (Redis down, or a replica that refuses writes
// until it is promoted) is not an invalid event: a progress.Buffered
// retries it.
func TestPublishTemporaryFailureIsNotInvalid(t *testing.T) {
	ctx := context.Background()
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	opts.MaxRetries = -1
	opts.DialTimeout = 500 * time.Millisecond
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	s, err := redisstream.New(client, redisstream.Options{Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.NoError(t, s.Publish(ctx, sinktest.Events("r", 1, 1)...))

	// A replica (of a port nobody listens on) refuses writes: READONLY.
	require.NoError(t, client.Do(ctx, "REPLICAOF", "127.0.0.1", "1").Err())
	err = s.Publish(ctx, sinktest.Events("r", 2, 2)...)
	require.ErrorContains(t, err, "READONLY")
	assert.NotErrorIs(t, err, progress.ErrInvalidEvent)
	require.NoError(t, client.Do(ctx, "REPLICAOF", "NO", "ONE").Err())
	require.NoError(t, s.Publish(ctx, sinktest.Events("r", 2, 2)...))

	server.Kill()
	err = s.Publish(ctx, sinktest.Events("r", 3, 3)...)
	require.Error(t, err)
	assert.NotErrorIs(t, err, progress.ErrInvalidEvent)
}
