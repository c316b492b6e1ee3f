package pgstore_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// A re-take's try that found the key held by a session with the ended
// session's PID took it for the ended session, which the server frees a
// moment later, and tried again, for up to Retake: but the server gives
// an ended backend's PID to a new one, and if that one is another
// process's, which took the key and may be resuming the run, the run
// went on beside it for the whole of Retake instead of being cancelled
// at once. A holder with the ended PID is now the ended session only if
// it started when that session did (pg_stat_activity's backend_start).
func TestHoldForRetakeTellsAReusedPIDFromTheEndedSession(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	key, lock, r, _, _ := retakeRun(t, ctx, s, s)
	var other *pgstore.GraphLock
	var otherErr error
	pgstore.WatcherSaw(lock, func() {
		// Another process takes the key once the server has freed it,
		// on a session that got the ended session's PID.
		if other, otherErr = s.LockGraph(ctx, key); otherErr == nil {
			pgstore.SetSessionPID(lock, lockHolder(t, pg.Pool, s.GraphLockKey(key)))
		}
	})
	held := lock.HoldFor(r, pgstore.HoldOptions{Retake: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})

	endLockSession(t, ctx, pg, s, key)
	err := receive(t, ctx, held)
	require.NoError(t, otherErr, "the other session's lock")
	defer func() { require.NoError(t, other.Unlock(ctx)) }()
	require.ErrorIs(t, err, pgstore.ErrLockLost, "Hold's error")
	assert.Contains(t, err.Error(), "held by another session", "refused at once, not after Retake")
	rep, err := r.Wait()
	require.ErrorIs(t, err, pgstore.ErrLockLost, "the run's cause")
	assert.Equal(t, executor.RunCancelled, rep.Record.Status)
}
