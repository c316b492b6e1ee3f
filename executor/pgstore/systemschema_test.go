package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// TestSystemSchemaRefused: New refused "pg_" names, which Postgres
// reserves, but took information_schema, the SQL standard's system
// schema, where a superuser's Migrate would create the store's tables
// beside the catalog's views. It is refused with the *SchemaError of
// any name New does not take, which says what is allowed.
func TestSystemSchemaRefused(t *testing.T) {
	for _, schema := range []string{"information_schema", "pg_catalog", "pg_toast", "pg_temp_1"} {
		t.Run(schema, func(t *testing.T) {
			err := pgstore.CheckSchema(schema)
			require.ErrorIs(t, err, pgstore.ErrInvalidSchema)
			var se *pgstore.SchemaError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, schema, se.Schema)
			assert.Contains(t, err.Error(), `not starting with "pg_" (reserved by Postgres) nor information_schema`,
				"the message says what is allowed")
		})
	}
}
