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

// A writer whose Redis user lacks @scripting, with a negative IdleTTL,
// which needs no EVAL, has FinishedTTL set on its streams: on a final
// event's stream, and on a stream that a call without the run's first
// event creates again (it was gone). Before, since 2d6ee7f, FinishedTTL
// was set with a script (EVAL) that the ACL refused: each Publish of a
// final event failed with a *PermissionError, a progress.Buffered handed
// the run's written events to its fallback, and the stream was left
// without an expiry for good.
func TestFinishedTTLWithoutScripting(t *testing.T) {
	r := testenv.NewRedis(t)
	client := aclUser(t, r, "+@all", "-@scripting")
	s := streamOn(t, r, client, redisstream.Options{
		FinishedTTL: time.Minute,
		IdleTTL:     -1,
	})
	ctx := context.Background()
	expiry := func(run string) time.Duration {
		t.Helper()
		ttl, err := r.Client.PTTL(ctx, s.Key(run)).Result()
		require.NoError(t, err)
		return ttl
	}

	t.Run("final event", func(t *testing.T) {
		run := sinktest.RunID(t)
		all := sinktest.Events(run, 1, 3)
		all[2].Type = progress.RunFinished
		require.NoError(t, s.Publish(ctx, all[:2]...))
		assert.Equal(t, time.Duration(-1), expiry(run), "no expiry before the final event")
		require.NoError(t, s.Publish(ctx, all[2]))
		assert.Greater(t, expiry(run), time.Duration(0), "FinishedTTL")
		assert.LessOrEqual(t, expiry(run), time.Minute)
	})
	t.Run("final event retried", func(t *testing.T) {
		run := sinktest.RunID(t)
		all := sinktest.Events(run, 1, 3)
		all[2].Type = progress.RunFailed
		require.NoError(t, s.Publish(ctx, all...))
		require.NoError(t, r.Client.Persist(ctx, s.Key(run)).Err()) // as if the expiry had not gone out
		require.NoError(t, s.Publish(ctx, all[1:]...), "a retry")
		assert.Greater(t, expiry(run), time.Duration(0), "FinishedTTL, set by the retry")
	})
	t.Run("stream created again", func(t *testing.T) {
		run := sinktest.RunID(t)
		all := sinktest.Events(run, 1, 4)
		require.NoError(t, s.Publish(ctx, all[:2]...))
		require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err()) // Redis lost it
		require.NoError(t, s.Publish(ctx, all[2:]...))
		n, err := r.Client.XLen(ctx, s.Key(run)).Result()
		require.NoError(t, err)
		assert.Equal(t, int64(2), n)
		assert.Greater(t, expiry(run), time.Duration(0), "FinishedTTL on a stream created again")
	})
	st := s.Stats()
	assert.Equal(t, uint64(0), st.PublishErrors)
	assert.Equal(t, uint64(0), st.Dropped)
}

// A Publish whose events are written, and whose expiry alone the Redis
// user's ACL refuses (PEXPIRE for FinishedTTL, EVAL or the script's
// PEXPIRE for IdleTTL, and then the PEXPIRE that stands in for a
// refused script), succeeds: the refusal is counted in
// Stats.ExpiryErrors and logged, so a progress.Buffered counts the
// events published, and neither sends them again nor hands them to its
// fallback. Before, Publish returned a *PermissionError, which wraps
// progress.ErrInvalidEvent, for the expiry: the Buffered handed events
// that Redis held to its fallback.
func TestAnExpiryRefusedAloneIsNoPublishError(t *testing.T) {
	for _, tc := range []struct {
		name string
		acl  []any
		opts redisstream.Options
	}{
		{"FinishedTTL without PEXPIRE", []any{"+@all", "-@scripting", "-pexpire", "-expire"},
			redisstream.Options{FinishedTTL: time.Minute, IdleTTL: -1}},
		{"IdleTTL without @scripting and PEXPIRE", []any{"+@all", "-@scripting", "-pexpire", "-expire"},
			redisstream.Options{FinishedTTL: time.Minute, IdleTTL: time.Hour}},
		{"IdleTTL without PEXPIRE", []any{"+@all", "-pexpire", "-expire"},
			redisstream.Options{FinishedTTL: -1, IdleTTL: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testenv.NewRedis(t)
			client := aclUser(t, r, tc.acl...)
			s := streamOn(t, r, client, tc.opts)
			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, 6)
			all[5].Type = progress.RunFinished

			require.NoError(t, s.Publish(ctx, all[:3]...))
			fallback := progress.NewMemoryHistory()
			b := progress.NewBuffered(s, progress.BufferedOptions{Fallback: progress.NewArchive(fallback), Logger: quiet()})
			t.Cleanup(func() { b.Close(context.Background()) })
			require.NoError(t, b.Publish(ctx, all[3:]...))
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, b.Flush(fctx))

			assert.Equal(t, 0, fallback.Len(run), "events handed to the fallback")
			bst := b.Stats()
			assert.Equal(t, uint64(3), bst.Published)
			assert.Equal(t, uint64(0), bst.Fallback)
			n, err := r.Client.XLen(ctx, s.Key(run)).Result()
			require.NoError(t, err)
			assert.Equal(t, int64(6), n)
			st := s.Stats()
			assert.Equal(t, uint64(6), st.Published)
			assert.Equal(t, uint64(0), st.Duplicates, "events sent again")
			assert.Equal(t, uint64(0), st.PublishErrors)
			assert.Equal(t, uint64(0), st.Dropped)
			assert.Positive(t, st.ExpiryErrors, "the refused expiries, for the host to watch")
		})
	}
}

// A call without its run's first event that finds the run's stream gone
// creates it again in a transaction with FinishedTTL (see
// Options.FinishedTTL). Where the Redis user's ACL refuses PEXPIRE,
// Redis refuses the whole transaction (EXECABORT): the events are then
// written without it, and the refusal is counted in Stats.ExpiryErrors.
// Before, the call failed with EXECABORT, a failure that may pass, and a
// progress.Buffered retried it for good, holding every newer event
// behind it.
func TestAStreamCreatedAgainWithoutPEXPIRE(t *testing.T) {
	r := testenv.NewRedis(t)
	client := aclUser(t, r, "+@all", "-pexpire", "-expire")
	s := streamOn(t, r, client, redisstream.Options{
		FinishedTTL: time.Minute,
		IdleTTL:     -1,
	})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 4)
	require.NoError(t, s.Publish(ctx, all[:2]...))
	require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err()) // Redis lost it
	require.NoError(t, s.Publish(ctx, all[2:]...))
	n, err := r.Client.XLen(ctx, s.Key(run)).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)
	st := s.Stats()
	assert.Equal(t, uint64(4), st.Published)
	assert.Equal(t, uint64(0), st.PublishErrors)
	assert.Equal(t, uint64(1), st.ExpiryErrors)
}
