package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/pgschema"
)

// Errors of the graph locks, for errors.Is.
var (
	// ErrGraphLocked: [Store.TryLockGraph] found the graph key's lock held
	// by another session (another process, or another GraphLock of this
	// one). A [*LockedError] wraps it.
	ErrGraphLocked = errors.New("pgstore: graph locked")
	// ErrLockLost: a [GraphLock] does not hold its lock any more, or may
	// not: its connection ended (the server ended the session, or the
	// network failed) or moved to another server session (a pooler in
	// transaction mode) before Unlock, Check or Hold was called after
	// Unlock, or an Unlock freed it before the end of the run that
	// [GraphLock.Hold] held it for. Another process may have taken the
	// lock since.
	ErrLockLost = errors.New("pgstore: graph lock lost")
)

// CancelledByLockLost is the cancel code that [GraphLock.Guard] and
// [GraphLock.Hold] give the run they cancel when the lock is lost
// (executor.CancelCode, with the loss, an error wrapping [ErrLockLost],
// as the cause): the run's record says it in Record.CancelledBy, so that
// a host finds the runs to resume that a lost lock cancelled, as those
// of its own shutdown, by code.
const CancelledByLockLost = "lock-lost"

// HoldError is what [GraphLock.Hold] delivers, at once, when the lock is
// held for a run already: a lock is held for one run, and is unlocked
// when that run ends.
type HoldError struct {
	// GraphKey is the graph key that the lock is of.
	GraphKey string
	// RunID is the ID of the run that the lock is held for.
	RunID string
}

func (e *HoldError) Error() string {
	return fmt.Sprintf("pgstore: GraphLock.Hold: the lock of graph %s is held for run %s already, "+
		"and is unlocked when that run ends: take a lock of its own for each run", quote(e.GraphKey), quote(e.RunID))
}

// unlockTimeout bounds the Unlock that Hold makes at its run's end, and
// ResumeLeftRunning's of a run it did not resume: on a dead network the
// server cannot be told, and the connection is closed anyway.
const unlockTimeout = 10 * time.Second

// LockedError reports that [Store.TryLockGraph] found a graph key's lock
// held by another session: a run of the key goes on elsewhere, or
// another process is about to start or resume one. It wraps
// [ErrGraphLocked], and is executor.ErrBusy too (errors.Is finds both,
// and errors.As the *LockedError): a good request refused for a run or
// call under way, as the executor's own refusal of a second Resume of a
// key, to retry once it has ended (HTTP 409, say), never bad input.
type LockedError struct {
	// Schema is the store's schema, part of the lock's key.
	Schema string
	// GraphKey is the graph key whose lock is held.
	GraphKey string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%v: graph %s of schema %s is locked by another session: "+
		"wait for it with LockGraph, or start or resume no run of the key",
		ErrGraphLocked, quote(e.GraphKey), e.Schema)
}

// Unwrap returns [ErrGraphLocked].
func (e *LockedError) Unwrap() error { return ErrGraphLocked }

// Is reports whether target is executor.ErrBusy, so that
// errors.Is(err, executor.ErrBusy) holds for a LockedError.
func (e *LockedError) Is(target error) bool { return target == executor.ErrBusy }

// lockKeyPrefix starts what GraphLockKey hashes; Migrate's lock
// (pgschema.MigrateLockKey) hashes another prefix.
const lockKeyPrefix = "github.com/regengraph/regen/executor/pgstore.LockGraph:"

// GraphLockKey returns the 64-bit key of the Postgres advisory lock that
// [Store.LockGraph] takes for graphKey: the FNV-1a 64-bit hash of
// "github.com/regengraph/regen/executor/pgstore.LockGraph:", the store's
// schema, ":" and the graph key, as a signed integer. (A schema name
// holds no ":", so that no two pairs of a schema and a key hash the same
// text.) pg_locks shows it as a lock of locktype 'advisory' with objsubid
// 1, its high 32 bits in classid and its low 32 bits in objid, in the
// database of the store's pool (pg_locks shows every database's locks,
// and a store of the same schema in another database of the server has
// the same keys): a host finds the session that holds a key's lock with
//
//	SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
//		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
//		AND ((classid::bigint << 32) | objid::bigint) = <key>
//
// Two keys whose hashes collide (of two graph keys, or of a graph key and
// another advisory lock of the database, such as Migrate's or a host's
// own) share one lock: a holder of the one then keeps the other waiting,
// which costs time but never lets two holders in at once. The odds are
// those of a 64-bit hash: for a million graph keys, about one in 36
// million that any two collide.
func (s *Store) GraphLockKey(graphKey string) int64 {
	h := fnv.New64a()
	h.Write([]byte(lockKeyPrefix + s.schema + ":" + graphKey))
	return int64(h.Sum64())
}

