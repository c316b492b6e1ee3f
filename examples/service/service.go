package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sse"
)

// Bounds of the service's own waits.
const (
	// startTimeout bounds connecting to the servers and migrating.
	startTimeout = 15 * time.Second
	// shutdownTimeout bounds the whole shutdown. A store that stalls holds
	// a cancelled run for at most twice the executor's StoreTimeout plus
	// its Grace: a host that must never cut that short waits longer.
	shutdownTimeout = 30 * time.Second
	// finishedTTL is how long a run's Redis stream stays after its final
	// event; later readers read the History.
	finishedTTL = time.Hour
	// unlockTimeout bounds the Unlock of a lecture's lock: on a dead
	// network the server cannot be told, and frees the lock when it sees
	// the session end.
	unlockTimeout = 10 * time.Second
)

// idleTimeout is how long the HTTP server keeps a keep-alive connection
// open between two requests: a client that sends a request, then
// nothing, holds a connection, a goroutine and a file descriptor only
// that long. A request under way (an event stream, however long it
// lasts) is not idle. A variable for the tests.
var idleTimeout = time.Minute

// maxHeaderBytes bounds a request's header block, its request line
// included (net/http adds 4 KiB of slack): a cookie and a token fit it
// many times over. A request over it is answered 431.
const maxHeaderBytes = 32 << 10

// service is the running service: what serve wires, and the state of the
// lectures' runs.
type service struct {
	cfg    config
	logger *slog.Logger

	pool    *pgxpool.Pool
	client  *redis.Client
	store   *pgstore.Store
	hist    *pghistory.History
	stream  *redisstream.Stream
	toRedis *progress.Buffered // the Stream, behind its Buffered
	toPG    *progress.Buffered // the Archive of the History, behind its Buffered
	sink    progress.Sink      // the executor's: a Fanout of toRedis and toPG
	exec    *executor.Executor
	params  *paramStore
	events  *sse.Handler // GET /runs/{run}/events
	ln      net.Listener // taken before start, or else by serve
	srv     *http.Server

	// id is this process's ID, random, made at start: the owner of the
	// runs it queues (see queuedRun).
	id string
	// procMu guards procLock, procLost and procDone: start, the
	// recovery's loop, the shutdown and takenOver use them.
	procMu sync.Mutex
	// procLock is this process's lock (Store.TryLockGraph of
	// processLockKey(id)), held from start to the end of the shutdown:
	// while it is held, the other processes take none of the runs this
	// one queued (see recoverRuns).
	procLock *pgstore.GraphLock
	// procLost: procLock was lost once at least (see keepProcessLock),
	// so that another process may have taken over a run this one queued
	// (see takenOver).
	procLost bool
	// procDone: the shutdown gave procLock up; it is not taken again.
	procDone bool
	// givingBack holds, by run ID, the queued runs that this process
	// took over from a dead one and failed to give back (see
	// unclaimQueued): owned by this process, which runs none of them.
	// Each pass of the recovery tries again first (see retryGiveBacks).
	// Guarded by mu.
	givingBack map[string]queuedRun
	// forgetting holds the run IDs, with their lectures' keys, of the
	// queued runs recorded neither as started nor as not started whose
	// rows this process failed to delete (see forgetQueued); each pass
	// of the recovery, and the shutdown, tries again (see retryForgets).
	// Guarded by mu.
	forgetting map[string]string
	// watching holds the run IDs, with their lectures' keys, of the runs
	// that a pass of the recovery listed as running, in any process, or
	// as cut short and still to resume (see watched): once they are no
	// longer running, the newest run of their lecture is resumed if a
	// shutdown or a lost lock cut it. Guarded by mu.
	watching map[string]string

	// cookieKey is the key of the session cookies' MACs (see
	// sessionKey), made at start.
	cookieKey []byte

	// streamsMu guards streams, the event streams open on session
	// cookies, which watchSessions ends when their sessions end, and
	// unreadSince.
	streamsMu sync.Mutex
	streams   map[*sessionStream]struct{}
	// unreadSince is when the first of the checks of the streams'
	// sessions that have failed in a row began, zero after a good one
	// or while no stream is open (see checkStreams). Guarded by
	// streamsMu.
	unreadSince time.Time

	// runCtx is the context of every run; cancelRuns cancels them all,
	// with errShutdown as the cause.
	runCtx     context.Context
	cancelRuns context.CancelCauseFunc

	mu       sync.Mutex
	closing  bool                              // shutting down: no request is admitted (see admit)
	stopping bool                              // the admitted requests are done: no run starts
	lectures map[string]*lecture               // by graph key, while a run is on
	held     int                               // run slots held by edits (see holdSlot), besides the lectures
	locking  map[string]*locking               // by graph key: a request taking or holding the lock of a lecture not running (see lockLecture)
	reading  map[*http.ResponseController]bool // the requests whose bodies are being read (see readingBody)
	reports  map[string]*report                // by run ID, the reports of this process's runs
	runs     sync.WaitGroup                    // a run reserved (see reserve) until its report is kept
	admitted sync.WaitGroup                    // the requests admitted (see admit), until they are answered
}

// lecture is the state of a lecture while one of its runs is on.
type lecture struct {
	runID string // the run going on, or starting
	g     *graph.Graph
	next  string        // a run queued after it by an edit, or ""
	run   *executor.Run // the run runID once started, for POST /runs/{run}/cancel
	// resumes is the run that run runID resumes at start-up (see
	// recoverRun), or "": a cancel saved for it cancels run runID (see
	// applyCancels).
	resumes string
	// lock is the lecture's lock (Store.TryLockGraph), held from before
	// its first run is reserved until no run of it is left to start:
	// a run queued after another takes it over, so that no other
	// process starts a run of the lecture between the two. It is nil
	// while the run that ended gives it up (see next).
	lock *pgstore.GraphLock
	// releasing is made when no run of the lecture is left to start (its
	// last run ended, or the run queued is not started), and closed once
	// its lock is given up and the lecture freed: meanwhile no run is
	// queued after it, and the requests of the lecture wait for it (see
	// waitLocking), rather than be refused as if a run were going on.
	releasing chan struct{}
}

// locking is a request of this process that takes, or holds, the lock of
// a lecture that is not running (not in service.lectures), until a run
// of the lecture takes it over or the request gives it up: the other
// requests of the lecture wait for it, rather than find its lock held, as
// if by another process.
type locking struct {
	done    chan struct{} // closed when it ends
	waiters int           // the requests waiting for it
}

// report is what the service keeps of a run that ended.
type report struct {
	ended time.Time
	rep   *executor.Report
}

// serve starts the service, calls ready (if not nil) with its address once
// it listens, serves until ctx ends, and shuts down. It returns nil after
// a clean shutdown; a flag that the libraries refuse is a *flagError.
// The address is taken first, before any server is touched: a process
// started on an address another one serves must not migrate, nor resume
// the runs left running only to cancel them at once.
func serve(ctx context.Context, c config, logger *slog.Logger, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	s, err := start(ctx, c, logger)
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.ln = ln
	return s.serve(ctx, ready)
}

