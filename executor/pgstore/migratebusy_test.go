package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// TestMigrateAnOlderLayoutWhileAnotherProcessWrites migrates a schema of
// an older layout from two processes at once, while a third reads and
// writes with every method that the layout's tables serve (and records
// runs as the layout's release did, without the later columns). Both
// migrations succeed, and so does every call of the third: no deadlock,
// nothing refused. The schema of the first release of layout 2, whose
// index on references was a btree that Migrate makes again, deadlocked:
// a commit holds ACCESS SHARE on node_states while it waits behind
// Migrate's SHARE, and Migrate's DROP INDEX waited for that ACCESS SHARE.
func TestMigrateAnOlderLayoutWhileAnotherProcessWrites(t *testing.T) {
	t.Parallel() // each case has its own schema
	for _, tc := range []struct {
		name string
		sql  string // makes the current layout an older one; %[1]s is the schema
	}{
		{"layout 1", `DROP INDEX %[1]s.node_states_asset_ref; DROP INDEX %[1]s.runs_age; DROP INDEX %[1]s.runs_running;
ALTER TABLE %[1]s.runs DROP COLUMN graph; ALTER TABLE %[1]s.runs DROP COLUMN resumes;
DELETE FROM %[1]s.schema_version; INSERT INTO %[1]s.schema_version (version) VALUES (1)`},
		{"layout 2, first release", `DROP INDEX %[1]s.node_states_asset_ref;
CREATE INDEX node_states_asset_ref ON %[1]s.node_states (asset_ref);
DROP INDEX %[1]s.runs_age; DROP INDEX %[1]s.runs_running;
ALTER TABLE %[1]s.runs DROP COLUMN graph; ALTER TABLE %[1]s.runs DROP COLUMN resumes;
DELETE FROM %[1]s.schema_version; INSERT INTO %[1]s.schema_version (version) VALUES (2)`},
		{"layout 5, a btree kept", `DROP INDEX %[1]s.node_states_asset_ref;
CREATE INDEX node_states_asset_ref ON %[1]s.node_states (asset_ref);
ALTER TABLE %[1]s.runs DROP COLUMN resumes;
DELETE FROM %[1]s.schema_version; INSERT INTO %[1]s.schema_version (version) VALUES (5)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // its own schema
			migrateWhileAnotherProcessWrites(t, tc.sql)
		})
	}
}

func migrateWhileAnotherProcessWrites(t *testing.T, older string) {
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	_, err := pg.Pool.Exec(ctx, fmt.Sprintf(older, `"`+pg.Schema+`"`))
	require.NoError(t, err)

	w := poolStore(t, pg.Schema, nil)
	wctx, stop := context.WithCancel(ctx)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(what string, err error) {
		if err != nil && wctx.Err() == nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			mu.Unlock()
		}
	}
	loop := func(what string, f func(i int) error) {
		wg.Go(func() {
			for i := 0; wctx.Err() == nil; i++ {
				fail(what, f(i))
			}
		})
	}
	loop("commit", func(i int) error {
		snap, err := w.Load(wctx, "g")
		if err != nil {
			return err
		}
		ref, err := w.Put(wctx, fmt.Sprintf("g/n/%d", i), executor.Asset{Data: []byte("x")})
		if err != nil {
			return err
		}
		_, err = w.Commit(wctx, "g", snap.Version, []executor.Change{{ID: fmt.Sprint("n", i%5),
			State: dirty.State{Status: dirty.StatusClean, Rev: 1, OutputHash: "h", AssetRef: ref}}})
		var conflict *executor.ConflictError
		if errors.As(err, &conflict) {
			return nil
		}
		return err
	})
	loop("delete", func(i int) error {
		key := fmt.Sprint("d", i)
		if _, err := w.Commit(wctx, key, 0, []executor.Change{{ID: "n", State: dirty.State{Status: dirty.StatusDirty}}}); err != nil {
			return err
		}
		_, err := w.DeleteGraph(wctx, key)
		return err
	})
	loop("old put run", func(i int) error {
		_, err := pg.Pool.Exec(wctx, fmt.Sprintf(`INSERT INTO "%s".runs (id, graph_key, seconds, triggered_by, reason, marks,
	status, started_at, ended_at, counts, failed, error) VALUES ($1, 'g', 30, '', '', '[]', 'running', now(), NULL, '{}', '{}', '')
	ON CONFLICT (id) DO UPDATE SET status = 'succeeded', ended_at = now()`, pg.Schema), fmt.Sprint("r", i%20))
		return err
	})
	loop("read", func(i int) error {
		_, err := w.Load(wctx, "g")
		if err == nil { // as the layout's release read runs
			_, err = pg.Pool.Exec(wctx, fmt.Sprintf(`SELECT id, status FROM "%s".runs WHERE graph_key = 'g' OR id = $1`,
				pg.Schema), fmt.Sprint("r", i%20))
		}
		return err
	})
	loop("prune", func(int) error {
		_, err := w.PruneAssets(wctx, time.Hour)
		if err == nil {
			_, err = w.PruneRuns(wctx, time.Hour)
		}
		return err
	})
	time.Sleep(50 * time.Millisecond) // the writers under way

	migrated := make([]error, 2)
	var mg sync.WaitGroup
	for i, m := range []*pgstore.Store{s, poolStore(t, pg.Schema, nil)} {
		mg.Go(func() { migrated[i] = m.Migrate(ctx) })
	}
	mg.Wait()
	time.Sleep(50 * time.Millisecond) // writes on the new layout
	stop()
	wg.Wait()
	require.NoError(t, errors.Join(migrated...), "Migrate")
	assert.NoError(t, errors.Join(errs...), "writes beside the migration")
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "new", GraphKey: "g", Graph: "fp", Resumes: "r1", Status: executor.RunSucceeded}))
}
