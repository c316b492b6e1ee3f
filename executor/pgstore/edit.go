package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// maxFirstEdits bounds how often EditTx locks again after a first commit
// of the graph, made by another transaction, won over its own: once is
// enough, unless the host deletes graphs rows (tombstones) meanwhile.
const maxFirstEdits = 3

// EditTx records, in tx, the host's transaction, that the parameters of
// the given nodes of graphKey's graph g changed, as executor.Executor.Edit
// does: each node gets a new revision and becomes dirty, and the graph's
// version moves on by one; it returns that new version. Nothing of it is
// visible until the host commits tx, and a rollback leaves no trace: a
// host that keeps its nodes' parameters in the same database saves them
// in tx, calls EditTx, and commits, so that the new parameters and the
// edit are stored together or not at all. Once tx commits, a run in
// flight, in this process or another, that started one of the nodes with
// its old revision conflicts at its next commit, reloads and supersedes
// the node, and a later run makes it again with the new revision, as
// after Edit.
//
// Prefer it to Edit when the parameters live in this Postgres: after a
// save committed on its own, an Edit that fails for good (its ctx ends,
// the database stays down longer than its retries, the process dies) can
// never be noticed again, as the executor keeps only the revision, and
// the next run makes nothing new from the new parameters. With EditTx
// the save and the edit commit or roll back together. Keep Edit for
// parameters kept elsewhere (files, another service), saved first.
//
// EditTx takes the row lock that [Store.Commit] takes: it locks the
// graph's row of the graphs table (SELECT ... FOR UPDATE; the first edit
// of a graph never committed inserts it), so that it waits for a commit
// under way and every commit of the graph, a run's or another edit's,
// waits for tx to end; it then reads the nodes' states and the
// fingerprint of the key's graph under that lock, and writes the states
// and the new version with Commit's statement. Call it last in tx, just
// before its commit, and commit soon: a transaction held open after it
// holds off every run of the key. It costs three round trips: the lock,
// the read and the write. Run tx in READ COMMITTED
// (pgx.TxOptions{IsoLevel: pgx.ReadCommitted}: pgx.Begin takes the
// session's default_transaction_isolation, which a role or a database
// may set stricter); at REPEATABLE READ or SERIALIZABLE, a commit of the
// graph since tx's snapshot makes EditTx fail with SQLSTATE 40001, and
// the host runs its transaction again.
// Two EditTx of one node in tx give it two revisions.
//
// It refuses what Edit refuses, with an error wrapping
// executor.ErrInvalidRequest (see executor.EditChanges, which it
// applies), before any SQL for a bad request (a nil g or tx, an empty
// key, no ID, a malformed or unknown ID, with the *graph.IDError that
// says why), and after reading the key's fingerprint for a g that is not
// the key's graph; a key or node ID that Commit would refuse gives the
// same [*KeyError]. A ctx done gives ctx.Err() before any SQL; a ctx that
// ends during it, an error wrapping ctx.Err(). On any error roll tx back:
// committed, it would save the parameters without the edit, the loss that
// EditTx is for. Errors of the database are wrapped as Commit's are
// ([ErrNotMigrated] for a schema not migrated). EditTx does not retry:
// Postgres ends the transaction on most errors, and the host runs it
// again. A host whose commit of tx failed without an answer (the
// connection lost after COMMIT was sent) cannot know whether it went
// through; running tx again then edits the nodes twice at worst, which
// costs one more regeneration.
//
// g must be the key's graph, as for Edit: a key without states takes any
// graph, and an edit of a deleted graph does not make it the key's again.
// EditTx is safe for concurrent use, on different transactions.
func (s *Store) EditTx(ctx context.Context, tx pgx.Tx, g *graph.Graph, graphKey string, ids ...string) (int64, error) {
	// The request alone first, as Edit checks it, with no states.
	changes, err := executor.EditChanges(g, graphKey, executor.Snapshot{}, time.Time{}, ids...)
	if err != nil {
		return 0, err
	}
	if tx == nil {
		return 0, fmt.Errorf("%w: edit %s: the transaction is nil: pass the host's pgx.Tx, in which it saves the new parameters",
			executor.ErrInvalidRequest, quote(graphKey))
	}
	if err := checkKey(fieldGraphKey, graphKey, MaxGraphKeyBytes); err != nil {
		return 0, err
	}
	// The states to read: the nodes', and the key's fingerprint.
	read := make([]string, 0, len(changes)+1)
	for _, c := range changes {
		if err := checkKey(fieldNodeID, c.ID, MaxNodeIDBytes); err != nil {
			return 0, fmt.Errorf("edit graph %s: %w", quote(graphKey), err)
		}
		read = append(read, c.ID)
	}
	read = append(read, executor.GraphStateID)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for try := 1; ; try++ {
		snap, err := s.lockForEdit(ctx, tx, graphKey, read)
		if err != nil {
			return 0, err
		}
		changes, err := executor.EditChanges(g, graphKey, snap, time.Now(), ids...)
		if err != nil {
			return 0, err
		}
		cols := newStateColumns(changes)
		stmt, args := s.q.commitFirst, []any{graphKey, cols.ids, cols.status, cols.rev, cols.inputHash,
			cols.outputHash, cols.assetRef, cols.attempts, cols.lastError, cols.updatedAt}
		if snap.Version > 0 {
			stmt, args = s.q.commitNext, append(args, snap.Version)
		}
		var version int64
		err = tx.QueryRow(ctx, stmt, args...).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			// At version 0 only, as the row is locked otherwise: another
			// transaction committed the graph's first version since the
			// lock found no row, and the insert, which waited for it,
			// inserted nothing. In READ COMMITTED the next lock finds
			// that row.
			if snap.Version == 0 && try < maxFirstEdits {
				continue
			}
			actual, verr := s.versionOf(ctx, tx, graphKey)
			if verr != nil {
				return 0, verr
			}
			return 0, &executor.ConflictError{GraphKey: graphKey, Expected: snap.Version, Actual: actual}
		}
		if err != nil {
			return 0, s.wrapErr(ctx, err, "edit graph %s at version %d: %d node states", quote(graphKey), snap.Version, len(cols.ids))
		}
		return version, nil
	}
}

