package pgstore_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Layout version 2 was first released with node_states_asset_ref as a
// btree index, then, under the same name and the same version, as a hash
// index. Migrate's CREATE INDEX IF NOT EXISTS found the name and kept the
// btree of a schema that the first release had migrated (and a later
// release had upgraded to 3 or 4), so that a commit of an incompressible
// reference over 2,704 bytes failed in Postgres ("index row size exceeds
// btree version 4 maximum"), although the package promises references
// of any length. Migrate now makes that index a hash index, whatever
// version the schema records.
func TestMigrateMakesTheBtreeRefIndexAHashIndex(t *testing.T) {
	for _, recorded := range [][]int{{2}, {1, 2}, {2, 3, 4}, {2, 3, 4, 5}} {
		t.Run(fmt.Sprint(recorded), func(t *testing.T) {
			t.Parallel() // each test has its own schema
			s, pg := newStore(t)
			ctx := t.Context()
			q := func(sql string) {
				t.Helper()
				_, err := pg.Pool.Exec(ctx, fmt.Sprintf(sql, `"`+pg.Schema+`"`))
				require.NoError(t, err)
			}
			// The index as the first release of layout 2 made it.
			q(`DROP INDEX %[1]s.node_states_asset_ref;
CREATE INDEX node_states_asset_ref ON %[1]s.node_states (asset_ref);
DELETE FROM %[1]s.schema_version`)
			for _, v := range recorded {
				q(fmt.Sprintf(`INSERT INTO %%s.schema_version (version) VALUES (%d)`, v))
			}
			if recorded[len(recorded)-1] < 3 {
				q(`DROP INDEX %s.runs_age`)
			}
			if recorded[len(recorded)-1] < 4 {
				q(`ALTER TABLE %s.runs DROP COLUMN graph`)
			}
			if recorded[len(recorded)-1] < 5 {
				q(`DROP INDEX %s.runs_running`)
			}

			require.NoError(t, s.Migrate(ctx))
			require.NoError(t, s.Migrate(ctx), "Migrate again")
			var method string
			require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT am.amname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE n.nspname = $1 AND c.relname = 'node_states_asset_ref'`, pg.Schema).Scan(&method))
			assert.Equal(t, "hash", method, "the index on references")

			// An incompressible reference, over what a btree entry holds.
			ref := "s3://bucket/" + randKey(rand.New(rand.NewPCG(5, 6)), 3000)
			commitRefs(t, s, "g", 0, map[string]string{"n": ref})
			snap, err := s.Load(ctx, "g")
			require.NoError(t, err)
			assert.Equal(t, ref, snap.States["n"].AssetRef)
			assert.Equal(t, int64(1), snap.Version)
		})
	}
}
