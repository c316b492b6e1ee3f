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

// A final event whose run's key holds another type than a stream (a
// host's own key, under a KeyTemplate shared by mistake) is refused
// (WRONGTYPE), and leaves that key as it was: FinishedTTL is set on the
// run's stream only. Before, the EXPIRE that set it went out in the same
// pipeline as the refused XADD, and expired the foreign key a day on.
func TestFinishedTTLLeavesAKeyOfAnotherTypeAlone(t *testing.T) {
	for _, tc := range []struct {
		name    string
		idleTTL time.Duration
	}{{"with IdleTTL", 0}, {"without IdleTTL", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			s, r := newStream(t, redisstream.Options{FinishedTTL: time.Minute, IdleTTL: tc.idleTTL})
			ctx, run := context.Background(), sinktest.RunID(t)
			key := s.Key(run)
			require.NoError(t, r.Client.Set(ctx, key, "a host's value", 0).Err())
			all := sinktest.Events(run, 1, 3)
			all[2].Type = progress.RunFinished
			for _, events := range [][]progress.Event{all, all[2:]} {
				err := s.Publish(ctx, events...)
				require.ErrorIs(t, err, progress.ErrInvalidEvent)
				assert.ErrorContains(t, err, "WRONGTYPE")
			}
			ttl, err := r.Client.PTTL(ctx, key).Result()
			require.NoError(t, err)
			assert.Equal(t, time.Duration(-1), ttl, "the expiry of a key that is not a stream")
			v, err := r.Client.Get(ctx, key).Result()
			require.NoError(t, err)
			assert.Equal(t, "a host's value", v)
		})
	}
}