// lockForEdit locks the graph's row in tx, if it has one, and returns its
// version (0 without a row) with the states of the nodes ids that the
// graph holds, read after the lock, and so as of the version locked, in
// READ COMMITTED: every writer of a graph's states moves its version on,
// under the same lock. (In one statement, the states would come from the
// snapshot of before a commit that the lock waited for.)
func (s *Store) lockForEdit(ctx context.Context, tx pgx.Tx, graphKey string, ids []string) (executor.Snapshot, error) {
	snap := executor.Snapshot{States: make(map[string]dirty.State, len(ids))}
	err := tx.QueryRow(ctx, s.q.lockGraph, graphKey).Scan(&snap.Version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return executor.Snapshot{}, s.wrapErr(ctx, err, "edit graph %s: lock its version", quote(graphKey))
	}
	rows, err := tx.Query(ctx, s.q.editStates, graphKey, ids)
	if err != nil {
		return executor.Snapshot{}, s.wrapErr(ctx, err, "edit graph %s: read its node states", quote(graphKey))
	}
	defer rows.Close()
	var (
		id, status string
		st         dirty.State
		attempts   int64
		updated    pgtype.Timestamptz
	)
	for rows.Next() {
		if err := rows.Scan(&id, &status, &st.Rev, &st.InputHash, &st.OutputHash, &st.AssetRef, &attempts,
			&st.LastError, &updated); err != nil {
			return executor.Snapshot{}, s.wrapErr(ctx, err, "edit graph %s: read its node states", quote(graphKey))
		}
		st.Status = parseStatus(status)
		st.Attempts = int(attempts)
		st.UpdatedAt = fromTimestamptz(updated)
		snap.States[id] = st
	}
	if err := rows.Err(); err != nil {
		return executor.Snapshot{}, s.wrapErr(ctx, err, "edit graph %s: read its node states", quote(graphKey))
	}
	return snap, nil
}
