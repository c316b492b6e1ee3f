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

// An expiry that the Redis user's ACL refuses on a run's key that took
// none of the call's events (a key of another type, which refuses them,
// WRONGTYPE) is no expiry refused on a written stream: Stats.ExpiryErrors
// counts only those, as its doc says, and the warning says the events
// were written. Before, the IdleTTL script, sent in the XADDs' pipeline
// whatever they did, was counted and warned of too.
func TestAnExpiryRefusedOnAKeyThatTookNothingIsNotCounted(t *testing.T) {
	r := testenv.NewRedis(t)
	client := aclUser(t, r, "+@all", "-@scripting")
	s := streamOn(t, r, client, redisstream.Options{
		IdleTTL: time.Hour,
	})
	ctx, run := context.Background(), sinktest.RunID(t)
	require.NoError(t, r.Client.Set(ctx, s.Key(run), "not a stream", 0).Err())

	err := s.Publish(ctx, sinktest.Events(run, 1, 2)...)
	require.Error(t, err)
	assert.ErrorIs(t, err, progress.ErrInvalidEvent, "WRONGTYPE")
	st := s.Stats()
	assert.Equal(t, uint64(0), st.Published)
	assert.Equal(t, uint64(2), st.Dropped)
	assert.Equal(t, uint64(0), st.ExpiryErrors, "no stream took the events")
}
