package pgstore

import (
	"context"
	"time"
)

// pruneBatch is how many rows one statement of PruneAssets or PruneRuns
// deletes at most, unless a test sets Store.batch: each batch is its own
// short transaction, so a large prune never holds many row locks nor one
// long transaction.
const pruneBatch = 1000

// DeleteGraph removes a graph's metadata: its version row, its node
// states and its run records, in one transaction. It reports whether the
// graph had a version row. Other graphs are untouched, whatever their
// keys (a graph "a" is not a prefix of "a/b").
//
// The graph's assets are not deleted here: once no node state refers to
// them, [Store.PruneAssets] removes them like any other unreferenced
// asset. Cancel the graph's runs first: a run still going would re-create
// the graph with its next commit (at version 0, as a ConflictError makes
// it reload). It returns ctx.Err(), with no effect, if ctx is done.
func (s *Store) DeleteGraph(ctx context.Context, graphKey string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if !storable(graphKey) {
		return false, nil // Postgres cannot hold such a key: nothing to delete
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, s.wrapErr(err, "delete graph %q", graphKey)
	}
	defer rollback(ctx, tx)
	// The graphs row first: it locks the graph, so a commit racing with
	// the deletion either ends before it or finds no row (and conflicts).
	tag, err := tx.Exec(ctx, s.q.deleteGraph, graphKey)
	if err != nil {
		return false, s.wrapErr(err, "delete graph %q", graphKey)
	}
	// node_states go with it (ON DELETE CASCADE); runs have no foreign key.
	if _, err := tx.Exec(ctx, s.q.deleteGraphRuns, graphKey); err != nil {
		return false, s.wrapErr(err, "delete runs of graph %q", graphKey)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, s.wrapErr(err, "delete graph %q: commit", graphKey)
	}
	return tag.RowsAffected() > 0, nil
}

// PruneAssets deletes the assets that no node state of the store refers
// to, and that were put before the given time, and returns how many it
// deleted. Regenerating a node puts a new asset (its key ends with the
// content hash) and leaves the old one behind; so do deleted graphs and
// results that were never committed (cancelled, superseded, failed
// commits). PruneAssets is the garbage collector for all of them.
//
// The time is a grace period, and it matters: a run puts a node's asset
// just before it commits the state that refers to it, so an asset put
// after the oldest run in progress started may be about to be referred to.
// Pass a time older than any run in progress, for example an hour ago. A
// Put of an existing key counts as a new put. The zero time deletes
// nothing.
//
// Use it only when this Store is the StateStore of every executor that
// puts assets into it: it knows the references of its own node_states
// table only, and would delete assets that states kept elsewhere refer
// to. It deletes in batches, each its own short transaction, and stops at
// the first error, returning the count so far; it returns ctx.Err() if
// ctx ends between batches. It uses the node_states_asset_ref index.
func (s *Store) PruneAssets(ctx context.Context, before time.Time) (int64, error) {
	return s.prune(ctx, s.q.pruneAssets, "prune assets", before, RefPrefix)
}

// PruneRuns deletes the run records that ended before the given time, and
// those that never ended (a crashed process leaves them "running") but
// started before it, and returns how many it deleted. Pass a time older
// than any run in progress: a run whose record was deleted while it went
// on writes its record again when it ends. It deletes in batches, like
// [Store.PruneAssets].
func (s *Store) PruneRuns(ctx context.Context, before time.Time) (int64, error) {
	return s.prune(ctx, s.q.pruneRuns, "prune runs", before)
}

// prune runs a batched DELETE, whose first argument is the time and whose
// last is the batch size, until a batch deletes fewer rows than that.
func (s *Store) prune(ctx context.Context, query, what string, before time.Time, args ...any) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		all := append([]any{toTimestamptz(before)}, args...)
		all = append(all, s.batch)
		tag, err := s.pool.Exec(ctx, query, all...)
		if err != nil {
			return total, s.wrapErr(err, "%s before %s", what, before.Format(time.RFC3339Nano))
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(s.batch) {
			return total, nil
		}
	}
}

// pruneQueries are the statements of the retention methods. {s} is the
// schema. A batch locks its rows with SKIP LOCKED: rows that a concurrent
// Put or PutRun holds are left for the next prune, and a row that changed
// before it was locked is checked again (READ COMMITTED), so a Put that
// renews an asset's put_at keeps it.
const (
	deleteGraphSQL     = `DELETE FROM {s}.graphs WHERE graph_key = $1`
	deleteGraphRunsSQL = `DELETE FROM {s}.runs WHERE graph_key = $1`
	pruneAssetsSQL     = `DELETE FROM {s}.assets WHERE key IN (
	SELECT a.key FROM {s}.assets a
	WHERE a.put_at < $1
		AND NOT EXISTS (SELECT 1 FROM {s}.node_states n WHERE n.asset_ref = $2 || a.key)
	LIMIT $3 FOR UPDATE SKIP LOCKED)`
	pruneRunsSQL = `DELETE FROM {s}.runs WHERE id IN (
	SELECT id FROM {s}.runs
	WHERE ended_at < $1 OR (ended_at IS NULL AND started_at < $1)
	LIMIT $2 FOR UPDATE SKIP LOCKED)`
)
