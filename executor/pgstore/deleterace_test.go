package pgstore_test

import (
	"hash/fnv"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/testenv"
)

// A DeleteGraph of a graph without a row yet, whose first commit landed
// between its tombstone's UPDATE (which found no row to lock) and its
// DELETE of the node states, deleted that commit's states and left its
// version as it was: the run that made the commit went on committing at
// that version, without a conflict, into a graph that had lost some of
// its states (its fingerprint among them), as no tombstone stopped it. A
// graph without a row has no states to delete as of that UPDATE: the
// commit comes after the deletion, whole. Here a statement trigger on
// graphs holds the deletion just after its UPDATE while the first commit
// lands.
func TestDeleteGraphBesideItsFirstCommit(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, time.Minute) // a bound against a hang
	schema := pgx.Identifier{pg.Schema}.Sanitize()
	h := fnv.New32a()
	h.Write([]byte(pg.Schema))
	pause := int32(h.Sum32() >> 1) // the deletion waits for it after its UPDATE
	_, err := pg.Pool.Exec(ctx, `CREATE FUNCTION `+schema+`.pause() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock(TG_ARGV[0]::int, 7); RETURN NULL; END $$`)
	require.NoError(t, err)
	_, err = pg.Pool.Exec(ctx, `CREATE TRIGGER pause AFTER UPDATE ON `+schema+`.graphs
FOR EACH STATEMENT EXECUTE FUNCTION `+schema+`.pause('`+strconv.Itoa(int(pause))+`')`)
	require.NoError(t, err)
	holder, err := pg.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer holder.Release()
	_, err = holder.Exec(ctx, `SELECT pg_advisory_lock($1, 7)`, pause)
	require.NoError(t, err)

	deleted := make(chan error, 1)
	go func() {
		_, err := s.DeleteGraph(ctx, "g")
		deleted <- err
	}()
	require.Eventually(t, func() bool { // the deletion waits in the trigger
		var n int
		err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
	AND objsubid = 2 AND classid = $1::int::oid AND objid = 7`, pause).Scan(&n)
		return err == nil && n == 1
	}, 20*time.Second, 5*time.Millisecond)
	// The run's first commit, of a graph that it loaded at version 0.
	v, err := s.Commit(ctx, "g", 0, []executor.Change{{ID: "n", State: dirty.State{Status: dirty.StatusClean, Rev: 1}}})
	require.NoError(t, err)
	require.Equal(t, int64(1), v)
	_, err = holder.Exec(ctx, `SELECT pg_advisory_unlock($1, 7)`, pause)
	require.NoError(t, err)
	require.NoError(t, <-deleted)

	// Either order is one a host may see, but not a mix of the two: the
	// deletion after the commit moves the version on (its run then
	// conflicts), and before it leaves the commit whole.
	snap, err := s.Load(ctx, "g")
	require.NoError(t, err)
	_, err = s.Commit(ctx, "g", 1, []executor.Change{{ID: "m", State: dirty.State{Status: dirty.StatusClean, Rev: 1}}})
	if snap.Version == 1 {
		assert.Contains(t, snap.States, "n", "the commit at version 1 lost its states, and kept its version")
		assert.NoError(t, err)
	} else {
		assert.Empty(t, snap.States, "deleted")
		requireConflict(t, err, "g", 1)
	}
}