// LockGraph takes the lock of graphKey, waiting until no other session
// holds it or ctx ends, and returns it held. A host takes it before it
// starts or resumes a run of the key, and unlocks it once the run has
// ended, which [GraphLock.Hold] does (see "Locking a graph key" in the
// package documentation), so
// that one process at a time runs the key: a Resume of a run that goes
// on in another process, or a second start of the same work, then waits
// (or, with [Store.TryLockGraph], is refused) rather than paying its
// provider for every node twice.
//
// The lock is a Postgres session advisory lock (pg_advisory_lock) on
// [Store.GraphLockKey] of graphKey, held by a connection of its own,
// taken from the pool (pgxpool.Conn.Hijack), which then neither counts
// against the pool's MaxConns nor goes back to it: each lock held or
// waited for is one connection more to the server, which its
// max_connections must allow for (see "Sizing connections" in the
// package documentation: MaxConns + the locks, per process). Postgres frees the
// lock when that session ends: at Unlock, and also when the holder's
// process dies or its connection drops, without an Unlock. Closing the
// pool does not free it. Session locks are reentrant for one session,
// but each GraphLock has a session of its own: a second LockGraph of the
// key in the same process waits for the first GraphLock, as another
// process would.
//
// ctx bounds the wait: once it ends, LockGraph stops the server's wait
// (a cancel request), closes the connection, and returns an error
// wrapping ctx.Err(), holding nothing. ctx alone: LockGraph turns
// statement_timeout, lock_timeout and idle_session_timeout off on the
// lock's connection before it waits, so that those of the role or the
// pool end neither the wait nor, later, the idle session that holds the
// lock (TryLockGraph turns them off once it has the lock). A graph key longer than
// [MaxGraphKeyBytes], or not valid UTF-8 without NUL, which no graph of
// the store can have, gives a [*KeyError] (wrapped in executor.Permanent)
// before any SQL, as Commit does; so does an empty one, which the
// executor refuses as a RunRequest's GraphKey: that KeyError says Empty.
// Each wraps executor.ErrInvalidRequest, as the executor's refusal of
// such a GraphKey does.
func (s *Store) LockGraph(ctx context.Context, graphKey string) (*GraphLock, error) {
	return s.lockGraph(ctx, graphKey, true)
}

// TryLockGraph takes the lock of graphKey if no other session holds it,
// and returns at once: the lock held, or, if another session holds it, a
// [*LockedError] (wrapping [ErrGraphLocked] and executor.ErrBusy). A host
// calls it where it must not wait: a Resume asked for while the run goes
// on in another process is then refused, and the live run's record left
// as it is. It is [Store.LockGraph] otherwise; a refusal gives the
// connection back to the pool. It returns ctx.Err() if ctx is done.
func (s *Store) TryLockGraph(ctx context.Context, graphKey string) (*GraphLock, error) {
	return s.lockGraph(ctx, graphKey, false)
}

