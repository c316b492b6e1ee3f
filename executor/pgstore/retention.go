package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/regengraph/regen/internal/pgschema"
)

// pruneBatch is how many rows one statement of PruneAssets or PruneRuns
// handles at most, unless a test sets Store.batch: each batch is its own
// short transaction, so a large prune never holds many row locks nor one
// long transaction.
const pruneBatch = 1000

// DeleteGraph removes a graph's metadata: its node states and its run
// records, in one transaction. It reports whether there was any to
// remove. Other graphs are untouched, whatever their keys (a graph "a" is
// not a prefix of "a/b").
//
// The graph's row in the graphs table stays, as a tombstone: DeleteGraph
// moves its version on by one instead of deleting it, so that a version
// number is never used twice. A deleted graph loads with no states at the
// tombstone's version, and is re-created by a commit at that version. A
// run that loaded the graph before the deletion gets a
// *executor.ConflictError when it commits, however many commits the
// re-created graph has made since; were the row deleted, the version
// would start again at 0, and such a commit could succeed once the new
// graph reached the version the run loaded, writing old states over new
// ones. A tombstone is one small row; a host that deletes many graphs
// may delete tombstones (rows without node states) itself, once no run
// that loaded those graphs can still commit. A graph that was never
// committed has no row, and gets none: a run of it under way, whose first
// commit comes after the deletion, goes on, as a run started after it
// would.
//
// The graph's assets are not deleted here: once no node state refers to
// them, [Store.PruneAssets] removes them like any other unreferenced
// asset. A run of the graph still going, in this process or another,
// finds it deleted at its next commit (it conflicts, and the run
// reloads): it stops, with executor.ErrGraphDeleted, and commits nothing
// more, so the graph stays deleted. It returns ctx.Err(), with no effect,
// if ctx is done.
func (s *Store) DeleteGraph(ctx context.Context, graphKey string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if !fits(graphKey, MaxGraphKeyBytes) {
		return false, nil // never committed nor put in a run record: nothing to delete
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return false, s.wrapErr(ctx, err, "delete graph %s", quote(graphKey))
	}
	defer pgschema.Rollback(ctx, tx)
	// The graphs row first: the update locks it, so a commit racing with
	// the deletion either ends before it, and its states are deleted
	// below, or waits for it and then finds the version moved (and
	// conflicts). The DELETEs are statements of their own, so that in
	// READ COMMITTED they see the states of a commit that ended while
	// the update waited for it.
	//
	// A graph without a row (never committed) had no states as of the
	// update, which had no row to lock: none are deleted then. A first
	// commit that lands after the update comes after the deletion; the
	// DELETE would have deleted its states and left its version, on
	// which its run would have gone on committing, into a graph with
	// some of its states gone.
	tomb, err := tx.Exec(ctx, s.q.deleteGraph, graphKey)
	if err != nil {
		return false, s.wrapErr(ctx, err, "delete graph %s", quote(graphKey))
	}
	var states pgconn.CommandTag
	if tomb.RowsAffected() > 0 {
		if states, err = tx.Exec(ctx, s.q.deleteGraphStates, graphKey); err != nil {
			return false, s.wrapErr(ctx, err, "delete node states of graph %s", quote(graphKey))
		}
	}
	runs, err := tx.Exec(ctx, s.q.deleteGraphRuns, graphKey)
	if err != nil {
		return false, s.wrapErr(ctx, err, "delete runs of graph %s", quote(graphKey))
	}
	if err := tx.Commit(ctx); err != nil {
		return false, s.wrapErr(ctx, err, "delete graph %s: commit", quote(graphKey))
	}
	return states.RowsAffected()+runs.RowsAffected() > 0, nil
}

// PruneAssets deletes the assets that no node state of the store refers
// to and that were put, or released, more than olderThan ago, and returns
// how many it deleted. Regenerating a node puts a new asset (its key ends
// with the content hash) and releases the old one; deleted graphs, and
// results that were never committed (cancelled, superseded, failed
// commits), leave theirs behind too. PruneAssets is the garbage collector
// for all of them. A commit that replaces a node's reference releases the
// asset it referred to: its put_at becomes the commit's time. A Put of an
// existing key renews it too. Ages are measured by the database's clock
// (put_at against now()), so the host's clock does not matter.
//
// It is safe while runs are in progress when olderThan is longer than the
// longest run: every asset that a run may still read is referred to by a
// node state, or was put or released after the run started. With a
// shorter olderThan, a run may find a dependency's asset gone: that node
// fails, and the next run regenerates what is missing (unless the
// executor's SkipAssetCheck is set).
//
// Use it only when this Store is the StateStore of every executor that
// puts assets into it: it knows the references of its own node_states
// table only, and would delete assets that states kept elsewhere refer
// to. It walks the assets in key order, a batch of keys per statement,
// each its own short transaction; it stops at the first error, returning
// the count so far, and returns ctx.Err() if ctx ends between batches. A
// negative olderThan is an error wrapping [ErrInvalidAge].
func (s *Store) PruneAssets(ctx context.Context, olderThan time.Duration) (int64, error) {
	if err := checkAge("prune assets", olderThan); err != nil {
		return 0, err
	}
	var (
		total int64
		after string // the last key of the previous batch; "" sorts first
		first = true // the first batch takes the key "" too
	)
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var (
			last          *string
			seen, deleted int64
		)
		err := pgschema.ReadCommitted(ctx, s.pool, s.q.pruneAssets,
			[]any{after, s.batchSize(), olderThan.Microseconds(), RefPrefix, first},
			func(r pgx.BatchResults) error { return r.QueryRow().Scan(&last, &seen, &deleted) })
		if err != nil {
			pruneInDoubt(err, "deleted a batch of old assets")
			return total, s.wrapErr(ctx, err, "prune assets older than %v", olderThan)
		}
		total += deleted
		if last == nil || seen < int64(s.batchSize()) {
			return total, nil
		}
		after, first = *last, false
	}
}

