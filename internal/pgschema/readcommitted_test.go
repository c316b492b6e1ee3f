package pgschema_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/pgschema"
	"github.com/regengraph/regen/internal/testenv"
)

func TestInDoubtErrorText(t *testing.T) {
	cause := errors.New("cause")
	for _, tc := range []struct {
		err  pgschema.InDoubtError
		want string
	}{
		{pgschema.InDoubtError{Ended: true, Err: cause},
			"the context ended while the statement ran, which may have committed it or not: cause"},
		{pgschema.InDoubtError{Err: cause, Done: "stored it", Again: "putting it again is safe"},
			"the connection was lost while the statement ran, which may have stored it or not (putting it again is safe): cause"},
		{pgschema.InDoubtError{Err: cause, Cancel: errors.New("dial: refused"), Done: "stored it", Again: "putting it again is safe"},
			"the connection was lost while the statement ran, which may have stored it or not, or may yet: " +
				"the server did not take the cancel request (dial: refused) (putting it again is safe): cause"},
	} {
		assert.Equal(t, tc.want, tc.err.Error())
		assert.ErrorIs(t, &tc.err, cause)
		assert.ErrorIs(t, &tc.err, pgschema.ErrInDoubt)
		assert.ErrorIs(t, fmt.Errorf("pgstore: put run: %w", &tc.err), pgschema.ErrInDoubt)
	}
}

// cutDialer dials Postgres for a pool, and closes the connections it
// made when a test cuts them, as a network fault does; once a cut
// refuses, it dials no more (the server cannot be reached).
type cutDialer struct {
	mu     sync.Mutex
	conns  []net.Conn
	refuse bool
}

func (d *cutDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refuse {
		return nil, errors.New("the test cut the network")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

// cut closes the connections dialed so far, and, if refuse, refuses
// every dial from now on.
func (d *cutDialer) cut(refuse bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns, d.refuse = nil, refuse
}

// TestReadCommittedInDoubt makes a ReadCommitted's statement wait for a
// row lock that another transaction holds, then ends its context, or
// cuts its connection: the server holds the statement's COMMIT, sent in
// the same round trip, and must not commit it once the wait ends (here
// as soon as ReadCommitted returned), before the cancel request that pgx
// sends from a goroutine as it closes the connection arrives. The error
// is an *InDoubtError that says what ended the call. A server that
// cannot be reached does not take the cancel request: the error says
// that the statement may commit yet. An error of the server's is
// returned as it is.
func TestReadCommittedInDoubt(t *testing.T) {
	t.Parallel() // its own schema
	pg := testenv.NewPostgres(t)
	ctx := testenv.Context(t, 60*time.Second)
	table, stored := kvTable(t, ctx, pg, "")
	app := pg.Schema // unique, and at most 63 bytes, as application_name keeps
	dialer := &cutDialer{}
	pool := appPool(t, ctx, app, func(cfg *pgxpool.Config) { cfg.ConnConfig.DialFunc = dialer.dial })
	update := func(ctx context.Context) error {
		return pgschema.ReadCommitted(ctx, pool, "UPDATE "+table+" SET v = 'new' WHERE k = 1", nil,
			func(r pgx.BatchResults) error {
				_, err := r.Exec()
				return err
			})
	}
	cause := errors.New("the host gave up")

	for _, tc := range []struct {
		name string
		end  func(cancel context.CancelCauseFunc)
		// check checks the error, and returns whether the statement may
		// commit yet.
		check func(t *testing.T, d *pgschema.InDoubtError) (mayCommit bool)
	}{
		{"context ended", func(cancel context.CancelCauseFunc) { cancel(cause) }, func(t *testing.T, d *pgschema.InDoubtError) bool {
			assert.True(t, d.Ended)
			assert.ErrorIs(t, d, cause)
			assert.ErrorIs(t, d, context.Canceled)
			assert.NoError(t, d.Cancel)
			return false
		}},
		{"connection lost", func(context.CancelCauseFunc) { dialer.cut(false) }, func(t *testing.T, d *pgschema.InDoubtError) bool {
			assert.False(t, d.Ended)
			assert.NotErrorIs(t, d, context.Canceled)
			assert.NoError(t, d.Cancel)
			return false
		}},
		{"server unreachable", func(context.CancelCauseFunc) { dialer.cut(true) }, func(t *testing.T, d *pgschema.InDoubtError) bool {
			assert.False(t, d.Ended)
			assert.Error(t, d.Cancel)
			assert.Contains(t, d.Error(), "or may yet: the server did not take the cancel request (")
			return true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pg.Pool.Exec(ctx, "INSERT INTO "+table+" VALUES (1, 'old') ON CONFLICT (k) DO UPDATE SET v = 'old'")
			require.NoError(t, err)
			blocker, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = blocker.Rollback(context.Background()) }()
			_, err = blocker.Exec(ctx, "SELECT 1 FROM "+table+" WHERE k = 1 FOR UPDATE")
			require.NoError(t, err)
			var pid int
			require.NoError(t, blocker.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))

			cctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			done := make(chan error, 1)
			go func() { done <- update(cctx) }()
			pg.WaitBlockedBy(t, ctx, pid, done)
			tc.end(cancel)
			err = <-done

			require.NoError(t, blocker.Rollback(ctx)) // the wait ends
			pg.WaitIdle(t, ctx, app)
			var d *pgschema.InDoubtError
			require.ErrorAs(t, err, &d)
			if !tc.check(t, d) {
				assert.Equal(t, "old", stored(), "the statement was committed after ReadCommitted returned")
			}
		})
	}

	t.Run("server's error", func(t *testing.T) {
		dialer.cut(false) // dials again
		err := pgschema.ReadCommitted(ctx, pool, "SELECT 1/0", nil, func(r pgx.BatchResults) error {
			_, err := r.Exec()
			return err
		})
		var pe *pgconn.PgError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "22012", pe.Code)
		var d *pgschema.InDoubtError
		assert.False(t, errors.As(err, &d), "the server answered: the transaction failed")
	})
}

// kvTable creates the test's schema and in it a table (k int PRIMARY
// KEY, v text) holding values ("(1, 'old')"), or no row if values is
// empty. It returns the table's quoted name, and stored, which reads v
// of the row k = 1.
func kvTable(t *testing.T, ctx context.Context, pg *testenv.Postgres, values string) (table string, stored func() string) {
	t.Helper()
	table = pgschema.Quote(pg.Schema) + ".t"
	sql := "CREATE SCHEMA " + pgschema.Quote(pg.Schema) + "; CREATE TABLE " + table + " (k int PRIMARY KEY, v text)"
	if values != "" {
		sql += "; INSERT INTO " + table + " VALUES " + values
	}
	_, err := pg.Pool.Exec(ctx, sql)
	require.NoError(t, err)
	return table, func() string {
		var v string
		require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT v FROM "+table+" WHERE k = 1").Scan(&v))
		return v
	}
}

// appPool returns a pool on [testenv.PostgresURL] whose sessions name
// themselves app in pg_stat_activity, set up further by configure (if
// not nil). It is closed when the test ends.
func appPool(t *testing.T, ctx context.Context, app string, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL())
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}
