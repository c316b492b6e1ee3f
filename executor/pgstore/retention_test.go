package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/testenv"
)

// age makes the assets under keys look put two hours ago.
func age(t *testing.T, pg *testenv.Postgres, keys ...string) {
	t.Helper()
	_, err := pg.Pool.Exec(t.Context(), `UPDATE "`+pg.Schema+`".assets SET put_at = now() - interval '2 hours'
WHERE key = ANY($1)`, keys)
	require.NoError(t, err)
}

// exists reports which of refs the store holds.
func exists(t *testing.T, s *pgstore.Store, refs ...string) []bool {
	t.Helper()
	out := make([]bool, len(refs))
	for i, ref := range refs {
		ok, err := s.Exists(t.Context(), ref)
		require.NoError(t, err)
		out[i] = ok
	}
	return out
}

func commitRefs(t *testing.T, s *pgstore.Store, key string, expect int64, refs map[string]string) int64 {
	t.Helper()
	var changes []executor.Change
	for id, ref := range refs {
		changes = append(changes, executor.Change{ID: id, State: dirty.State{Status: dirty.StatusClean,
			OutputHash: "h", AssetRef: ref, UpdatedAt: time.Now()}})
	}
	v, err := s.Commit(t.Context(), key, expect, changes)
	require.NoError(t, err)
	return v
}

// PruneAssets deletes exactly the assets that no node state of any graph
// refers to and that were put before the grace time.
func TestPruneAssets(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, pg := newStore(t)
	ctx := t.Context()
	keys := []string{"a/n/kept", "a/n/old", "a/n/new", "b/n/other", "a/n/renewed"}
	refs := make([]string, len(keys))
	for i, k := range keys {
		ref, err := s.Put(ctx, k, executor.Asset{Data: []byte(k), Hash: "h"})
		require.NoError(t, err)
		refs[i] = ref
	}
	// Graph a refers to its first asset, graph b to its own; the others
	// are garbage, but only the aged ones may go.
	commitRefs(t, s, "a", 0, map[string]string{"n": refs[0]})
	commitRefs(t, s, "b", 0, map[string]string{"n": refs[3]})
	age(t, pg, keys...)
	// A Put of an existing key renews it.
	_, err := s.Put(ctx, keys[4], executor.Asset{Data: []byte("again"), Hash: "h2"})
	require.NoError(t, err)
	// And one unreferenced asset is young.
	_, err = pg.Pool.Exec(ctx, `UPDATE "`+pg.Schema+`".assets SET put_at = now() WHERE key = $1`, keys[2])
	require.NoError(t, err)

	n, err := s.PruneAssets(ctx, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	assert.Equal(t, []bool{true, false, true, true, true}, exists(t, s, refs...))

	_, err = s.PruneAssets(ctx, -time.Second)
	require.ErrorIs(t, err, pgstore.ErrInvalidAge)
	assert.Contains(t, err.Error(), "older than -1s: want 0 or more")

	// Once graph a refers to another asset, its old one is garbage too;
	// at age 0 any unreferenced asset goes, the renewed one included.
	commitRefs(t, s, "a", 1, map[string]string{"n": refs[2]})
	n, err = s.PruneAssets(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "the old asset of a and the renewed one")
	assert.Equal(t, []bool{false, false, true, true, false}, exists(t, s, refs...))
}

// A prune larger than a batch walks the keys in several statements, past
// batches that delete nothing.
func TestPruneAssetsBatches(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, pg := newStore(t)
	pgstore.SetPruneBatch(s, 3)
	var keys []string
	for i := range 10 {
		keys = append(keys, fmt.Sprintf("g/n%d/h", i))
		_, err := s.Put(t.Context(), keys[i], executor.Asset{Hash: "h"})
		require.NoError(t, err)
	}
	// The first 4 keys are referenced: the first batch deletes nothing,
	// and the prune goes on past it.
	refs := map[string]string{}
	for i := range 4 {
		refs[fmt.Sprint("n", i)] = pgstore.RefPrefix + keys[i]
	}
	commitRefs(t, s, "g", 0, refs)
	age(t, pg, keys...)
	n, err := s.PruneAssets(t.Context(), time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(6), n)
	rows, err := pg.Pool.Query(t.Context(), `SELECT key FROM "`+pg.Schema+`".assets ORDER BY key`)
	require.NoError(t, err)
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, keys[:4], left)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.PruneAssets(ctx, time.Minute)
	assert.ErrorIs(t, err, context.Canceled)
}