func (s *Store) lockGraph(ctx context.Context, graphKey string, wait bool) (*GraphLock, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if graphKey == "" {
		// The executor refuses an empty RunRequest.GraphKey: no run of
		// the store has one, and no run can be locked under it.
		return nil, fmt.Errorf("lock graph: %w", executor.Permanent(&KeyError{Field: fieldGraphKey, Max: MaxGraphKeyBytes, Empty: true}))
	}
	if err := checkKey(fieldGraphKey, graphKey, MaxGraphKeyBytes); err != nil {
		return nil, fmt.Errorf("lock graph: %w", err)
	}
	key := s.GraphLockKey(graphKey)
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, s.wrapErr(ctx, err, "lock graph %s", quote(graphKey))
	}
	var conn *pgx.Conn
	var pid int32
	var started *time.Time
	if wait {
		// The wait may be long: the connection leaves the pool first.
		conn = pc.Hijack()
		// A role or the pool may set timeouts that would end the wait,
		// or the session while it holds the lock: off, on this
		// connection, which is the lock's alone and never goes back to
		// the pool.
		_, err = conn.Exec(ctx, `SELECT `+pgschema.Untimed("true", false))
		if err == nil {
			err = conn.QueryRow(ctx, `SELECT pg_backend_pid(), `+sessionStart+` FROM (SELECT pg_advisory_lock($1)) AS l`,
				key).Scan(&pid, &started)
		}
		if err != nil {
			if ctx.Err() != nil {
				// The server may still be waiting for the lock, and
				// would take it later for a session nobody uses.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pgschema.RollbackTimeout)
				_ = conn.PgConn().CancelRequest(cctx)
				cancel()
			}
			closeConn(ctx, conn)
			return nil, s.wrapErr(ctx, err, "lock graph %s", quote(graphKey))
		}
	} else {
		var ok bool
		// The timeouts go off only with the lock taken: a refused
		// connection goes back to the pool as it was.
		err = pc.QueryRow(ctx, `SELECT l, pg_backend_pid(), `+sessionStart+`, `+pgschema.Untimed("l", false)+
			` FROM pg_try_advisory_lock($1) AS l`, key).Scan(&ok, &pid, &started, nil)
		if err != nil {
			// Whatever the server did, the session ends with the
			// connection, and holds nothing.
			closeConn(ctx, pc.Hijack())
			return nil, s.wrapErr(ctx, err, "lock graph %s", quote(graphKey))
		}
		if !ok {
			pc.Release() // holding nothing: back to the pool
			return nil, &LockedError{Schema: s.schema, GraphKey: graphKey}
		}
		conn = pc.Hijack()
	}
	l := &GraphLock{s: s, schema: s.schema, graphKey: graphKey, key: key, conn: conn, pid: pid, started: started,
		lost: make(chan struct{}), unlockTimeout: unlockTimeout}
	l.watch()
	return l, nil
}

// GraphLock is a held lock of one graph key, from [Store.LockGraph] or
// [Store.TryLockGraph]: a Postgres session advisory lock, held by a
// connection of its own until [GraphLock.Unlock], or until that
// connection ends. Its methods are safe for concurrent use.
//
// A goroutine of the lock reads its idle connection, so that it learns
// at once when the server ends the session (pg_terminate_backend, a
// restart, a failover) or the connection closes: [GraphLock.Lost] is
// then closed, and the lock is not held any more. A network that fails
// without a word is found when the client's TCP gives up on the
// connection (TCP keepalives; pgx's default dialer sends the first after
// 5 minutes idle), or at once by [GraphLock.Check], which asks the
// server. The goroutine ends at Unlock, or when the lock is lost: call
// Unlock in every case, or have [GraphLock.Hold] call it when the run
// under the lock ends.
type GraphLock struct {
	s                *Store // whose pool a re-take (HoldFor) takes its connection from
	schema, graphKey string
	key              int64
	// conn and pid are the lock's connection and the server session that
	// took the lock; a re-take (see HoldFor) replaces them and started, in the
	// watcher, under swapMu: pause reads conn under swapMu, and the
	// others once the watcher has returned.
	conn *pgx.Conn
	pid  int32
	// started is when the session that took the lock started
	// (pg_stat_activity's backend_start), or nil if unknown, which tells
	// it from a later one given its PID; replaced with conn and pid.
	started       *time.Time
	swapMu        sync.Mutex
	stopWatch     context.CancelFunc // ends the watcher's re-take; set by watch
	unlockTimeout time.Duration      // bounds Hold's Unlock: unlockTimeout, but in tests

	lost     chan struct{} // closed by lose
	lostOnce sync.Once
	lostErr  error // why the lock was lost; set before lost is closed
	// lostLate says that the session is known to have ended after the
	// end of the run that Hold holds the lock for; set before lost is
	// closed.
	lostLate bool

	mu       sync.Mutex    // serialises Check and Unlock, which use conn
	stopping atomic.Bool   // tells the watcher that pause interrupts its read
	watching chan struct{} // closed when the watcher returns
	unlocked atomic.Bool   // set by Unlock, under mu; Hold reads it without
	// unlockedLate says that an Unlock of the host's came after the end
	// of the run that Hold holds the lock for, and lateUnlockErr is what
	// that Unlock returned, which Hold delivers; under mu.
	unlockedLate  bool
	lateUnlockErr error
	// heldAfterEnd says that a Check sent after the end of the run that
	// Hold holds the lock for found the lock held: the run was under the
	// lock to its end, and a loss found since came after it; under mu.
	heldAfterEnd bool
	// readErr is the error of a watcher's read that failed, closing the
	// connection, as pause stopped it; set before watching is closed.
	readErr error
	// held is the run that Hold holds the lock for, and its ID, noted
	// at once, so that Unlock and runEnded see both or neither.
	held atomic.Pointer[holding]
	// guarded is the run that GuardFor guards last, with its options:
	// the watcher re-takes the lock for it, while it goes on, as for
	// Hold's (see retakeFor).
	guarded atomic.Pointer[holding]

	beforeRelease func() // called by Hold's goroutine before it unlocks, in tests
	afterClaim    func() // called by Hold once it holds the lock for its run, in tests
	// retaking is, while the watcher re-takes the lock (see HoldFor), a
	// channel closed once it has ended; Check waits for it.
	retaking atomic.Pointer[chan struct{}]
	// checkWaits is called by Check once it waits for a re-take, in
	// tests.
	checkWaits atomic.Pointer[func()]
	// watcherSaw is called by the watcher once its read has found the
	// connection ended, before it records the loss, in tests.
	watcherSaw atomic.Pointer[func()]
}

