package pgstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// The sizing that "Sizing connections" in the package documentation
// gives: each graph lock held is a server connection beyond the pool's
// MaxConns, so that a process uses MaxConns + L server connections, L
// its locks. A pool of MaxConns 1 that holds 5 locks, and runs a
// statement of its own, uses 6.
func TestLocksAreConnectionsBeyondMaxConns(t *testing.T) {
	t.Parallel() // its own schema
	pg := testenv.NewPostgres(t)
	ctx := testenv.Context(t, 30*time.Second)
	name := testenv.UniqueName(t)
	app := "lockconns-" + name[len(name)-12:] // its random suffix
	cfg := pg.Pool.Config()
	cfg.MaxConns, cfg.MinConns = 1, 0
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx))

	const locks = 5
	for i := range locks {
		l, err := s.TryLockGraph(ctx, fmt.Sprint("lecture-", i))
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Unlock(ctx) })
	}
	_, err = s.Load(ctx, "lecture-0") // a statement of the store's own, on the pool
	require.NoError(t, err)
	var conns int
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE application_name = $1`, app).
		Scan(&conns))
	require.Equal(t, int(cfg.MaxConns)+locks, conns, "server connections of a pool of MaxConns %d holding %d locks", cfg.MaxConns, locks)
}
