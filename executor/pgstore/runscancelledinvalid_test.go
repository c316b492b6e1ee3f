package pgstore_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An index runs_cancelled that a CREATE INDEX CONCURRENTLY left invalid
// (a DBA's, made so as not to block PutRun as Migrate's CREATE INDEX
// does, cut by its statement_timeout) was taken by Migrate for none, and
// its CREATE INDEX IF NOT EXISTS then found the name taken and did
// nothing, at each start-up: the index stayed invalid for good (the
// planner does not use it, RunsByStatus scanned the table), and each
// Migrate locked the runs table (SHARE) for nothing, waiting for the
// writes under way and holding off the next ones. Migrate now rebuilds
// such an index, once.
func TestMigrateRebuildsAnInvalidCancelledIndex(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx := storeWithoutCancelledIndex(t)

	// A write under way holds the CREATE INDEX CONCURRENTLY off until its
	// statement_timeout cuts it, which leaves the index invalid.
	writer, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = writer.Exec(ctx, fmt.Sprintf(`UPDATE "%s".runs SET error = '' WHERE id = 'cut-1'`, pg.Schema))
	require.NoError(t, err)
	dba, err := pg.Pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = dba.Exec(ctx, `SET statement_timeout = '200ms'`)
	require.NoError(t, err)
	_, err = dba.Exec(ctx, fmt.Sprintf(`CREATE INDEX CONCURRENTLY runs_cancelled ON "%s".runs (started_at NULLS FIRST, id) WHERE status = 'cancelled'`, pg.Schema))
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "57014", pe.Code, "cut by its statement_timeout: %v", err)
	_, err = dba.Exec(ctx, `RESET statement_timeout`)
	require.NoError(t, err)
	dba.Release()
	require.NoError(t, writer.Rollback(ctx))
	valid := func() bool {
		t.Helper()
		var v bool
		require.NoError(t, pg.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT indisvalid FROM pg_catalog.pg_index WHERE indexrelid = '"%s".runs_cancelled'::regclass`, pg.Schema)).Scan(&v))
		return v
	}
	require.False(t, valid(), "the DBA's index, left invalid")

	require.NoError(t, s.Migrate(ctx))
	assert.True(t, valid(), "Migrate rebuilt the invalid index")
	assert.Regexp(t, `Index Scan (using|on) runs_cancelled`, cancelledPlan(t, pg.Pool, pg))
	requireCancelled(t, s)
	require.NoError(t, s.Migrate(ctx), "again")
}
