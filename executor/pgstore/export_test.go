package pgstore

import (
	"context"
	"sync"
	"time"
)

// SetPruneBatch sets how many rows one prune statement of s deletes.
func SetPruneBatch(s *Store, n int) { s.batch = n }

// PruneAssetsSQL is the statement of PruneAssets for a schema.
func PruneAssetsSQL(schema string) string { return newQueries(schema).pruneAssets }

// CommitSQL is the statement of Commit at a version above 0, which swaps
// the graph's version and writes node states.
func CommitSQL(schema string) string { return newQueries(schema).commitNext }

// PruneRunsSQL returns PruneRuns's statement in schema.
func PruneRunsSQL(schema string) string { return newQueries(schema).pruneRuns }

// RunsRunningSQL returns the statement of RunsByStatus(RunRunning) in
// schema.
func RunsRunningSQL(schema string) string { return newQueries(schema).runsRunning }

// UnlockInSession frees l's advisory lock in l's own session behind its
// back, the connection kept: the session no longer holds the lock, as
// after a pooler in transaction mode moved the connection to another
// session, and only Check or Unlock can find it.
func UnlockInSession(ctx context.Context, l *GraphLock) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pause()
	defer l.watch()
	_, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.key)
	return err
}

// StopWatching stops l's watcher and leaves it stopped, as Unlock's or
// Check's pause does: the watcher then does not see the connection end,
// as when the session ends a moment before an Unlock interrupts its read.
func StopWatching(l *GraphLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pause()
}

// ReadStopped reads l's connection once, within a second, as a watcher
// does that pause stopped just as its read returned: a read that finds
// the session ended closes the connection, and the stopped watcher
// leaves the failure to the next statement. Call it after StopWatching.
func ReadStopped(ctx context.Context, l *GraphLock) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := l.conn.PgConn().WaitForNotification(ctx)
	if err != nil && l.conn.IsClosed() {
		l.readErr = err // as the stopped watcher leaves it
	}
	return err
}

// SetUnlockTimeout sets the bound of the Unlock that Hold makes at its
// run's end (10 s otherwise). Call it before Hold.
func SetUnlockTimeout(l *GraphLock, d time.Duration) { l.unlockTimeout = d }

// Busy takes l's mutex, as a Check or an Unlock under way holds it, and
// returns the func that lets it go (once, however often it is called).
func Busy(l *GraphLock) (done func()) {
	l.mu.Lock()
	return sync.OnceFunc(l.mu.Unlock)
}

// BeforeRelease has l's Hold call f once its run has ended, before it
// unlocks, as when its goroutine is scheduled late. Call it before Hold.
func BeforeRelease(l *GraphLock, f func()) { l.beforeRelease = f }

// AfterClaim has l's Hold call f, in the caller, once it has taken the
// lock for its run and before its goroutine starts, as when a host's
// Unlock or the watcher runs beside Hold. Call it before Hold.
func AfterClaim(l *GraphLock, f func()) { l.afterClaim = f }

// WatcherSaw has l's watcher call f once its read has found the
// connection ended, before it records the loss, as when the watcher's
// goroutine is scheduled late.
func WatcherSaw(l *GraphLock, f func()) { l.watcherSaw.Store(&f) }

// RunsCancelledSQL returns the statement of RunsByStatus(RunCancelled) in
// schema.
func RunsCancelledSQL(schema string) string { return newQueries(schema).runsCancelled }

// CheckWaits has l's Check call f once it waits for a re-take under way
// (see HoldFor), without the lock's mutex.
func CheckWaits(l *GraphLock, f func()) { l.checkWaits.Store(&f) }

// SetSessionPID makes l take pid for the server session that took its
// lock, as when the server gave the ended session's PID to a new one.
// Call it from WatcherSaw's f, in the watcher.
func SetSessionPID(l *GraphLock, pid int32) { l.pid = pid }
