package pgstore

import (
	"context"
	"fmt"

	"github.com/regengraph/regen/executor"
)

// graphLockedSQL reports whether a session holds the advisory lock of key
// $1 (as [Store.GraphLockKey] makes it, and pg_advisory_lock takes it:
// objsubid 1) in the current database. A session that waits for it has
// a row too, not granted.
const graphLockedSQL = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks
	WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
		AND ((classid::bigint << 32) | objid::bigint) = $1)`

// GraphLocked reports whether some session holds the lock of graphKey
// now (the lock of [Store.LockGraph], on [Store.GraphLockKey] of
// graphKey), in this process or another, without taking it nor waiting
// for it: one read of pg_locks, on a connection of the pool, which it
// gives back.
// The answer may be out of date as soon as it is given: a run's lock is
// taken before its run starts and freed after it ends, at any time.
//
// It tells a live run from a dead one, where every run of the store's
// keys runs under its key's lock (the recipe of "Locking a graph key" in
// the package documentation, [GraphLock.Hold], [Store.ResumeLeftRunning]
// and [Store.ResumeCancelled] do): a record that says running whose key
// no session holds was left by a process that is gone, as a crash
// leaves it. To find the runs left running without touching them (an
// on-call's check, or an alert), list the records with
// [Store.RunsByStatus] of executor.RunRunning; for each, ask GraphLocked
// of its GraphKey; if false, read the record again with [Store.GetRun]:
// a record that still says running is a dead run's (its run may have
// ended between the list and the question, its lock freed after its
// record said so). [Store.ResumeLeftRunning] resumes such runs, under
// the lock; executor.Executor.Abandon settles one for good. A key found
// locked has a live run, or a live process about to start one: the
// record's own run, or, for a record that a crash left, a later run of
// the key that another process started (ResumeLeftRunning resumes the
// record once that process frees the key). pg_locks, with the query in
// [Store.GraphLockKey]'s documentation, gives the pid of the session
// that holds it, and pg_stat_activity that session's client. A
// process that vanished with its host (no word to the server) holds its
// locks until the server's TCP keepalives give up on its connections.
//
// The pool's connection may be one of a pooler in transaction mode: the
// read needs no session of its own. Reading pg_locks costs O(the locks
// the server holds), under short locks of the server's lock manager:
// cheap for a check now and then, not for every request. A graph key
// that LockGraph refuses (empty, longer than [MaxGraphKeyBytes], or not
// valid UTF-8 without NUL) gives the same [*KeyError], before any SQL.
// It returns ctx.Err() if ctx is done, and an error wrapping it if ctx
// ends during the read.
func (s *Store) GraphLocked(ctx context.Context, graphKey string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if graphKey == "" {
		return false, fmt.Errorf("graph locked: %w", executor.Permanent(&KeyError{Field: fieldGraphKey, Max: MaxGraphKeyBytes, Empty: true}))
	}
	if err := checkKey(fieldGraphKey, graphKey, MaxGraphKeyBytes); err != nil {
		return false, fmt.Errorf("graph locked: %w", err)
	}
	var held bool
	if err := s.pool.QueryRow(ctx, graphLockedSQL, s.GraphLockKey(graphKey)).Scan(&held); err != nil {
		return false, s.wrapErr(ctx, err, "graph locked %s", quote(graphKey))
	}
	return held, nil
}
