package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/pgschema"
)

// HoldOptions tunes [GraphLock.HoldFor] and [GraphLock.GuardFor]. The
// zero value is [GraphLock.Hold]'s and [GraphLock.Guard]'s behaviour.
type HoldOptions struct {
	// Retake is how long the lock tries to take its key's lock again, on
	// a new connection, once its session has ended while the held run
	// goes on (a Postgres restart, a failover, a cut connection), before
	// it gives the lock up as lost and cancels the run. Set it to about
	// the executor's Options.StoreRetry (30 s, say), so that a run that
	// rides out the database's outage keeps its key, and its generator
	// calls under way, too. Default: 0, no re-take: the run is cancelled
	// at once, as under Hold. A negative Retake is refused.
	Retake time.Duration
	// Logger gets a warning for each lock re-taken, and for each re-take
	// that failed. Default: slog.Default().
	Logger *slog.Logger
}

// HoldOptionsError is what [GraphLock.HoldFor] delivers, at once, and
// [GraphLock.GuardFor] returns, for options they refuse: they then
// neither guard the run nor unlock anything.
type HoldOptionsError struct {
	// Field is the refused option's name, such as "Retake".
	Field string
	// Value is the refused value, as text.
	Value string
}

func (e *HoldOptionsError) Error() string {
	return fmt.Sprintf("pgstore: GraphLock.HoldFor or GuardFor: HoldOptions.%s %s is negative: give 0 (no re-take) or a positive duration",
		e.Field, e.Value)
}

// Unwrap returns executor.ErrInvalidRequest: bad input, never to retry
// as it is.
func (e *HoldOptionsError) Unwrap() error { return executor.ErrInvalidRequest }

// Bounds of the backoff between a re-take's tries: each waits a random
// time between half its step and its step, the step doubling from
// retakeStepMin up to retakeStepMax.
const (
	retakeStepMin = 100 * time.Millisecond
	retakeStepMax = 2 * time.Second
)

// HoldFor is [GraphLock.Hold] with options: with a HoldOptions.Retake
// above zero, a session of the lock that ends while the held run goes on
// does not cancel the run at once. The lock's watcher, which finds the
// end, takes the key's lock again, with pg_try_advisory_lock on a new
// connection from the store's pool, retried with a short jittered
// backoff (100 ms doubling up to 2 s) for up to Retake; each try is
// bounded by what is left of Retake. If it gets it, the lock is held by
// the new session from then on (Check asks about it, and Unlock, the
// host's or Hold's at the run's end, frees it and closes its
// connection), the run goes on, its generator calls under way uncut,
// HoldOptions.Logger gets a warning, and [GraphLock.Lost] stays open.
// The re-take fails, and the lock is then lost as under Hold (Lost is
// closed, the run cancelled with [CancelledByLockLost] and a cause
// wrapping [ErrLockLost], and the channel receives an error wrapping
// ErrLockLost once the run has ended) when another session holds the
// key (another process took it meanwhile, and may be resuming the run:
// a try that finds the key held by the lock's own ended session, which
// the server frees a moment after it ends it, tries again; that session
// is told by its PID and its start, as the server gives an ended
// session's PID to later ones), when Retake
// passes without a try that succeeded, or when an [GraphLock.Unlock] of
// the host's comes during it (it does not wait for it), or a
// [GraphLock.Check] whose ctx ends before it does (Check waits for it
// within its ctx). So Lost is closed only when the
// lock is lost for good, never while a re-take is tried nor once it has
// succeeded; a [GraphLock.Guard] beside HoldFor sees the same. A lock
// re-taken then lost again is re-taken again, each time within a Retake
// of its own. A run that ends during a re-take ends it too (Hold's
// unlock stops it): the lock was not held to the run's end, and the
// channel receives an error wrapping ErrLockLost. After a re-take the
// channel delivers as under Hold: nil once the new session's lock is
// freed. Losses found otherwise than by the watcher's read (a Check or
// an Unlock that finds the session gone, or moved by a pooler) are not
// re-taken.
//
// The window: from the session's end to the re-take, the key is not
// locked. Another process's recovery ([Store.ResumeLeftRunning], or
// [Store.Maintain]'s pass) may then take the key, find the run's record
// still running and resume it, beside this run: the re-take is then
// refused and this run cancelled, but the generator calls that both made
// in the meantime are paid twice, the exposure the lock exists to avoid,
// for as long as the window lasts. The store's commits compare and swap
// each graph's version, so that the node states and assets stay right
// (the two runs' results never mix), as for any two runs of a key. Keep
// Retake short where that is dearer than a cancelled run's calls
// (resumed by Maintain or [Store.ResumeCancelled] anyway), and run
// Maintain's passes less often than Retake where it is cheaper.
//
// Options it refuses (a negative Retake) give a [*HoldOptionsError] on
// the channel at once, as a second Hold's [*HoldError]: it neither
// guards the run nor unlocks anything. A nil run panics (in the caller).
func (l *GraphLock) HoldFor(run *executor.Run, opts HoldOptions) <-chan error {
	return l.holdFor(context.Background(), run, opts)
}

