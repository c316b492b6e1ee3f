package pgstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// holdAdvisory takes the advisory lock of key on a connection of its
// own, outside any store, as another process's LockGraph holds it, and
// returns the func that frees it, once the server has, and closes the
// connection. (A session's end frees its locks too, but a moment after
// the client has closed its connection.)
func holdAdvisory(t *testing.T, ctx context.Context, key int64) (free func()) {
	t.Helper()
	conn, err := pgx.Connect(ctx, testenv.PostgresURL())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key)
	require.NoError(t, err)
	closed := false
	free = func() {
		if !closed {
			closed = true
			var freed bool
			assert.NoError(t, conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&freed), "unlock")
			assert.True(t, freed, "the session held the lock")
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}
	t.Cleanup(free)
	return free
}

// An on-call engineer could tell a live run from a dead one only by
// splitting GraphLockKey into pg_locks' classid and objid by hand.
// GraphLocked says whether a session holds a key's lock, without taking
// it: a lock held by another connection (another process) is found, and
// so is a GraphLock of this store; a key of another schema, or another
// key, is not; and once the holder lets go, it is not any more. In both
// query modes, as a pooler in transaction mode needs the simple protocol.
func TestGraphLocked(t *testing.T) {
	t.Parallel() // its own schemas
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			s := newStoreInMode(t, mode)
			// Never migrated: GraphLocked reads no table of its schema.
			other, err := pgstore.New(testenv.NewPostgres(t).Pool, pgstore.Options{Schema: "regentest_graphlocked_other"})
			require.NoError(t, err)
			ctx := testenv.Context(t, 30*time.Second)
			const key = "lecture-1"
			locked := func(s *pgstore.Store, key string) bool {
				t.Helper()
				ok, err := s.GraphLocked(ctx, key)
				require.NoError(t, err, "GraphLocked(%q)", key)
				return ok
			}

			assert.False(t, locked(s, key), "a key no session holds")
			free := holdAdvisory(t, ctx, s.GraphLockKey(key))
			assert.True(t, locked(s, key), "a key another connection holds")
			assert.False(t, locked(s, "lecture-2"), "another key")
			assert.False(t, locked(other, key), "the key in another schema: another lock")
			_, err = s.TryLockGraph(ctx, key)
			require.ErrorIs(t, err, pgstore.ErrGraphLocked, "GraphLocked took nothing: the holder keeps it")
			free()
			assert.False(t, locked(s, key), "a key whose holder let go")

			l, err := s.LockGraph(ctx, key)
			require.NoError(t, err)
			assert.True(t, locked(s, key), "a key that a GraphLock of this store holds")
			require.NoError(t, l.Unlock(ctx))
			assert.False(t, locked(s, key), "after Unlock")
		})
	}
}

// The stuck-run check of GraphLocked's doc: of two records left running,
// one whose key another process holds (a live run) and one whose key no
// session holds (its process died), the check names the dead one only.
func TestGraphLockedFindsDeadRuns(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	started := time.Now().Add(-time.Hour)
	for _, r := range []executor.Record{
		{ID: "live", GraphKey: "lecture-live", Status: executor.RunRunning, StartedAt: started},
		{ID: "dead", GraphKey: "lecture-dead", Status: executor.RunRunning, StartedAt: started},
	} {
		require.NoError(t, s.PutRun(ctx, r))
	}
	holdAdvisory(t, ctx, s.GraphLockKey("lecture-live"))

	running, err := s.RunsByStatus(ctx, executor.RunRunning)
	require.NoError(t, err)
	var dead []string
	for _, r := range running {
		locked, err := s.GraphLocked(ctx, r.GraphKey)
		require.NoError(t, err)
		if locked {
			continue
		}
		again, err := s.GetRun(ctx, r.ID) // it may have ended since the list
		require.NoError(t, err)
		if again.Status == executor.RunRunning {
			dead = append(dead, again.ID)
		}
	}
	assert.Equal(t, []string{"dead"}, dead)
}

// GraphLocked refuses the graph keys that LockGraph refuses, with the
// same *KeyError and before any SQL, and a done context.
func TestGraphLockedRefuses(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	for _, tc := range []struct {
		name, key string
		want      error
	}{
		{"empty", "", executor.ErrInvalidRequest},
		{"too long", strings.Repeat("k", pgstore.MaxGraphKeyBytes+1), pgstore.ErrKeyTooLong},
		{"not text", "lecture\x00", pgstore.ErrKeyNotText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			locked, err := s.GraphLocked(t.Context(), tc.key)
			require.ErrorIs(t, err, tc.want)
			assert.ErrorIs(t, err, executor.ErrInvalidRequest)
			var ke *pgstore.KeyError
			require.ErrorAs(t, err, &ke)
			assert.Equal(t, pgstore.MaxGraphKeyBytes, ke.Max)
			assert.False(t, locked)
			_, lerr := s.TryLockGraph(t.Context(), tc.key)
			assert.Equal(t, strings.Replace(lerr.Error(), "lock graph: ", "graph locked: ", 1), err.Error(), "LockGraph's refusal")
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.GraphLocked(ctx, "lecture-1")
	assert.ErrorIs(t, err, context.Canceled)
}
