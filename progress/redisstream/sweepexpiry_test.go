package redisstream_test

import (
	"context"
	"strconv"
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

// oldRelease writes events to key as a release without expiries did:
// XADD alone.
func oldRelease(t *testing.T, c *redis.Client, key string, events ...progress.Event) {
	t.Helper()
	for _, e := range events {
		data, err := e.MarshalJSON()
		require.NoError(t, err)
		require.NoError(t, c.XAdd(context.Background(), &redis.XAddArgs{Stream: key, ID: "0-" + strconv.FormatUint(e.Seq, 10), Values: []any{"event", data}}).Err())
	}
}

// The streams that a release without expiries wrote never get one from
// a Publish, as their runs publish no more: the sweep of a Stream that
// publishes gives them one, a
// finished run's FinishedTTL and an unfinished one's IdleTTL, with or
// without a History, and leaves alone the keys of the KeyTemplate that
// are not streams, the streams that hold no event of their run (another
// writer's), and the keys outside the template. Before, they were kept
// for good, and Redis filled with every run ever made before the upgrade.
func TestTheSweepGivesAnExpiryToStreamsWithoutOne(t *testing.T) {
	for _, tc := range []struct {
		name        string
		history     bool
		idleTTL     time.Duration
		noScripting bool
	}{
		{"without a History", false, time.Hour, false},
		{"with a History", true, time.Hour, false},
		{"without IdleTTL", false, -1, false},
		// A Redis user without @scripting, whose ACL refuses the
		// sweep's script: it sets the expiry with EXPIRE NX instead.
		// Before, the sweep failed at each pass, and the streams were
		// kept for good.
		{"without IdleTTL, without @scripting", false, -1, true},
		{"without @scripting", false, time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redisstream.SetFirstSweep(t, time.Millisecond)
			ctx := context.Background()
			r := testenv.NewRedis(t)
			tmpl := r.Prefix + "run:" + redisstream.RunIDPlaceholder
			finished, running := sinktest.RunID(t)+"-finished", sinktest.RunID(t)+"-running"
			all := sinktest.Events(finished, 1, 3)
			all[2].Type = progress.RunFinished
			key := func(run string) string { return r.Prefix + "run:" + run }
			oldRelease(t, r.Client, key(finished), all...)
			oldRelease(t, r.Client, key(running), sinktest.Events(running, 1, 3)...)
			require.NoError(t, r.Client.Set(ctx, key("a-string"), "a host's value", 0).Err())
			require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: key("foreign"), Values: []any{"a", "b"}}).Err())
			oldRelease(t, r.Client, r.Prefix+"elsewhere", sinktest.Events("elsewhere", 1, 3)...)

			// The first sweep waits for the Stream's first Publish: a
			// Stream that has not published gives no expiries.
			published := make(chan struct{})
			var once sync.Once
			wrote := func() { once.Do(func() { close(published) }) }
			redisstream.OnSweep(t, func(_ *redisstream.Stream, done bool) {
				if !done {
					<-published
				}
			})
			opts := redisstream.Options{KeyTemplate: tmpl, FinishedTTL: time.Minute, IdleTTL: tc.idleTTL, Logger: quiet()}
			if tc.history {
				opts.History = progress.NewMemoryHistory()
			}
			client := r.Client
			if tc.noScripting {
				client = aclUser(t, r, "+@all", "-@scripting")
			}
			s, err := redisstream.New(client, opts)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			t.Cleanup(wrote) // before Close, which waits for the sweep
			writer := sinktest.RunID(t) + "-writer"
			require.NoError(t, s.Publish(ctx, sinktest.Events(writer, 1, 1)...))
			wrote()
			pttl := func(key string) time.Duration {
				ttl, err := r.Client.PTTL(ctx, key).Result()
				require.NoError(t, err)
				return ttl
			}
			require.Eventually(t, func() bool { return pttl(key(finished)) > 0 }, 10*time.Second, 5*time.Millisecond,
				"the sweep gives the finished run's stream an expiry")
			assert.LessOrEqual(t, pttl(key(finished)), time.Minute, "FinishedTTL")
			if tc.idleTTL > 0 {
				require.Eventually(t, func() bool { return pttl(key(running)) > 0 }, 10*time.Second, 5*time.Millisecond,
					"the sweep gives the unfinished run's stream an expiry")
				assert.Greater(t, pttl(key(running)), time.Minute, "IdleTTL")
			}
			require.NoError(t, s.Close()) // the sweep has ended
			if tc.idleTTL < 0 {
				assert.Equal(t, time.Duration(-1), pttl(key(running)), "no IdleTTL: an unfinished run's stream is kept")
			}
			assert.Equal(t, time.Duration(-1), pttl(key("a-string")), "a key of another type")
			assert.Equal(t, time.Duration(-1), pttl(key("foreign")), "another writer's stream")
			assert.Equal(t, time.Duration(-1), pttl(r.Prefix+"elsewhere"), "a stream outside the KeyTemplate")
		})
	}
}
