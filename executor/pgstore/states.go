package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/pgschema"
)

// Load returns the graph's node states and version, read in one statement
// and so from one snapshot: version 0 and an empty map for a graph never
// committed (or with a key over [MaxGraphKeyBytes]), and an empty map at
// the tombstone's version for a graph deleted by [Store.DeleteGraph]. The
// caller owns the map. Times come back in UTC, and a zero UpdatedAt as the
// zero time. It costs one round trip and O(nodes). It returns ctx.Err()
// if ctx is done.
func (s *Store) Load(ctx context.Context, graphKey string) (executor.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return executor.Snapshot{}, err
	}
	snap := executor.Snapshot{States: make(map[string]dirty.State)}
	if !fits(graphKey, MaxGraphKeyBytes) {
		return snap, nil // never committed: Commit would have failed
	}
	rows, err := s.pool.Query(ctx, s.q.load, graphKey)
	if err != nil {
		return executor.Snapshot{}, s.wrapErr(ctx, err, "load graph %s", quote(graphKey))
	}
	defer rows.Close()
	var (
		hasState bool
		id       string
		status   string
		st       dirty.State
		attempts int64
		updated  pgtype.Timestamptz
	)
	for rows.Next() {
		if err := rows.Scan(&snap.Version, &hasState, &id, &status, &st.Rev, &st.InputHash, &st.OutputHash,
			&st.AssetRef, &attempts, &st.LastError, &updated); err != nil {
			return executor.Snapshot{}, s.wrapErr(ctx, err, "load graph %s", quote(graphKey))
		}
		if !hasState {
			continue
		}
		st.Status = parseStatus(status)
		st.Attempts = int(attempts)
		st.UpdatedAt = fromTimestamptz(updated)
		snap.States[id] = st
	}
	if err := rows.Err(); err != nil {
		return executor.Snapshot{}, s.wrapErr(ctx, err, "load graph %s", quote(graphKey))
	}
	return snap, nil
}

// Commit applies changes atomically if the graph is at version expect,
// and returns expect+1. It is one READ COMMITTED transaction of one
// statement: a compare-and-swap of the graph's row in the graphs table
// (an INSERT ... ON CONFLICT DO NOTHING for the first commit, at expect
// 0; an UPDATE ... WHERE version = expect after that), and, if it
// succeeded, one upsert of all the changed node states. It costs two
// round trips: BEGIN with the statement, then COMMIT (three on a
// conflict: the version found, then ROLLBACK). Later changes to the
// same node win; nodes not in changes keep their states; an empty change
// list still bumps the version.
//
// A graph key or node ID longer than [MaxGraphKeyBytes] or
// [MaxNodeIDBytes], or not valid UTF-8 without NUL, gives an error
// wrapping a [*KeyError] (in executor.Permanent), before any SQL; a
// state's InputHash, OutputHash, AssetRef or LastError that is not valid
// UTF-8 without NUL, a [*TextError] so wrapped. If the graph is not at expect,
// Commit applies nothing and returns a
// [*executor.ConflictError] with the version it found. Of concurrent
// commits at one version, exactly one wins, first commits of a new graph
// included: the others wait for the winner's row lock, then find the
// version moved. Commit does not keep changes. It returns ctx.Err(), with
// no effect, if ctx is done when it is called; if ctx ends during the
// transaction, the transaction is rolled back unless COMMIT was already
// sent, in which case, as for any error at that point, the commit may or
// may not have been applied.
func (s *Store) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := checkKey(fieldGraphKey, graphKey, MaxGraphKeyBytes); err != nil {
		return 0, err
	}
	for _, c := range changes {
		if err := checkKey(fieldNodeID, c.ID, MaxNodeIDBytes); err != nil {
			return 0, fmt.Errorf("commit graph %s: %w", quote(graphKey), err)
		}
		if err := checkState(c.ID, c.State); err != nil {
			return 0, fmt.Errorf("commit graph %s: %w", quote(graphKey), err)
		}
	}
	if expect < 0 { // no graph is ever at a negative version
		actual, err := s.versionOf(ctx, s.pool, graphKey)
		if err != nil {
			return 0, err
		}
		return 0, &executor.ConflictError{GraphKey: graphKey, Expected: expect, Actual: actual}
	}
	cols := newStateColumns(changes)
	stmt, args := s.q.commitFirst, []any{graphKey, cols.ids, cols.status, cols.rev, cols.inputHash,
		cols.outputHash, cols.assetRef, cols.attempts, cols.lastError, cols.updatedAt}
	if expect > 0 {
		stmt, args = s.q.commitNext, append(args, expect)
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, s.wrapErr(ctx, err, "commit graph %s: acquire a connection", quote(graphKey))
	}
	defer conn.Release()
	// BEGIN and the statement go in one round trip; COMMIT in a second,
	// once the statement succeeded, so that a commit whose context ends
	// before then is rolled back.
	defer pgschema.RollbackConn(ctx, conn)
	batch := &pgx.Batch{}
	batch.Queue(pgschema.BeginReadCommitted)
	batch.Queue(stmt, args...)
	results := conn.SendBatch(ctx, batch)
	var version int64
	_, err = results.Exec()
	if err == nil {
		err = results.QueryRow().Scan(&version)
	}
	if cerr := results.Close(); cerr != nil && (err == nil || errors.Is(err, pgx.ErrNoRows)) {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// Lost: read the version someone else committed. In READ
		// COMMITTED this statement sees it.
		actual, err := s.versionOf(ctx, conn, graphKey)
		if err != nil {
			return 0, err
		}
		return 0, &executor.ConflictError{GraphKey: graphKey, Expected: expect, Actual: actual}
	}
	if err != nil {
		return 0, s.wrapErr(ctx, err, "commit graph %s at version %d: %d node states", quote(graphKey), expect, len(cols.ids))
	}
	tag, err := conn.Exec(ctx, "COMMIT")
	if err == nil && tag.String() != "COMMIT" {
		err = pgx.ErrTxCommitRollback
	}
	if err != nil {
		return 0, s.wrapErr(ctx, err, "commit graph %s at version %d", quote(graphKey), expect)
	}
	return version, nil
}

