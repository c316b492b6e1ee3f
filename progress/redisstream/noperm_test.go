package redisstream_test

import (
	"context"
	"errors"
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

// aclUser creates, on the shared Redis, a user of its own for the test,
// allowed the keys under r's prefix and the commands of acl, and returns
// a client of it; the user is deleted when the test ends.
func aclUser(t *testing.T, r *testenv.Redis, acl ...any) *redis.Client {
	t.Helper()
	ctx := context.Background()
	name := "regentest-" + testenv.UniqueName(t)
	args := append([]any{"ACL", "SETUSER", name, "reset", "on", ">pw", "~" + r.Prefix + "*"}, acl...)
	require.NoError(t, r.Client.Do(ctx, args...).Err())
	t.Cleanup(func() { r.Client.Do(context.Background(), "ACL", "DELUSER", name) })
	opts := *r.Client.Options()
	opts.Username, opts.Password = name, "pw"
	client := testenv.NewRedisClient(&opts)
	t.Cleanup(func() { client.Close() })
	return client
}

// A Redis user whose ACL refuses XADD, which Publish needs, makes each
// Publish fail with a *PermissionError that names the command, and wraps
// progress.ErrInvalidEvent: a configuration error, which no retry
// cures. So a progress.Buffered hands the events to its fallback at
// once. Before, the NOPERM was returned as a failure that may pass, and
// the Buffered retried the batch for good, holding every newer event
// back until its queue filled. (An expiry refused alone, on events that
// were written, is no error: TestAnExpiryRefusedAloneIsNoPublishError.)
func TestAnACLRefusalIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		acl     []any
		command string
	}{
		{"without XADD", []any{"+@stream", "+@scripting", "+@keyspace", "+@connection", "-xadd"}, "XADD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testenv.NewRedis(t)
			client := aclUser(t, r, tc.acl...)
			s, err := redisstream.New(client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, Logger: quiet()})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			ctx, run := context.Background(), sinktest.RunID(t)

			err = s.Publish(ctx, sinktest.Events(run, 1, 3)...)
			require.ErrorIs(t, err, progress.ErrInvalidEvent, "an ACL's refusal is permanent")
			var perm *redisstream.PermissionError
			require.True(t, errors.As(err, &perm), "%v", err)
			assert.Equal(t, tc.command, perm.Command)
			assert.Equal(t, s.Key(run), perm.Key)
			assert.ErrorContains(t, err, "NOPERM")

			fallback := progress.NewMemoryHistory()
			b := progress.NewBuffered(s, progress.BufferedOptions{Fallback: progress.NewArchive(fallback), Logger: quiet()})
			t.Cleanup(func() { b.Close(context.Background()) })
			require.NoError(t, b.Publish(ctx, sinktest.Events(run, 4, 6)...))
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, b.Flush(fctx), "the Buffered retries an ACL's refusal")
			assert.Equal(t, 3, fallback.Len(run), "events handed to the fallback")
		})
	}
}