// holding is a run that Hold holds a lock for, its ID, and the options
// of HoldFor.
type holding struct {
	id   string
	run  *executor.Run
	opts HoldOptions
}

// GraphKey returns the graph key that the lock is of.
func (l *GraphLock) GraphKey() string { return l.graphKey }

// Lost returns a channel that is closed when the lock is found lost: its
// connection ended, so Postgres freed it, or [GraphLock.Check] or
// [GraphLock.Unlock] found that its session no longer holds it (a pooler
// in transaction mode moved the connection to another session); another
// process may hold it now. A host that runs under the lock cancels its
// run then, as the run's results may now race another process's:
// [GraphLock.Guard] and [GraphLock.Hold] do it. An Unlock that frees the lock does not
// close it; one that finds it lost already does, as Check would have.
// Under [GraphLock.HoldFor] or [GraphLock.GuardFor] with a
// HoldOptions.Retake, a session's end
// that the lock's goroutine finds while the held run goes on closes it
// only once the lock's re-take has failed; a re-taken lock is held, and
// Lost stays open.
func (l *GraphLock) Lost() <-chan struct{} { return l.lost }

// Guard cancels run if the lock is found lost (Lost is closed) before the
// run ends: another process may take the key then, and must not find
// this run going on beside its own. The run's cause is the loss, an error
// wrapping [ErrLockLost] (errors.Is(err, pgstore.ErrLockLost) on the
// run's error), and its record says it: in Error, and as the cancel code
// [CancelledByLockLost] in CancelledBy. Guard returns at once; the
// goroutine it starts ends when the run ends or Lost is closed, whichever
// is first. An Unlock before the run's end that frees the lock does not
// cancel the run, which goes on unguarded; one that finds the lock lost
// already (its session no longer held it) closes Lost, and so cancels
// the run if it has not ended: the lock was lost while the run went on,
// as if the watcher or Check had found it. In the recipe, which unlocks
// after the run's end, neither cancels anything. A host calls it
// as soon as it has started or resumed a run under the lock, in place of
// watching Lost itself; [GraphLock.Hold] guards the run so and unlocks
// the lock once the run has ended, as the recipe does (see "Locking a
// graph key" in the package documentation). A nil run panics (in the
// caller).
func (l *GraphLock) Guard(run *executor.Run) {
	if run == nil {
		panic("pgstore: GraphLock.Guard with a nil run")
	}
	go func() {
		select {
		case <-l.lost:
			run.CancelCause(executor.CancelCode(CancelledByLockLost, l.lostError()))
		case <-run.Done():
		}
	}()
}

