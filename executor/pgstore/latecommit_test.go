package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// latePut is a put whose statement a test makes wait for a row lock:
// lock is the statement, {s} the schema, that locks the row put is
// about to write, and stored reads what the row holds, which must be
// what it held before the put (put writes something else).
type latePut struct {
	name   string
	lock   string
	put    func(ctx context.Context, s *pgstore.Store) error
	stored func(ctx context.Context, s *pgstore.Store) (string, error)
}

// latePuts are the writes that run as one round trip of BEGIN, the
// statement and COMMIT (Store.exec): the server holds their COMMIT while
// the statement waits.
var latePuts = []latePut{
	{
		name: "PutRun",
		lock: `SELECT 1 FROM {s}.runs WHERE id = 'r' FOR UPDATE`,
		put: func(ctx context.Context, s *pgstore.Store) error {
			return s.PutRun(ctx, executor.Record{ID: "r", GraphKey: "g", Status: executor.RunSucceeded})
		},
		stored: func(ctx context.Context, s *pgstore.Store) (string, error) {
			r, err := s.GetRun(ctx, "r")
			return string(r.Status), err
		},
	},
	{
		name: "Put",
		lock: `SELECT 1 FROM {s}.assets WHERE key = 'a' FOR UPDATE`,
		put: func(ctx context.Context, s *pgstore.Store) error {
			_, err := s.Put(ctx, "a", executor.Asset{Hash: "new"})
			return err
		},
		stored: func(ctx context.Context, s *pgstore.Store) (string, error) {
			a, err := s.Get(ctx, pgstore.RefPrefix+"a")
			return a.Hash, err
		},
	},
}

// lateStore returns a migrated Store on a pool of its own whose
// connections carry application_name app, its pool configured by
// configure too (nil for none), and the test's Postgres. The record "r"
// (running) and the asset "a" (Hash "old") are stored.
func lateStore(t *testing.T, configure func(*pgxpool.Config)) (*pgstore.Store, *testenv.Postgres, string) {
	t.Helper()
	_, pg := newStore(t)
	app := pg.Schema // unique, and at most 63 bytes, as application_name keeps
	s := poolStore(t, pg.Schema, func(c *pgxpool.Config) {
		c.ConnConfig.RuntimeParams["application_name"] = app
		if configure != nil {
			configure(c)
		}
	})
	ctx := t.Context()
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "r", GraphKey: "g", Status: executor.RunRunning}))
	_, err := s.Put(ctx, "a", executor.Asset{Hash: "old"})
	require.NoError(t, err)
	return s, pg, app
}

// holdLock runs lock in a transaction of pg's pool and returns it, and
// its backend's pid.
func holdLock(t *testing.T, ctx context.Context, pg *testenv.Postgres, lock string) (rollback func() error, pid int) {
	t.Helper()
	tx, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	_, err = tx.Exec(ctx, strings.ReplaceAll(lock, "{s}", `"`+pg.Schema+`"`))
	require.NoError(t, err)
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	return func() error { return tx.Rollback(ctx) }, pid
}

// TestCancelledPutStoresNothingLater ends the context of a PutRun and of
// a Put while its statement waits for a row that another transaction
// holds locked (a concurrent put of the same record or asset, a
// DeleteGraph, a prune). The server holds the statement's COMMIT, sent
// in the same round trip; pgx, as it closes the connection, sends the
// server a cancel request from a goroutine of its own, which may arrive
// after the call returned. Here the wait ends as soon as the call
// returns: the server must not then write the put, after the call
// returned an error (an executor that gave up on an older record's
// PutRun, and put a newer one since, would find the older one back). The
// error says that the put may have been stored or not, that putting it
// again is safe, and wraps the context's cause and ctx.Err().
func TestCancelledPutStoresNothingLater(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, app := lateStore(t, nil)
	ctx := testenv.Context(t, 60*time.Second)
	cause := errors.New("the host gave up")
	for _, tc := range latePuts {
		t.Run(tc.name, func(t *testing.T) {
			rollback, pid := holdLock(t, ctx, pg, tc.lock)
			cctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			done := make(chan error, 1)
			go func() { done <- tc.put(cctx, s) }()
			pg.WaitBlockedBy(t, ctx, pid, done)
			cancel(cause)
			err := <-done

			require.NoError(t, rollback()) // the wait ends
			pg.WaitIdle(t, ctx, app)
			got, gerr := tc.stored(ctx, s)
			require.NoError(t, gerr)
			assert.Contains(t, []string{"running", "old"}, got, "a put that returned an error wrote its row later")

			require.Error(t, err)
			assert.ErrorIs(t, err, cause, "the error wraps the context's cause")
			assert.ErrorIs(t, err, context.Canceled, "the error wraps ctx.Err()")
			assert.ErrorIs(t, err, pgstore.ErrInDoubt, "a host can branch on the outcome in doubt")
			assert.Contains(t, err.Error(), "the context ended while the statement ran, which may have stored it or not (putting it again is safe)",
				"the error says that the outcome is not known, and that a retry is safe")
		})
	}
}

// TestPutWhoseConnectionIsLost loses the connection of a PutRun and of a
// Put while its statement waits for a row that another transaction
// holds locked: the server, which does not see the connection go while
// the statement waits, holds the statement and its COMMIT. The error
// says that the put may have been stored or not, and that putting it
// again is safe (the executor puts again after such an error), and the
// server must not write the put once the wait ends, after the call
// returned.
func TestPutWhoseConnectionIsLost(t *testing.T) {
	t.Parallel() // its own schema
	var proxy *testenv.CutProxy
	s, pg, app := lateStore(t, func(c *pgxpool.Config) {
		proxy = testenv.CutPostgres(t, c)
	})
	ctx := testenv.Context(t, 60*time.Second)
	for _, tc := range latePuts {
		t.Run(tc.name, func(t *testing.T) {
			rollback, pid := holdLock(t, ctx, pg, tc.lock)
			done := make(chan error, 1)
			go func() { done <- tc.put(ctx, s) }()
			pg.WaitBlockedBy(t, ctx, pid, done)
			proxy.Cut()
			err := <-done

			require.NoError(t, rollback()) // the wait ends
			pg.WaitIdle(t, ctx, app)
			got, gerr := tc.stored(ctx, s)
			require.NoError(t, gerr)
			assert.Contains(t, []string{"running", "old"}, got, "a put that lost its connection wrote its row later")

			require.Error(t, err)
			assert.NotErrorIs(t, err, context.Canceled)
			var permanent *executor.PermanentError
			assert.False(t, errors.As(err, &permanent), "an executor puts again")
			assert.ErrorIs(t, err, pgstore.ErrInDoubt, "a host can branch on the outcome in doubt")
			assert.Contains(t, err.Error(), "the connection was lost while the statement ran, which may have stored it or not (putting it again is safe)",
				"the error says that the outcome is not known, and that a retry is safe")
		})
	}
}
