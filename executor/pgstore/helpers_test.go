package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

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