// Hold holds the lock for run, until the run has ended: it guards run as
// [GraphLock.Guard] does (a lock found lost before the run's end cancels
// it, with the loss as its cause), and once the run has ended (run.Done
// is closed) calls [GraphLock.Unlock], bounded by 10 s, as the recipe in
// "Locking a graph key" of the package documentation does. (A Check or
// Unlock of the host's under way then ends first; the 10 s start after
// it.) It returns at once. The channel it returns, buffered, receives Unlock's error once
// and is then closed: nil once the server has freed the lock, so that
// another process's TryLockGraph of the key succeeds; an error wrapping
// [ErrLockLost] if the lock was lost before the run's end (the run was
// cancelled then, and may have overlapped another process's), or if an
// Unlock of the host's freed it before the run's end (the run went on
// without it; that Unlock cancels nothing, as under Guard: after the
// run's end, it makes the channel receive what it returned, nil if it
// freed the lock); or Unlock's error if the unlock itself failed, Hold's
// or an Unlock of the host's after the run's end (the server did not
// answer within the 10 s, say, or the host's ctx was done: the
// connection is closed anyway, and the server frees the lock when it
// sees it closed). A session that ends after the run's
// end, before Hold's unlock, is no loss, when that order is certain: once
// a [GraphLock.Check] of the host's, begun after the run's end, has found
// the lock held, a session end found later (by the lock's watcher, a
// Check, or an Unlock, the host's or Hold's) that the server made (its message, or the
// connection closed by the other end) makes the channel receive nil, as
// the server frees the lock as it ends the session (a moment after its
// message). Without such a Check, the server's message may have been
// sent during the run and read only as the run ended, or after: the
// channel receives ErrLockLost; so it does for a loss found otherwise (a
// network that failed unseen, a Check's ctx that ended, a pooler's other
// session). A
// host need not read the channel, nor call Unlock
// once Hold has delivered (it does nothing then); its goroutine ends
// once it has delivered, after the run's end. The lock is held until
// then: up to the executor's Options.Grace after the run's record says
// that it ended, for generators that ignore their context (see
// executor.Run.Done).
//
// Hold cancels the run as soon as the lock's session ends, whatever
// ended it: a Postgres restart or failover that the executor's
// Options.StoreRetry rides out still cuts the run's calls under way.
// [GraphLock.HoldFor] with a HoldOptions.Retake takes the key's lock
// again on a new session first, and cancels only if that fails.
//
// A lock is held for one run. A second Hold, of any run, is refused:
// its channel receives a [*HoldError] at once, and is closed, and it
// neither guards its run nor unlocks anything; the first Hold goes on. A
// Hold after Unlock is refused so too, with an error wrapping
// ErrLockLost (its run is not under the lock), and cancels nothing. A
// Guard beside Hold is harmless, and needless. A nil run panics (in the
// caller).
func (l *GraphLock) Hold(run *executor.Run) <-chan error {
	return l.hold(context.Background(), run)
}

// hold is Hold, whose Unlock gets ctx's values (without its
// cancellation), as ResumeLeftRunning's did before Hold.
func (l *GraphLock) hold(ctx context.Context, run *executor.Run) <-chan error {
	return l.holdFor(ctx, run, HoldOptions{})
}

// holdFor is HoldFor, whose Unlock gets ctx's values (without its
// cancellation).
func (l *GraphLock) holdFor(ctx context.Context, run *executor.Run, opts HoldOptions) <-chan error {
	if run == nil {
		panic("pgstore: GraphLock.Hold with a nil run")
	}
	out := make(chan error, 1)
	refuse := func(err error) <-chan error {
		out <- err
		close(out)
		return out
	}
	if opts.Retake < 0 {
		return refuse(&HoldOptionsError{Field: "Retake", Value: opts.Retake.String()})
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if h := l.held.Load(); h != nil {
		return refuse(&HoldError{GraphKey: l.graphKey, RunID: h.id})
	}
	if l.unlocked.Load() {
		return refuse(fmt.Errorf("%w: graph %s of schema %s was unlocked before Hold, and run %s is not under it",
			ErrLockLost, quote(l.graphKey), l.schema, quote(run.ID())))
	}
	id := run.ID()
	if !l.held.CompareAndSwap(nil, &holding{id: id, run: run, opts: opts}) { // another Hold in between
		return refuse(&HoldError{GraphKey: l.graphKey, RunID: l.held.Load().id})
	}
	if l.afterClaim != nil {
		l.afterClaim()
	}
	go func() {
		defer close(out)
		select {
		case <-l.lost:
			run.CancelCause(executor.CancelCode(CancelledByLockLost, l.lostError()))
			<-run.Done()
		case <-run.Done():
		}
		if l.beforeRelease != nil {
			l.beforeRelease()
		}
		out <- l.release(ctx, id)
	}()
	return out
}

// release is Hold's Unlock, once run runID has ended. Its bound starts
// once it has mu: a Check or Unlock of the host's under way may hold mu
// for as long as its own ctx allows, and the unlock gets the whole bound.
func (l *GraphLock) release(ctx context.Context, runID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.unlockTimeout)
	defer cancel()
	if l.unlocked.Load() {
		if err := l.lostError(); err != nil && !l.lostLate {
			return err
		}
		if l.unlockedLate {
			// The host's Unlock, after the run's end: the run was under
			// the lock to its end, and the unlock went as that Unlock
			// said (a failure: the server may not have freed the lock
			// yet), unless the session ended after the run's end (see
			// foundLate), which frees the lock.
			if l.lostError() != nil {
				return nil
			}
			return l.lateUnlockErr
		}
		return fmt.Errorf("%w: graph %s of schema %s was unlocked before run %s ended, which went on without it, "+
			"and another session may have held it meanwhile", ErrLockLost, quote(l.graphKey), l.schema, quote(runID))
	}
	err := l.unlock(ctx)
	if err != nil && l.lostError() != nil && l.lostLate {
		// The session ended after the run did, as a Check after the
		// run's end found the lock held (see foundLate): the run was
		// under the lock to its end, and the server frees the lock as it
		// ends the session.
		return nil
	}
	return err
}

