package redisstream_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// The sweep of a writer that cannot give a stream its expiry (its Redis
// user lacks PEXPIRE, or, on Redis 6, PEXPIRE NX is an ERR) warns of it
// once a Stream, at debug level after, and counts each refusal in
// Stats.ExpiryErrors. Before, every sweep (every IdleTTL/4) warned
// again, and no stat counted it.
func TestTheSweepWarnsOnceOfAnExpiryItCannotSet(t *testing.T) {
	redisstream.SetFirstSweep(t, time.Millisecond)
	ctx := context.Background()
	r := testenv.NewRedis(t)
	finished := sinktest.RunID(t) + "-finished"
	all := sinktest.Events(finished, 1, 2)
	all[1].Type = progress.RunFinished
	oldRelease(t, r.Client, r.Prefix+finished, all...)

	var sweeps atomic.Int64
	redisstream.OnSweep(t, func(_ *redisstream.Stream, done bool) {
		if done {
			sweeps.Add(1)
		}
	})
	logs := &testenv.LogBuffer{}
	// FinishedTTL 1s: a sweep every 250ms; IdleTTL negative: the
	// writer's own stream gets no expiry from Publish or the sweep.
	s := streamOn(t, r, aclUser(t, r, "+@all", "-@scripting", "-pexpire", "-expire"), redisstream.Options{
		FinishedTTL: time.Second, IdleTTL: -1,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, s.Publish(ctx, sinktest.Events(sinktest.RunID(t)+"-writer", 1, 1)...))
	start := sweeps.Load()
	require.Eventually(t, func() bool { return sweeps.Load() >= start+3 }, 20*time.Second, 10*time.Millisecond,
		"three sweeps after the writer published")

	warned := strings.Count(logs.String(), "could not give an expiry")
	assert.Equal(t, 1, warned, "warnings of the expiry the sweep cannot set:\n%s", logs.String())
	assert.GreaterOrEqual(t, s.Stats().ExpiryErrors, uint64(2), "each sweep's refusal, for the host to watch")
}
