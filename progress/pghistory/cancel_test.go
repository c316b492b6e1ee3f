package pghistory_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/sinktest"
)

// waitGone polls pg_stat_activity until no backend of the application
// app is busy: each is idle in the pool, or gone.
func waitGone(t *testing.T, ctx context.Context, pg *testenv.Postgres, app string) {
	t.Helper()
	for {
		var n int
		require.NoError(t, pg.Pool.QueryRow(ctx,
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state IS DISTINCT FROM 'idle'", app).Scan(&n))
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("a backend of %s is still busy: %v", app, context.Cause(ctx))
		case <-time.After(time.Millisecond):
		}
	}
}

// TestCancelledAppendStoresNothingLater cancels an Append while its
// statement waits on the server (for an event of the run that another
// transaction inserts and has not committed): Append returns the
// context's error, and the server must not go on to store its events
// once the wait ends, after Append returned, as a host that gave up on
// the call (shutting down, or deleting the run) does not expect. The
// wait ends here as soon as Append returns: before the cancel request
// that pgx sends from a goroutine as it closes the connection arrives.
// The error says that the events may have been stored.
func TestCancelledAppendStoresNothingLater(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			app := sinktest.RunID(t) // at most 61 bytes: application_name keeps 63
			h, pg := newHistory(t, mode, pghistory.Options{}, func(c *pgxpool.Config) {
				c.ConnConfig.RuntimeParams["application_name"] = app
			})
			ctx := testenv.Context(t, 30*time.Second)
			run := sinktest.RunID(t)
			blocker, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = blocker.Rollback(context.Background()) }()
			_, err = blocker.Exec(ctx, "INSERT INTO "+pgx.Identifier{pg.Schema, "progress_events"}.Sanitize()+
				" (run_id, seq, event) VALUES ($1, 1, '\\x7b7d')", run)
			require.NoError(t, err)

			actx, cancel := context.WithCancel(ctx)
			defer cancel()
			appended := make(chan error, 1)
			go func() { appended <- h.Append(actx, sinktest.Events(run, 1, 3)...) }()
			review7WaitFor(t, ctx, pg, "wait_event_type = 'Lock' AND application_name = '"+app+"'", "unnest")
			cancel()
			err = <-appended
			require.ErrorIs(t, err, context.Canceled)
			assert.ErrorIs(t, err, pghistory.ErrInDoubt, "a host can branch on the outcome in doubt")
			assert.Contains(t, err.Error(), "the context ended while the statement ran, which may have stored the events or not",
				"the error says that the outcome is not known")

			require.NoError(t, blocker.Rollback(ctx)) // the wait ends
			waitGone(t, ctx, pg, app)
			assert.Zero(t, count(t, pg, "progress_events"), "a cancelled Append stores nothing, then or later")
			assert.Zero(t, count(t, pg, "progress_runs"))
		})
	}
}

// cutter is a TCP proxy to Postgres on loopback whose connections a test
// can cut, as a middlebox or a network fault does.
type cutter struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// newCutter starts a proxy to addr, stopped when the test ends.
func newCutter(t *testing.T, addr string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &cutter{ln: ln}
	c.wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", addr)
			if err != nil {
				client.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, client, server)
			c.mu.Unlock()
			c.wg.Go(func() { _, _ = io.Copy(server, client); server.Close() })
			c.wg.Go(func() { _, _ = io.Copy(client, server); client.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		c.cut()
		c.wg.Wait()
	})
	return c
}

// port is the proxy's port.
func (c *cutter) port() uint16 { return uint16(c.ln.Addr().(*net.TCPAddr).Port) }

// cut closes every connection the proxy holds.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// TestAppendWhoseConnectionIsLost loses the connection of an Append while
// its statement waits on the server, which holds the whole statement and
// its COMMIT: the error says that the events may have been stored, and
// the server must not store them once the wait ends, after Append
// returned.
func TestAppendWhoseConnectionIsLost(t *testing.T) {
	t.Parallel()
	app := sinktest.RunID(t)
	var proxy *cutter
	h, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, func(c *pgxpool.Config) {
		proxy = newCutter(t, net.JoinHostPort(c.ConnConfig.Host, strconv.Itoa(int(c.ConnConfig.Port))))
		c.ConnConfig.Host, c.ConnConfig.Port, c.ConnConfig.Fallbacks = "127.0.0.1", proxy.port(), nil
		c.ConnConfig.RuntimeParams["application_name"] = app
	})
	ctx := testenv.Context(t, 30*time.Second)
	run := sinktest.RunID(t)
	blocker, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = blocker.Rollback(context.Background()) }()
	_, err = blocker.Exec(ctx, "INSERT INTO "+pgx.Identifier{pg.Schema, "progress_events"}.Sanitize()+
		" (run_id, seq, event) VALUES ($1, 1, '\\x7b7d')", run)
	require.NoError(t, err)

	appended := make(chan error, 1)
	go func() { appended <- h.Append(ctx, sinktest.Events(run, 1, 3)...) }()
	review7WaitFor(t, ctx, pg, "wait_event_type = 'Lock' AND application_name = '"+app+"'", "unnest")
	proxy.cut()
	err = <-appended
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, pghistory.ErrInDoubt, "a host can branch on the outcome in doubt")
	assert.Contains(t, err.Error(), "the connection was lost while the statement ran, which may have stored the events or not",
		"the error says that the outcome is not known")

	require.NoError(t, blocker.Rollback(ctx)) // the wait ends
	waitGone(t, ctx, pg, app)
	assert.Zero(t, count(t, pg, "progress_events"), "an Append that lost its connection stores nothing later")
	assert.Zero(t, count(t, pg, "progress_runs"))
}
