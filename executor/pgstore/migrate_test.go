package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// Migrate runs at the start of every process, while the others write (a
// rolling deploy that upgrades the layout). Its CREATE INDEX IF NOT EXISTS statements
// take a share lock on their table even when the index exists, and hold
// it until Migrate commits. They took runs first, then node_states; a
// DeleteGraph takes node_states (its states), then runs (its records).
// A DeleteGraph that held node_states when a Migrate had runs then waited
// for runs while Migrate waited for node_states, and Postgres aborted one
// of them as a deadlock (SQLSTATE 40P01): the new process failed to start,
// or the deletion failed. Here a holder keeps DeleteGraph inside its
// deletion of node states until Migrate holds runs and waits behind it,
// which makes that order certain; both must succeed.
func TestMigrateBesideDeleteGraph(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	st := dirty.State{Status: dirty.StatusClean, Rev: 1}
	_, err := s.Commit(ctx, "g", 0, []executor.Change{{ID: "n", State: st}})
	require.NoError(t, err)
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "r", GraphKey: "g", Status: executor.RunSucceeded}))
	// A schema of layout 3, which the Migrate of a new release upgrades
	// while the processes of the old one go on.
	_, err = pg.Pool.Exec(ctx, fmt.Sprintf(`ALTER TABLE "%[1]s".runs DROP COLUMN graph;
DELETE FROM "%[1]s".schema_version; INSERT INTO "%[1]s".schema_version (version) VALUES (3)`, pg.Schema))
	require.NoError(t, err)

	holder, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer holder.Rollback(context.Background()) //nolint:errcheck // committed below
	_, err = holder.Exec(ctx, fmt.Sprintf(`SELECT 1 FROM "%s".node_states WHERE graph_key = 'g' FOR UPDATE`, pg.Schema))
	require.NoError(t, err)

	// waiting waits until n statements on the test's schema wait for a
	// lock.
	waiting := func(n int) {
		t.Helper()
		for {
			var got int
			require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND position($1 in query) > 0`, pg.Schema).Scan(&got))
			if got >= n {
				return
			}
			require.NoError(t, ctx.Err(), "statements waiting for a lock: %d, want %d", got, n)
			time.Sleep(5 * time.Millisecond) // polling the server, bounded by ctx
		}
	}
	deleted, migrated := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := s.DeleteGraph(ctx, "g")
		deleted <- err
	}()
	waiting(1) // DeleteGraph, in its deletion of node states, behind the holder
	go func() { migrated <- s.Migrate(ctx) }()
	waiting(2) // Migrate, behind DeleteGraph
	require.NoError(t, holder.Commit(ctx))

	assert.NoError(t, <-deleted, "DeleteGraph")
	assert.NoError(t, <-migrated, "Migrate")
	snap, err := s.Load(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, executor.Snapshot{Version: 2, States: map[string]dirty.State{}}, snap)
	runs, err := s.ListRuns(ctx, "g")
	require.NoError(t, err)
	assert.Empty(t, runs)
}

// Every process runs Migrate at start-up, on a schema that is most often
// up to date already. Its CREATE INDEX IF NOT EXISTS statements took a
// share lock on node_states and runs even so, which waits for the writes
// under way on those tables and holds off every write that comes after
// it until it has the lock: behind a long write (a DeleteGraph of a large
// graph, a commit whose process froze until idle_in_transaction_session_
// timeout), a process that started stalled the commits of every graph,
// and every PutRun, until that write ended. A Migrate of a schema that
// has the whole current layout now changes nothing and locks no table.
func TestMigrateUpToDateLocksNoTable(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	st := dirty.State{Status: dirty.StatusClean, Rev: 1}
	for _, g := range []string{"held", "other"} {
		_, err := s.Commit(ctx, g, 0, []executor.Change{{ID: "n", State: st}})
		require.NoError(t, err)
	}

	// A long write on both tables, holding them until the end.
	holder, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer holder.Rollback(context.Background()) //nolint:errcheck // the test's end
	for _, table := range []string{"node_states", "runs"} {
		_, err = holder.Exec(ctx, fmt.Sprintf(`LOCK TABLE "%s".%s IN ROW EXCLUSIVE MODE`, pg.Schema, table))
		require.NoError(t, err)
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second) // it waited for the holder
	defer cancel()
	require.NoError(t, s.Migrate(mctx), "Migrate of an up-to-date schema, beside a long write")
	_, err = s.Commit(ctx, "other", 1, []executor.Change{{ID: "n", State: st}})
	require.NoError(t, err, "a commit of another graph")
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "r", GraphKey: "other", Status: executor.RunRunning}))
	require.NoError(t, holder.Rollback(ctx))
}

// A schema that records the current layout but lacks part of it (an
// index dropped by hand, say) is not up to date: Migrate makes what is
// missing, as before.
func TestMigrateMakesWhatACurrentSchemaLacks(t *testing.T) {
	t.Parallel()
	for _, index := range []string{"runs_age", "runs_graph_started", "node_states_asset_ref", "runs_running"} {
		t.Run(index, func(t *testing.T) {
			t.Parallel() // each has its own schema
			s, pg := newStore(t)
			ctx := t.Context()
			_, err := pg.Pool.Exec(ctx, fmt.Sprintf(`DROP INDEX "%s".%s`, pg.Schema, index))
			require.NoError(t, err)
			require.NoError(t, s.Migrate(ctx))
			var n int
			require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1
AND indexname IN ('runs_age', 'runs_graph_started', 'node_states_asset_ref', 'runs_running')`, pg.Schema).Scan(&n))
			assert.Equal(t, 4, n)
		})
	}
	// A column added by an upgrade (layouts 4, 6 and 7) and dropped by hand:
	// Migrate ran no upgrade of a layout the schema records, and the run
	// records stayed unreadable (ErrNotMigrated) however often it ran.
	for _, column := range []string{"graph", "resumes", "cancelled_by"} {
		t.Run(column, func(t *testing.T) {
			t.Parallel() // each has its own schema
			s, pg := newStore(t)
			ctx := t.Context()
			_, err := pg.Pool.Exec(ctx, fmt.Sprintf(`ALTER TABLE "%s".runs DROP COLUMN %s`, pg.Schema, column))
			require.NoError(t, err)
			require.NoError(t, s.Migrate(ctx))
			rec := executor.Record{ID: "r", GraphKey: "k", Seconds: 10, Graph: "fp", Resumes: "q", Status: executor.RunCancelled,
				CancelledBy: "shutdown"}
			require.NoError(t, s.PutRun(ctx, rec))
			got, err := s.GetRun(ctx, "r")
			require.NoError(t, err)
			assert.Equal(t, "fp", got.Graph)
			assert.Equal(t, "q", got.Resumes)
			assert.Equal(t, "shutdown", got.CancelledBy)
		})
	}
}

