package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
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

// A pass whose deadline came between two queries (here while graphOf
// built a run's graph) ended with the cause alone, ErrPassTimeout, and
// its Err did not wrap context.DeadlineExceeded, as ErrPassTimeout's doc
// says it does: a host that checks for the deadline missed it.
func TestMaintainPassTimeoutBetweenQueriesWrapsDeadlineExceeded(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	e := newExecutor(t, s, newProvider().registry())
	const passTimeout = 100 * time.Millisecond
	leftRunning(t, ctx, s, "slow", testenv.UniqueName(t), build(t, 30), time.Now().Add(-time.Minute))
	graphOf := func(rec executor.Record) (*graph.Graph, error) {
		// Longer than the whole pass may last: its deadline has passed
		// once this returns, whatever the clock's grain.
		time.Sleep(3 * passTimeout)
		return lectureOf(rec)
	}
	passes, stop := maintainingWith(t, ctx, s, e, graphOf, pgstore.MaintainOptions{Every: time.Millisecond, PassTimeout: passTimeout})
	p := next(t, ctx, passes)
	require.ErrorIs(t, p.Err, pgstore.ErrPassTimeout)
	require.ErrorIs(t, p.Err, context.DeadlineExceeded)
	require.Len(t, p.LeftRunning, 1)
	require.Equal(t, pgstore.NotResumed, p.LeftRunning[0].Outcome, "the lock's check came after the deadline")
	require.ErrorIs(t, stop(context.Canceled), context.Canceled)
}
