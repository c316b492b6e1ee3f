package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// otherProcess returns a Store on the same schema as pg's, on a pool of
// its own, as another process of the host would have; the pool is closed
// when the test ends. mode is the pool's query mode.
func otherProcess(t *testing.T, pg *testenv.Postgres, mode pgx.QueryExecMode) (*pgstore.Store, *pgxpool.Pool) {
	t.Helper()
	cfg := pg.Pool.Config()
	cfg.ConnConfig.DefaultQueryExecMode = mode
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close) // before testenv drops the schema
	s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	return s, pool
}

// lockSessions returns the number of server sessions that hold (granted)
// or wait for (not granted) the advisory lock of key.
func lockSessions(t *testing.T, pool *pgxpool.Pool, key int64, granted bool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_catalog.pg_locks
WHERE locktype = 'advisory' AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1 AND granted = $2`,
		key, granted).Scan(&n))
	return n
}

// awaitLockSessions polls the server until want sessions hold (granted)
// or wait for the lock of key. The server ends a session, and frees its
// locks, a moment after its connection closes, and a cancel request
// reaches the session a moment after it is sent.
func awaitLockSessions(t *testing.T, ctx context.Context, pool *pgxpool.Pool, key int64, granted bool, want int) {
	t.Helper()
	for {
		got := lockSessions(t, pool, key, granted)
		if got == want {
			return
		}
		require.NoError(t, ctx.Err(), "sessions on the lock (granted %v): %d, want %d", granted, got, want)
		time.Sleep(5 * time.Millisecond) // polling the server, bounded by ctx
	}
}

// Two processes on one graph key: before, pgstore offered no lock, and
// both made the same nodes, or one resumed the other's live run. Now the
// second process's TryLockGraph is refused with a typed error while the
// first holds the key's lock, whatever the pool's query mode (the simple
// protocol that PgBouncer needs included: these pools connect to Postgres
// directly, as session locks require; PgBouncer in transaction mode
// cannot hold them). Another key's lock is free. Once the holder
// unlocks, the lock is free at once.
func TestTryLockGraphRefusedWhileHeld(t *testing.T) {
	t.Parallel() // its own schema
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel() // its own schema
			_, pg := newStore(t)
			ctx := testenv.Context(t, 30*time.Second)
			s1, _ := otherProcess(t, pg, mode)
			s2, _ := otherProcess(t, pg, mode)
			const key = "lecture-1"

			l1, err := s1.TryLockGraph(ctx, key)
			require.NoError(t, err)
			assert.Equal(t, key, l1.GraphKey())
			require.NoError(t, l1.Check(ctx), "the holder's check")

			for name, s := range map[string]*pgstore.Store{"another process": s2, "the same process": s1} {
				l, err := s.TryLockGraph(ctx, key)
				require.ErrorIs(t, err, pgstore.ErrGraphLocked, "TryLockGraph from %s", name)
				assert.Nil(t, l)
				var le *pgstore.LockedError
				require.ErrorAs(t, err, &le)
				assert.Equal(t, pgstore.LockedError{Schema: pg.Schema, GraphKey: key}, *le)
				assert.Equal(t, `pgstore: graph locked: graph "lecture-1" of schema `+pg.Schema+
					` is locked by another session: wait for it with LockGraph, or start or resume no run of the key`, err.Error())
			}
			other, err := s2.TryLockGraph(ctx, "lecture-2")
			require.NoError(t, err, "another key's lock")
			require.NoError(t, other.Unlock(ctx))

			require.NoError(t, l1.Unlock(ctx))
			require.NoError(t, l1.Unlock(ctx), "a second Unlock does nothing")
			assert.ErrorIs(t, l1.Check(ctx), pgstore.ErrLockLost, "Check after Unlock")
			select {
			case <-l1.Lost():
				t.Error("Unlock closed Lost")
			default:
			}
			l2, err := s2.TryLockGraph(ctx, key)
			require.NoError(t, err, "TryLockGraph once the holder unlocked")
			require.NoError(t, l2.Unlock(ctx))
		})
	}
}

// LockGraph waits while another session holds the lock, and returns it
// held once that one unlocks. A LockGraph whose context ends while it
// waits returns the context's error, holding nothing, and leaves no
// session waiting on the server, which would take the lock later for
// nobody.
func TestLockGraphWaits(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	s2, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
	const key = "lecture-1"
	lockKey := s.GraphLockKey(key)
	l1, err := s.LockGraph(ctx, key)
	require.NoError(t, err)

	// A wait that ends with its context.
	wctx, cancel := context.WithCancel(ctx)
	gave := make(chan error, 1)
	go func() {
		l, err := s2.LockGraph(wctx, key)
		if l != nil {
			_ = l.Unlock(ctx)
		}
		gave <- err
	}()
	awaitLockSessions(t, ctx, pg.Pool, lockKey, false, 1)
	cancel()
	require.ErrorIs(t, <-gave, context.Canceled)
	awaitLockSessions(t, ctx, pg.Pool, lockKey, false, 0) // the server waits no more

	// A wait that ends with the holder's Unlock.
	got := make(chan *pgstore.GraphLock, 1)
	go func() {
		l, err := s2.LockGraph(ctx, key)
		assert.NoError(t, err)
		got <- l
	}()
	awaitLockSessions(t, ctx, pg.Pool, lockKey, false, 1)
	select {
	case <-got:
		t.Fatal("LockGraph returned while another session held the lock")
	default:
	}
	require.NoError(t, l1.Unlock(ctx))
	l2 := <-got
	require.NotNil(t, l2)
	require.NoError(t, l2.Check(ctx))
	assert.Equal(t, 1, lockSessions(t, pg.Pool, lockKey, true))
	require.NoError(t, l2.Unlock(ctx))
	assert.Equal(t, 0, lockSessions(t, pg.Pool, lockKey, true), "Unlock returns once the server freed the lock")
}

// A holder whose connection drops (the server ends its session, as at a
// failover, or when an administrator ends it) learns that it lost the
// lock: Lost is closed, Check and Unlock say so, and another process
// takes the lock.
func TestGraphLockLostWhenItsConnectionDrops(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	s2, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
	const key = "lecture-1"
	l1, err := s.LockGraph(ctx, key)
	require.NoError(t, err)

	endLockSession(t, ctx, pg, s, key)
	select {
	case <-l1.Lost():
	case <-ctx.Done():
		t.Fatal("Lost was not closed when the lock's session ended")
	}
	require.ErrorIs(t, l1.Check(ctx), pgstore.ErrLockLost)
	l2, err := s2.LockGraph(ctx, key)
	require.NoError(t, err, "another process takes the lock")
	err = l1.Unlock(ctx)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "Unlock of a lost lock says so")
	assert.Contains(t, err.Error(), "another session may hold it now")
	require.NoError(t, l2.Check(ctx), "the other process's lock, after the lost one's Unlock")
	require.NoError(t, l2.Unlock(ctx))
}

// The host owns the pool, and may close it while it holds a lock (at
// shutdown, say). The lock's connection is not the pool's: Close does not
// wait for it, and the lock stays held, as a run may still go on under
// it, until Unlock.
func TestGraphLockOutlivesItsPool(t *testing.T) {
	t.Parallel() // its own schema
	_, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	s1, pool1 := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
	s2, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
	const key = "lecture-1"
	l1, err := s1.LockGraph(ctx, key)
	require.NoError(t, err)
	closed := make(chan struct{})
	go func() {
		pool1.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("closing the pool waited for the lock's connection")
	}
	_, err = s2.TryLockGraph(ctx, key)
	require.ErrorIs(t, err, pgstore.ErrGraphLocked, "the lock, once its pool is closed")
	require.NoError(t, l1.Check(ctx))
	require.NoError(t, l1.Unlock(ctx))
	l2, err := s2.TryLockGraph(ctx, key)
	require.NoError(t, err)
	require.NoError(t, l2.Unlock(ctx))
}

// Keys that the store refuses for a commit are refused for a lock, with
// the same typed error, before any SQL: the store's pool here never
// connects. A done context is refused first.
func TestLockGraphRefusesBadKeys(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, key string
		want      error
	}{
		{"too long", strings.Repeat("k", pgstore.MaxGraphKeyBytes+1), pgstore.ErrKeyTooLong},
		{"NUL", "a\x00b", pgstore.ErrKeyNotText},
		{"invalid UTF-8", "a\xffb", pgstore.ErrKeyNotText},
	} {
		for name, lock := range map[string]func(context.Context, string) (*pgstore.GraphLock, error){
			"LockGraph": s.LockGraph, "TryLockGraph": s.TryLockGraph,
		} {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				l, err := lock(t.Context(), tc.key)
				assert.Nil(t, l)
				require.ErrorIs(t, err, tc.want)
				var ke *pgstore.KeyError
				require.ErrorAs(t, err, &ke)
				assert.Equal(t, "graph key", ke.Field)
				var pe *executor.PermanentError
				assert.ErrorAs(t, err, &pe, "a key no retry can fix: wrapped in executor.Permanent")
			})
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.LockGraph(ctx, "k")
	assert.True(t, errors.Is(err, context.Canceled), "LockGraph with a done context: %v", err)
	_, err = s.TryLockGraph(ctx, "k")
	assert.True(t, errors.Is(err, context.Canceled), "TryLockGraph with a done context: %v", err)
}

// An empty graph key, which the executor refuses as a RunRequest's
// (ErrInvalidRequest), no run of the store can have: LockGraph and
// TryLockGraph took a lock of it all the same. They now refuse it, before
// any SQL (the pool here never connects), with a *KeyError that says so
// and what is allowed, wrapping executor.ErrInvalidRequest as the
// executor's refusal does.
func TestLockGraphRefusesAnEmptyKey(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{})
	require.NoError(t, err)
	for name, lock := range map[string]func(context.Context, string) (*pgstore.GraphLock, error){
		"LockGraph": s.LockGraph, "TryLockGraph": s.TryLockGraph,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			l, err := lock(ctx, "")
			assert.Nil(t, l)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			var ke *pgstore.KeyError
			require.ErrorAs(t, err, &ke)
			assert.Equal(t, pgstore.KeyError{Field: "graph key", Max: pgstore.MaxGraphKeyBytes, Empty: true}, *ke)
			assert.EqualError(t, err, "lock graph: executor: invalid request: graph key is empty: "+
				"want 1 to 1200 bytes of valid UTF-8 without NUL, as executor.RunRequest.GraphKey takes")
			var pe *executor.PermanentError
			assert.ErrorAs(t, err, &pe, "a key no retry can fix: wrapped in executor.Permanent")
		})
	}
}

// The lock's key is the documented hash of the schema and the graph key:
// it must not change between releases (two releases of a host running at
// once in a rolling deploy would not exclude each other), and differs
// with the schema and the key.
func TestGraphLockKey(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store := func(schema string) *pgstore.Store {
		s, err := pgstore.New(pool, pgstore.Options{Schema: schema})
		require.NoError(t, err)
		return s
	}
	regen, other := store("regen"), store("regen2")
	// FNV-1a 64 of "github.com/regengraph/regen/executor/pgstore.LockGraph:regen:lecture-1",
	// as Python computes it apart from Go's hash/fnv.
	assert.Equal(t, int64(-7774799527962915106), regen.GraphLockKey("lecture-1"))
	assert.NotEqual(t, regen.GraphLockKey("lecture-1"), regen.GraphLockKey("lecture-2"))
	assert.NotEqual(t, regen.GraphLockKey("lecture-1"), other.GraphLockKey("lecture-1"))
}

// A host may have pgx end a statement whose context ends with a cancel
// request (pgconn.CancelRequestContextWatcherHandler), with a long
// fallback deadline. The lock's watcher reads its idle connection, which
// a cancel request does not interrupt (the server ignores it between
// statements): it must not wait for that deadline at Check and Unlock.
// And LockGraph's wait, under such a pool, ends with its context too.
func TestGraphLockWithCancelRequestHandler(t *testing.T) {
	t.Parallel() // its own schema
	_, pg := newStore(t)
	cfg := pg.Pool.Config()
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Minute}
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	ctx := testenv.Context(t, 20*time.Second) // well under the fallback deadline

	l, err := s.LockGraph(ctx, "lecture-1")
	require.NoError(t, err)
	require.NoError(t, l.Check(ctx))
	require.NoError(t, l.Check(ctx), "a second check, with the watcher started again")

	wctx, cancel := context.WithCancel(ctx)
	gave := make(chan error, 1)
	go func() {
		l2, err := s.LockGraph(wctx, "lecture-1")
		if l2 != nil {
			_ = l2.Unlock(ctx)
		}
		gave <- err
	}()
	awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey("lecture-1"), false, 1)
	cancel()
	require.ErrorIs(t, <-gave, context.Canceled)
	require.NoError(t, l.Unlock(ctx))
	awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey("lecture-1"), false, 0)
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey("lecture-1"), true))
}

// The package doc says that once the server ends a lock's session, Unlock
// and Check return an error wrapping ErrLockLost. Unlock did only when
// the watcher had seen the session end first: one that came before (its
// pause stops the watcher, and a watcher stopped meanwhile leaves the
// failure to the next statement) got the failure of its own
// pg_advisory_unlock, "unlock graph ...: terminating connection", which
// did not wrap ErrLockLost, and Lost stayed open, so a guarded run went
// on. Now a failed unlock statement that ctx did not interrupt says the
// lock is lost (its session ended, or may have, before Unlock), and
// closes Lost.
func TestUnlockAfterTheSessionEndedUnseenSaysLost(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	const key = "lecture-1"
	l, err := s.LockGraph(ctx, key)
	require.NoError(t, err)
	pgstore.StopWatching(l)
	endLockSession(t, ctx, pg, s, key)
	awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), true, 0)

	err = l.Unlock(ctx)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "Unlock after the session ended")
	assert.Contains(t, err.Error(), "another session may hold it now")
	select {
	case <-l.Lost():
	default:
		t.Fatal("Unlock found the lock lost, and did not close Lost")
	}
}

// The same when the stopped watcher's read had seen the session end, and
// closed the connection, and Unlock's ctx is done: Unlock returned the
// ctx's error, as when it only closes a live session's connection, though
// the lock was lost before it. A closed connection now says the lock is
// lost, whatever ctx.
func TestUnlockWithADoneContextAfterTheSessionEndedSaysLost(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	const key = "lecture-1"
	l, err := s.LockGraph(ctx, key)
	require.NoError(t, err)
	pgstore.StopWatching(l)
	endLockSession(t, ctx, pg, s, key)
	awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), true, 0)
	require.Error(t, pgstore.ReadStopped(ctx, l), "the read finds the session ended")

	done, cancel := context.WithCancel(ctx)
	cancel()
	err = l.Unlock(done)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "Unlock after the session ended")
	select {
	case <-l.Lost():
	default:
		t.Fatal("Unlock found the lock lost, and did not close Lost")
	}
}

// endLockSession has the server end the session that holds the lock of
// key on s (pg_terminate_backend of that backend alone), as when the
// lock's connection drops.
func endLockSession(t *testing.T, ctx context.Context, pg *testenv.Postgres, s *pgstore.Store, key string) {
	t.Helper()
	_, err := pg.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_catalog.pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`,
		s.GraphLockKey(key))
	require.NoError(t, err)
}