// querier is what versionOf needs of a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// versionOf returns the graph's committed version, 0 if it has none.
func (s *Store) versionOf(ctx context.Context, q querier, graphKey string) (int64, error) {
	if !fits(graphKey, MaxGraphKeyBytes) {
		return 0, nil
	}
	var v int64
	err := q.QueryRow(ctx, s.q.version, graphKey).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.wrapErr(ctx, err, "read version of graph %s", quote(graphKey))
	}
	return v, nil
}

// stateColumns are changes as column arrays for the unnest upsert, one
// entry per node: the last change of each node, in the order of the
// nodes' first changes. An upsert must not touch a row twice.
type stateColumns struct {
	ids                                        []string
	status                                     []string
	rev, attempts                              []int64
	inputHash, outputHash, assetRef, lastError []string
	updatedAt                                  []pgtype.Timestamptz
}

func newStateColumns(changes []executor.Change) stateColumns {
	n := len(changes)
	c := stateColumns{
		ids: make([]string, 0, n), status: make([]string, 0, n), rev: make([]int64, 0, n),
		attempts: make([]int64, 0, n), inputHash: make([]string, 0, n), outputHash: make([]string, 0, n),
		assetRef: make([]string, 0, n), lastError: make([]string, 0, n), updatedAt: make([]pgtype.Timestamptz, 0, n),
	}
	index := make(map[string]int, n)
	for _, ch := range changes {
		st := ch.State
		i, seen := index[ch.ID]
		if !seen {
			i = len(c.ids)
			index[ch.ID] = i
			c.ids = append(c.ids, ch.ID)
			c.status, c.rev, c.attempts = append(c.status, ""), append(c.rev, 0), append(c.attempts, 0)
			c.inputHash, c.outputHash = append(c.inputHash, ""), append(c.outputHash, "")
			c.assetRef, c.lastError = append(c.assetRef, ""), append(c.lastError, "")
			c.updatedAt = append(c.updatedAt, pgtype.Timestamptz{})
		}
		c.status[i], c.rev[i], c.attempts[i] = st.Status.String(), st.Rev, int64(st.Attempts)
		c.inputHash[i], c.outputHash[i] = st.InputHash, st.OutputHash
		c.assetRef[i], c.lastError[i] = st.AssetRef, st.LastError
		c.updatedAt[i] = toTimestamptz(st.UpdatedAt)
	}
	return c
}

// parseStatus reads a status column: a status's name. A name this version
// does not know gives an out-of-range status, which [dirty.States]
// records as dirty, so that the node is regenerated rather than trusted.
func parseStatus(name string) dirty.Status {
	var st dirty.Status
	if st.UnmarshalText([]byte(name)) != nil {
		return dirty.Status(math.MaxUint8)
	}
	return st
}