// GuardFor is [GraphLock.Guard] with options, for a host that runs
// several runs in turn under one lock (a run queued after another takes
// the lock over) and unlocks it itself: it cancels run if the lock is
// found lost before the run ends, as Guard does, and, with a
// HoldOptions.Retake above zero, a session of the lock that ends while
// run goes on is re-taken as under [GraphLock.HoldFor] (the same tries,
// the same window, the same warnings to HoldOptions.Logger), and Lost is
// closed, and run cancelled with [CancelledByLockLost], only if the
// re-take fails. Unlike HoldFor, it never unlocks: the host calls
// [GraphLock.Unlock] once it is done with the lock, and may call
// GuardFor for the lock's next run once run has ended. The re-take is
// made for the run of the last GuardFor while it goes on; a session that
// ends between two runs is lost at once, as under Guard. While
// [GraphLock.Hold] or HoldFor holds the lock for a run, Hold's options
// rule. A run that ends during a re-take does not stop it (the host's
// Unlock does). It returns at once: nil, or a [*HoldOptionsError] for options
// it refuses (a negative Retake), guarding nothing then. A nil run
// panics (in the caller).
func (l *GraphLock) GuardFor(run *executor.Run, opts HoldOptions) error {
	if run == nil {
		panic("pgstore: GraphLock.GuardFor with a nil run")
	}
	if opts.Retake < 0 {
		return &HoldOptionsError{Field: "Retake", Value: opts.Retake.String()}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l.guarded.Store(&holding{id: run.ID(), run: run, opts: opts})
	l.Guard(run)
	return nil
}

// retake is the watcher's re-take of the lock for held run h, once its
// read found the session ended with cause (see HoldFor). It returns true
// with the lock held by a new connection, which the watcher then reads;
// false once it has recorded the loss, or, stopped by pause (ctx ends),
// with readErr set to cause for pause's caller. Either way the ended
// connection is closed: a read that timed out (TCP keepalives giving up
// on a dead network) left it open, which the server's end closes, and
// Check and Unlock then find it closed and say ErrLockLost at once,
// where a statement on it would wait for their ctx on a dead network.
func (l *GraphLock) retake(ctx context.Context, h *holding, cause error) (retaken bool) {
	log := h.opts.Logger.With("schema", l.schema, "graph_key", l.graphKey, "run_id", h.id)
	ctx, cancel := context.WithTimeout(ctx, h.opts.Retake)
	defer cancel()
	defer func() {
		if !retaken {
			closeConn(ctx, l.conn)
		}
	}()
	ended, endedStart := l.pid, l.started
	stopped := func() bool {
		if l.stopping.Load() {
			l.readErr = cause
			return true
		}
		return false
	}
	step := retakeStepMin
	for tries := 1; ; tries++ {
		conn, pid, started, err := l.s.tryTake(ctx, l.key, l.graphKey, ended, endedStart)
		if err == nil {
			l.swapMu.Lock()
			if l.stopping.Load() {
				l.swapMu.Unlock()
				closeConn(ctx, conn) // the server frees the new lock with the session
				l.readErr = cause
				return false
			}
			old := l.conn
			l.conn, l.pid, l.started = conn, pid, started
			l.swapMu.Unlock()
			closeConn(ctx, old)
			log.Warn("pgstore: graph lock re-taken on a new session after its session ended; "+
				"the run goes on, and another process may have resumed it meanwhile",
				"ended_pid", ended, "pid", pid, "tries", tries, "cause", cause)
			return true
		}
		if stopped() {
			return false
		}
		var locked *LockedError
		if errors.As(err, &locked) {
			l.lose(fmt.Errorf("%w; its re-take found the key held by another session", cause), false)
			log.Warn("pgstore: graph lock's session ended and another session holds the key: the run is cancelled",
				"ended_pid", ended, "tries", tries, "cause", cause)
			return false
		}
		t := time.NewTimer(step/2 + rand.N(step/2))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if stopped() {
			return false
		}
		if ctx.Err() != nil {
			l.lose(fmt.Errorf("%w; its re-take failed for %v (%d tries): %w", cause, h.opts.Retake, tries, err), false)
			log.Warn("pgstore: graph lock's session ended and its re-take failed: the run is cancelled",
				"ended_pid", ended, "tries", tries, "retake", h.opts.Retake, "cause", cause, "err", err)
			return false
		}
		step = min(2*step, retakeStepMax)
	}
}

// errEndedHolds says that a re-take's try found the key's lock held by
// the lock's ended session, which the server frees a moment after it
// ends it: the try is made again.
var errEndedHolds = errors.New("the ended session still holds the lock")

// sessionStart is the SQL of when the statement's session started
// (pg_stat_activity's backend_start).
const sessionStart = `(SELECT a.backend_start FROM pg_catalog.pg_stat_get_activity(pg_backend_pid()) AS a)`

// tryTake takes the lock of key with pg_try_advisory_lock on a
// connection of its own, from the pool, with its timeouts off, as
// TryLockGraph does, and returns it with its session's PID and start. A
// key held by another session than ended gives a *LockedError; one held
// by ended alone (or freed during the try), an error wrapping
// errEndedHolds. A holder with ended's PID is ended unless endedStart
// and the holder's start are both known and differ: the server gives an
// ended backend's PID to a later one.
func (s *Store) tryTake(ctx context.Context, key int64, graphKey string, ended int32,
	endedStart *time.Time) (*pgx.Conn, int32, *time.Time, error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, 0, nil, err
	}
	var ok bool
	var pid int32
	var started *time.Time
	var holders []int32
	err = pc.QueryRow(ctx, `SELECT l, pg_backend_pid(), `+sessionStart+`, `+pgschema.Untimed("l", false)+`,
	ARRAY(SELECT k.pid FROM pg_catalog.pg_locks AS k WHERE NOT l AND k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
		AND k.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
		AND ((k.classid::bigint << 32) | k.objid::bigint) = $1
		AND NOT (k.pid = $2 AND COALESCE((SELECT a.backend_start = $3
			FROM pg_catalog.pg_stat_get_activity(k.pid) AS a), true)))
FROM pg_try_advisory_lock($1) AS l`, key, ended, endedStart).Scan(&ok, &pid, &started, nil, &holders)
	if err != nil {
		closeConn(ctx, pc.Hijack())
		return nil, 0, nil, err
	}
	if !ok {
		pc.Release()
		if len(holders) == 0 {
			return nil, 0, nil, fmt.Errorf("%w (server session %d)", errEndedHolds, ended)
		}
		return nil, 0, nil, &LockedError{Schema: s.schema, GraphKey: graphKey}
	}
	return pc.Hijack(), pid, started, nil
}