// serve is serve once started: it listens (unless s.ln is set), serves
// until ctx ends, and shuts the service down.
func (s *service) serve(ctx context.Context, ready func(net.Addr)) error {
	c, logger := s.cfg, s.logger
	ln := s.ln
	var err error
	if ln == nil {
		if ln, err = net.Listen("tcp", c.addr); err != nil {
			err = fmt.Errorf("listen on %s: %w", c.addr, err)
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			return errors.Join(err, s.shutdown(sctx))
		}
	}
	// No ReadTimeout nor WriteTimeout, which would cut the event streams:
	// decode bounds the bodies (bodyTimeout), and IdleTimeout the
	// keep-alive connections between requests.
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout,
		MaxHeaderBytes: maxHeaderBytes, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(ln) }()
	pruned := make(chan struct{})
	pctx, stopPruning := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() {
		defer close(pruned)
		s.retain(pctx)
	}()
	go func() {
		defer close(polled)
		s.pollCancels(pctx)
	}()
	recovered := make(chan struct{})
	go func() {
		defer close(recovered)
		s.recoverLoop(pctx)
	}()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s.watchSessions(pctx)
	}()
	logger.Info("serving", "addr", ln.Addr().String(), "schema", c.schema, "prefix", c.prefix, "process", s.id)
	if ready != nil {
		ready(ln.Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "cause", context.Cause(ctx))
	case serveErr = <-served: // the listener failed
		logger.Error("serving failed; shutting down", "err", serveErr)
		serveErr = fmt.Errorf("serve: %w", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	stopPruning()
	<-pruned
	<-polled
	<-recovered
	<-watched
	err = errors.Join(serveErr, s.shutdown(sctx))
	if err == nil {
		logger.Info("shut down cleanly")
	}
	return err
}

// start connects to Postgres and Redis, migrates the schema and wires the
// executor. On an error it closes what it opened.
func start(ctx context.Context, c config, logger *slog.Logger) (*service, error) {
	s := &service{cfg: c, logger: logger,
		lectures: map[string]*lecture{}, reports: map[string]*report{}, locking: map[string]*locking{},
		reading: map[*http.ResponseController]bool{}, givingBack: map[string]queuedRun{}, forgetting: map[string]string{},
		watching: map[string]string{}, streams: map[*sessionStream]struct{}{}}
	s.runCtx, s.cancelRuns = context.WithCancelCause(context.Background())
	ok := false
	defer func() {
		if !ok {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			_ = s.shutdown(sctx)
		}
	}()
	parent := ctx // for the recovery, which has a bound of its own
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	// The host owns the pool and the client: regen never opens nor closes
	// them. Neither connects before its first use.
	pcfg, err := pgxpool.ParseConfig(c.postgresURL)
	if err != nil {
		return nil, fmt.Errorf("REGEN_POSTGRES_URL: %w", err)
	}
	// Every transaction of the service's is written for READ COMMITTED,
	// as pgstore's doc asks: a role, a database or the URL that defaults
	// to a stricter level would fail its row claims and lock checks with
	// SQLSTATE 40001 whenever a run commits beside them.
	pcfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	if s.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	ropts, err := redis.ParseURL(c.redisURL)
	if err != nil {
		return nil, fmt.Errorf("REGEN_REDIS_URL: %w", err)
	}
	s.client = redis.NewClient(ropts)

	// The libraries check their options without I/O: a refused value is
	// a bad flag.
	if s.store, err = pgstore.New(s.pool, pgstore.Options{Schema: c.schema}); err != nil {
		return nil, &flagError{"-schema", err}
	}
	s.params = newParamStore(s.pool, c.schema)
	if s.hist, err = pghistory.New(s.pool, pghistory.Options{Schema: c.schema}); err != nil {
		return nil, &flagError{"-schema", err}
	}
	s.stream, err = redisstream.New(s.client, redisstream.Options{
		KeyTemplate: c.prefix + "run:" + redisstream.RunIDPlaceholder,
		History:     s.hist, // readers fill the stream's gaps from the archive
		FinishedTTL: finishedTTL,
		IdleTTL:     c.retain, // the stream of a run that never ended
		Logger:      logger,
	})
	if err != nil {
		return nil, &flagError{"-prefix", err}
	}

	// Are the servers there? Say which one is not, and where it was looked
	// for (never the URL: it may hold a password).
	if err := s.pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("cannot reach Postgres at %s:%d (set REGEN_POSTGRES_URL): %w",
			pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, err)
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("cannot reach Redis at %s (set REGEN_REDIS_URL): %w", ropts.Addr, err)
	}
	if err := s.store.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate the store in schema %s: %w", c.schema, err)
	}
	if err := s.hist.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate the history in schema %s: %w", c.schema, err)
	}
	if err := s.params.migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate the parameters' tables in schema %s: %w", c.schema, err)
	}
	secret, err := s.params.sessionSecret(ctx)
	if err != nil {
		return nil, err
	}
	s.cookieKey = sessionKey(secret, c.token)
	// Held before this process queues or takes over any run: the other
	// processes tell its runs from a dead process's by it.
	s.id = newProcessID()
	s.params.owner = s.id
	if s.procLock, err = s.store.TryLockGraph(ctx, processLockKey(s.id)); err != nil {
		return nil, fmt.Errorf("take the lock of this process: %w", err)
	}

	// Each remote sink behind a Buffered of its own: it batches, and an
	// outage of one never fails nor slows a run, nor holds the other.
	s.toRedis = progress.NewBuffered(s.stream, progress.BufferedOptions{Logger: logger})
	s.toPG = progress.NewBuffered(progress.NewArchive(s.hist), progress.BufferedOptions{Logger: logger})
	s.sink = progress.NewFanout(s.toRedis, s.toPG)
	s.exec, err = executor.New(c.executorOptions(s.store, s.params, s.sink, logger))
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	s.events, err = sse.NewHandler(s.stream, sse.HandlerOptions{
		Authorize:    s.authorizeEvents,
		CloseOnFinal: true, // curl -N ends with the run
		// No EmptyRunTimeout: a queued run has no event until the run
		// before it ends, however long that takes, and a bound would
		// answer its readers 204, which stops them. Authorize answers 404
		// to a run that this process does not queue and the store does
		// not hold; at shutdown, the Stream's Close ends the streams that
		// wait.
		Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("events handler: %w", err)
	}
	// The recovery has a bound of its own: it may resume many runs.
	rctx, rcancel := context.WithTimeout(parent, startTimeout)
	defer rcancel()
	if err := s.recoverRuns(rctx, true); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// executorOptions returns the executor's options: store is its States,
// Assets and Runs, the generators read params, sink gets the events and
// logger the warnings.
func (c config) executorOptions(store *pgstore.Store, params *paramStore, sink progress.Sink, logger *slog.Logger) executor.Options {
	return executor.Options{
		Generators: lectureGenerators(params, c.latency),
		States:     store,
		Assets:     store,
		Runs:       store,
		Sink:       sink,
		Logger:     logger,
		Default:    executor.KindOptions{Estimate: c.latency},
		StoreRetry: c.storeRetry,
	}
}

// shutdown stops the service in the README's order: the HTTP server stops
// taking requests, the runs are drained for -drain then cancelled, then
// Executor.Close, each
// Buffered's Close, the Stream's Close (which ends the event streams
// still open: their clients resume elsewhere with Last-Event-ID), the
// end of the HTTP server, and last the Redis client and the pool. It
// works on a service that start left half made.
func (s *service) shutdown(ctx context.Context) error {
	var errs []error
	srvDone := make(chan error, 1)
	if s.srv != nil {
		go func() { srvDone <- s.srv.Shutdown(ctx) }()
	}

	// No request is admitted from now on; those admitted before are
	// carried out in full (an edit saved gets its run), then no run starts.
	// The bodies still arriving are cut short: their requests, not
	// admitted yet, would be refused once read, and one that trickles in
	// would hold the HTTP server's shutdown.
	s.mu.Lock()
	s.closing = true
	for rc := range s.reading {
		_ = rc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	if err := waitGroup(ctx, &s.admitted); err != nil {
		errs = append(errs, fmt.Errorf("wait for the requests under way: %w", err))
	}
	s.mu.Lock()
	s.stopping = true
	cut := slices.Sorted(maps.Keys(s.lectures))
	s.mu.Unlock()
	// The lectures of the runs about to be cut are saved for the live
	// processes (see watched) as the cut begins, as well as after it: a
	// process killed as its runs end (its grace period over), or whose
	// write after stalls, leaves them saved all the same. A pass that
	// reads one meanwhile finds its run going on, and watches it. The
	// cut does not wait for the write (a Postgres that stalls).
	var premarked chan error
	if len(cut) > 0 && s.params != nil {
		premarked = make(chan error, 1)
		go func() {
			mctx, cancel := context.WithTimeout(ctx, unlockTimeout)
			defer cancel()
			premarked <- s.params.markCut(mctx, cut)
		}()
	}
	s.drainRuns(ctx)
	s.cancelRuns(errShutdown)
	if s.exec != nil {
		if err := s.exec.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close the executor: %w", err))
		} else {
			s.runs.Wait() // every run has ended: their watchers are returning
		}
	}
	for _, b := range []*progress.Buffered{s.toRedis, s.toPG} {
		if b == nil {
			continue
		}
		if err := b.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush the progress events: %w", err))
		}
		// An outage ridden out (Errors) loses nothing: only the events
		// that did not reach their sink count.
		if st := b.Stats(); st.Fallback > 0 || st.FallbackErrors > 0 || st.Lost > 0 {
			s.logger.Warn("progress events were not all delivered", "stats", fmt.Sprintf("%+v", st))
		}
	}
	if s.stream != nil {
		if err := s.stream.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the stream: %w", err))
		}
	}
	// Once the runs have ended and the runs queued are recorded (see
	// shelve): from now on, another process may take over what is left
	// of them, but not the rows of runs not recorded, if they can be
	// deleted (see forgetQueued) within the shutdown's time.
	if s.params != nil {
		fctx, cancel := context.WithTimeout(ctx, unlockTimeout)
		s.retryForgets(fctx, true)
		if premarked != nil {
			// Again, for a pass may have read them before the cut, found
			// their runs going on and forgotten them, and its process
			// may stop before it sees them cut.
			preErr := <-premarked
			switch err := s.params.markCut(fctx, cut); {
			case err != nil && preErr != nil:
				s.logger.Warn("the runs that the shutdown cut are left to the next start", "lectures", len(cut), "err", errors.Join(preErr, err))
			case err != nil:
				s.logger.Warn("the lectures of the runs that the shutdown cut not saved again: saved as the cut began", "lectures", len(cut), "err", err)
			}
		}
		cancel()
	}
	s.unlockProcess(ctx)
	if s.srv != nil {
		// The event streams have ended with the Stream: the requests
		// left end soon.
		if err := <-srvDone; err != nil {
			errs = append(errs, fmt.Errorf("shut the HTTP server down: %w", err))
			_ = s.srv.Close()
		}
	}
	if s.client != nil {
		if err := s.client.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the Redis client: %w", err))
		}
	}
	if s.pool != nil {
		s.pool.Close()
	}
	return errors.Join(errs...)
}

// waitGroup waits for wg, or returns context.Cause(ctx) if ctx ends
// first; the goroutine that waits then ends with wg.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// admit admits a request that may save an edit or start a run, or
// returns errClosing once the shutdown has begun, before the request has
// changed anything. The shutdown waits for the requests admitted before
// it began, so that each is carried out in full: an edit that is saved
// gets its run started or queued, and a run started is then cancelled by
// the shutdown, and recorded. Call done once the request is answered.
func (s *service) admit() (done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, errClosing
	}
	s.admitted.Add(1)
	return s.admitted.Done, nil
}

// readingBody registers a request whose body is about to be read, so
// that the shutdown can cut the reading short, or returns errClosing once
// the shutdown has begun. Call the function returned before the handler
// returns: rc must not be used after.
func (s *service) readingBody(rc *http.ResponseController) (done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, errClosing
	}
	s.reading[rc] = true
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.reading, rc)
	}, nil
}

// isClosing reports whether the shutdown has begun.
func (s *service) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// retain deletes, every pruneEvery until ctx ends, the rows of queued
// runs that have started or been recorded, whatever their age (see
// pruneQueued), the sessions that have expired, and what is older than
// the retain age: unused assets, run records, archived events, and the
// reports this process keeps.
func (s *service) retain(ctx context.Context) { tick(ctx, s.cfg.pruneEvery, s.prune) }

// retentionTimeout bounds each pass of the retention (see prune): a
// query that the server stalls (a lock held on a table, a network that
// TCP has not given up on) fails the pass, which the next one tries
// again, rather than stall the retention for good; a variable for the
// tests.
var retentionTimeout = 5 * time.Minute

// prune deletes, once, what is older than the retain age (see retain),
// within retentionTimeout.
func (s *service) prune(parent context.Context) {
	age := s.cfg.retain
	ctx, cancel := context.WithTimeout(parent, retentionTimeout)
	defer cancel()
	// The rows of runs queued first: a row is left over only while
	// its run's record is there to say so.
	_, errQ := s.pruneQueued(ctx)
	assets, errA := s.store.PruneAssets(ctx, age)
	runs, errR := s.store.PruneRuns(ctx, age)
	events, errH := s.hist.Prune(ctx, age)
	_, errC := s.params.pruneCancels(ctx, age)
	_, errS := s.params.pruneSessions(ctx)
	_, errU := s.params.pruneCut(ctx, age)
	reports := s.forgetReports(age)
	if err := errors.Join(errA, errR, errH, errQ, errC, errS, errU); err != nil && parent.Err() == nil {
		s.logger.Warn("retention failed", "err", err)
	}
	level := slog.LevelDebug
	if assets+runs+events > 0 || reports > 0 {
		level = slog.LevelInfo
	}
	s.logger.Log(parent, level, "retention", "olderThan", age, "assets", assets, "runs", runs, "events", events, "reports", reports)
}

// forgetReports forgets the reports of runs that ended more than age ago.
func (s *service) forgetReports(age time.Duration) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, r := range s.reports {
		if time.Since(r.ended) > age {
			delete(s.reports, id)
			n++
		}
	}
	return n
}

// errBusy: a run of the lecture is on.
var errBusy = errors.New("a run of this lecture is going on")

// errBusyElsewhere: the lecture's lock is held by another process of the
// service. A request of this process that takes or holds it is waited
// for (see waitLocking), never taken for another process.
var errBusyElsewhere = fmt.Errorf("%w, in another process of the service", errBusy)

// errFull: as many runs as -max-runs allows are going on.
var errFull = errors.New("as many lectures as the service runs at once are being generated; retry later")

// errNoTurn: a request gave up waiting for its turn at its lecture (see
// waitLocking), its bound or its client gone; it changed nothing.
var errNoTurn = errors.New("other requests of this lecture hold it: retry in a moment")

// errStartPanicked: the start of a run panicked (net/http recovers the
// panic of a request's); the run did not start.
var errStartPanicked = errors.New("the run's start panicked")

// errLockTimeout: a request's bound passed while it took its lecture's
// lock (Postgres stalled); it changed nothing.
var errLockTimeout = errors.New("the lecture's lock could not be taken in time: retry in a moment")

// errClosing: the service is shutting down.
var errClosing = errors.New("the service is shutting down")

// errCancelledByRequest is the cause with which POST /runs/{run}/cancel
// cancels a run: the record of the run says it, with the code
// codeRequest (Record.CancelledBy), and no start resumes it.
var errCancelledByRequest = executor.CancelCode(codeRequest,
	errors.New("examples/service: cancelled by a request (POST /runs/{run}/cancel)"))

// errStarting: the run is starting (or its watcher ending it): retry.
var errStarting = errors.New("the run is starting or ending: retry in a moment")

