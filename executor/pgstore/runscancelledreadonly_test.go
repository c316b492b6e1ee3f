package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// Migrate of a schema of the current layout reads the catalogs only, so
// that a service whose sessions may not write (a reader on a hot standby,
// or a role with default_transaction_read_only) calls it at start-up
// too. e436559 made it create the index runs_cancelled in a schema that
// lacks it, and took a role that may not create it for one that goes on
// without it, but not a read-only session: the server refuses the CREATE
// INDEX in a read-only transaction (SQLSTATE 25006), and Migrate failed,
// as a rolling deploy's readers started before a writer's Migrate made
// the index. It leaves the index out for such a session too.
func TestMigrateInAReadOnlySessionWithoutTheCancelledIndex(t *testing.T) {
	t.Parallel() // its own schema
	_, pg, ctx := storeWithoutCancelledIndex(t)
	cfg := pg.Pool.Config()
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx), "a read-only session's Migrate of a schema of the current layout")
	requireCancelled(t, s)
	require.Contains(t, cancelledPlan(t, pool, pg), "Seq Scan", "no index: the scan")
}
