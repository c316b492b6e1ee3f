package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// A pass's queries were bounded by Maintain's ctx alone, the process's:
// a query that the server stalled (a lock on the runs table, a network
// that TCP had not given up on) stalled the loop for good, no run left
// by a dead process resumed again until the process restarted. Each pass
// now ends after PassTimeout, its Err wrapping ErrPassTimeout, and the
// next pass is made at its time.
func TestMaintainPassTimesOutOnAStalledQuery(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	e := newExecutor(t, s, newProvider().registry())
	// Another connection of the test locks the schema's runs table: the
	// pass's listing of the runs left running waits for it.
	tx, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(ctx, `LOCK TABLE "`+pg.Schema+`".runs IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	passes, stop := maintaining(t, ctx, s, e, pgstore.MaintainOptions{Every: time.Millisecond, PassTimeout: 200 * time.Millisecond})
	for range 2 { // the loop goes on
		p := next(t, ctx, passes)
		require.ErrorIs(t, p.Err, pgstore.ErrPassTimeout)
		require.ErrorIs(t, p.Err, context.DeadlineExceeded)
	}
	require.NoError(t, tx.Rollback(ctx))
	for p := next(t, ctx, passes); p.Err != nil; p = next(t, ctx, passes) {
		require.ErrorIs(t, p.Err, pgstore.ErrPassTimeout, "a pass under way as the lock was freed")
	}
	require.ErrorIs(t, stop(context.Canceled), context.Canceled)
}