// cancel cancels run runID if this process runs it, or has it queued
// (the run queued is recorded as cancelled: see shelve). It reports
// whether it did; errStarting while the run starts.
func (s *service) cancel(runID string) (bool, error) {
	s.mu.Lock()
	for key, l := range s.lectures {
		switch {
		case l.next == runID && l.releasing == nil:
			// Not started, nor being started or dropped (see next): its
			// edits stand, and the lecture's next run makes what they
			// affect.
			l.next = ""
			prev, g := l.runID, l.g
			s.mu.Unlock()
			// Not if another process took it over (see takenOver): its
			// cancel is then saved for that process.
			return s.shelve(key, runID, prev, g, errCancelledByRequest, "the lecture's next run regenerates what its edits affect"), nil
		case l.next == runID:
			s.mu.Unlock()
			return false, errStarting
		case l.runID == runID && l.run != nil && l.run.ID() == runID:
			run := l.run
			s.mu.Unlock()
			select {
			case <-run.Done():
				return false, nil // ended: its record says so
			default:
			}
			run.CancelCause(errCancelledByRequest)
			return true, nil
		case l.runID == runID:
			s.mu.Unlock()
			return false, errStarting
		}
	}
	s.mu.Unlock()
	return false, nil
}

// drainRuns drains the runs for up to -drain (none with 0), with
// errShutdown: no node starts, the calls under way end and are kept, and
// each run ends cancelled with codeShutdown, to be resumed as a run that
// the shutdown cancelled is. The runs left once it has passed (a call
// longer than it) are cancelled next, with the same cause.
func (s *service) drainRuns(ctx context.Context) {
	if s.cfg.drain <= 0 || s.exec == nil {
		return
	}
	s.logger.Info("draining the runs: no node starts, the calls under way end", "for", s.cfg.drain)
	dctx, cancel := context.WithTimeout(ctx, s.cfg.drain)
	defer cancel()
	if err := s.exec.Drain(dctx, errShutdown); err != nil {
		s.logger.Warn("the runs did not end within the drain: cancelling them", "drain", s.cfg.drain, "err", err)
	}
}

// errShutdown is the cause with which the shutdown cancels the runs: the
// records of the runs so cancelled say it, with the code codeShutdown
// (Record.CancelledBy), and a live process's recovery pass, or the next
// start of the service, resumes them (see recoverRuns).
var errShutdown = executor.CancelCode(codeShutdown, errors.New("examples/service: the service shut down"))

// shutdownRunsIt ends the final event of a queued run that a shutdown
// left unstarted: a live process's recovery pass runs it (see
// recoverRuns), or, with none, the next process to start.
const shutdownRunsIt = "a live process of the service, or the next one to start, runs it"

// The service's own cancel codes (executor.CancelCode), which the records
// of the runs it cancels, or records as queued and not started, say in
// Record.CancelledBy: the start-up tells by them the runs to resume
// (resumeCodes) from the others, never by Record.Error, which is for
// people.
const (
	// codeShutdown: the shutdown cancelled the run (errShutdown), or
	// did not start it, queued: the next start resumes it.
	codeShutdown = "shutdown"
	// codeRequest: a request cancelled the run (POST /runs/{run}/cancel,
	// errCancelledByRequest): no start resumes it. One that it cancelled
	// while queued, not started, is no run that came after another of
	// its lecture (see droppedQueued).
	codeRequest = "request"
	// codeNotStarted: a run queued and not started for another cause
	// (another process took its lecture, its start failed: see shelve):
	// no start resumes it, and it is no run that came after another of
	// its lecture (see toResume).
	codeNotStarted = "not-started"
	// codeNoTemplate: a run that a shutdown or a lost lock cut, whose
	// graph no template of the service builds (see recoverRun): no
	// start resumes it. Its Error says what cut it, then why.
	codeNoTemplate = "no-template"
)

// errNoTemplate is why a run whose graph no template of the service
// builds is not resumed (see recoverRun).
var errNoTemplate = errors.New("examples/service has no template for its graph")

// resumeCodes are the codes of the cancelled runs that the start-up
// resumes, if still their lecture's newest (see toResume): those of the
// shutdown, and those of a lost lecture lock, which pgstore's
// GraphLock.Guard cancels with pgstore.CancelledByLockLost.
var resumeCodes = []string{codeShutdown, pgstore.CancelledByLockLost}

// cancelCodeOf is the code of the record of a queued run not started for
// cause (see shelve): cause's own code (executor.CancelCoder), that of
// errShutdown or errCancelledByRequest, or else codeNotStarted.
func cancelCodeOf(cause error) string {
	var c executor.CancelCoder
	if errors.As(cause, &c) {
		return c.CancelCode()
	}
	return codeNotStarted
}

// resumeHook, if not nil, is called by recoverRun with the ID of the run
// it resumes, once the lecture is reserved for the resume, before the
// resume starts (started false), and once it has started (true); a
// variable for the tests.
var resumeHook func(runID string, started bool)

// startHook, if not nil, is called by startRun once the lecture is
// reserved for the run, before the run starts; a variable for the tests.
var startHook func(key string)

// savedHook, if not nil, is called by the edit endpoint (POST
// /lectures/{key}/edits) once the node's new parameters are saved in the
// edit's transaction, before the edit is recorded in it; a variable for
// the tests.
var savedHook func(key, node string)

// getRunHook, if not nil, is called by GET /runs/{run} between its reads
// of the run's report and of its record; a variable for the tests.
var getRunHook func(runID string)

// findRunHook, if not nil, is called by findRun when the run's record is
// not found, before it looks for the run among the runs queued; a
// variable for the tests.
var findRunHook func(runID string)

// tryLock takes the lecture's lock (Store.TryLockGraph), or returns
// errBusyElsewhere if another session holds it, or errLockTimeout if ctx
// ends first (Postgres stalls).
func (s *service) tryLock(ctx context.Context, key string) (*pgstore.GraphLock, error) {
	if lockHook != nil {
		lockHook("try")
	}
	lock, err := s.store.TryLockGraph(ctx, key)
	switch {
	case errors.Is(err, pgstore.ErrGraphLocked):
		return nil, errBusyElsewhere
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("lecture %q: %w (%w)", key, errLockTimeout, context.Cause(ctx))
	case err != nil:
		return nil, fmt.Errorf("lock lecture %q: %w", key, err)
	}
	return lock, nil
}

// lockHook, if not nil, is called with "try" by tryLock, before it tries
// a lecture's lock, and with "read" before each read of the locks held
// (see paramStore.heldLocks); a variable for the tests.
var lockHook func(what string)

// settleWait bounds how long a request waits for a lecture's lock that
// another process holds after the lecture's newest run has ended (see
// tryLockSettled); a variable for the tests.
var settleWait = 2 * time.Second

// tryLockSettled is tryLock, for a request: while another process holds
// the lock but the lecture's newest run has ended, and no run is queued
// on it, that process is giving the lock up (a client that saw the run's
// final event may ask at once), and the lock is tried again, every 50
// ms, for up to settleWait, before errBusyElsewhere.
func (s *service) tryLockSettled(ctx context.Context, key string) (*pgstore.GraphLock, error) {
	return s.tryLockWhile(ctx, key, func() bool { return s.endedElsewhere(ctx, key) })
}

// tryLockWhile is tryLock, tried again every 50 ms for up to settleWait
// while the lock is held elsewhere and again says to look again.
func (s *service) tryLockWhile(ctx context.Context, key string, again func() bool) (*pgstore.GraphLock, error) {
	deadline := time.Now().Add(settleWait)
	for {
		lock, err := s.tryLock(ctx, key)
		if !errors.Is(err, errBusyElsewhere) || time.Now().After(deadline) || !again() {
			return lock, err
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
	}
}

// retakeHook, if not nil, is called before a run takes its lecture's
// lock again after the lock was lost (a queued run, or an edit's); a
// variable for the tests.
var retakeHook func(key string)

// endedElsewhere reports whether the newest run of lecture key has
// ended, and no run is queued on it (a row of a run recorded does not
// count): a process that holds its lock is giving it up. A failure to
// tell is taken for no.
func (s *service) endedElsewhere(ctx context.Context, key string) bool {
	newest, err := s.store.LatestRun(ctx, key) // the newest record alone, whatever the lecture's history
	if err != nil || newest.Status == executor.RunRunning {
		return false
	}
	queued, err := s.params.queuedRuns(ctx, key)
	if err != nil {
		return false
	}
	// A row whose run has a record is left over (see startOrQueue): a
	// run that started after the newest record was read has one too, and
	// its status is not read, so that it counts as going on.
	for _, q := range queued {
		if q.runID == newest.ID {
			continue
		}
		if rec, err := s.store.GetRun(ctx, q.runID); err != nil || rec.GraphKey != key || !listedBefore(rec, newest) {
			return false
		}
	}
	return true
}

// newestRunsPage is the records of a page that newestRun reads.
const newestRunsPage = 8

// newestRun returns the newest record of lecture key that is not that of
// a queued run not started (see droppedQueued), and whether there is
// one: it reads the records newest first, a page at a time
// (Store.LatestRuns), and stops at the first such record, whatever the
// lecture's history.
func (s *service) newestRun(ctx context.Context, key string) (executor.Record, bool, error) {
	cursor := ""
	for {
		page, next, err := s.store.LatestRuns(ctx, key, cursor, newestRunsPage)
		if err != nil {
			return executor.Record{}, false, err
		}
		for _, r := range page {
			if !droppedQueued(r) {
				return r, true, nil
			}
		}
		if next == "" {
			return executor.Record{}, false, nil
		}
		cursor = next
	}
}

// unlock gives a lecture's lock up, within unlockTimeout. A lock lost
// before (its connection ended) is logged: the run under it may have
// overlapped another process's.
func (s *service) unlock(lock *pgstore.GraphLock) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	if err := lock.Unlock(ctx); err != nil {
		s.logger.Warn("unlock lecture", "lecture", lock.GraphKey(), "err", err)
	}
}

// admissible returns errClosing, errBusy or errFull if a run of key may
// not start now. s.mu must be held.
func (s *service) admissible(key string) error {
	switch {
	case s.stopping:
		return errClosing
	case s.lectures[key] != nil:
		return errBusy
	case len(s.lectures)+s.held >= s.maxRuns():
		return errFull
	}
	return nil
}