// The asset under the key "", which sorts before every other, is pruned
// like any other, by the first batch, whatever its size; and kept while a
// node state refers to it.
func TestPruneAssetsEmptyKey(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, tc := range []struct {
		name       string
		batch      int // 0 for the default
		referenced bool
	}{
		{"default batch", 0, false},
		{"batch of 1", 1, false},
		{"batch of 2", 2, false},
		{"referenced, batch of 1", 1, true},
		{"referenced, default batch", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pg := newStore(t)
			if tc.batch > 0 {
				pgstore.SetPruneBatch(s, tc.batch)
			}
			keys := []string{"", "\x01", "a"}
			refs := make([]string, len(keys))
			for i, k := range keys {
				ref, err := s.Put(t.Context(), k, executor.Asset{Hash: "h"})
				require.NoError(t, err)
				refs[i] = ref
			}
			if tc.referenced {
				commitRefs(t, s, "g", 0, map[string]string{"n": refs[0]})
			}
			age(t, pg, keys...)
			n, err := s.PruneAssets(t.Context(), time.Minute)
			require.NoError(t, err)
			want, deleted := []bool{false, false, false}, int64(3)
			if tc.referenced {
				want[0], deleted = true, 2
			}
			assert.Equal(t, deleted, n)
			assert.Equal(t, want, exists(t, s, refs...), "assets left under the keys %q", keys)
		})
	}
}

