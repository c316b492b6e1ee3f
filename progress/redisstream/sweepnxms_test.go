package redisstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// The sweep of a writer whose Redis user lacks @scripting gives a
// stream without an expiry FinishedTTL to the millisecond, as its
// script does. Before, its EXPIRE NX (seconds) cut the TTL's fraction
// of a second: a FinishedTTL of 1.9s expired the stream after 1s.
func TestTheSweepWithoutScriptingKeepsTheTTLsMilliseconds(t *testing.T) {
	redisstream.SetFirstSweep(t, time.Millisecond)
	ctx := context.Background()
	r := testenv.NewRedis(t)
	tmpl := r.Prefix + "run:" + redisstream.RunIDPlaceholder
	finished := sinktest.RunID(t) + "-finished"
	all := sinktest.Events(finished, 1, 2)
	all[1].Type = progress.RunFinished
	key := r.Prefix + "run:" + finished
	oldRelease(t, r.Client, key, all...)

	published := make(chan struct{})
	var once sync.Once
	wrote := func() { once.Do(func() { close(published) }) }
	redisstream.OnSweep(t, func(_ *redisstream.Stream, done bool) {
		if !done {
			<-published
		}
	})
	const ttl = time.Hour + 900*time.Millisecond
	s, err := redisstream.New(aclUser(t, r, "+@all", "-@scripting"), redisstream.Options{
		KeyTemplate: tmpl, FinishedTTL: ttl, IdleTTL: -1, Logger: quiet(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	t.Cleanup(wrote) // before Close, which waits for the sweep
	require.NoError(t, s.Publish(ctx, sinktest.Events(sinktest.RunID(t)+"-writer", 1, 1)...))
	wrote()
	pttl := func() time.Duration {
		d, err := r.Client.PTTL(ctx, key).Result()
		require.NoError(t, err)
		return d
	}
	require.Eventually(t, func() bool { return pttl() > 0 }, 10*time.Second, 5*time.Millisecond,
		"the sweep gives the finished run's stream an expiry")
	assert.Greater(t, pttl(), time.Hour, "FinishedTTL, not its whole seconds")
	assert.LessOrEqual(t, pttl(), ttl)
}