// startRun starts a run of g, of seconds, on key with the given ID, under the
// lecture's lock, or returns errBusy (errBusyElsewhere when another
// process holds the lock), errFull, or errClosing. Each lecture that runs
// takes one of -max-runs slots, as does each slot an edit holds (see
// holdSlot).
func (s *service) startRun(ctx context.Context, key string, g *graph.Graph, runID, reason string, seconds int) error {
	s.mu.Lock()
	err := s.waitLocking(ctx, key)
	if err == nil {
		err = s.admissible(key)
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.beginLocking(key)
	s.mu.Unlock()
	// The turn ends on every path, a panic's too (net/http recovers it),
	// or the lecture's other requests would wait for it for good. Before
	// it ends, a lock that no run took over is given up, and a lecture
	// reserved for a run that launch was not given is freed (see ended).
	var lock *pgstore.GraphLock // held, until reserve hands it to the run
	reserved := false           // until launch takes the run over
	defer func() {
		if reserved {
			s.ended(key, runID, nil, errStartPanicked) // frees the lecture and its lock
		}
		if lock != nil {
			s.unlock(lock)
		}
		// Once the lock is free, or the run has started (its graph is the
		// lecture's now), or failed to: a request that waited then edits
		// the lecture's graph.
		s.mu.Lock()
		s.endLocking(key)
		s.mu.Unlock()
	}()
	// Outside s.mu: a round trip to the server.
	lock, err = s.tryLockSettled(ctx, key)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if err = s.admissible(key); err == nil {
		err = s.reserve(key, g, runID, lock)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	lock, reserved = nil, true
	// Saved while the lecture is reserved, before its run starts: an edit
	// that has the lecture after it reads this length. A failure is
	// logged, and an edit then finds the length in the run's record.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), editTimeout)
	defer cancel()
	if startHook != nil {
		startHook(key)
	}
	if err := s.params.setSeconds(sctx, key, seconds); err != nil {
		s.logger.Warn("lecture length not saved", "lecture", key, "run", runID, "err", err)
	}
	reserved = false
	return s.launch(key, runID, reason, "")
}

// waitLocking waits, with s.mu held (it unlocks it while it waits), while
// another request of this process takes or holds the lock of key, a
// lecture not running, or while the lecture is released (its last run
// ended, its lock being given up: see lecture.releasing), or until ctx
// ends. Once it returns nil, the caller, with s.mu still held, finds the
// lecture running (s.lectures), or may call beginLocking.
func (s *service) waitLocking(ctx context.Context, key string) error {
	for {
		var done <-chan struct{}
		l := s.locking[key]
		switch lec := s.lectures[key]; {
		case l != nil:
			done = l.done
			l.waiters++
		case lec != nil && lec.releasing != nil:
			done = lec.releasing
		default:
			return nil
		}
		s.mu.Unlock()
		var err error
		select {
		case <-done:
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		s.mu.Lock()
		if l != nil {
			l.waiters--
		}
		if err != nil {
			return fmt.Errorf("lecture %q: %w (%w)", key, errNoTurn, err)
		}
	}
}

// beginLocking marks key's lock as being taken by the caller, which
// calls endLocking once a run has taken it over (reserve), or it has
// given it up. s.mu must be held, and waitLocking must have returned nil.
func (s *service) beginLocking(key string) {
	s.locking[key] = &locking{done: make(chan struct{})}
}

// endLocking ends what beginLocking began. s.mu must be held.
func (s *service) endLocking(key string) {
	if l := s.locking[key]; l != nil {
		close(l.done)
		delete(s.locking, key)
	}
}

// maxRuns is -max-runs.
func (s *service) maxRuns() int {
	if s.cfg.maxRuns > 0 {
		return s.cfg.maxRuns
	}
	return defaultMaxRuns
}

// slot is a run slot, and the lecture's lock, that an edit holds from
// before it saves anything until its run starts, so that an edit refused
// for want of either has saved nothing.
type slot struct {
	s       *service
	key     string
	held    bool
	locking bool               // it began locking key (see beginLocking)
	lock    *pgstore.GraphLock // until a run takes it over
}

// holdSlot holds a run slot and the lecture's lock for an edit of key,
// unless a run of key is on in this process (the edit's run will be
// queued after it), or returns errFull, or errBusyElsewhere when another
// process holds the lock. While another request of this process takes
// or holds the lecture's lock, it waits for it (see waitLocking).
func (s *service) holdSlot(ctx context.Context, key string) (*slot, error) {
	s.mu.Lock()
	if err := s.waitLocking(ctx, key); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	sl := &slot{s: s, key: key}
	if s.lectures[key] != nil {
		s.mu.Unlock()
		return sl, nil
	}
	if len(s.lectures)+s.held >= s.maxRuns() {
		s.mu.Unlock()
		return nil, errFull
	}
	s.held++
	sl.held = true
	s.beginLocking(key)
	sl.locking = true
	s.mu.Unlock()
	// The turn ends on every path but the slot's return, a panic's too.
	ok := false
	defer func() {
		if !ok {
			sl.release()
		}
	}()
	lock, err := s.tryLockSettled(ctx, key)
	if err != nil {
		return nil, err
	}
	sl.lock, ok = lock, true
	return sl, nil
}

// release gives the slot back, if still held, and the lock, unless a run
// took it over.
func (sl *slot) release() {
	sl.s.mu.Lock()
	sl.releaseLocked()
	lock := sl.lock
	sl.lock = nil
	sl.s.mu.Unlock()
	if lock != nil {
		sl.s.unlock(lock)
	}
	// Once the lock is free: the requests that wait take it.
	sl.s.mu.Lock()
	sl.endLocking()
	sl.s.mu.Unlock()
}

// releaseLocked gives the run slot back, if still held. s.mu must be held.
func (sl *slot) releaseLocked() {
	if sl.held {
		sl.s.held--
		sl.held = false
	}
}

// endLocking ends the slot's locking of its lecture (see beginLocking),
// if it began it. s.mu must be held.
func (sl *slot) endLocking() {
	if sl.locking {
		sl.s.endLocking(sl.key)
		sl.locking = false
	}
}

// startOrQueue starts a run of g on key, in the slot sl holds if any and
// under its lock, or, while one is on in this process, queues one after
// it (one at most: edits made meanwhile share it). It returns the new
// run's ID and the ID of the run it waits for, if any. When the lock is
// held by another process it returns errBusyElsewhere.
func (s *service) startOrQueue(ctx context.Context, key string, g *graph.Graph, reason string, sl *slot) (runID, after string, err error) {
	relock := false // the slot's lock was lost: its session may not have ended yet
	for tried := false; ; {
		s.mu.Lock()
		if sl.lock != nil && lost(sl.lock) {
			// Lost since it was taken (its session ended while the edit
			// was saved): no run starts under it. It is taken again.
			lock := sl.lock
			sl.lock = nil
			relock = true
			s.mu.Unlock()
			s.unlock(lock)
			s.mu.Lock()
		}
		// The slot sl held, if any, is the one the run takes. An edit
		// that held none found its lecture running; if that run has ended
		// since, the edit, saved by now, starts its run in the slot just
		// freed (another request may have taken it: the cap is then
		// passed by one run, rather than refuse an edit that is saved),
		// once it has taken the lock. A run queued by edits is started
		// likewise when its turn comes (see next), under the lock of the
		// run before it.
		if l := s.lectures[key]; sl.lock == nil && l != nil && l.releasing == nil && !s.stopping {
			sl.releaseLocked()
			made := l.next == ""
			if made {
				l.next = newRunID()
			}
			runID, after = l.next, l.runID
			s.mu.Unlock()
			if made {
				// Every process of the service knows it from now on, and a
				// recovery after this process died runs it (see recoverRuns).
				// Written after the run may have started already (the run
				// before it ended meanwhile): its record is read first.
				if err := s.params.queue(ctx, runID, key, after); err != nil {
					s.logger.Warn("queued run not saved: only this process knows it", "run", runID, "lecture", key, "err", err)
				}
			}
			return runID, after, nil
		}
		if sl.lock != nil || s.stopping {
			sl.releaseLocked()
			runID = newRunID()
			err = s.reserve(key, g, runID, sl.lock)
			if err == nil {
				sl.lock = nil // the run's now
			}
			s.mu.Unlock()
			if err != nil {
				return "", "", err
			}
			err = s.launch(key, runID, reason, "")
			// Once the run has started, or failed to: see startRun.
			s.mu.Lock()
			sl.endLocking()
			s.mu.Unlock()
			return runID, "", err
		}
		if tried {
			s.mu.Unlock()
			return "", "", errBusyElsewhere
		}
		if !sl.locking {
			// The lecture's run ended since the edit found it running:
			// another request of this process may be taking its lock.
			if err := s.waitLocking(ctx, key); err != nil {
				s.mu.Unlock()
				return "", "", err
			}
			if s.lectures[key] != nil {
				s.mu.Unlock()
				continue // it started a run: queue after it
			}
			s.beginLocking(key)
			sl.locking = true
		}
		s.mu.Unlock()
		// The session of a lock lost may still hold it a moment: Postgres
		// frees its locks once it has ended (see tryLockWhile).
		if relock && retakeHook != nil {
			retakeHook(key)
		}
		lock, err := s.tryLockWhile(ctx, key, func() bool { return relock })
		tried = true
		switch {
		case errors.Is(err, errBusyElsewhere):
			// Another process holds it: the loop answers so.
		case err != nil:
			return "", "", err
		default:
			sl.lock = lock
		}
	}
}

// reserve marks the lecture as running runID, under lock, which the run
// takes over. s.mu must be held.
func (s *service) reserve(key string, g *graph.Graph, runID string, lock *pgstore.GraphLock) error {
	switch {
	case s.stopping:
		return errClosing
	case s.lectures[key] != nil:
		return errBusy
	}
	s.lectures[key] = &lecture{runID: runID, g: g, lock: lock}
	s.runs.Add(1)
	return nil
}

// launch starts the run that reserve made room for: a resume of run
// resumes if not "", or else a run of the lecture's graph. The lock's
// GuardFor cancels it if the lecture's lock is lost meanwhile (another
// process may take the lecture then), after a re-take of -retake (see
// config.retake), and a goroutine waits for its end.
// The runs' context is the service's, not a request's.
func (s *service) launch(key, runID, reason, resumes string) error {
	s.mu.Lock()
	l := s.lectures[key]
	g, lock := l.g, l.lock
	s.mu.Unlock()
	// A panic before the run's end is in hand (net/http recovers it)
	// frees the lecture all the same.
	owned := false // ended was called, or the watcher calls it
	defer func() {
		if !owned {
			s.ended(key, runID, nil, errStartPanicked)
		}
	}()
	var run *executor.Run
	var err error
	if resumes == "" {
		run, err = s.exec.Start(s.runCtx, executor.RunRequest{
			GraphKey: key, Graph: g, RunID: runID, TriggeredBy: "examples/service", Reason: reason,
		})
	} else {
		run, err = s.exec.Resume(s.runCtx, g, resumes, executor.ResumeOptions{RunID: runID, Reason: reason})
	}
	if err != nil {
		// Closed, or the runs' context cancelled: a shutdown began after
		// reserve.
		if errors.Is(err, executor.ErrClosed) || s.runCtx.Err() != nil {
			err = errClosing
		}
		owned = true
		s.ended(key, runID, nil, err)
		return err
	}
	s.mu.Lock()
	if l := s.lectures[key]; l != nil && l.runID == runID {
		l.run = run
	}
	s.mu.Unlock()
	go func() {
		rep, err := run.Wait()
		s.ended(key, runID, rep, err)
	}()
	owned = true
	s.logger.Info("run started", "run", runID, "lecture", key, "nodes", run.Plan().Len(), "reason", reason)
	if lock != nil {
		// A lost lock cancels the run, with the loss as its cause (ended
		// logs it): another process may take the lecture then. A session
		// that ends (a Postgres restart, a failover) is taken again on a
		// new one for up to -retake first, and the run goes on. The lock
		// is the lecture's, which a queued run takes over: GuardFor, not
		// HoldFor, which would unlock it at this run's end.
		if err := lock.GuardFor(run, pgstore.HoldOptions{Retake: s.cfg.retake, Logger: s.logger}); err != nil {
			// Refused options (parse refuses a negative -retake): the run
			// is guarded as before, cancelled at once on a loss.
			s.logger.Error("lecture lock guarded without a re-take", "run", runID, "lecture", key, "err", err)
			lock.Guard(run)
		}
	}
	return nil
}

// ended records a run's end, then starts the run queued after it, or
// gives the lecture's lock up and frees the lecture (see next); the
// lecture of a run that a lost lock cut is then saved for the passes of
// the recovery (see paramStore.markCut).
func (s *service) ended(key, runID string, rep *executor.Report, err error) {
	defer s.runs.Done()
	log := s.logger.With("run", runID, "lecture", key)
	switch {
	case errors.Is(err, errClosing):
		log.Info("run not started: the service is shutting down")
	case rep == nil:
		log.Error("run did not start", "err", err)
	case err != nil:
		log.Warn("run ended", "status", rep.Record.Status, "err", err)
	default:
		log.Info("run ended", "status", rep.Record.Status, "generated", len(rep.Generated), "dirty", len(rep.Dirty))
	}
	s.mu.Lock()
	l := s.lectures[key]
	if l != nil && l.next == "" && l.releasing == nil {
		// With its report: a client that sees the run ended (GET
		// /runs/{run}) and starts another waits while the lock is given
		// up, rather than find the lecture busy.
		l.releasing = make(chan struct{})
	}
	if rep != nil {
		s.reports[runID] = &report{ended: time.Now(), rep: rep}
	}
	s.mu.Unlock()
	if l != nil {
		s.next(key, l, runID)
	}
	if rep != nil && rep.Record.Status == executor.RunCancelled && rep.Record.CancelledBy == pgstore.CancelledByLockLost {
		// For the passes, which may not have seen it going on (see
		// watched), as the shutdown saves the lectures of the runs it
		// cut; once the run queued after it, if any, has started (a
		// Postgres that fails, as a lost lock may tell, holds it no
		// longer).
		ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
		if err := s.params.markCut(ctx, []string{key}); err != nil {
			log.Warn("the run that a lost lock cut is left to a pass that saw it going on, or to the next start", "err", err)
		}
		cancel()
	}
}

// next starts the run queued after run prev, under the lecture's lock,
// or else gives the lock up and then frees the lecture. The lecture
// stays in s.lectures while the lock is given up: an edit made while a
// run queued retakes the lock queues its run on it, and the requests made
// while the lecture is released wait for it (see releasing).
func (s *service) next(key string, l *lecture, prev string) {
	for {
		s.mu.Lock()
		switch {
		case l.next == "":
			s.mu.Unlock()
			s.release(key, l)
			return
		case !s.stopping && l.lock != nil && !lost(l.lock):
			l.runID, l.next, l.resumes = l.next, "", ""
			s.runs.Add(1)
			runID, g := l.runID, l.g
			s.mu.Unlock()
			err := s.launch(key, runID, "edits made during run "+prev, "")
			if err == nil {
				s.unqueued(runID) // its record is written
			}
			switch {
			case errors.Is(err, errClosing):
				// The shutdown began meanwhile: as below. The run's end
				// (ended) has released the lecture.
				s.shelve(key, runID, prev, g, errShutdown, shutdownRunsIt)
			case err != nil:
				// Its start failed otherwise (a store error, say): its
				// edit was given its ID, which is recorded so, as when
				// another process took the lecture (ended logged the
				// error).
				s.shelve(key, runID, prev, g, fmt.Errorf("its start failed: %w", err),
					"the lecture's next run regenerates what its edits affect")
			}
			return
		case l.lock != nil:
			// The lock was lost (the run before was cancelled for it), or
			// the shutdown is on: it is given up, and a queued run takes
			// it again below.
			lock := l.lock
			l.lock = nil
			s.mu.Unlock()
			s.unlock(lock)
		case !s.stopping:
			// A run is queued and the lock was given up.
			s.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			if retakeHook != nil {
				retakeHook(key)
			}
			// The session that held the lock, when it was lost, may not
			// have ended yet: Postgres frees its locks a moment after. It
			// is tried again for a while (see tryLockWhile).
			lock, err := s.tryLockWhile(ctx, key, func() bool { return true })
			cancel()
			if err != nil {
				// Another process took the lecture between the two runs,
				// or the server failed.
				s.drop(key, l, prev, fmt.Errorf("the lecture's lock was not taken again: %w", err),
					"the lecture's next run regenerates what its edits affect")
				return
			}
			s.mu.Lock()
			l.lock = lock
			s.mu.Unlock()
		default:
			s.mu.Unlock()
			s.drop(key, l, prev, errShutdown, shutdownRunsIt)
			return
		}
	}
}

// release gives the lock of lecture l up, if held, and frees the
// lecture, when no run of it is left to start.
func (s *service) release(key string, l *lecture) {
	s.mu.Lock()
	if l.releasing == nil {
		l.releasing = make(chan struct{})
	}
	lock := l.lock
	l.lock = nil
	s.mu.Unlock()
	if lock != nil {
		s.unlock(lock)
	}
	s.mu.Lock()
	delete(s.lectures, key)
	close(l.releasing)
	s.mu.Unlock()
}

// drop records the run queued on lecture l, after run prev, as not
// started for cause (see shelve), then releases the lecture. The lecture
// stays queued (GET /runs/{run} finds it) until its record is written.
func (s *service) drop(key string, l *lecture, prev string, cause error, then string) {
	s.mu.Lock()
	if l.releasing == nil {
		l.releasing = make(chan struct{}) // no edit queues on it from now on
	}
	queued, g := l.next, l.g
	s.mu.Unlock()
	if queued != "" { // not cancelled meanwhile (see cancelQueued)
		s.shelve(key, queued, prev, g, cause, then)
	}
	s.release(key, l)
}

// shelveHook, if not nil, is called by shelve between the record of the
// run it shelves and its final event; a variable for the tests.
var shelveHook func(runID string)

// shelve records run runID, queued after run prev and not started for
// cause, as cancelled, with a final run.cancelled on its stream that says
// why and what then (what becomes of its edits): the client was given its
// ID, which stays meaningful (GET /runs/{run} finds it, its events end;
// if the record cannot be written, the events end all the same, saying
// so).
// The record's cancel code is cause's (see cancelCodeOf). When cause is
// errShutdown, the next start resumes it as it resumes the runs a
// shutdown cancelled (see recoverRuns), being its lecture's
// newest run; the shutdown calls it before it closes the sinks (it waits
// for the runs' ends, which call next). When another process took the
// lecture, that process's runs regenerate what the edits affect; when the
// run's start failed otherwise, the lecture's next run does.
//
// It reports false, having done nothing, if another process took the run
// over (see takenOver), which runs or records it.
func (s *service) shelve(key, runID, prev string, g *graph.Graph, cause error, then string) bool {
	log := s.logger.With("run", prev, "lecture", key, "queued", runID)
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	if s.takenOver(ctx, runID) {
		// This process's lock was lost, and it was taken for dead: the
		// process that took the run over runs it, or records it.
		log.Warn("queued run not recorded as not started: another process took it over", "cause", cause)
		return false
	}
	now := time.Now()
	why := notStarted(prev, cause, then)
	rec := executor.Record{ID: runID, GraphKey: key, Seconds: g.Segments() * graph.SegmentSeconds,
		Graph: executor.Fingerprint(g), TriggeredBy: "examples/service", Reason: "edits made during run " + prev,
		Status: executor.RunCancelled, StartedAt: now, EndedAt: now, Error: why, CancelledBy: cancelCodeOf(cause)}
	recErr := s.store.PutRun(ctx, rec)
	if shelveHook != nil {
		shelveHook(runID)
	}
	if recErr != nil {
		// The edits stand: the lecture's next run regenerates what they
		// affect. The stream ends all the same: its readers wait for
		// nothing more.
		log.Error("queued run not started nor recorded", "cause", cause, "err", recErr)
		why = notStarted(prev, cause, "its record was not written: the lecture's next run regenerates what its edits affect")
	}
	if err := s.sink.Publish(ctx, progress.Event{RunID: runID, GraphKey: key, Seq: 1, Time: now,
		Type: progress.RunCancelled, Stage: progress.NoStage, Message: why, Error: cause.Error()}); err != nil {
		log.Warn("the final event of a queued run was not published", "err", err)
	}
	if recErr == nil {
		log.Info("queued run not started; recorded as cancelled", "cause", cause, "then", then)
	}
	// Its stream has ended, whether its record was written or not: no
	// start may run it. Without its record, its row alone says it is
	// queued: it must go, or its readers are told so for good, and
	// another process runs it once this one has stopped.
	if recErr != nil {
		s.forgetQueued(key, runID)
	} else {
		s.unqueued(runID)
	}
	return true
}

// forgetQueued deletes the row of run runID, queued on lecture key, which
// was recorded neither as started nor as not started (see shelve): tried
// again as a give-back is (see retryStore), then, if it still fails, at
// the start of each pass of the recovery (see retryForgets) and last at
// the shutdown, the run kept meanwhile in forgetting. Meanwhile this
// process owns the row, and runs it nowhere.
func (s *service) forgetQueued(key, runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	err := retryStore(ctx, func(ctx context.Context) error { return s.params.unqueue(ctx, runID) })
	if err == nil {
		return
	}
	s.logger.Warn("the row of a queued run not recorded was not deleted: the next pass of the recovery tries again", "run", runID, "lecture", key, "err", err)
	s.mu.Lock()
	s.forgetting[runID] = key
	s.mu.Unlock()
}

// retryForgets deletes the rows of the runs in forgetting (see
// forgetQueued), in run ID order, once each, and keeps those whose
// delete fails again, logging then what becomes of them: that the next
// pass of the recovery tries again, or, at the shutdown (atShutdown),
// which no pass follows, that another process that takes the run over
// deletes its row (see queuedStreamEnded).
func (s *service) retryForgets(ctx context.Context, atShutdown bool) {
	then := "the row of a queued run not recorded was not deleted: the next pass of the recovery tries again"
	if atShutdown {
		then = "the row of a queued run not recorded was not deleted by the shutdown: a process that takes the run over deletes it if the run's stream has ended, and runs it otherwise"
	}
	s.mu.Lock()
	ids := slices.Sorted(maps.Keys(s.forgetting))
	s.mu.Unlock()
	for _, id := range ids {
		if err := s.params.unqueue(ctx, id); err != nil {
			s.logger.Warn(then, "run", id, "err", err)
			continue
		}
		s.mu.Lock()
		delete(s.forgetting, id)
		s.mu.Unlock()
	}
}

// notStarted is the Error of the record of a run queued after run prev
// and not started for cause (see shelve); then says what becomes of its
// edits.
func notStarted(prev string, cause error, then string) string {
	return fmt.Sprintf("queued after run %s, not started: %v; %s", prev, cause, then)
}

// droppedQueued reports whether rec is the record of a run queued and
// not started for another cause than the shutdown (see shelve): for
// another process took its lecture, its start failed (code
// "not-started"), or a request cancelled it while it waited (code
// "request"). No start resumes it, and it is no run that came after
// another of its lecture (see toResume): its StartedAt is the time it was
// recorded, not that of a run. Told from a run that started and was
// cancelled by a request by what shelve writes (see neverStarted).
func droppedQueued(rec executor.Record) bool {
	return rec.Status == executor.RunCancelled && rec.CancelledBy != codeShutdown && neverStarted(rec)
}

// neverStarted reports whether rec is as shelve writes the record of a
// queued run that did not start: ended as it started, to the
// microsecond, having counted nothing and resumed nothing. The record of
// a run that started, which the executor writes, ends after its start
// (its first record is stored in between).
func neverStarted(rec executor.Record) bool {
	return rec.EndedAt.Equal(rec.StartedAt) && rec.Counts == (executor.Counts{}) && rec.Resumes == ""
}

// lost reports whether lock was lost (see pgstore.GraphLock.Lost): a
// run queued after the run it was lost under must not take it over.
func lost(lock *pgstore.GraphLock) bool {
	select {
	case <-lock.Lost():
		return true
	default:
		return false
	}
}

// queued reports whether runID is a run queued in this process, or one
// that goes on in it (it may have no record yet: a queued run starting),
// and of which lecture. Not a run that has ended, whose lecture is being
// released: its record tells, and, were it pruned, the run is no more.
func (s *service) queued(runID string) (key string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, l := range s.lectures {
		if (l.runID == runID && l.releasing == nil) || l.next == runID {
			return k, true
		}
	}
	return "", false
}

// cancelRequested reports whether a request saved a cancel of run
// runID (see requestCancel); a failure to tell is logged, and taken for
// no.
func (s *service) cancelRequested(ctx context.Context, runID string) bool {
	ids, err := s.params.cancelsOf(ctx, []string{runID})
	if err != nil {
		s.logger.Warn("cancels not read", "run", runID, "err", err)
	}
	return len(ids) > 0
}

// clearCancel deletes the saved cancel of run runID, logging a failure
// (the retention deletes it later).
func (s *service) clearCancel(runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	if err := s.params.clearCancel(ctx, runID); err != nil {
		s.logger.Warn("cancel not deleted", "run", runID, "err", err)
	}
}

// queuedOf returns the run queued in this process after the run of
// lecture key going on, if any.
func (s *service) queuedOf(key string) (runID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.lectures[key]; l != nil && l.next != "" {
		return l.next, true
	}
	return "", false
}

// recoverRuns resumes the runs that a process of the service left
// undone: at start-up (atStart), and every -recover-every in a live
// process (see recoverLoop). Those are the runs recorded as running
// whose lecture's lock is free, which a process that died left so (a
// crash, a SIGKILL, a lost host): a live process holds the lock of each
// lecture it runs, and this one's are skipped. At start-up, also those
// that a shutdown or a lost lock cancelled (see cutShort: by their
// records' cancel code), if still the newest run of their lecture (read
// with a scan of the runs table, which the passes of a live process
// spare). In a later pass, the newest run of a lecture of which a run
// that an earlier pass listed as running has ended, if a shutdown or a
// lost lock cut it (see watched): a run that another process's shutdown
// cancels after this process's start looked is finished so, as is one
// cut short that an earlier pass, the start's included, left (past
// -max-runs, its lecture locked, its resume failed). Each is resumed under
// its lecture's lock, as a run of this process: a lecture whose lock
// another process holds is running there, and is left to it. A run that
// a process which died had queued after another is not lost: it resumes
// the run before it (see recoverRun), or starts (see recoverQueued). A
// queued run is a dead process's when the lock of the process that saved
// it (its owner: see procLock) is free; a run this process queued, or
// that a live process did, is never taken, even while its lecture's lock
// is free (a lost lock taken again, a shutdown), and one saved without an
// owner (by an older version of the service) is taken at start-up only,
// by its lecture's lock alone, as it was then. A process that takes a
// queued run over becomes its owner, under the lecture's lock, so that
// no two take it, and gives it back if it does not start it; a give-back
// that failed is tried again at the start of each pass (see
// unclaimQueued). A run whose cancel was requested is ended rather than
// resumed, and the run queued after it then starts; one whose cancel is
// saved while it is resumed (another process read its record before the
// resume's) has its resume cancelled (see applyCancels). Past -max-runs,
// the rest are left for a later pass. A pass reads the locks held once
// (pg_locks), and tries the locks of the lectures that it saw free alone:
// beyond that read, its cost is a read of the record of each run queued.
// It returns an error only if the runs cannot be listed.
func (s *service) recoverRuns(ctx context.Context, atStart bool) error {
	// Before the queued runs are read: a run given back is then taken
	// over as any dead process's.
	s.retryGiveBacks(ctx)
	s.retryForgets(ctx, false)
	running, err := s.store.RunsByStatus(ctx, executor.RunRunning)
	if err != nil {
		return fmt.Errorf("list the runs left running: %w", err)
	}
	if atStart {
		// Read with a scan of the runs table (only running records have
		// an index of their own): a cost at start-up that grows with
		// -retain.
		cancelled, err := s.store.RunsByStatus(ctx, executor.RunCancelled)
		if err != nil {
			return fmt.Errorf("list the runs cancelled: %w", err)
		}
		for _, rec := range cancelled {
			if cutShort(rec) {
				running = append(running, rec)
			}
		}
	}
	// The runs queued after another whose process died before their
	// start: a run resumed is resumed under the ID of the run queued
	// after it, whose edits it makes too; the others start (see
	// recoverQueued).
	queued, err := s.params.queuedRuns(ctx, "")
	if err != nil {
		return err
	}
	next := map[string]queuedRun{} // the queued runs without a record, of dead processes, by the run each waits for
	var orphans []queuedRun
	// The runs after which a process not known dead queued one: a run
	// left running is its process's, whose death the server tells of one
	// lock at a time (the lecture's may be free before the process's), or
	// whose lecture's lock alone was lost (its run is being cancelled).
	// Either way, a later pass tells.
	aliveAfter := map[string]bool{}
	// In a later pass, every pass finds the live processes' runs.
	level := slog.LevelInfo
	if !atStart {
		level = slog.LevelDebug
	}
	// One read of the locks held, for the whole pass: whose process is
	// dead, and which lectures run elsewhere (their locks are not tried).
	// A lock seen free is tried, and a takeover reads its owner's lock
	// again (see claimQueued). A failure to read them is logged: the pass
	// then tries every lecture's lock, and takes no queued run over.
	held, err := s.params.heldLocks(ctx)
	if err != nil {
		s.logger.Warn("the queued runs of dead processes not looked for", "err", err)
	}
	lockedElsewhere := func(key string) bool { return held[s.store.GraphLockKey(key)] }
	for _, q := range queued {
		switch _, err := s.store.GetRun(ctx, q.runID); {
		case err == nil:
			s.unqueued(q.runID) // it started, or was recorded: a row left over
		case errors.Is(err, executor.ErrNotFound):
			if s.ownerGone(q, atStart, held) {
				next[q.after] = q
				orphans = append(orphans, q)
			} else if q.owner != s.id || s.givenBackLater(q.runID) {
				// A run of this process's whose give-back failed again is
				// a dead process's, whose run before it is resumed under
				// its ID once it is given back (see retryGiveBacks).
				aliveAfter[q.after] = true
			}
		default:
			s.logger.Warn("queued run not started", "run", q.runID, "lecture", q.key, "err", err)
		}
	}
	// The runs seen going on by an earlier pass that have ended since:
	// their lecture's newest run, if a shutdown or a lost lock cut it
	// (that of another process, which this one's start could not find).
	cut := map[string]bool{}
	for _, rec := range s.watched(ctx, running, s.cutLectures(ctx)) {
		cut[rec.ID] = true
		running = append(running, rec)
	}
	resumable := map[string]bool{}
	for _, rec := range running {
		resumable[rec.ID] = true
	}
	// The runs that ended, read again under their lecture's lock, rather
	// than be resumed (abandoned, or recorded as cancelled, for a request
	// cancelled them; resumed or ended meanwhile elsewhere; their resume
	// refused): the run queued after one of them starts (see recoverRun).
	ended := map[string]bool{}
	for _, rec := range running {
		// Watched until it ends, in any process (see watched); a run cut
		// short (found at the start, or by watched) until it is resumed
		// or superseded: one that this pass leaves (past -max-runs, its
		// lecture locked, its resume failed) is looked at again by the
		// next, which would otherwise list it no more.
		s.mu.Lock()
		s.watching[rec.ID] = rec.GraphKey
		s.mu.Unlock()
		// settled forgets a run cut short that is not to resume: no later
		// pass need look at its lecture for it.
		settled := func() {
			if rec.Status != executor.RunRunning {
				s.mu.Lock()
				delete(s.watching, rec.ID)
				s.mu.Unlock()
			}
		}
		if s.full() {
			// Only of a run still to resume: not of one that a later run
			// resumed, or came after, nor of one that a live process runs.
			switch _, ok, err := s.toResume(ctx, rec); {
			case err != nil:
				s.logger.Warn("run not resumed", "run", rec.ID, "lecture", rec.GraphKey, "err", err)
			case !ok:
				settled()
			case atStart || (held != nil && !lockedElsewhere(rec.GraphKey)):
				s.logger.Warn("run not resumed: -max-runs runs are going on; a later recovery resumes it", "run", rec.ID, "lecture", rec.GraphKey)
			}
			continue
		}
		if aliveAfter[rec.ID] {
			s.logger.Debug("run not resumed yet: the process that queued a run after it is not known dead", "run", rec.ID, "lecture", rec.GraphKey)
			continue
		}
		if lockedElsewhere(rec.GraphKey) {
			// This process's lectures too: skipped below as well.
			s.logger.Log(ctx, level, "run not resumed: a live run of its lecture holds the lecture's lock", "run", rec.ID, "lecture", rec.GraphKey, "status", rec.Status)
			continue
		}
		var q *queuedRun
		if n, ok := next[rec.ID]; ok {
			q = &n
		}
		if !s.beginRecovery(rec.GraphKey) {
			continue // this process runs the lecture, or a request of it takes its lock
		}
		if s.recoverRun(ctx, rec, q, atStart || cut[rec.ID]) {
			ended[rec.ID] = true
			settled()
		}
		s.endRecovery(rec.GraphKey)
	}
	for _, q := range orphans {
		if resumable[q.after] && !ended[q.after] {
			continue // resumed under its ID, or left with the run it waits for
		}
		if s.full() {
			s.logger.Warn("queued run not started: -max-runs runs are going on; a later recovery runs it", "run", q.runID, "lecture", q.key)
			continue
		}
		if lockedElsewhere(q.key) {
			s.logger.Log(ctx, level, "queued run not started here: a live process of the service holds its lecture's lock", "run", q.runID, "lecture", q.key, "after", q.after)
			continue
		}
		if !s.beginRecovery(q.key) {
			continue
		}
		s.recoverQueued(ctx, q, atStart)
		s.endRecovery(q.key)
	}
	return nil
}

// watched returns the runs to resume among the lectures whose runs a
// pass listed as running (see watching) and that listed, the runs listed
// as running now, no longer lists: for each, the newest run of its lecture (a
// queued run not started, see droppedQueued, does not count), if a
// shutdown or a lost lock cut it (see cutShort), such as a run of
// another process whose shutdown began after this process's start had
// looked for the runs to resume (a rolling deploy). A lecture whose
// newest run is running, or is so returned, stays watched under that
// run's ID, until a pass finds it ended otherwise (succeeded, failed,
// cancelled by a request, resumed and ended); the others are forgotten.
// A lecture whose runs cannot be read stays watched, and is logged. The
// lectures that a shutdown, or the end of a run that a lost lock cut,
// saved (marked: see paramStore.markCut), whose
// runs a pass may not have seen going on (they started after it), are
// looked at too, at each pass, until one finds their newest run going on
// or not to resume, and deletes them. Its cost is one newestRun (a page
// of the newest records, however many the lecture has) for each
// run watched that has ended since the last pass, for each run cut short
// that is still to resume (the start's, too: see recoverRuns), and for
// each lecture marked.
func (s *service) watched(ctx context.Context, listed []executor.Record, marked map[string]time.Time) []executor.Record {
	s.mu.Lock()
	for key := range marked {
		s.watching[cutWatchPrefix+key] = key
	}
	w := maps.Clone(s.watching)
	s.mu.Unlock()
	var out []executor.Record
	for _, id := range slices.Sorted(maps.Keys(w)) {
		if slices.ContainsFunc(listed, func(r executor.Record) bool { return r.ID == id }) {
			continue // running still
		}
		key := w[id]
		n, found, err := s.newestRun(ctx, key)
		if err != nil {
			s.logger.Warn("the runs of a lecture that a process ran not read: the next pass tries again", "lecture", key, "err", err)
			continue
		}
		next := ""
		if found {
			switch {
			case n.Status == executor.RunRunning:
				next = n.ID
			case cutShort(n):
				next = n.ID
				if !slices.ContainsFunc(listed, func(r executor.Record) bool { return r.ID == n.ID }) &&
					!slices.ContainsFunc(out, func(r executor.Record) bool { return r.ID == n.ID }) {
					out = append(out, n)
				}
			}
		}
		if at, ok := marked[key]; ok && strings.HasPrefix(id, cutWatchPrefix) && (next == "" || !cutShort(n)) {
			// Its newest run goes on (every pass lists it), or is not to
			// resume: no pass need look at it for the shutdown's sake.
			if err := s.params.unmarkCut(ctx, key, at); err != nil {
				s.logger.Warn("a lecture whose run a shutdown cut not forgotten: the next pass looks at it again", "lecture", key, "err", err)
			}
		}
		s.mu.Lock()
		delete(s.watching, id)
		if next != "" {
			s.watching[next] = key
		}
		s.mu.Unlock()
	}
	return out
}

// cutWatchPrefix is the prefix of the IDs under which watched looks at a
// lecture that a shutdown, or the end of a run that a lost lock cut,
// saved (see paramStore.markCut): no run's.
const cutWatchPrefix = "lecture whose run was cut: "

// cutLectures returns the lectures whose runs a shutdown or a lost lock
// cut (see paramStore.markCut), with the times they were saved at; a failure to
// read them is logged, and leaves them to the next pass.
func (s *service) cutLectures(ctx context.Context) map[string]time.Time {
	cut, err := s.params.cutLectures(ctx)
	if err != nil {
		s.logger.Warn("the runs that a shutdown cut not looked for: the next pass tries again", "err", err)
	}
	return cut
}

// full reports whether -max-runs runs, or run slots, are taken.
func (s *service) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lectures)+s.held >= s.maxRuns()
}

// beginRecovery marks the lock of lecture key as being taken by the
// recovery (see beginLocking), unless this process runs the lecture, or
// another request of it takes or holds its lock, or the shutdown has
// begun: it reports whether it did. The requests of the lecture wait for
// the recovery until endRecovery, rather than find its lock held as if
// by another process.
func (s *service) beginRecovery(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.lectures[key] != nil || s.locking[key] != nil {
		return false
	}
	s.beginLocking(key)
	return true
}

// endRecovery ends what beginRecovery began.
func (s *service) endRecovery(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocking(key)
}

// ownerGone reports whether queued run q, without a record, was left by
// a process that died: its owner's lock is free in held (see
// paramStore.heldLocks; nil: not known, and taken for no). A run of this
// process's is not; nor is one of a live process, which starts it, or
// records it as not started, even while its lecture's lock is free. A
// row without an owner is taken for left at start-up (atStart), and only
// then, when its lecture's lock is free (see recoverQueued).
func (s *service) ownerGone(q queuedRun, atStart bool, held map[int64]bool) bool {
	switch {
	case q.owner == s.id:
		return false
	case q.owner == "":
		return atStart
	case held == nil:
		return false
	}
	return !held[s.store.GraphLockKey(processLockKey(q.owner))]
}

// claimQueued makes this process the owner of queued run q, which a
// process that died left, under the lecture's lock, and reports whether
// it did: not when another process took it over before (and started it,
// or died too: a later pass finds it), nor when q's process, found dead
// by ownerGone, holds its lock again (its session had ended: it took its
// lock again since, and runs q). The caller gives it back (see
// unclaimQueued) unless it starts the run or records it.
func (s *service) claimQueued(ctx context.Context, q queuedRun) bool {
	var ownerLock *int64
	if q.owner != "" {
		key := s.store.GraphLockKey(processLockKey(q.owner))
		ownerLock = &key
	}
	ok, err := s.params.claim(ctx, q.runID, q.owner, s.id, ownerLock)
	if err != nil {
		s.logger.Warn("queued run not taken over", "run", q.runID, "lecture", q.key, "err", err)
		return false
	}
	if !ok {
		s.logger.Info("queued run not taken over: another process took it over meanwhile, or its process holds its lock again", "run", q.runID, "lecture", q.key)
	}
	return ok
}

// giveBackTries bounds the tries of a give-back (see unclaimQueued), or
// of a delete of a queued run's row (see forgetQueued); giveBackPause is
// the pause after the first failed one, doubled after each.
const (
	giveBackTries = 3
	giveBackPause = 50 * time.Millisecond
)

// retryStore calls fn until it succeeds, up to giveBackTries times in
// all, giveBackPause after the first failure and twice as long after
// each, while ctx lasts; it returns the last error, or nil.
func retryStore(ctx context.Context, fn func(context.Context) error) error {
	pause := giveBackPause
	for try := 1; ; try++ {
		err := fn(ctx)
		if err == nil || try == giveBackTries {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		pause *= 2
	}
}

// unclaimQueued gives queued run q back to the process that left it,
// which is dead, so that a later recovery, of any process, takes it over
// again. A failed give-back is tried again (see retryStore), within
// unlockTimeout; if it still fails, the run is kept in
// givingBack, for the next pass of the recovery to give back (see
// retryGiveBacks): while this process owns its row, no other process
// takes it over, and this one runs it nowhere.
func (s *service) unclaimQueued(q queuedRun) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	err := retryStore(ctx, func(ctx context.Context) error {
		_, err := s.params.claim(ctx, q.runID, s.id, q.owner, nil)
		return err // nil: given back, or no longer this process's (deleted, or taken over)
	})
	if err == nil {
		return
	}
	s.logger.Warn("queued run not given back: the next pass of the recovery tries again", "run", q.runID, "lecture", q.key, "err", err)
	s.mu.Lock()
	s.givingBack[q.runID] = q
	s.mu.Unlock()
}

// retryGiveBacks gives back the queued runs whose give-back failed (see
// unclaimQueued), in run ID order, once each; those whose give-back
// fails again are kept for the next pass. A run given back is then taken
// over as any dead process's, by this pass or another process's.
func (s *service) retryGiveBacks(ctx context.Context) {
	s.mu.Lock()
	qs := slices.SortedFunc(maps.Values(s.givingBack), func(a, b queuedRun) int { return strings.Compare(a.runID, b.runID) })
	s.mu.Unlock()
	for _, q := range qs {
		if _, err := s.params.claim(ctx, q.runID, s.id, q.owner, nil); err != nil {
			s.logger.Warn("queued run not given back: the next pass of the recovery tries again", "run", q.runID, "lecture", q.key, "err", err)
			continue
		}
		s.logger.Info("queued run given back to the process that left it", "run", q.runID, "lecture", q.key, "owner", q.owner)
		s.mu.Lock()
		delete(s.givingBack, q.runID)
		s.mu.Unlock()
	}
}

// givenBackLater reports whether queued run runID is one whose give-back
// failed (see unclaimQueued).
func (s *service) givenBackLater(runID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.givingBack[runID]
	return ok
}

// processLockKey is the key of the lock of process id (see
// service.procLock): no lecture's, which holds no space.
func processLockKey(id string) string { return "examples/service process " + id }

// newProcessID returns a random process ID, never reused.
func newProcessID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// recoverLoop resumes, every -recover-every until ctx ends, the runs that
// a process of the service which died left (see recoverRuns), and takes
// this process's lock again if it was lost (its session ended).
func (s *service) recoverLoop(ctx context.Context) {
	every := s.cfg.recoverEvery
	if every <= 0 {
		every = defaultRecoverEvery
	}
	tick(ctx, every, func(ctx context.Context) {
		pctx, cancel := context.WithTimeout(ctx, startTimeout)
		s.keepProcessLock(pctx)
		if err := s.recoverRuns(pctx, false); err != nil && ctx.Err() == nil {
			s.logger.Warn("recovery failed", "err", err)
		}
		cancel()
		if recoverHook != nil {
			recoverHook(s)
		}
	})
}

// tick calls fn every period until ctx ends: the loop of each of the
// service's periodic jobs (the retention, the recovery, the cancels'
// and the sessions' polls). A call that takes longer than period is
// followed by the next at once, and then on the period again: a
// time.Ticker keeps one tick waiting and drops the others.
func tick(ctx context.Context, period time.Duration, fn func(context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn(ctx)
	}
}

// recoverHook, if not nil, is called after each pass of the periodic
// recovery (see recoverLoop); a variable for the tests.
var recoverHook func(s *service)

// keepProcessLock takes this process's lock again if it was lost: its
// session ended (an administrator's pg_terminate_backend, a restart of
// Postgres). Meanwhile, the other processes may have taken over the runs
// it queued, as they may take a lecture whose lock a run lost (see
// takenOver).
func (s *service) keepProcessLock(ctx context.Context) {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	s.keepProcessLockLocked(ctx)
}

// keepProcessLockLocked is keepProcessLock with s.procMu held.
func (s *service) keepProcessLockLocked(ctx context.Context) {
	if s.procDone || (s.procLock != nil && !lost(s.procLock)) {
		return
	}
	s.procLost = true
	if s.procLock != nil {
		s.logger.Error("this process's lock was lost: other processes may take over the runs it queued", "process", s.id)
		s.unlockProcessLocked(ctx)
	}
	lock, err := s.store.TryLockGraph(ctx, processLockKey(s.id))
	if err != nil {
		s.logger.Warn("this process's lock not taken again; the next pass tries again", "process", s.id, "err", err)
		return
	}
	s.procLock = lock
}

// takenOver reports whether another process took over run runID, queued
// by this one and not started, which this process is about to record as
// not started (see shelve): that may be only once this process's lock
// has been lost, for a process takes a run over only while its owner's
// lock is free (see claimQueued). Its lock is then taken again first, if
// lost still, so that no process takes the run over from then on, and
// the run's row tells, read once any takeover under way is done: owned
// by another process, or gone with a record that another process wrote
// (it started the run). A failure to tell is logged, and taken for no.
func (s *service) takenOver(ctx context.Context, runID string) bool {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	if !s.procDone && s.procLock != nil && !lost(s.procLock) && !s.procLost {
		return false // held all along
	}
	s.keepProcessLockLocked(ctx)
	owner, ok, err := s.params.ownerOf(ctx, runID)
	if err != nil {
		s.logger.Warn("queued run: whether another process took it over not told", "run", runID, "err", err)
		return false
	}
	if ok {
		return owner != "" && owner != s.id
	}
	_, err = s.store.GetRun(ctx, runID)
	return err == nil
}

// unlockProcess gives this process's lock up, if held, at the end of the
// shutdown, whose ctx bounds it: it is not taken again.
func (s *service) unlockProcess(ctx context.Context) {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	s.procDone = true
	s.unlockProcessLocked(ctx)
}

// unlockProcessLocked gives this process's lock up, if held, with
// s.procMu held, within unlockTimeout and ctx: once ctx has ended (the
// shutdown's time is up, Postgres stalls), the lock's connection is
// closed without the unlock, and the server frees the lock when it sees
// it end.
func (s *service) unlockProcessLocked(ctx context.Context) {
	if s.procLock == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, unlockTimeout)
	defer cancel()
	if err := s.procLock.Unlock(ctx); err != nil && !errors.Is(err, pgstore.ErrLockLost) {
		s.logger.Warn("unlock this process's lock", "process", s.id, "err", err)
	}
	s.procLock = nil
}

