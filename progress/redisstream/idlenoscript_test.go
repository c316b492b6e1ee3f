package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A writer whose Redis user lacks @scripting renews IdleTTL at each
// Publish of a live run without the script that the ACL refuses, and
// keeps the script's guarantee: a call whose events are older than the
// stream's newest (a retry after the final event) leaves the final
// event's FinishedTTL alone. Before, the script's refusal was only
// counted (Stats.ExpiryErrors): the stream had no expiry until the
// sweep gave it one, once (PEXPIRE NX), which no Publish renewed, so a
// run still writing IdleTTL later lost its stream mid-run.
func TestIdleTTLWithoutScriptingIsRenewedByEachPublish(t *testing.T) {
	r := testenv.NewRedis(t)
	client := aclUser(t, r, "+@all", "-@scripting")
	s := streamOn(t, r, client, redisstream.Options{
		FinishedTTL: time.Minute,
		IdleTTL:     time.Hour,
	})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 4)
	all[3].Type = progress.RunFinished
	pttl := func() time.Duration {
		t.Helper()
		d, err := r.Client.PTTL(ctx, s.Key(run)).Result()
		require.NoError(t, err)
		return d
	}

	require.NoError(t, s.Publish(ctx, all[0]))
	assert.Greater(t, pttl(), time.Minute, "IdleTTL set by the run's first call")
	assert.LessOrEqual(t, pttl(), time.Hour)

	require.NoError(t, r.Client.PExpire(ctx, s.Key(run), 10*time.Second).Err()) // as if the run had been quiet
	require.NoError(t, s.Publish(ctx, all[1:3]...))
	assert.Greater(t, pttl(), time.Minute, "IdleTTL renewed by a later call")

	require.NoError(t, s.Publish(ctx, all[3]))
	assert.LessOrEqual(t, pttl(), time.Minute, "FinishedTTL")
	require.NoError(t, s.Publish(ctx, all[1:3]...), "a late retry, whose events are duplicates")
	assert.LessOrEqual(t, pttl(), time.Minute, "FinishedTTL kept: the retry is no publish")
	assert.Positive(t, pttl())

	st := s.Stats()
	assert.Equal(t, uint64(0), st.ExpiryErrors, "every expiry set")
	assert.Equal(t, uint64(0), st.PublishErrors)
}