// DeleteGraph removes the graph's states and runs, and nothing of a graph
// whose key it prefixes; the graph then loads empty, at a version that
// moved on, takes commits at that version, and its assets become garbage
// for PruneAssets.
func TestDeleteGraph(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, pg := newStore(t)
	ctx := t.Context()
	refA, err := s.Put(ctx, "a/n/h", executor.Asset{Hash: "h"})
	require.NoError(t, err)
	refAB, err := s.Put(ctx, "a/b/n/h", executor.Asset{Hash: "h"})
	require.NoError(t, err)
	commitRefs(t, s, "a", 0, map[string]string{"n": refA})
	commitRefs(t, s, "a/b", 0, map[string]string{"n": refAB})
	for _, r := range []executor.Record{{ID: "r1", GraphKey: "a"}, {ID: "r2", GraphKey: "a/b"}} {
		require.NoError(t, s.PutRun(ctx, r))
	}

	ok, err := s.DeleteGraph(ctx, "a")
	require.NoError(t, err)
	assert.True(t, ok)
	snap, err := s.Load(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, executor.Snapshot{Version: 2, States: map[string]dirty.State{}}, snap,
		"a deleted graph has no states, at a version after the last one it had")
	runs, err := s.ListRuns(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, runs)

	snap, err = s.Load(ctx, "a/b")
	require.NoError(t, err)
	assert.Equal(t, int64(1), snap.Version)
	assert.Len(t, snap.States, 1)
	runs, err = s.ListRuns(ctx, "a/b")
	require.NoError(t, err)
	assert.Len(t, runs, 1)

	ok, err = s.DeleteGraph(ctx, "a")
	require.NoError(t, err)
	assert.False(t, ok, "a second delete finds nothing")
	ok, err = s.DeleteGraph(ctx, "never-committed")
	require.NoError(t, err)
	assert.False(t, ok)
	ok, err = s.DeleteGraph(ctx, "bad\x00key")
	require.NoError(t, err)
	assert.False(t, ok)
	var tombstones int
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM "`+pg.Schema+`".graphs
WHERE graph_key IN ('a', 'never-committed')`).Scan(&tombstones))
	assert.Equal(t, 1, tombstones, "the deleted graph keeps its row; a graph never committed gets none")

	age(t, pg, "a/n/h", "a/b/n/h")
	n, err := s.PruneAssets(ctx, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	assert.Equal(t, []bool{false, true}, exists(t, s, refA, refAB))

	// The graph starts again at the version it loads at: each delete moved
	// it on by one.
	snap, err = s.Load(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, int64(3), snap.Version)
	assert.Equal(t, int64(4), commitRefs(t, s, "a", snap.Version, map[string]string{"n": refAB}))

	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.DeleteGraph(ctx2, "a/b")
	require.ErrorIs(t, err, context.Canceled)
	snap, err = s.Load(ctx, "a/b")
	require.NoError(t, err)
	assert.Equal(t, int64(1), snap.Version, "a cancelled delete changes nothing")
	assert.Len(t, snap.States, 1, "a cancelled delete changes nothing")
}

// Deletions racing with commits: a reader never sees the version go back,
// and after each deletion a commit based on an earlier load conflicts.
func TestDeleteGraphWhileCommitting(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	key := testenv.UniqueName(t)
	const rounds = 20
	_, err := s.Commit(ctx, key, 0, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	done := make(chan struct{})
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stop()
	wg.Go(func() { // the writer: load, commit, retry on conflict
		for rev := int64(1); ; rev++ {
			select {
			case <-done:
				return
			default:
			}
			snap, err := s.Load(ctx, key)
			if !assert.NoError(t, err) {
				return
			}
			_, err = s.Commit(ctx, key, snap.Version, []executor.Change{{ID: "n", State: dirty.State{Rev: rev}}})
			if err != nil && !assert.ErrorIs(t, err, executor.ErrConflict) {
				return
			}
		}
	})
	wg.Go(func() { // the reader: versions only go up
		var last int64
		for {
			select {
			case <-done:
				return
			default:
			}
			snap, err := s.Load(ctx, key)
			if !assert.NoError(t, err) {
				return
			}
			if !assert.GreaterOrEqual(t, snap.Version, last, "the version went back after a deletion") {
				return
			}
			last = snap.Version
		}
	})
	for range rounds {
		before, err := s.Load(ctx, key)
		require.NoError(t, err)
		_, err = s.DeleteGraph(ctx, key)
		require.NoError(t, err)
		_, err = s.Commit(ctx, key, before.Version, nil)
		requireConflict(t, err, key, before.Version)
	}
	stop()
}

// PruneRuns deletes the records that ended before the time, and those of
// runs that never ended but started before it, but for those that say
// running, whatever their age: it deleted a crashed run's, which
// ResumeLeftRunning would have resumed, and a long run's, which vanished
// from GetRun and RunsByStatus while the run went on. In batches of 2,
// it passes the old running records and deletes every old one past them.
func TestPruneRuns(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	pgstore.SetPruneBatch(s, 2)
	ctx := t.Context()
	now := time.Now()
	old, recent := now.Add(-48*time.Hour), now.Add(-time.Minute)
	records := []executor.Record{
		{ID: "ended-recent", GraphKey: "g", Status: executor.RunFailed, StartedAt: old, EndedAt: recent},
		{ID: "running", GraphKey: "h", Status: executor.RunRunning, StartedAt: recent},
		{ID: "never-started", GraphKey: "h"},
	}
	var kept, deleted []string
	for i := range 3 {
		// More old running records than a batch, and older than the
		// rest: a batch that took them, and deleted fewer than 2 rows,
		// would end the prune before the old records that ended.
		for _, r := range []executor.Record{
			{ID: fmt.Sprint("crashed-old-", i), GraphKey: "h", Status: executor.RunRunning, StartedAt: old.Add(-time.Hour)},
			{ID: fmt.Sprint("ended-old-", i), GraphKey: "g", Status: executor.RunSucceeded, StartedAt: old, EndedAt: old.Add(time.Minute)},
			{ID: fmt.Sprint("interrupted-old-", i), GraphKey: "h", Status: executor.RunInterrupted, StartedAt: old},
		} {
			records = append(records, r)
			if r.Status == executor.RunRunning {
				kept = append(kept, r.ID)
			} else {
				deleted = append(deleted, r.ID)
			}
		}
	}
	for _, r := range records {
		require.NoError(t, s.PutRun(ctx, r))
	}
	_, err := s.PruneRuns(ctx, -time.Hour)
	require.ErrorIs(t, err, pgstore.ErrInvalidAge)
	n, err := s.PruneRuns(ctx, 24*time.Hour)
	require.NoError(t, err)
	assert.Equal(t, int64(len(deleted)), n, "records deleted: %v", deleted)
	var left []string
	for _, g := range []string{"g", "h"} {
		runs, err := s.ListRuns(ctx, g)
		require.NoError(t, err)
		for _, r := range runs {
			left = append(left, r.ID)
		}
	}
	assert.ElementsMatch(t, append([]string{"ended-recent", "running", "never-started"}, kept...), left,
		"records left: a record that says running is kept, whatever its age")
	running, err := s.RunsByStatus(ctx, executor.RunRunning)
	require.NoError(t, err)
	var ids []string
	for _, r := range running {
		ids = append(ids, r.ID)
	}
	assert.ElementsMatch(t, append([]string{"running"}, kept...), ids, "RunsByStatus(running) after the prune")
}

// The garbage collector and the executor together: after an edit, the
// replaced assets go, and a run afterwards finds every asset it needs, so
// it regenerates nothing.
func TestPruneAfterEdit(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, pg := newStore(t)
	g := lecture(t)
	gen := fake.New(fake.Options{})
	e := newExecutor(t, s, gen.Registry())
	key := testenv.UniqueName(t)
	_, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
	require.NoError(t, err)
	narration3 := dirty.Mark{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}
	rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g, Marks: []dirty.Mark{narration3}})
	require.NoError(t, err)
	require.Len(t, rep.Generated, 3)

	rows, err := pg.Pool.Query(t.Context(), `SELECT key FROM "`+pg.Schema+`".assets`)
	require.NoError(t, err)
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, all, g.Len()+3, "every node's asset, and the 3 replaced ones")
	age(t, pg, all...)

	n, err := s.PruneAssets(t.Context(), time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(3), n)
	requireAllClean(t, s, g, key)
	calls := gen.Calls()
	rep, err = e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
	require.NoError(t, err)
	assert.Empty(t, rep.Generated)
	assert.Equal(t, calls, gen.Calls())
}

// Migrating a schema of an older layout version adds the indexes and
// columns of the versions after it, and records the current one. A run
// record written before layout 4 reads back as it was, with no Graph, one
// written before layout 6 with no Resumes, and the store then keeps the
// Graph and the Resumes of the records it puts.
func TestMigrateFromOlderVersions(t *testing.T) {
	for _, tc := range []struct {
		version int
		added   []string // the indexes of the later versions
	}{
		{0, []string{"node_states_asset_ref", "runs_age", "runs_running"}}, // made before versions were recorded
		{1, []string{"node_states_asset_ref", "runs_age", "runs_running"}},
		{2, []string{"runs_age", "runs_running"}},
		{3, []string{"runs_running"}},
		{4, []string{"runs_running"}},
		{5, []string{}}, // layout 6 added a column only
		{6, []string{}}, // and so did layout 7
	} {
		t.Run(fmt.Sprint("version ", tc.version), func(t *testing.T) {
			t.Parallel() // each test has its own schema
			s, pg := newStore(t)
			ctx := t.Context()
			q := func(sql string) {
				_, err := pg.Pool.Exec(ctx, fmt.Sprintf(sql, `"`+pg.Schema+`"`))
				require.NoError(t, err)
			}
			for _, index := range tc.added {
				q(`DROP INDEX %s.` + index)
			}
			if tc.version < 4 {
				q(`ALTER TABLE %s.runs DROP COLUMN graph`) // layout 4's
			}
			if tc.version < 6 {
				q(`ALTER TABLE %s.runs DROP COLUMN resumes`) // layout 6's
			}
			if tc.version < 7 {
				q(`ALTER TABLE %s.runs DROP COLUMN cancelled_by`) // layout 7's
			}
			q(`DELETE FROM %s.schema_version`)
			if tc.version > 0 {
				q(fmt.Sprintf(`INSERT INTO %%s.schema_version (version) VALUES (%d)`, tc.version))
			}
			// Records as the release of that layout wrote them: one that
			// ended, and one that its crashed process left running.
			started := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
			old := executor.Record{ID: "old", GraphKey: "g", Seconds: 30, TriggeredBy: "ada", Reason: "edit",
				Status: executor.RunFailed, StartedAt: started, EndedAt: started.Add(time.Minute),
				Counts: executor.Counts{Planned: 3, Failed: 1}, Failed: []string{"script"}, Error: "failed"}
			left := executor.Record{ID: "left", GraphKey: "h", Seconds: 30, Status: executor.RunRunning, StartedAt: started}
			q(`INSERT INTO %s.runs (id, graph_key, seconds, triggered_by, reason, marks, status, started_at, ended_at,
	counts, failed, error) VALUES ('old', 'g', 30, 'ada', 'edit', '[]', 'failed', '2025-03-14T15:09:26Z',
	'2025-03-14T15:10:26Z', '{"planned": 3, "failed": 1}', '{script}', 'failed'),
	('left', 'h', 30, '', '', '[]', 'running', '2025-03-14T15:09:26Z', NULL, '{}', '{}', '')`)

			require.NoError(t, s.Migrate(ctx))
			require.NoError(t, s.Migrate(ctx), "Migrate again")
			var indexes int
			require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes
WHERE schemaname = $1 AND indexname = ANY($2)`, pg.Schema, tc.added).Scan(&indexes))
			assert.Equal(t, len(tc.added), indexes)
			rows, err := pg.Pool.Query(ctx, `SELECT version FROM "`+pg.Schema+`".schema_version ORDER BY version`)
			require.NoError(t, err)
			versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
			require.NoError(t, err)
			if tc.version == 0 {
				assert.Equal(t, []int{pgstore.SchemaVersion}, versions)
			} else {
				assert.Equal(t, []int{tc.version, pgstore.SchemaVersion}, versions)
			}

			got, err := s.GetRun(ctx, old.ID)
			require.NoError(t, err)
			if d := cmp.Diff(old, got); d != "" {
				t.Errorf("the record of before the upgrade (-want +got):\n%s", d)
			}
			running, err := s.RunsByStatus(ctx, executor.RunRunning)
			require.NoError(t, err)
			if d := cmp.Diff([]executor.Record{left}, running); d != "" {
				t.Errorf("the running records of before the upgrade (-want +got):\n%s", d)
			}
			fresh := old
			fresh.ID, fresh.Graph, fresh.Resumes, fresh.CancelledBy = "new", "fingerprint", "old", "shutdown"
			require.NoError(t, s.PutRun(ctx, fresh))
			got, err = s.GetRun(ctx, fresh.ID)
			require.NoError(t, err)
			assert.Equal(t, "fingerprint", got.Graph)
			assert.Equal(t, "old", got.Resumes)
			assert.Equal(t, "shutdown", got.CancelledBy)
		})
	}
}

