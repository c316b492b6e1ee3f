package pgstore_test

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// newStore returns a migrated Store in a schema private to the test,
// dropped when the test ends. It skips the test (fails it in CI) when
// Postgres cannot be reached.
func newStore(t *testing.T) (*pgstore.Store, *testenv.Postgres) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	s, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(t.Context()))
	return s, pg
}

// requireRunsNotMigrated stores old, then takes the schema of s back to
// layout, the one before column was added to runs (as a deployment that
// starts before this release's Migrate finds it): the run records' calls
// (PutRun of rec, GetRun, ListRuns, RunsByStatus of rec's status) must
// say that the store is not migrated, naming column; after Migrate they
// must succeed, and ListRuns give old, read with column's zero value,
// and rec.
func requireRunsNotMigrated(t *testing.T, s *pgstore.Store, pg *testenv.Postgres, layout int, column string, old, rec executor.Record) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, s.PutRun(ctx, old))
	for _, sql := range []string{
		`ALTER TABLE "` + pg.Schema + `".runs DROP COLUMN ` + column,
		`DELETE FROM "` + pg.Schema + `".schema_version`,
		`INSERT INTO "` + pg.Schema + `".schema_version (version) VALUES (` + strconv.Itoa(layout) + `)`,
	} {
		_, err := pg.Pool.Exec(ctx, sql)
		require.NoError(t, err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"PutRun", func() error { return s.PutRun(ctx, rec) }},
		{"GetRun", func() error { _, err := s.GetRun(ctx, old.ID); return err }},
		{"ListRuns", func() error { _, err := s.ListRuns(ctx, rec.GraphKey); return err }},
		{"RunsByStatus", func() error { _, err := s.RunsByStatus(ctx, rec.Status); return err }},
	}
	for _, c := range calls {
		err := c.call()
		require.ErrorIs(t, err, pgstore.ErrNotMigrated, c.name)
		assert.ErrorContains(t, err, column, c.name)
	}
	require.NoError(t, s.Migrate(ctx))
	for _, c := range calls {
		assert.NoError(t, c.call(), "%s after Migrate", c.name)
	}
	recs, err := s.ListRuns(ctx, rec.GraphKey)
	require.NoError(t, err)
	if d := cmp.Diff([]executor.Record{old, rec}, recs); d != "" {
		t.Errorf("ListRuns after Migrate (-want +got):\n%s", d)
	}
}