// retakeFor returns the run that the watcher re-takes the lock for, its
// session having ended: Hold's, if Hold holds the lock for a run (with
// HoldFor's Retake, and going on), or else GuardFor's, with its Retake,
// and going on; nil for none, and the lock is lost at once.
func (l *GraphLock) retakeFor() *holding {
	if h := l.held.Load(); h != nil {
		if h.opts.Retake > 0 && !l.runEnded() {
			return h
		}
		return nil
	}
	if h := l.guarded.Load(); h != nil && h.opts.Retake > 0 {
		select {
		case <-h.run.Done():
		default:
			return h
		}
	}
	return nil
}

// runEnded reports whether the run that Hold holds the lock for has
// ended.
func (l *GraphLock) runEnded() bool {
	h := l.held.Load()
	if h == nil {
		return false
	}
	select {
	case <-h.run.Done():
		return true
	default:
		return false
	}
}

// endedNow reports whether err, of the watcher's read, is the end of the
// session as it happened: the server's own message (a FATAL error, as
// for pg_terminate_backend or a shutdown) or the connection closed by
// the other end. Not a network that failed unseen, which TCP gives up on
// long after the server may have ended the session (a timeout, a reset).
func endedNow(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// watch starts the goroutine that reads the idle connection until pause
// interrupts it or the connection fails. The caller holds mu, or the
// lock is new.
func (l *GraphLock) watch() {
	l.stopping.Store(false)
	late := l.heldAfterEnd
	done := make(chan struct{})
	l.watching = done
	ctx, cancel := context.WithCancel(context.Background())
	l.stopWatch = cancel
	go func() {
		defer close(done)
		defer cancel()
		for {
			// Nothing arrives on an idle session but an error (or a
			// notification, which the lock ignores); a failed read
			// closes the connection. With context.Background, pgx
			// watches no context: pause interrupts the read with a
			// deadline of its own, whatever the pool's
			// BuildContextWatcherHandler (a cancel request, which the
			// server ignores on an idle session, would not end it).
			err := l.conn.PgConn().WaitForNotification(context.Background())
			if l.stopping.Load() {
				// A failure meanwhile shows at the next statement, or,
				// the connection closed, by readErr.
				if err != nil && l.conn.IsClosed() {
					l.readErr = err
				}
				return
			}
			if err != nil {
				h := l.retakeFor()
				var retaken chan struct{} // closed once the re-take has ended
				if h != nil {
					retaken = make(chan struct{})
					l.retaking.Store(&retaken)
				}
				if f := l.watcherSaw.Load(); f != nil {
					(*f)()
				}
				if retaken != nil {
					ok := l.retake(ctx, h, err)
					l.retaking.Store(nil)
					close(retaken)
					if ok {
						continue // on the new connection
					}
					return // lost, or stopped by pause
				}
				// The server's message may have been sent during the
				// run, and read as the run ended (or after): the loss
				// came after the run's end for certain only if the read
				// began after a Check that the server answered after it
				// (see release).
				l.lose(err, late && endedNow(err))
				return
			}
		}
	}()
}

// pause stops the watcher and waits for it to return, so that the caller
// may use the connection: a read deadline in the past interrupts its
// read, which pgx then ends with a timeout that keeps the connection (as
// its own DeadlineContextWatcherHandler does). The caller holds mu.
func (l *GraphLock) pause() {
	l.swapMu.Lock()
	l.stopping.Store(true)
	l.stopWatch() // a re-take under way gives up
	nc := l.conn.PgConn().Conn()
	l.swapMu.Unlock()
	_ = nc.SetReadDeadline(time.Unix(1, 0)) // an error: the connection is closed, and the watcher returns
	<-l.watching
	_ = nc.SetReadDeadline(time.Time{})
}

// foundLate reports whether err, which ended the lock's connection and
// was found by Check or Unlock (the watcher stopped), is known to be a
// loss after the held run's end: a Check sent after that end found the
// lock held (heldAfterEnd), and err is the server's end of the session
// (endedNow), which frees the lock. The caller holds mu.
func (l *GraphLock) foundLate(err error) bool {
	return err != nil && l.heldAfterEnd && endedNow(err)
}

// closedCause is why the connection that op (Check or Unlock) found
// closed after pause ended: the stopped watcher's read's error. The caller
// holds mu.
func (l *GraphLock) closedCause(op string) error {
	if l.readErr != nil {
		return l.readErr
	}
	return fmt.Errorf("its connection was found closed at %s", op)
}

// lose records that the lock was lost, for cause, once; late says that
// the loss is known to have come after the held run's end.
func (l *GraphLock) lose(cause error, late bool) {
	l.lostOnce.Do(func() {
		l.lostLate = late
		l.lostErr = fmt.Errorf("%w: graph %s of schema %s is not held any more (its connection ended, "+
			"or reaches another session), and another session may hold it now: %w", ErrLockLost, quote(l.graphKey), l.schema, cause)
		close(l.lost)
	})
}

// lostError returns why the lock was lost, or nil if it was not.
func (l *GraphLock) lostError() error {
	select {
	case <-l.lost:
		return l.lostErr
	default:
		return nil
	}
}

// Check asks the server whether the lock is still held, by the session
// that took it, and returns nil if it is. Otherwise it returns an error
// wrapping [ErrLockLost] (and closes Lost): the connection failed, the
// session no longer holds the lock, or the connection now reaches
// another server session than the one that took it (a pooler such as
// PgBouncer in transaction mode, under which session locks do not
// work). After Unlock it returns an error wrapping ErrLockLost too. It
// costs one round trip. While the lock is being re-taken after its
// session ended (see [GraphLock.HoldFor]), Check first waits for the
// re-take's outcome, within ctx: the new session's lock is then checked,
// or the re-take's failure returned; a ctx that ends first ends the
// re-take, and the lock is lost, as below; an Unlock meanwhile ends it
// too, and Check then returns an error wrapping ErrLockLost. A ctx done before the call gives ctx.Err() and
// changes nothing; one that ends during the check interrupts it, which
// closes the connection (pgx closes a connection whose statement it
// interrupts) and so frees the lock: the error then wraps both ctx.Err()
// and ErrLockLost, and Lost is closed.
func (l *GraphLock) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unlocked.Load() {
		return fmt.Errorf("%w: graph %s of schema %s was unlocked", ErrLockLost, quote(l.graphKey), l.schema)
	}
	if err := l.lostError(); err != nil {
		return err
	}
	for r := l.retaking.Load(); r != nil; r = l.retaking.Load() {
		// A re-take under way (see HoldFor): its outcome is the answer,
		// unless ctx ends first, and pause then ends it. It is waited
		// for without mu, so that an Unlock meanwhile (the host's, or
		// Hold's at the run's end) ends it at once.
		l.mu.Unlock()
		if f := l.checkWaits.Load(); f != nil {
			(*f)()
		}
		select {
		case <-*r:
		case <-ctx.Done():
		}
		l.mu.Lock()
		if l.unlocked.Load() {
			return fmt.Errorf("%w: graph %s of schema %s was unlocked", ErrLockLost, quote(l.graphKey), l.schema)
		}
		if err := l.lostError(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			break
		}
	}
	l.pause()
	if l.conn.IsClosed() {
		// The watcher's read found the connection ended as pause
		// stopped it (or it ended a re-take under way as ctx ended).
		cause := l.closedCause("Check")
		if ctx.Err() != nil {
			cause = fmt.Errorf("%w: %w", ctx.Err(), cause)
		}
		l.lose(cause, ctx.Err() == nil && l.foundLate(l.readErr))
		return l.lostErr
	}
	// Noted before the query is sent: a lock found held then was held
	// after the run's end.
	ended := l.runEnded()
	var held bool
	err := l.conn.QueryRow(ctx, `SELECT pg_backend_pid() = $2 AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks
	WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
		AND ((classid::bigint << 32) | objid::bigint) = $1)`, l.key, l.pid).Scan(&held)
	switch {
	case err != nil:
		late := ctx.Err() == nil && l.foundLate(err)
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		l.lose(err, late)
		closeConn(ctx, l.conn)
		return l.lostErr
	case !held:
		l.lose(fmt.Errorf("server session %d does not hold it (a pooler in transaction mode moves a connection between sessions)", l.pid), false)
		closeConn(ctx, l.conn)
		return l.lostErr
	}
	if ended {
		l.heldAfterEnd = true
	}
	l.watch()
	return nil
}

