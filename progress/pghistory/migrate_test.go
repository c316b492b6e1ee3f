package pghistory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/sinktest"
)

// Every process runs Migrate at start-up, on a schema that is most often
// up to date already. Its CREATE INDEX IF NOT EXISTS took a share lock on
// progress_runs even so, which waits for the writes under way and holds
// off every write after it until it has the lock: behind a long one (a
// DeleteRun of a long run, which holds the run's row while it deletes its
// events), a process that started stalled the appends of every run until
// that write ended. A Migrate of a schema that has the whole current
// layout now changes nothing and locks no table.
func TestMigrateUpToDateLocksNoTable(t *testing.T) {
	t.Parallel()
	h, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, nil)
	ctx := testenv.Context(t, 30*time.Second)
	holder, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer holder.Rollback(ctx) //nolint:errcheck // the test's end
	for _, table := range []string{"progress_runs", "progress_events"} {
		_, err = holder.Exec(ctx, "LOCK TABLE "+pgx.Identifier{pg.Schema, table}.Sanitize()+" IN ROW EXCLUSIVE MODE")
		require.NoError(t, err)
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second) // it waited for the holder
	defer cancel()
	require.NoError(t, h.Migrate(mctx), "Migrate of an up-to-date schema, beside a long write")
	run := sinktest.RunID(t)
	require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 2)...))
	require.NoError(t, holder.Rollback(ctx))
	assert.Equal(t, []int{pghistory.SchemaVersion}, versions(t, pg))
}

// A schema that records the current layout but lacks its index (dropped
// by hand, say) is not up to date: Migrate makes it, as before.
func TestMigrateMakesWhatACurrentSchemaLacks(t *testing.T) {
	t.Parallel()
	h, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, nil)
	ctx := t.Context()
	_, err := pg.Pool.Exec(ctx, "DROP INDEX "+pgx.Identifier{pg.Schema, "progress_runs_last_at"}.Sanitize())
	require.NoError(t, err)
	require.NoError(t, h.Migrate(ctx))
	var n int
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes
WHERE schemaname = $1 AND indexname = 'progress_runs_last_at'`, pg.Schema).Scan(&n))
	assert.Equal(t, 1, n)
}

// A host that runs its service with a role that may only read and write
// rows calls Migrate at start-up too. It failed with "permission denied
// for schema" even on an up-to-date schema: CREATE TABLE IF NOT EXISTS of
// the version table needs the CREATE privilege on the schema although the
// table exists. Now such a role migrates an up-to-date schema (it changes
// nothing) and still learns of a newer layout.
func TestMigrateAsARoleThatOnlyWritesRows(t *testing.T) {
	t.Parallel() // its own schema and role
	_, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, nil)
	ctx := t.Context()
	pool := pg.RowWriterPool(t)
	rh, err := pghistory.New(pool, pghistory.Options{Schema: pg.Schema})
	require.NoError(t, err)

	require.NoError(t, rh.Migrate(ctx), "Migrate of an up-to-date schema")
	run := sinktest.RunID(t)
	require.NoError(t, rh.Append(ctx, sinktest.Events(run, 1, 2)...))

	_, err = pg.Pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.progress_schema_version (version) VALUES (%d)`, pgx.Identifier{pg.Schema}.Sanitize(), pghistory.SchemaVersion+1))
	require.NoError(t, err)
	require.ErrorIs(t, rh.Migrate(ctx), pghistory.ErrSchemaTooNew, "a newer layout")
}

// A relation by the name of the History's version table that is not one
// (another tool's) is refused by Migrate, changing nothing, with an error
// that a host can match from this package: errors.Is of
// ErrForeignVersionTable and errors.As of *VersionTableError, which name
// the table and say to give the History a schema of its own.
func TestMigrateRefusesAnotherToolsVersionTable(t *testing.T) {
	t.Parallel() // its own schema
	pg := testenv.NewPostgres(t)
	ctx := testenv.Context(t, 30*time.Second)
	schema := pgx.Identifier{pg.Schema}.Sanitize()
	_, err := pg.Pool.Exec(ctx, "CREATE SCHEMA "+schema+"; CREATE TABLE "+schema+
		".progress_schema_version (version varchar(50) PRIMARY KEY, script text); INSERT INTO "+schema+
		".progress_schema_version VALUES ('1', 'V1__init.sql')")
	require.NoError(t, err)
	h, err := pghistory.New(pg.Pool, pghistory.Options{Schema: pg.Schema})
	require.NoError(t, err)
	err = h.Migrate(ctx)
	require.ErrorIs(t, err, pghistory.ErrForeignVersionTable)
	var vte *pghistory.VersionTableError
	require.ErrorAs(t, err, &vte)
	assert.Equal(t, pg.Schema, vte.Schema)
	assert.Equal(t, "progress_schema_version", vte.Table)
	assert.Contains(t, err.Error(), "a schema of its own")
	assert.NotContains(t, err.Error(), "the store", "pghistory is no store")
	var tables []string
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_tables WHERE schemaname = $1`,
		pg.Schema).Scan(&tables))
	assert.Equal(t, []string{"progress_schema_version"}, tables, "no table of the History is made")
}
