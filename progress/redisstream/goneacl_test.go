package redisstream_test

import (
	"context"
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

// A reader whose Redis user may read and write streams but not use the
// keyspace commands (its ACL has @stream, not @keyspace: a reading
// service, or a least-privilege user) still ends with ErrStreamGone once
// its run's stream is gone, as every other reader does: the run's shared
// reader checks that the stream is there with a read of a stream
// command. Before, it checked with EXISTS (@keyspace), which Redis
// refused at each check, unlogged and uncounted, and the reader waited
// for good, as it did before ErrStreamGone (38149ed).
func TestAStreamGoneIsFoundWithoutKeyspaceCommands(t *testing.T) {
	for _, tc := range []struct {
		name        string
		readTimeout time.Duration
	}{{"default ReadTimeout", 0}, {"ReadTimeout -1", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			server := testenv.StartRedisServer(t)
			opts, err := redis.ParseURL(server.URL)
			require.NoError(t, err)
			admin := testenv.NewRedisClient(opts)
			t.Cleanup(func() { admin.Close() })
			require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@stream", "+@connection").Err())
			ropts := *opts
			ropts.Username, ropts.Password, ropts.ReadTimeout = "reader", "pw", tc.readTimeout
			client := testenv.NewRedisClient(&ropts)
			t.Cleanup(func() { client.Close() })

			writer, err := redisstream.New(admin, redisstream.Options{Logger: quiet()})
			require.NoError(t, err)
			t.Cleanup(func() { writer.Close() })
			s, err := redisstream.New(client, redisstream.Options{BlockTime: 50 * time.Millisecond, Logger: quiet()})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })

			run := sinktest.RunID(t)
			require.NoError(t, writer.Publish(ctx, sinktest.Events(run, 1, 3)...)) // the final event is lost
			var seen atomic.Uint64
			done := make(chan error, 1)
			go func() {
				done <- s.Tail(testenv.Context(t, 30*time.Second), run, 0, func(e progress.Event) error { seen.Store(e.Seq); return nil })
			}()
			require.Eventually(t, func() bool { return seen.Load() == 3 }, 10*time.Second, 10*time.Millisecond)
			require.NoError(t, admin.Del(ctx, s.Key(run)).Err()) // as its expiry would
			select {
			case err := <-done:
				assert.ErrorIs(t, err, redisstream.ErrStreamGone)
			case <-time.After(10 * time.Second):
				t.Fatal("the reader still waits 10s after its run's stream went")
			}
		})
	}
}
