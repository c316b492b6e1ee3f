package pgstore_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// notedConn is a dialed connection that notes its Close.
type notedConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *notedConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// noteDials has cfg's pool dial notedConns, and returns the func that
// lists those dialed so far.
func noteDials(cfg *pgxpool.Config) (dialed func() []*notedConn) {
	var mu sync.Mutex
	var conns []*notedConn
	dialer := &net.Dialer{}
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc := &notedConn{Conn: c}
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, cc)
		return cc, nil
	}
	return func() []*notedConn {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(conns)
	}
}

// lockConn returns the one connection dialed so far, a lock's (see
// noteDials).
func lockConn(t *testing.T, dialed func() []*notedConn) *notedConn {
	t.Helper()
	conns := dialed()
	require.Len(t, conns, 1, "the lock's connection")
	return conns[0]
}

// A read of the lock's connection that times out (TCP keepalives or
// TCP_USER_TIMEOUT giving up on a dead network: ETIMEDOUT, a net.Error
// whose Timeout is true) leaves pgx's connection open, unlike the
// server's end of the session. A re-take that succeeded then dropped
// that connection without closing it: its socket, and pgx's buffers,
// were kept until the garbage collector found them. The re-take now
// closes the ended connection once the new one holds the lock.
func TestHoldForRetakeClosesTheEndedConnection(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	cfg := pg.Pool.Config()
	dialed := noteDials(cfg)
	ls, _ := storeOn(t, pg, cfg)
	key, lock, r, _, release := retakeRun(t, ctx, s, ls)
	old := lockConn(t, dialed)
	saw := make(chan struct{})
	pgstore.WatcherSaw(lock, func() { close(saw) })
	held := lock.HoldFor(r, pgstore.HoldOptions{Retake: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	lockKey := s.GraphLockKey(key)
	ended := lockHolder(t, pg.Pool, lockKey)
	require.NotZero(t, ended)

	require.NoError(t, old.SetReadDeadline(time.Unix(1, 0))) // the read times out, as on a dead network
	<-saw
	// The server ends the session later, as it finds the network dead.
	_, err := pg.Pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, ended)
	require.NoError(t, err)
	for h := lockHolder(t, pg.Pool, lockKey); h == 0 || h == ended; h = lockHolder(t, pg.Pool, lockKey) {
		select {
		case <-lock.Lost():
			t.Fatal("the lock was not re-taken")
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(release)
	rep, err := r.Wait()
	require.NoError(t, err)
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	require.NoError(t, receive(t, ctx, held))
	assert.True(t, old.closed.Load(), "the ended connection is closed")
}
