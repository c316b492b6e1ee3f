package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Close ends every Tail in progress with ErrClosed, also one that is
// retrying an outage (Redis unreachable while it replays, or while it
// looks up the run's end): before, its backoff waited on the reader's
// context alone, so the Tail went on retrying after Close (and after the
// host closed the client, whose "client is closed" it retried too) until
// the reader left.
func TestCloseEndsATailRetryingAnOutage(t *testing.T) {
	for _, after := range []uint64{0, 5} {
		t.Run(map[uint64]string{0: "from the start", 5: "resuming"}[after], func(t *testing.T) {
			// Nothing listens on port 1: each read fails at once.
			client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
			defer client.Close()
			s, err := redisstream.New(client, redisstream.Options{RetryDelay: 5 * time.Millisecond, Logger: quiet()})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- s.Tail(ctx, sinktest.RunID(t), after, func(progress.Event) error { return nil })
			}()
			for s.Stats().ReadErrors < 2 {
				require.NoError(t, ctx.Err(), "the reader never tried Redis")
				time.Sleep(time.Millisecond) // polling real I/O, bounded by ctx
			}
			require.NoError(t, s.Close())
			client.Close() // as a host does after Close
			assert.ErrorIs(t, <-done, redisstream.ErrClosed, "the Tail must end with Close, not with its own context")
		})
	}
}

// A duration written without its unit (HistoryPoll: 5, meaning seconds)
// is nanoseconds. New refuses one below a millisecond, as it refuses
// such a BlockTime: before, HistoryPoll 5ns made the shared reader of
// each run with readers read the History (a host's database) at each of
// its reads, about ten times a second where the default is once in 5s,
// and about a thousand times a second for a run beyond MaxBlockingReads;
// and RetryDelay 100ns made each reader's first retries of an outage
// come back to back.
func TestNewRefusesSubMillisecondDurations(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	tests := []struct {
		name string
		opts redisstream.Options
		want string
	}{
		{"HistoryPoll", redisstream.Options{HistoryPoll: 5}, "HistoryPoll 5ns is below 1ms"},
		{"RetryDelay", redisstream.Options{RetryDelay: 100}, "RetryDelay 100ns is below 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := redisstream.New(client, tt.opts)
			if err == nil {
				s.Close()
			}
			assert.ErrorIs(t, err, redisstream.ErrInvalidOptions)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
