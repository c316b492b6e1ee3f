package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// The zero Options expire every stream: a finished run's a day after its
// final event, and one without its final event three days after its
// newest event; a negative TTL keeps the stream. Before, both defaulted
// to no expiry, so that Redis kept every run's stream for good (about
// 2 MB a run at the default MaxLen), unless the host knew to set them.
func TestDefaultTTLs(t *testing.T) {
	const day = 24 * time.Hour
	none := time.Duration(-1) // PTTL of a key without an expiry
	tests := []struct {
		name              string
		opts              redisstream.Options
		running, finished time.Duration // the expiry wanted, at most; none for none
	}{
		{"zero options", redisstream.Options{}, 3 * day, day},
		{"FinishedTTL set, IdleTTL default", redisstream.Options{FinishedTTL: time.Hour}, 3 * day, time.Hour},
		{"IdleTTL set, FinishedTTL default", redisstream.Options{IdleTTL: 2 * time.Hour}, 2 * time.Hour, day},
		{"FinishedTTL kept", redisstream.Options{FinishedTTL: -1}, 3 * day, 3 * day},
		{"IdleTTL kept", redisstream.Options{IdleTTL: -time.Hour}, none, day},
		{"both kept", redisstream.Options{FinishedTTL: -1, IdleTTL: -1}, none, none},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, r := newStream(t, tt.opts)
			run := sinktest.RunID(t)
			ttl := func() time.Duration {
				t.Helper()
				d, err := r.Client.PTTL(ctx, s.Key(run)).Result()
				require.NoError(t, err)
				return d
			}
			within := func(got, want time.Duration, msg string) {
				t.Helper()
				if want == none {
					assert.Equal(t, none, got, msg)
					return
				}
				assert.LessOrEqual(t, got, want, msg)
				assert.Greater(t, got, want-time.Minute, msg)
			}
			require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 3)...))
			within(ttl(), tt.running, "the stream of a run going on")
			require.NoError(t, s.Publish(ctx, progress.Event{RunID: run, Seq: 4, Type: progress.RunFinished}))
			within(ttl(), tt.finished, "the stream of a finished run")
		})
	}
}

// A run whose final event never reached Redis (a 4s outage at its end:
// progress.Buffered retried, then sent it to its fallback) still has its
// stream expire, with FinishedTTL set and IdleTTL left to its default, as
// the production recipe has it. Before, the stream was kept for good
// unless IdleTTL was set too.
func TestAStreamWhoseFinalEventWasLostExpires(t *testing.T) {
	ctx := context.Background()
	t.Run("default IdleTTL", func(t *testing.T) {
		s, r := newStream(t, redisstream.Options{FinishedTTL: time.Hour})
		run := sinktest.RunID(t)
		require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 5)...)) // the final event, 6, is lost
		ttl, err := r.Client.PTTL(ctx, s.Key(run)).Result()
		require.NoError(t, err)
		assert.Greater(t, ttl, time.Hour, "the stream of a run without its final event expires, after IdleTTL")
	})
	t.Run("short IdleTTL", func(t *testing.T) {
		s, r := newStream(t, redisstream.Options{FinishedTTL: time.Hour, IdleTTL: time.Second})
		run := sinktest.RunID(t)
		require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 5)...))
		require.Eventually(t, func() bool {
			n, err := r.Client.Exists(ctx, s.Key(run)).Result()
			return err == nil && n == 0
		}, 10*time.Second, 50*time.Millisecond, "the stream expires")
	})
}
