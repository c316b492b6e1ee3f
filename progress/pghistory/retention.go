package pghistory

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regengraph/regen/internal/pgschema"
)

// pruneBatch is how many runs one statement of Prune deletes at most,
// with all their events, unless a test sets History.batch: each batch is
// its own short transaction.
const pruneBatch = 100

// DeleteRun deletes every event of runID, and returns how many it
// deleted. It is one transaction of two statements, each through an
// index: it costs the run's events, and other runs are untouched,
// whatever their IDs (a run "a" is not a prefix of "a-b"). It is safe
// while runs go on, this one included, and never leaves an event without
// its run: an append of the run that has already renewed the run's row
// (its last step) is waited for and deleted with the run; any other
// append, one that starts later or one still storing its events, or the
// first append of a new run, is not waited for and keeps the events it
// adds (the run is then archived again from them). So DeleteRun deletes
// every event committed before it, not every append begun before it. A
// run ID that Append would refuse was never stored: DeleteRun returns 0
// without a query. It returns
// context.Cause(ctx), with no effect, if ctx is done.
func (h *History) DeleteRun(ctx context.Context, runID string) (int64, error) {
	if ctx.Err() != nil {
		return 0, context.Cause(ctx)
	}
	if !fits(runID) {
		return 0, nil
	}
	tx, err := h.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, h.fail(ctx, err, "delete run %s", pgschema.QuoteKey(runID))
	}
	defer pgschema.Rollback(ctx, tx)
	// The run's row first: it waits for an append of the run in flight,
	// so that the next statement, with a snapshot of its own, sees that
	// append's events and deletes them too.
	if _, err := tx.Exec(ctx, h.q.deleteRun, runID); err != nil {
		return 0, h.fail(ctx, err, "delete run %s", pgschema.QuoteKey(runID))
	}
	tag, err := tx.Exec(ctx, h.q.deleteRunEvents, runID)
	if err != nil {
		return 0, h.fail(ctx, err, "delete events of run %s", pgschema.QuoteKey(runID))
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, h.fail(ctx, err, "delete run %s: commit", pgschema.QuoteKey(runID))
	}
	return tag.RowsAffected(), nil
}

// Prune deletes the events of every run whose newest append that stored
// an event was more than olderThan ago, by the database's clock, and
// returns how many events it deleted. Each append renews its run's time,
// so a run that appends at least once an age is never pruned; and a run
// whose append in flight has renewed its row (the append's last step,
// done as it commits) is skipped. An append still storing its events,
// which has not yet (it waits for an event that another transaction
// writes, say), does not hold Prune off: the run's older events go, and
// those of the append stay, with their run, as after a quiet spell. Pick
// an age longer than the longest quiet spell of a run, and than readers
// may want to resume a finished run (an hour for the live stream's gaps,
// days to replay old runs): a run idle for longer than that while it
// goes on loses its older events (its later ones are kept, with their
// run).
//
// It finds old runs through an index on their time and deletes them in
// batches of 100 runs, each batch one short transaction of two statements
// (the runs, then their events through the primary key), so it costs
// what it deletes, not what is kept, and holds no lock on the runs that
// go on. It stops at the first error, returning the count so far, and
// returns context.Cause(ctx) if ctx ends between batches. The age is
// measured once, when Prune starts: runs that start during it are not
// pruned, so it ends. A negative olderThan is an error wrapping
// [ErrInvalidAge].
func (h *History) Prune(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("%w: prune runs older than %v: want 0 or more", ErrInvalidAge, olderThan)
	}
	if ctx.Err() != nil {
		return 0, context.Cause(ctx)
	}
	// The cutoff is taken once: were it taken by each batch, runs that
	// keep starting during a prune with a short age could keep it going.
	var cutoff time.Time
	if err := h.pool.QueryRow(ctx, pruneCutoffSQL, olderThan.Microseconds()).Scan(&cutoff); err != nil {
		return 0, h.fail(ctx, err, "prune runs older than %v", olderThan)
	}
	var total int64
	for {
		if ctx.Err() != nil {
			return total, context.Cause(ctx)
		}
		runs, events, err := h.pruneBatch(ctx, olderThan, cutoff)
		total += events
		if err != nil {
			return total, err
		}
		if h.afterBatch != nil {
			h.afterBatch()
		}
		if runs < h.batchSize() {
			return total, nil
		}
	}
}

// pruneBatch deletes one batch of old runs and their events, in one
// transaction of two statements (see pruneRunsSQL), and returns how many
// runs and events it deleted.
func (h *History) pruneBatch(ctx context.Context, olderThan time.Duration, cutoff time.Time) (runs int, events int64, err error) {
	tx, err := h.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, 0, h.fail(ctx, err, "prune runs older than %v", olderThan)
	}
	defer pgschema.Rollback(ctx, tx)
	rows, err := tx.Query(ctx, h.q.pruneRuns, cutoff, h.batchSize())
	if err != nil {
		return 0, 0, h.fail(ctx, err, "prune runs older than %v", olderThan)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, 0, h.fail(ctx, err, "prune runs older than %v", olderThan)
	}
	if len(ids) == 0 {
		return 0, 0, nil // nothing deleted: the rollback ends the transaction
	}
	tag, err := tx.Exec(ctx, h.q.pruneEvents, ids)
	if err != nil {
		return 0, 0, h.fail(ctx, err, "prune events of %d runs older than %v", len(ids), olderThan)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, h.fail(ctx, err, "prune runs older than %v: commit", olderThan)
	}
	return len(ids), tag.RowsAffected(), nil
}

// batchSize is the runs a prune statement deletes at most.
func (h *History) batchSize() int {
	if h.batch <= 0 {
		return pruneBatch
	}
	return h.batch
}