// Unlock frees the lock and closes its connection. It returns nil once
// the server has freed the lock, so that another process's LockGraph may
// take it at once. If the lock was lost before (see [GraphLock.Lost]), it
// returns that error, wrapping [ErrLockLost]: the run under it may have
// overlapped another process's. If the server answers that the session
// did not hold the lock (a pooler in transaction mode moved the
// connection to another session), the lock was lost too: it returns an
// error wrapping ErrLockLost, and closes Lost, which cancels a run that
// [GraphLock.Guard] or [GraphLock.Hold] guards, if it has not ended. So it does, as Check
// would, if the connection has ended (the server ended the session, or
// the network failed) before Unlock or during it, even when the watcher
// had not seen the end yet: the lock was lost, or may have been. (With a
// ctx already done, Unlock sends nothing, and so finds the end only if
// the connection was already seen closed.) If ctx ends before the server
// answers (the error then wraps ctx.Err()), or the server refuses the
// statement on a live session, it closes the connection anyway, and
// returns the error: the server frees the lock when it sees the session
// end, at once unless the network is down (then when its TCP keepalives
// give up). So Unlock always lets go of the lock, whatever ctx, and the
// deferred Unlock of a host is enough; with a ctx already done it only
// closes the connection. A second Unlock does nothing and returns nil,
// and so does one after Hold's.
func (l *GraphLock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unlocked.Load() {
		return nil
	}
	l.unlockedLate = l.runEnded()
	err := l.unlock(ctx)
	if l.unlockedLate {
		l.lateUnlockErr = err
	}
	return err
}