// Many hosts migrate with the role that owns the tables and run the
// service with a role that may only read and write their rows. Such a
// role's Migrate, at start-up as the package asks, failed with "permission
// denied for schema" even on an up-to-date schema: it ran CREATE TABLE IF
// NOT EXISTS schema_version, which needs the CREATE privilege on the
// schema although the table exists. Now Migrate creates the version table
// only if it is missing, so such a role migrates an up-to-date schema (it
// changes nothing) and still learns of a newer layout.
func TestMigrateAsARoleThatOnlyWritesRows(t *testing.T) {
	t.Parallel() // its own schema and role
	_, pg := newStore(t)
	ctx := t.Context()
	pool := pg.RowWriterPool(t)
	rs, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)

	require.NoError(t, rs.Migrate(ctx), "Migrate of an up-to-date schema")
	_, err = rs.Commit(ctx, "g", 0, []executor.Change{{ID: "n", State: dirty.State{Status: dirty.StatusClean}}})
	require.NoError(t, err)

	_, err = pg.Pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.schema_version (version) VALUES (%d)`, pgx.Identifier{pg.Schema}.Sanitize(), pgstore.SchemaVersion+1))
	require.NoError(t, err)
	err = rs.Migrate(ctx)
	require.ErrorIs(t, err, pgstore.ErrSchemaTooNew, "a newer layout")
}

// A schema that holds another tool's schema_version table (Flyway's
// releases before 5 name theirs so) broke Migrate with "COALESCE types
// text and integer cannot be matched", and one whose version column was
// an integer with a unique index got the store's version written into
// it. Migrate now refuses such a schema with a *VersionTableError that
// names the table and the schema and says to use another schema, and
// changes nothing: the table keeps its rows, and no table of the store is
// made beside it.
func TestMigrateRefusesAnotherToolsVersionTable(t *testing.T) {
	t.Parallel()
	for name, ddl := range map[string]string{
		"Flyway's": `CREATE TABLE %[1]s.schema_version (installed_rank integer PRIMARY KEY, version varchar(50),
	description varchar(200) NOT NULL, success boolean NOT NULL);
INSERT INTO %[1]s.schema_version VALUES (1, '1', 'init', true)`,
		"an integer version": `CREATE TABLE %[1]s.schema_version (version integer PRIMARY KEY, script text NOT NULL DEFAULT '');
INSERT INTO %[1]s.schema_version VALUES (3, 'V3__x.sql')`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // its own schema
			pg := testenv.NewPostgres(t)
			ctx := testenv.Context(t, 30*time.Second)
			schema := pgx.Identifier{pg.Schema}.Sanitize()
			_, err := pg.Pool.Exec(ctx, "CREATE SCHEMA "+schema+"; "+fmt.Sprintf(ddl, schema))
			require.NoError(t, err)
			rows := func() string {
				var s string
				require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT json_agg(t)::text FROM "+schema+".schema_version t").Scan(&s))
				return s
			}
			before := rows()

			s, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
			require.NoError(t, err)
			err = s.Migrate(ctx)
			require.ErrorIs(t, err, pgstore.ErrForeignVersionTable)
			var vte *pgstore.VersionTableError
			require.ErrorAs(t, err, &vte)
			assert.Equal(t, pg.Schema, vte.Schema)
			assert.Equal(t, "schema_version", vte.Table)
			assert.Contains(t, err.Error(), "give the adapter a schema of its own")

			assert.Equal(t, before, rows(), "the table keeps its rows")
			var tables []string
			require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_tables WHERE schemaname = $1`,
				pg.Schema).Scan(&tables))
			assert.Equal(t, []string{"schema_version"}, tables, "no table of the store is made")
		})
	}
}