// A schema migrated by a later release, which records a newer layout, is
// refused with a typed error that says what was found and what is
// supported, and Migrate changes nothing: no version recorded, no table
// made again. The store still reads the schema's tables afterwards.
func TestMigrateRefusesANewerLayout(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := t.Context()
	newer := pgstore.SchemaVersion + 1
	_, err := pg.Pool.Exec(ctx, fmt.Sprintf(`INSERT INTO "%s".schema_version (version) VALUES (%d);
DROP INDEX "%s".runs_age`, pg.Schema, newer, pg.Schema))
	require.NoError(t, err)
	for range 2 {
		err = s.Migrate(ctx)
		require.ErrorIs(t, err, pgstore.ErrSchemaTooNew)
		var ve *pgstore.SchemaVersionError
		require.ErrorAs(t, err, &ve)
		assert.Equal(t, pgstore.SchemaVersionError{Schema: pg.Schema, Found: newer, Supported: pgstore.SchemaVersion}, *ve)
		assert.Equal(t, fmt.Sprintf("pgstore: schema layout too new: schema %s holds layout version %d, "+
			"and this release supports up to version %d: run a release that supports it",
			pg.Schema, newer, pgstore.SchemaVersion), err.Error())
	}
	rows, err := pg.Pool.Query(ctx, `SELECT version FROM "`+pg.Schema+`".schema_version ORDER BY version`)
	require.NoError(t, err)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	assert.Equal(t, []int{pgstore.SchemaVersion, newer}, versions, "nothing recorded")
	var indexes int
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes
WHERE schemaname = $1 AND indexname = 'runs_age'`, pg.Schema).Scan(&indexes))
	assert.Zero(t, indexes, "the refused Migrate made nothing")
}

// PruneRuns finds old records through the runs_age index, with the
// parameters' values known (a custom plan) or not (a generic plan): a
// prune costs the records it deletes. Before, every prune, and every
// batch of a large one, scanned every record kept (73 ms for 200,000,
// deleting nothing), so a host pruning from a timer paid for its whole
// history each time.
func TestPruneRunsUsesTheIndex(t *testing.T) {
	t.Parallel() // each test has its own schema
	_, pg := newStore(t)
	ctx := t.Context()
	for i, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		t.Run(mode, func(t *testing.T) {
			tx, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			name := fmt.Sprintf("prune_runs_%d", i) // PREPARE outlives a rollback: a name per subtest
			for _, set := range []string{"enable_seqscan = off", "plan_cache_mode = " + mode} {
				_, err := tx.Exec(ctx, "SET LOCAL "+set)
				require.NoError(t, err)
			}
			_, err = tx.Exec(ctx, "PREPARE "+name+" (bigint, bigint) AS "+pgstore.PruneRunsSQL(pg.Schema))
			require.NoError(t, err)
			defer func() { _, _ = tx.Exec(ctx, "DEALLOCATE "+name) }()
			rows, err := tx.Query(ctx, fmt.Sprintf("EXPLAIN EXECUTE %s (3600000000, 1000)", name))
			require.NoError(t, err)
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			plan := strings.Join(lines, "\n")
			assert.Regexp(t, `Index Scan (using|on) runs_age`, plan, "old records are a range of the index")
			assert.NotContains(t, plan, "Seq Scan", plan)
		})
	}
}

// PruneAssets finds references through the node_states_asset_ref index:
// the reference it builds must be in the collation of the column, or
// Postgres cannot use the index and every batch scans all node states.
// And it takes each page of keys as a range of the assets' primary key,
// from the last key of the previous page, not as a scan of the whole
// index. With the other ways of joining turned off, the plan must name
// both, for the first page and the next ones, with the parameters' values
// known (a custom plan) or not (a generic plan, which a prepared statement
// may come to use). EXPLAIN plans a statement with its parameters' values,
// so the test prepares it, and explains its EXECUTE.
func TestPruneAssetsUsesTheIndex(t *testing.T) {
	t.Parallel() // each test has its own schema
	_, pg := newStore(t)
	ctx := t.Context()
	for i, tc := range []struct {
		name  string
		mode  string // plan_cache_mode
		after string
		first bool
	}{
		{"first page, custom plan", "force_custom_plan", "", true},
		{"next page, custom plan", "force_custom_plan", "g/n/h", false},
		{"first page, generic plan", "force_generic_plan", "", true},
		{"next page, generic plan", "force_generic_plan", "g/n/h", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			name := fmt.Sprintf("prune_page_%d", i) // PREPARE outlives a rollback: a name per subtest
			for _, set := range []string{"enable_seqscan = off", "enable_hashjoin = off", "enable_mergejoin = off",
				"enable_material = off", "plan_cache_mode = " + tc.mode} {
				_, err := tx.Exec(ctx, "SET LOCAL "+set)
				require.NoError(t, err)
			}
			_, err = tx.Exec(ctx, "PREPARE "+name+" (text, bigint, bigint, text, boolean) AS "+pgstore.PruneAssetsSQL(pg.Schema))
			require.NoError(t, err)
			defer func() { _, _ = tx.Exec(ctx, "DEALLOCATE "+name) }()
			rows, err := tx.Query(ctx, fmt.Sprintf("EXPLAIN EXECUTE %s ('%s', 10, 0, '%s', %t)",
				name, tc.after, pgstore.RefPrefix, tc.first))
			require.NoError(t, err)
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			plan := strings.Join(lines, "\n")
			assert.Contains(t, plan, "node_states_asset_ref")
			assert.Regexp(t, `Index Only Scan using assets_pkey on assets\s.*\n\s*Index Cond: \(key >= `, plan,
				"a page is a range of the primary key")
		})
	}
}

// A reference of any length can be committed: the index on references is
// a hash index, which has no limit on the length of what it indexes.
func TestLongAssetRef(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	ref := "https://cdn.example/" + strings.Repeat("x", 10_000)
	commitRefs(t, s, "g", 0, map[string]string{"n": ref})
	snap, err := s.Load(t.Context(), "g")
	require.NoError(t, err)
	assert.Equal(t, ref, snap.States["n"].AssetRef)
}

// A commit that replaces a node's reference releases the old asset: its
// age for PruneAssets starts again then, so that a run still reading it
// has olderThan to finish. A commit that keeps the reference, or
// replaces one the store does not hold, releases nothing.
func TestReleaseRenewsAge(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, pg := newStore(t)
	ctx := t.Context()
	var refs []string
	for _, k := range []string{"g/n/x", "g/n/y", "g/m/z"} {
		ref, err := s.Put(ctx, k, executor.Asset{Hash: "h"})
		require.NoError(t, err)
		refs = append(refs, ref)
	}
	commitRefs(t, s, "g", 0, map[string]string{"n": refs[0], "m": refs[2], "o": "s3://bucket/o"})
	age(t, pg, "g/n/x", "g/n/y", "g/m/z")
	commitRefs(t, s, "g", 1, map[string]string{"n": refs[1], "m": refs[2], "o": "s3://bucket/o2"})

	n, err := s.PruneAssets(ctx, time.Hour)
	require.NoError(t, err)
	assert.Zero(t, n, "x was released just now")
	rows, err := pg.Pool.Query(ctx, `SELECT key FROM "`+pg.Schema+`".assets WHERE put_at < now() - interval '1 hour' ORDER BY key`)
	require.NoError(t, err)
	old, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"g/m/z", "g/n/y"}, old, "only the released asset is younger")

	age(t, pg, "g/n/x")
	n, err = s.PruneAssets(ctx, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	assert.Equal(t, []bool{false, true, true}, exists(t, s, refs...))
}

// The release of replaced assets, in Commit's statement, looks up only the
// changed nodes' states and their assets, by primary key: a commit costs
// what it changes, not the size of its graph. It does so too before
// Postgres has statistics on the tables (new tables, or ones that grew
// since the last ANALYZE), when a join would estimate one state per graph
// and could read all the graph's states and look up all their assets at
// every commit.
func TestCommitReleaseUsesIndexes(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, analyze := range []bool{true, false} {
		t.Run(fmt.Sprintf("analyze=%v", analyze), func(t *testing.T) {
			_, pg := newStore(t)
			ctx := t.Context()
			q := func(sql string) {
				_, err := pg.Pool.Exec(ctx, strings.ReplaceAll(sql, "{s}", `"`+pg.Schema+`"`))
				require.NoError(t, err)
			}
			q(`INSERT INTO {s}.assets (key, url, hash, length_ns) SELECT 'g/n' || i || '/h', '', 'h', 0 FROM generate_series(0, 999) i`)
			q(`INSERT INTO {s}.graphs (graph_key, version) VALUES ('g', 1)`)
			q(`INSERT INTO {s}.node_states (graph_key, node_id, status, rev, input_hash, output_hash, asset_ref, attempts, last_error)
SELECT 'g', 'n' || i, 'clean', 0, '', 'h', 'pg:g/n' || i || '/h', 1, '' FROM generate_series(0, 999) i`)
			if analyze {
				q(`ANALYZE {s}.assets`)
				q(`ANALYZE {s}.node_states`)
			}
			rows, err := pg.Pool.Query(ctx, "EXPLAIN "+pgstore.CommitSQL(pg.Schema), "g", []string{"n5", "n7"},
				[]string{"clean", "clean"}, []int64{0, 0}, []string{"i", "i"}, []string{"o", "o"},
				[]string{"pg:g/n5/h2", "pg:g/n7/h2"}, []int64{1, 1}, []string{"", ""}, make([]pgtype.Timestamptz, 2), int64(1))
			require.NoError(t, err)
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			plan := strings.Join(lines, "\n")
			assert.Regexp(t, `Index Scan using node_states_pkey on node_states s(_\d+)?\s.*\n\s*Index Cond: \(\(graph_key = 'g'::text\) AND \(node_id = `, plan)
			assert.NotRegexp(t, `on node_states s(_\d+)?\s.*\n\s*(Recheck|Index) Cond: \(graph_key = 'g'::text( COLLATE "C")?\)`, plan,
				"a scan of all the graph's states")
			assert.Contains(t, plan, "Index Scan using assets_pkey on assets a")
			assert.NotContains(t, plan, "Seq Scan")
		})
	}
}

// A commit that loses its compare-and-swap applies nothing: it writes no
// state, and releases none of the assets its states would replace.
func TestLostCommitReleasesNothing(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, pg := newStore(t)
	ctx := t.Context()
	var refs []string
	for _, k := range []string{"g/n/x", "g/n/y"} {
		ref, err := s.Put(ctx, k, executor.Asset{Hash: "h"})
		require.NoError(t, err)
		refs = append(refs, ref)
	}
	commitRefs(t, s, "g", 0, map[string]string{"n": refs[0]})
	commitRefs(t, s, "g", 1, map[string]string{"m": "s3://bucket/m"})
	age(t, pg, "g/n/x")

	_, err := s.Commit(ctx, "g", 1, []executor.Change{{ID: "n", State: dirty.State{Status: dirty.StatusClean,
		OutputHash: "h2", AssetRef: refs[1], UpdatedAt: time.Now()}}})
	requireConflict(t, err, "g", 1)
	rows, err := pg.Pool.Query(ctx, `SELECT key FROM "`+pg.Schema+`".assets WHERE put_at < now() - interval '1 hour'`)
	require.NoError(t, err)
	old, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"g/n/x"}, old, "the lost commit released x")
	snap, err := s.Load(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, int64(2), snap.Version)
	assert.Equal(t, refs[0], snap.States["n"].AssetRef, "the lost commit wrote its state")
}

// PruneRuns and PruneAssets delete what is more than olderThan old, and
// keep what is exactly olderThan old, as their docs and the in-memory
// store's say. Their statements run here in one transaction, where now()
// stands still: a record that ended, or never ended but started, and an
// asset put (or released: a release sets put_at), exactly now() -
// olderThan are kept, and those a microsecond older deleted.
func TestPruneKeepsTheAge(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, pg := newStore(t)
	ctx := t.Context()
	for _, id := range []string{"ended-before", "ended-at", "ended-after", "running-before", "running-at"} {
		require.NoError(t, s.PutRun(ctx, executor.Record{ID: id, GraphKey: "g", Status: executor.RunSucceeded}))
	}
	for _, k := range []string{"g/n/before", "g/n/at", "g/n/after"} {
		_, err := s.Put(ctx, k, executor.Asset{Hash: "h"})
		require.NoError(t, err)
	}
	const us = `$2::bigint * interval '1 microsecond'`
	for _, age := range []time.Duration{0, time.Hour, 30 * 24 * time.Hour} {
		t.Run(age.String(), func(t *testing.T) {
			tx, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			a := age.Microseconds()
			for _, r := range []struct {
				id     string
				at     int64 // microseconds before now()
				ending bool  // the time is the end; else the start, of a record that never ended
			}{
				{"ended-before", a + 1, true}, {"ended-at", a, true}, {"ended-after", a - 1, true},
				{"running-before", a + 1, false}, {"running-at", a, false},
			} {
				// Not running, which is never pruned (see TestPruneRuns).
				set := `started_at = now() - ` + us + `, ended_at = NULL, status = 'interrupted'`
				if r.ending {
					set = `started_at = now() - (` + us + `) - interval '1 hour', ended_at = now() - ` + us
				}
				_, err := tx.Exec(ctx, `UPDATE "`+pg.Schema+`".runs SET `+set+` WHERE id = $1`, r.id, r.at)
				require.NoError(t, err, "set the time of %s", r.id)
			}
			for k, at := range map[string]int64{"g/n/before": a + 1, "g/n/at": a, "g/n/after": a - 1} {
				_, err := tx.Exec(ctx, `UPDATE "`+pg.Schema+`".assets SET put_at = now() - `+us+` WHERE key = $1`, k, at)
				require.NoError(t, err, "set the put_at of %s", k)
			}

			tag, err := tx.Exec(ctx, pgstore.PruneRunsSQL(pg.Schema), a, 1000)
			require.NoError(t, err, "PruneRuns's statement")
			assert.Equal(t, int64(2), tag.RowsAffected(), "records deleted by PruneRuns(%v): those a microsecond older than %v", age, age)
			rows, err := tx.Query(ctx, `SELECT id FROM "`+pg.Schema+`".runs ORDER BY id`)
			require.NoError(t, err)
			left, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			assert.Equal(t, []string{"ended-after", "ended-at", "running-at"}, left,
				"records left by PruneRuns(%v): one that ended, or never ended but started, exactly %v ago is kept", age, age)

			var (
				last          *string
				seen, deleted int64
			)
			require.NoError(t, tx.QueryRow(ctx, pgstore.PruneAssetsSQL(pg.Schema), "", 1000, a, pgstore.RefPrefix, true).
				Scan(&last, &seen, &deleted), "PruneAssets's statement")
			assert.Equal(t, int64(1), deleted, "assets deleted by PruneAssets(%v): the one put a microsecond more than %v ago", age, age)
			rows, err = tx.Query(ctx, `SELECT key FROM "`+pg.Schema+`".assets ORDER BY key`)
			require.NoError(t, err)
			left, err = pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			assert.Equal(t, []string{"g/n/after", "g/n/at"}, left,
				"assets left by PruneAssets(%v): one put, or released, exactly %v ago is kept", age, age)
		})
	}
}
