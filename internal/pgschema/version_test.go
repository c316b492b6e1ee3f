package pgschema_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/pgschema"
	"github.com/regengraph/regen/internal/testenv"
)

// flywayTable is the history table of Flyway's releases before 5, which
// named it schema_version by default, as the adapters name theirs.
const flywayTable = `CREATE TABLE %[1]s.schema_version (
	installed_rank integer PRIMARY KEY, version varchar(50), description varchar(200) NOT NULL,
	type varchar(20) NOT NULL, script varchar(1000) NOT NULL, checksum integer,
	installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(),
	execution_time integer NOT NULL, success boolean NOT NULL);
INSERT INTO %[1]s.schema_version VALUES (1, '1', 'init', 'SQL', 'V1__init.sql', 0, 'app', now(), 5, true)`

// Version read and wrote any table of the schema by the name it was
// given: another tool's table of that name (Flyway's old default
// schema_version) made Migrate fail with a confusing error, or, when it
// had an integer version column with a unique index, got the adapter's
// version written into it. Version now checks the columns of a table it
// finds, and refuses one that is not the adapters' (or a relation that is
// not a table) with a *VersionTableError that names the table and the
// schema and says to use another schema, before it reads or writes it.
func TestVersionRefusesATableThatIsNotTheAdapters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, ddl string
		kind      string
		columns   []string
	}{
		{"Flyway's", flywayTable, "table", []string{"installed_rank integer", "version character varying(50)",
			"description character varying(200)", "type character varying(20)", "script character varying(1000)",
			"checksum integer", "installed_by character varying(100)", "installed_on timestamp without time zone",
			"execution_time integer", "success boolean"}},
		{"an integer version and more", `CREATE TABLE %[1]s.schema_version (version integer PRIMARY KEY, description text NOT NULL DEFAULT '');
INSERT INTO %[1]s.schema_version (version) VALUES (3)`, "table", []string{"version integer", "description text"}},
		{"a bigint version", `CREATE TABLE %[1]s.schema_version (version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
			"table", []string{"version bigint", "applied_at timestamp with time zone"}},
		{"a view", `CREATE VIEW %[1]s.schema_version AS SELECT 1 AS version, '2020-01-01 00:00Z'::timestamptz AS applied_at`,
			"view", []string{"version integer", "applied_at timestamp with time zone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // its own schema
			pg := testenv.NewPostgres(t)
			ctx := testenv.Context(t, 30*time.Second)
			schema := pgschema.Quote(pg.Schema)
			_, err := pg.Pool.Exec(ctx, "CREATE SCHEMA "+schema+"; "+fmt.Sprintf(tc.ddl, schema))
			require.NoError(t, err)
			var before string
			require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT coalesce(json_agg(t)::text, '') FROM "+schema+".schema_version t").Scan(&before))

			tx, err := pgschema.BeginMigrate(ctx, pg.Pool, pg.Schema)
			require.NoError(t, err)
			defer pgschema.Rollback(ctx, tx)
			v, err := pgschema.Version(ctx, tx, pg.Schema, "schema_version")
			assert.Zero(t, v)
			require.ErrorIs(t, err, pgschema.ErrForeignVersionTable)
			var vte *pgschema.VersionTableError
			require.ErrorAs(t, err, &vte)
			want := &pgschema.VersionTableError{Schema: pg.Schema, Table: "schema_version", Kind: tc.kind, Columns: tc.columns}
			if diff := cmp.Diff(want, vte); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			for _, s := range []string{"schema_version", pg.Schema, "version integer, applied_at timestamp with time zone",
				"give the adapter a schema of its own"} {
				assert.Contains(t, err.Error(), s)
			}
			pgschema.Rollback(ctx, tx)
			var after string
			require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT coalesce(json_agg(t)::text, '') FROM "+schema+".schema_version t").Scan(&after))
			assert.Equal(t, before, after, "the table is left as it was")
		})
	}
}

// The adapters' own table passes: made when missing, then read, with or
// without rows, whatever the order of its columns' creation.
func TestVersionOfTheAdaptersTable(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	ctx := testenv.Context(t, 30*time.Second)
	version := func() int {
		t.Helper()
		tx, err := pgschema.BeginMigrate(ctx, pg.Pool, pg.Schema)
		require.NoError(t, err)
		defer pgschema.Rollback(ctx, tx)
		v, err := pgschema.Version(ctx, tx, pg.Schema, "schema_version")
		require.NoError(t, err)
		require.NoError(t, pgschema.RecordVersion(ctx, tx, pg.Schema, "schema_version", 2))
		require.NoError(t, tx.Commit(ctx))
		return v
	}
	assert.Equal(t, 0, version(), "a new schema")
	assert.Equal(t, 2, version(), "the version recorded")
	// A column dropped and added again sits after a dropped one: the
	// check skips dropped columns.
	_, err := pg.Pool.Exec(ctx, "ALTER TABLE "+pgschema.Quote(pg.Schema)+".schema_version DROP COLUMN applied_at; "+
		"ALTER TABLE "+pgschema.Quote(pg.Schema)+".schema_version ADD COLUMN applied_at timestamptz NOT NULL DEFAULT now()")
	require.NoError(t, err)
	assert.Equal(t, 2, version())
}