// cutShort reports whether rec is the record of a run that a shutdown or
// a lost lecture lock cancelled, and no request since (see recoverRun):
// its CancelledBy is one of resumeCodes.
func cutShort(rec executor.Record) bool {
	return rec.Status == executor.RunCancelled && slices.Contains(resumeCodes, rec.CancelledBy)
}

// toResume reports whether run rec is one to resume, and why: left
// running, or cancelled by a shutdown or a lost lock (see cutShort) and
// still its lecture's newest run: no other run of the lecture started
// at the same time as it (to the microsecond: ListRuns sorts a tie by
// ID) or later, nor resumes it. Only those records are read, newest
// first (Store.LatestRuns), however long the lecture's history: a run
// that resumes rec starts after rec's cut (unless the clocks of two
// processes differ by more than rec lasted).
func (s *service) toResume(ctx context.Context, rec executor.Record) (why string, ok bool, err error) {
	switch {
	case rec.Status == executor.RunRunning:
		return "left running by a process of the service that stopped", true, nil
	case cutShort(rec):
		// A queued run that never started for want of the lecture's lock
		// (see shelve) is no run that came after: another process took
		// the lecture, and its runs may have started before the record.
		// The records are read newest first, down to those that started
		// before rec (Store.LatestRuns), whatever the lecture's history:
		// a run that resumes rec starts after rec's cut.
		cursor := ""
		for {
			page, next, err := s.store.LatestRuns(ctx, rec.GraphKey, cursor, newestRunsPage)
			if err != nil {
				return "", false, err
			}
			for _, r := range page {
				if r.StartedAt.Before(rec.StartedAt) && r.Resumes != rec.ID {
					next = ""
					break
				}
				if r.ID != rec.ID && !droppedQueued(r) {
					return "", false, nil
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if rec.CancelledBy == pgstore.CancelledByLockLost {
			return "cancelled by a lost lock of its lecture", true, nil
		}
		return "cancelled by a shutdown", true, nil
	}
	return "", false, nil
}

// recoverRun resumes run rec, if its lecture's lock is free and, read
// again under the lock, it is still to resume (at start-up, atStart, as
// toResume says; in a later pass, if still recorded as running): under
// the ID of q, if not nil, the run that a process that died queued after
// it (its edits are made too), once taken over (see claimQueued), unless
// a request cancelled that run (it is recorded as cancelled then) or its
// stream has ended (its row is deleted then: see queuedStreamEnded), or
// else under a new one. It reports whether the run has ended without
// that resume: abandoned (a request cancelled it, or no template builds
// its graph), found resumed or ended meanwhile, or its resume refused
// (its graph is no longer its lecture's); the run queued after it, if
// any, is then to start (see recoverQueued).
func (s *service) recoverRun(ctx context.Context, rec executor.Record, q *queuedRun, atStart bool) (ended bool) {
	log := s.logger.With("run", rec.ID, "lecture", rec.GraphKey, "status", rec.Status)
	lock, err := s.tryLock(ctx, rec.GraphKey)
	if errors.Is(err, errBusy) {
		// In a later pass, every pass finds the live processes' runs.
		level := slog.LevelInfo
		if !atStart {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "run not resumed: a live run of its lecture holds the lecture's lock")
		return false
	}
	if err != nil {
		log.Warn("run not resumed", "err", err)
		return false
	}
	resumed := false
	defer func() {
		if !resumed {
			s.unlock(lock)
		}
	}()
	// Another process may have resumed it before this one took the lock.
	if rec, err = s.store.GetRun(ctx, rec.ID); err != nil {
		log.Warn("run not resumed", "err", err)
		return false
	}
	why, ok, err := s.toResume(ctx, rec)
	if err != nil {
		log.Warn("run not resumed", "err", err)
		return false
	}
	if !ok || (!atStart && rec.Status != executor.RunRunning) {
		return true // resumed, or ended, meanwhile, or a later run came after
	}
	if rec.Status != executor.RunRunning && s.cancelRequested(ctx, rec.ID) {
		// Cancelled by a shutdown (or a lost lock), then by a request:
		// its record says so from now on, and no start resumes it.
		rec.Error += "; then " + errCancelledByRequest.Error()
		rec.CancelledBy = codeRequest
		if err := s.store.PutRun(ctx, rec); err != nil {
			log.Warn("run cancelled by a request not recorded so", "err", err)
			return false
		}
		log.Info("run not resumed: a request cancelled it")
		s.clearCancel(rec.ID)
		return true
	}
	if s.cancelRequested(ctx, rec.ID) {
		// Cancelled by a request after its process died: ended for good.
		if err := s.exec.Abandon(ctx, rec.ID, errCancelledByRequest.Error()); err != nil {
			log.Warn("run cancelled by a request not abandoned", "err", err)
			return false
		}
		log.Info("run not resumed: a request cancelled it; abandoned")
		s.clearCancel(rec.ID)
		return true
	}
	g, err := executor.GraphOf(rec, graph.Options{}, graph.Lecture())
	if err != nil {
		// No template of this service builds its graph: it will never
		// be resumed, and is recorded so, rather than found at every
		// start (and, cut short, at every pass that watches its
		// lecture).
		log.Error("run not resumed: no template builds its graph; it is abandoned", "err", err)
		if rec.Status != executor.RunRunning {
			// Cut by a shutdown or a lost lock: Abandon leaves a record
			// that does not say running as it is. Its code says that no
			// start resumes it, and its Error what cut it, then this.
			rec.Error += "; then not resumed: " + errNoTemplate.Error()
			rec.CancelledBy = codeNoTemplate
			if err := s.store.PutRun(ctx, rec); err != nil {
				log.Warn("run not recorded as abandoned", "err", err)
				return false
			}
			return true
		}
		if err := s.exec.Abandon(ctx, rec.ID, errNoTemplate.Error()); err != nil {
			log.Warn("abandon run", "err", err)
			return false
		}
		return true
	}
	queued := ""
	kept := false // the run queued, taken over, is started or recorded
	if q != nil && s.claimQueued(ctx, *q) {
		queued = q.runID
		defer func() {
			if !kept {
				s.unclaimQueued(*q) // under the lock still, unless the run's end gave it up
			}
		}()
	}
	if queued != "" {
		switch ended, err := s.queuedStreamEnded(ctx, queued); {
		case err != nil:
			log.Warn("run not resumed", "queued", queued, "err", err)
			return false
		case ended:
			log.Warn("the run queued after it is not its resume's ID: its stream has ended (the process that queued it recorded it neither as started nor as not started); its row is deleted", "queued", queued)
			s.forgetQueued(rec.GraphKey, queued)
			queued, kept = "", true
		}
	}
	if queued != "" && s.cancelRequested(ctx, queued) {
		// The run queued after it was cancelled by a request after its
		// process died, not the run itself: the one is recorded so, and
		// the other resumed under an ID of its own.
		s.shelve(rec.GraphKey, queued, rec.ID, g, errCancelledByRequest, "the lecture's next run regenerates what its edits affect")
		s.clearCancel(queued)
		queued, kept = "", true
	}
	runID := queued
	if runID == "" {
		runID = newRunID()
	}
	s.mu.Lock()
	if err = s.reserve(rec.GraphKey, g, runID, lock); err != nil {
		s.mu.Unlock()
		log.Warn("run not resumed", "err", err)
		return false
	}
	// A cancel of run rec saved from now on (another process read its
	// record before the resume's) is carried out on the resume.
	s.lectures[rec.GraphKey].resumes = rec.ID
	s.mu.Unlock()
	resumed = true // the run's now, or next's, which unlocks it
	if resumeHook != nil {
		resumeHook(rec.ID, false)
	}
	log.Info("resuming run", "by", runID, "why", why)
	err = s.launch(rec.GraphKey, runID, "resume of run "+rec.ID+", "+why, rec.ID)
	if err == nil {
		// Saved since it was read above, before the resume started.
		s.applyCancels(ctx)
		if resumeHook != nil {
			resumeHook(rec.ID, true)
		}
	}
	switch {
	case err == nil && queued != "":
		kept = true
		s.unqueued(queued)
	case errors.Is(err, executor.ErrInvalidRequest):
		// Refused, and recorded as interrupted (its graph is no longer
		// its lecture's: another process ran the lecture since): it has
		// ended, and the run queued after it, if any, starts. ended
		// logged the refusal, and gave the lock up.
		return true
	} // ended logs another failure: a later recovery tries again
	return false
}

// queuedStreamEnded reports whether the stream of run runID, queued and
// taken over, has ended: the process that queued it did not start it,
// and could write neither its record nor the delete of its row (see
// forgetQueued) before it lost its lock (a restart of Postgres may fail
// all three). Its readers have had its final event: no run may follow it
// under its ID.
func (s *service) queuedStreamEnded(ctx context.Context, runID string) (bool, error) {
	e, found, err := s.stream.LastEvent(ctx, runID)
	if err != nil {
		return false, fmt.Errorf("read the stream of queued run %q: %w", runID, err)
	}
	return found && e.Type.Final(), nil
}

// recoverQueued starts run q, queued by a process that died before it
// started it, after a run that is not to resume (it ended), if its
// lecture's lock is free and, read again under the lock, it is still
// queued without a record, and this process takes it over (see
// claimQueued): a run of the lecture's length saved, which makes what
// its edits affect. One whose stream has ended (see forgetQueued) is not
// started: its row is deleted.
func (s *service) recoverQueued(ctx context.Context, q queuedRun, atStart bool) {
	log := s.logger.With("run", q.runID, "lecture", q.key, "after", q.after)
	lock, err := s.tryLock(ctx, q.key)
	if errors.Is(err, errBusy) {
		level := slog.LevelInfo
		if !atStart {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "queued run not started here: a live process of the service holds its lecture's lock")
		return
	}
	if err != nil {
		log.Warn("queued run not started", "err", err)
		return
	}
	started := false
	defer func() {
		if !started {
			s.unlock(lock)
		}
	}()
	// The process that queued it may have started or recorded it before
	// this one took the lock.
	switch _, err := s.store.GetRun(ctx, q.runID); {
	case err == nil:
		s.unqueued(q.runID)
		return
	case !errors.Is(err, executor.ErrNotFound):
		log.Warn("queued run not started", "err", err)
		return
	}
	if !s.claimQueued(ctx, q) {
		return // deleted, or taken over by another process, meanwhile
	}
	kept := false // started or recorded
	defer func() {
		if !kept {
			s.unclaimQueued(q)
		}
	}()
	switch ended, err := s.queuedStreamEnded(ctx, q.runID); {
	case err != nil:
		log.Warn("queued run not started", "err", err)
		return
	case ended:
		log.Warn("queued run not started: its stream has ended (the process that queued it recorded it neither as started nor as not started); its row is deleted")
		kept = true
		s.forgetQueued(q.key, q.runID)
		return
	}
	seconds, ok, err := s.params.lectureSeconds(ctx, q.key)
	if err == nil && ok && s.cancelRequested(ctx, q.runID) {
		// Cancelled by a request after its process died.
		if g, err := graph.Build(graph.Lecture(), seconds); err == nil {
			s.shelve(q.key, q.runID, q.after, g, errCancelledByRequest, "the lecture's next run regenerates what its edits affect")
			s.clearCancel(q.runID)
			kept = true
			return
		}
	}
	if err == nil && !ok {
		err = errors.New("the lecture's length was not saved")
	}
	var g *graph.Graph
	if err == nil {
		g, err = graph.Build(graph.Lecture(), seconds)
	}
	if err != nil {
		log.Warn("queued run not started", "err", err)
		return
	}
	s.mu.Lock()
	err = s.reserve(q.key, g, q.runID, lock)
	s.mu.Unlock()
	if err != nil {
		log.Warn("queued run not started", "err", err)
		return
	}
	started = true // the run's now, or next's, which unlocks it
	log.Info("starting a queued run: the process that queued it stopped before it started")
	if err := s.launch(q.key, q.runID, "edits made during run "+q.after+", queued by a process of the service that stopped", ""); err == nil {
		kept = true
		s.unqueued(q.runID)
	} // ended logs a failure: a later recovery tries again
}
