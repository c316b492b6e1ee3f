package pgstore_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/executor/storetest"
	"github.com/regengraph/regen/internal/testenv"
)

// TestConformance runs the executor's store kit against one migrated
// schema: the kit's keys, IDs and references are unique per subtest, so
// its subtests share the schema, as stores share a database in
// production. Its retention checks prune the whole store, so each of them
// gets a schema of its own.
//
// It runs once per pgx query mode a host may configure on its pool: the
// default, which prepares and caches statements, and the simple protocol
// that PgBouncer in transaction mode needs, where pgx sends arguments as
// text. Each mode migrates its own schema.
func TestConformance(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			s := newStoreInMode(t, mode)
			storetest.Run(t, storetest.Factory{
				States:   func(*testing.T) executor.StateStore { return s },
				Assets:   func(*testing.T) executor.AssetStore { return s },
				Runs:     func(*testing.T) executor.RunStore { return s },
				Retainer: func(t *testing.T) storetest.Retainer { return newStoreInMode(t, mode) },
			})
		})
	}
}

// newStoreInMode returns a migrated Store in a schema private to the test,
// on a pool of its own in the query mode given.
func newStoreInMode(t *testing.T, mode pgx.QueryExecMode) *pgstore.Store {
	t.Helper()
	pg := testenv.NewPostgres(t)
	cfg := pg.Pool.Config()
	cfg.ConnConfig.DefaultQueryExecMode = mode
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close) // before testenv drops the schema
	s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(t.Context()))
	return s
}

func TestNewOptions(t *testing.T) {
	t.Parallel() // each test has its own schema
	// New touches no database, so a pool that never connects will do.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		schema string
		want   string // the schema used; "" for a refusal
	}{
		{"", "regen"},
		{"regen", "regen"},
		{"tenant_42", "tenant_42"},
		{"_private", "_private"},
		{"user", "user"}, // a keyword: the store quotes it
		{long, long},
		{long + "a", ""},
		{"Regen", ""},
		{"42tenant", ""},
		{"pg_regen", ""},
		{"re-gen", ""},
		{"regen.assets", ""},
		{`regen"; DROP TABLE x; --`, ""},
		{"rëgen", ""},
		{"re gen", ""},
	} {
		t.Run(tc.schema, func(t *testing.T) {
			s, err := pgstore.New(pool, pgstore.Options{Schema: tc.schema})
			// CheckSchema says what New says, without a pool.
			assert.Equal(t, err, pgstore.CheckSchema(tc.schema))
			if tc.want != "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, s.Schema())
				return
			}
			require.ErrorIs(t, err, pgstore.ErrInvalidSchema)
			var se *pgstore.SchemaError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.schema, se.Schema)
			assert.Contains(t, err.Error(), "lowercase ASCII letters, digits and underscores", "the message says what is allowed")
			assert.Nil(t, s)
		})
	}

	_, err = pgstore.New(nil, pgstore.Options{})
	assert.ErrorIs(t, err, pgstore.ErrNoPool)
}

func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	t.Parallel() // each test has its own schema
	pg := testenv.NewPostgres(t)
	// Two "processes", each with its own pool, migrate the same fresh
	// schema at once, twice.
	other := testenv.NewPostgres(t)
	pools := []*pgxpool.Pool{pg.Pool, other.Pool, pg.Pool, other.Pool}
	var wg sync.WaitGroup
	errs := make([]error, len(pools))
	for i, pool := range pools {
		wg.Go(func() {
			s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
			if err == nil {
				err = s.Migrate(t.Context())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))

	s, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(t.Context()), "Migrate again")
	rows, err := pg.Pool.Query(t.Context(),
		"SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", pg.Schema)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"assets", "graphs", "node_states", "runs", "schema_version"}, tables)
	var version int
	require.NoError(t, pg.Pool.QueryRow(t.Context(), "SELECT max(version) FROM "+pg.Schema+".schema_version").Scan(&version))
	assert.Equal(t, pgstore.SchemaVersion, version)
}

func TestNotMigrated(t *testing.T) {
	t.Parallel() // each test has its own schema
	pg := testenv.NewPostgres(t)
	s, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	ctx := t.Context()
	_, err = s.Load(ctx, "g")
	assert.ErrorIs(t, err, pgstore.ErrNotMigrated, "Load")
	_, err = s.Commit(ctx, "g", 0, nil)
	assert.ErrorIs(t, err, pgstore.ErrNotMigrated, "Commit")
	_, err = s.Put(ctx, "k", executor.Asset{})
	assert.ErrorIs(t, err, pgstore.ErrNotMigrated, "Put")
	assert.ErrorIs(t, s.PutRun(ctx, executor.Record{ID: "r"}), pgstore.ErrNotMigrated, "PutRun")
	_, err = s.ListRuns(ctx, "g")
	assert.ErrorIs(t, err, pgstore.ErrNotMigrated, "ListRuns")
}

func TestMigrateCancelled(t *testing.T) {
	t.Parallel() // each test has its own schema
	pg := testenv.NewPostgres(t)
	s, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, s.Migrate(ctx), context.Canceled)
	var n int
	require.NoError(t, pg.Pool.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = $1", pg.Schema).Scan(&n))
	assert.Zero(t, n, "a cancelled Migrate created the schema")
}

// TestEveryFieldHasAColumn fails when a stored type gains a field, which
// the store would silently drop: give it a column (and a migration), then
// update the count here. Counts is stored as JSON and needs nothing.
func TestEveryFieldHasAColumn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ    reflect.Type
		fields int
	}{
		{reflect.TypeFor[dirty.State](), 8},
		{reflect.TypeFor[executor.Asset](), 5},
		{reflect.TypeFor[executor.Record](), 15},
		{reflect.TypeFor[dirty.Mark](), 2},
	} {
		assert.Equal(t, tc.fields, tc.typ.NumField(), "%v gained or lost a field: store it in pgstore", tc.typ)
	}
}