// PruneRuns deletes the run records that ended more than olderThan ago,
// and those that never ended but started more than olderThan ago, by the
// database's clock, and returns how many it deleted. It never deletes a
// record whose status is running (executor.RunRunning), whatever its
// age: its run may go on still, in this process or another (a long run,
// whose record GetRun and RunsByStatus would miss until its end), or its
// process may have died, and the record is what
// [Store.ResumeLeftRunning] resumes it from ([Store.GraphLocked] tells
// the two apart: see "Locking a graph key" in the package
// documentation). A host settles a record left running by resuming it, or
// with executor.Executor.Abandon; it then ages as any other. It deletes
// in batches, like [Store.PruneAssets], each found through the runs_age
// index and each a READ COMMITTED transaction of its own, whatever the
// session's default level: it costs the records it deletes, and the old
// records that say running, which it passes over, not the records kept
// younger. A negative olderThan is an error wrapping [ErrInvalidAge].
func (s *Store) PruneRuns(ctx context.Context, olderThan time.Duration) (int64, error) {
	if err := checkAge("prune runs", olderThan); err != nil {
		return 0, err
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var deleted int64
		err := pgschema.ReadCommitted(ctx, s.pool, s.q.pruneRuns,
			[]any{olderThan.Microseconds(), s.batchSize()},
			func(r pgx.BatchResults) error {
				tag, err := r.Exec()
				deleted = tag.RowsAffected()
				return err
			})
		if err != nil {
			pruneInDoubt(err, "deleted a batch of old run records")
			return total, s.wrapErr(ctx, err, "prune runs older than %v", olderThan)
		}
		total += deleted
		if deleted < int64(s.batchSize()) {
			return total, nil
		}
	}
}

// pruneInDoubt says, in err's *pgschema.InDoubtError if it is one (the
// context ended, or the connection was lost, while a prune's batch ran),
// what the batch may have done, done, and that pruning again is safe.
func pruneInDoubt(err error, done string) {
	var d *pgschema.InDoubtError
	if errors.As(err, &d) {
		d.Done, d.Again = done, "pruning again is safe"
	}
}

func checkAge(what string, age time.Duration) error {
	if age < 0 {
		return fmt.Errorf("%w: %s older than %v: want 0 or more", ErrInvalidAge, what, age)
	}
	return nil
}

// batchSize is the rows a prune statement handles at most.
func (s *Store) batchSize() int {
	if s.batch <= 0 {
		return pruneBatch
	}
	return s.batch
}

// The statements of the retention methods. {s} is the schema.
//
// pruneAssetsSQL takes a page of keys after $1 in key order (the primary
// key's index, "C" order), or from $1 on when $5 is true, for the first
// page, which must take the key "" too; deletes those put more than $3
// microseconds ago that no node state refers to; and returns the page's
// last key, its size and the count deleted. The page's condition is a
// range of the index, key >= $1, and a filter, so that the index is
// scanned from $1 only. The reference is compared in the collation of
// node_states.asset_ref, so that its hash index serves the lookup. A row
// that a concurrent Put holds is waited for, then checked again (READ
// COMMITTED), so a Put that renews an asset keeps it.
//
// pruneRunsSQL deletes a batch of old records that do not say running,
// skipping those that a concurrent PutRun holds: they are not old. The
// status is a filter of the batch, not of its deletion, so that a batch
// is full while old records that do not say running remain, however many
// old running ones the index holds before them. A record that a PutRun
// committed since the statement's snapshot is checked again, status
// included, as FOR UPDATE locks it (READ COMMITTED).
//
// deleteGraphSQL makes a graph's row a tombstone: it moves the version on
// and keeps the row, so that the version is never used again.
const (
	deleteGraphSQL       = `UPDATE {s}.graphs SET version = version + 1, updated_at = now() WHERE graph_key = $1`
	deleteGraphStatesSQL = `DELETE FROM {s}.node_states WHERE graph_key = $1`
	deleteGraphRunsSQL   = `DELETE FROM {s}.runs WHERE graph_key = $1`
	pruneAssetsSQL       = `WITH page AS (
	SELECT key FROM {s}.assets WHERE key >= $1 AND (key <> $1 OR $5::boolean) ORDER BY key LIMIT $2
), gone AS (
	DELETE FROM {s}.assets a USING page
	WHERE a.key = page.key
		AND a.put_at < now() - $3::bigint * interval '1 microsecond'
		AND NOT EXISTS (SELECT 1 FROM {s}.node_states n
			WHERE n.asset_ref = ($4::text || a.key) COLLATE "default")
	RETURNING 1
)
SELECT (SELECT max(key) FROM page), (SELECT count(*) FROM page), (SELECT count(*) FROM gone)`
	pruneRunsSQL = `DELETE FROM {s}.runs WHERE id IN (
	SELECT id FROM {s}.runs
	WHERE coalesce(ended_at, started_at) < now() - $1::bigint * interval '1 microsecond'
		AND status <> 'running'
	LIMIT $2 FOR UPDATE SKIP LOCKED)`
)
