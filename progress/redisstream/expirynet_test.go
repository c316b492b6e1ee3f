package redisstream_test

import (
	"context"
	"io"
	"strings"
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

// failPExpire fails, once, a pipeline of PEXPIREs alone (FinishedTTL's,
// after the XADDs) as a connection lost after the XADDs would.
type failPExpire struct{ done atomic.Bool }

func (f *failPExpire) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (f *failPExpire) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (f *failPExpire) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if !strings.EqualFold(cmd.Name(), "pexpire") {
				return next(ctx, cmds)
			}
		}
		if f.done.Swap(true) {
			return next(ctx, cmds)
		}
		for _, cmd := range cmds {
			cmd.SetErr(io.ErrUnexpectedEOF)
		}
		return io.ErrUnexpectedEOF
	}
}

// A final event's FinishedTTL that fails for another reason than the
// ACL (the connection lost between the XADDs and the PEXPIRE) fails the
// call, as a failure that may pass (not progress.ErrInvalidEvent), with
// no event counted as dropped; its retry, whose events are duplicates,
// sets the expiry, as the docs say.
func TestAFinishedTTLLostOnTheWayFailsTheCallAndTheRetrySetsIt(t *testing.T) {
	r := testenv.NewRedis(t)
	client := aclUser(t, r, "+@all")
	client.AddHook(&failPExpire{})
	s := streamOn(t, r, client, redisstream.Options{
		FinishedTTL: time.Minute,
		IdleTTL:     -1,
	})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 3)
	all[2].Type = progress.RunFinished

	err := s.Publish(ctx, all...)
	require.Error(t, err)
	assert.NotErrorIs(t, err, progress.ErrInvalidEvent, "a failure that may pass")
	assert.Contains(t, err.Error(), "set expiry")
	ttl, err := r.Client.PTTL(ctx, s.Key(run)).Result()
	require.NoError(t, err)
	assert.Equal(t, time.Duration(-1), ttl, "the expiry did not go out")

	require.NoError(t, s.Publish(ctx, all...), "the retry")
	ttl, err = r.Client.PTTL(ctx, s.Key(run)).Result()
	require.NoError(t, err)
	assert.Positive(t, ttl, "FinishedTTL, set by the retry")
	st := s.Stats()
	assert.Equal(t, uint64(3), st.Published)
	assert.Equal(t, uint64(3), st.Duplicates)
	assert.Equal(t, uint64(0), st.Dropped)
	assert.Equal(t, uint64(1), st.PublishErrors)
	assert.Equal(t, uint64(0), st.ExpiryErrors)
}