// unlock is Unlock of a lock not unlocked yet. The caller holds mu.
func (l *GraphLock) unlock(ctx context.Context) error {
	l.unlocked.Store(true)
	l.pause()
	defer closeConn(ctx, l.conn)
	if l.conn.IsClosed() {
		// The watcher's read found the connection ended as pause
		// stopped it.
		l.lose(l.closedCause("Unlock"), l.foundLate(l.readErr))
	}
	if err := l.lostError(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: unlock graph %s: %w (the lock is freed when the server sees its connection closed)", quote(l.graphKey), err)
	}
	var released bool
	err := l.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, l.key).Scan(&released)
	if err != nil {
		if ctx.Err() == nil && l.conn.IsClosed() {
			// The connection ended before the unlock, or while it was
			// sent: its session ended, or will, without an unlock, and
			// the watcher, stopped by pause, may not have seen it.
			l.lose(err, l.foundLate(err))
			return l.lostErr
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return fmt.Errorf("pgstore: unlock graph %s: %w (the lock is freed when the server sees its connection closed)", quote(l.graphKey), err)
	}
	if !released {
		l.lose(fmt.Errorf("the connection's session did not hold it at Unlock (a pooler in transaction mode moves a connection between sessions)"), false)
		return l.lostErr
	}
	return nil
}

// closeConn closes a lock's connection, even when ctx is done, within
// pgschema.RollbackTimeout.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pgschema.RollbackTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}
