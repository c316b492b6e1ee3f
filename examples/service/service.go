package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
)

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
	exec    *executor.Executor
	params  *paramStore
	events  *sse.Handler // GET /runs/{run}/events
	srv     *http.Server

	// runCtx is the context of every run; cancelRuns cancels them all.
	runCtx     context.Context
	cancelRuns context.CancelFunc

	mu       sync.Mutex
	closing  bool                              // shutting down: no request is admitted (see admit)
	stopping bool                              // the admitted requests are done: no run starts
	lectures map[string]*lecture               // by graph key, while a run is on
	held     int                               // run slots held by edits (see holdSlot), besides the lectures
	reading  map[*http.ResponseController]bool // the requests whose bodies are being read (see readingBody)
	reports  map[string]*report                // by run ID, the reports of this process's runs
	runs     sync.WaitGroup                    // a run reserved (see reserve) until its report is kept
	admitted sync.WaitGroup                    // the requests admitted (see admit), until they are answered
}

// lecture is the state of a lecture while one of its runs is on.
type lecture struct {
	runID string // the run going on, or starting
	g     *graph.Graph
	next  string // a run queued after it by an edit, or ""
}

// report is what the service keeps of a run that ended.
type report struct {
	ended time.Time
	rep   *executor.Report
}

// serve starts the service, calls ready (if not nil) with its address once
// it listens, serves until ctx ends, and shuts down. It returns nil after
// a clean shutdown; a flag that the libraries refuse is a *flagError.
func serve(ctx context.Context, c config, logger *slog.Logger, ready func(net.Addr)) error {
	s, err := start(ctx, c, logger)
	if err != nil {
		return err
	}
	return s.serve(ctx, ready)
}

// serve is serve once started: it listens, serves until ctx ends, and
// shuts the service down.
func (s *service) serve(ctx context.Context, ready func(net.Addr)) error {
	c, logger := s.cfg, s.logger
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		err = fmt.Errorf("listen on %s: %w", c.addr, err)
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		return errors.Join(err, s.shutdown(sctx))
	}
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(ln) }()
	pruned := make(chan struct{})
	pctx, stopPruning := context.WithCancel(context.Background())
	go func() {
		defer close(pruned)
		s.retain(pctx)
	}()
	logger.Info("serving", "addr", ln.Addr().String(), "schema", c.schema, "prefix", c.prefix)
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
	err = errors.Join(serveErr, s.shutdown(sctx))
	if err == nil {
		logger.Info("shut down cleanly")
	}
	return err
}

// start connects to Postgres and Redis, migrates the schema and wires the
// executor. On an error it closes what it opened.
func start(ctx context.Context, c config, logger *slog.Logger) (*service, error) {
	s := &service{cfg: c, logger: logger, params: newParamStore(),
		lectures: map[string]*lecture{}, reports: map[string]*report{},
		reading: map[*http.ResponseController]bool{}}
	s.runCtx, s.cancelRuns = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			_ = s.shutdown(sctx)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	// The host owns the pool and the client: regen never opens nor closes
	// them. Neither connects before its first use.
	pcfg, err := pgxpool.ParseConfig(c.postgresURL)
	if err != nil {
		return nil, fmt.Errorf("REGEN_POSTGRES_URL: %w", err)
	}
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

	// Each remote sink behind a Buffered of its own: it batches, and an
	// outage of one never fails nor slows a run, nor holds the other.
	s.toRedis = progress.NewBuffered(s.stream, progress.BufferedOptions{Logger: logger})
	s.toPG = progress.NewBuffered(progress.NewArchive(s.hist), progress.BufferedOptions{Logger: logger})
	s.exec, err = executor.New(executor.Options{
		Generators: lectureGenerators(s.params, c.latency),
		States:     s.store,
		Assets:     s.store,
		Runs:       s.store,
		Sink:       progress.NewFanout(s.toRedis, s.toPG),
		Logger:     logger,
		Default:    executor.KindOptions{Estimate: c.latency},
	})
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
	ok = true
	return s, nil
}

// shutdown stops the service in the README's order: the HTTP server stops
// taking requests, the runs are cancelled, then Executor.Close, each
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
	s.mu.Unlock()
	s.cancelRuns()
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
		if st := b.Stats(); st.Dropped > 0 || st.Errors > 0 {
			s.logger.Warn("progress events were not all delivered", "stats", fmt.Sprintf("%+v", st))
		}
	}
	if s.stream != nil {
		if err := s.stream.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the stream: %w", err))
		}
	}
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

// retain deletes, every pruneEvery until ctx ends, what is older than
// the retain age: unused assets, run records, archived events, and the
// reports this process keeps.
func (s *service) retain(ctx context.Context) {
	t := time.NewTicker(s.cfg.pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		age := s.cfg.retain
		assets, errA := s.store.PruneAssets(ctx, age)
		runs, errR := s.store.PruneRuns(ctx, age)
		events, errH := s.hist.Prune(ctx, age)
		reports := s.forgetReports(age)
		if err := errors.Join(errA, errR, errH); err != nil && ctx.Err() == nil {
			s.logger.Warn("retention failed", "err", err)
		}
		level := slog.LevelDebug
		if assets+runs+events > 0 || reports > 0 {
			level = slog.LevelInfo
		}
		s.logger.Log(ctx, level, "retention", "olderThan", age, "assets", assets, "runs", runs, "events", events, "reports", reports)
	}
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

// errFull: as many runs as -max-runs allows are going on.
var errFull = errors.New("as many lectures as the service runs at once are being generated; retry later")

// errClosing: the service is shutting down.
var errClosing = errors.New("the service is shutting down")

// startRun starts a run of g on key with the given ID, or returns
// errBusy, errFull, or errClosing. Each lecture that runs takes one of
// -max-runs slots, as does each slot an edit holds (see holdSlot).
func (s *service) startRun(key string, g *graph.Graph, runID, reason string) error {
	s.mu.Lock()
	if s.lectures[key] == nil && !s.stopping && len(s.lectures)+s.held >= s.maxRuns() {
		s.mu.Unlock()
		return errFull
	}
	if err := s.reserve(key, g, runID); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	return s.launch(key, g, runID, reason)
}

// maxRuns is -max-runs.
func (s *service) maxRuns() int {
	if s.cfg.maxRuns > 0 {
		return s.cfg.maxRuns
	}
	return defaultMaxRuns
}

// slot is a run slot that an edit holds from before it saves anything
// until its run starts, so that an edit refused for want of a slot has
// saved nothing.
type slot struct {
	s    *service
	held bool
}

// holdSlot holds a run slot for an edit of key, unless a run of key is
// on (the edit's run will be queued after it), or returns errFull.
func (s *service) holdSlot(key string) (*slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := &slot{s: s}
	if s.lectures[key] == nil {
		if len(s.lectures)+s.held >= s.maxRuns() {
			return nil, errFull
		}
		s.held++
		sl.held = true
	}
	return sl, nil
}

// release gives the slot back, if still held.
func (sl *slot) release() {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	sl.releaseLocked()
}

func (sl *slot) releaseLocked() {
	if sl.held {
		sl.s.held--
		sl.held = false
	}
}

// startOrQueue starts a run of g on key, in the slot sl holds if any, or,
// while one is on, queues one after it (one at most: edits made meanwhile
// share it). It returns the new run's ID and the ID of the run it waits
// for, if any.
func (s *service) startOrQueue(key string, g *graph.Graph, reason string, sl *slot) (runID, after string, err error) {
	s.mu.Lock()
	// The slot sl held, if any, is the one the run takes. An edit that
	// held none found its lecture running; if that run has ended since,
	// the edit, saved by now, starts its run in the slot just freed
	// (another request may have taken it: the cap is then passed by one
	// run, rather than refuse an edit that is saved). A run queued by
	// edits is started likewise when its turn comes (see ended).
	sl.releaseLocked()
	if l := s.lectures[key]; l != nil && !s.stopping {
		if l.next == "" {
			l.next = newRunID()
		}
		runID, after = l.next, l.runID
		s.mu.Unlock()
		return runID, after, nil
	}
	runID = newRunID()
	err = s.reserve(key, g, runID)
	s.mu.Unlock()
	if err != nil {
		return "", "", err
	}
	return runID, "", s.launch(key, g, runID, reason)
}

// reserve marks the lecture as running runID. s.mu must be held.
func (s *service) reserve(key string, g *graph.Graph, runID string) error {
	switch {
	case s.stopping:
		return errClosing
	case s.lectures[key] != nil:
		return errBusy
	}
	s.lectures[key] = &lecture{runID: runID, g: g}
	s.runs.Add(1)
	return nil
}

// launch starts the run that reserve made room for, and a goroutine that
// waits for its end. The runs' context is the service's, not a request's.
func (s *service) launch(key string, g *graph.Graph, runID, reason string) error {
	run, err := s.exec.Start(s.runCtx, executor.RunRequest{
		GraphKey: key, Graph: g, RunID: runID, TriggeredBy: "examples/service", Reason: reason,
	})
	if err != nil {
		// Closed, or the runs' context cancelled: a shutdown began after
		// reserve.
		if errors.Is(err, executor.ErrClosed) || s.runCtx.Err() != nil {
			err = errClosing
		}
		s.ended(key, runID, nil, err)
		return err
	}
	s.logger.Info("run started", "run", runID, "lecture", key, "nodes", run.Plan().Len(), "reason", reason)
	go func() {
		rep, err := run.Wait()
		s.ended(key, runID, rep, err)
	}()
	return nil
}

// ended records a run's end, frees its lecture, and starts the run queued
// after it.
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
	if rep != nil {
		s.reports[runID] = &report{ended: time.Now(), rep: rep}
	}
	l := s.lectures[key]
	delete(s.lectures, key)
	next := ""
	if l != nil && l.next != "" && s.reserve(key, l.g, l.next) == nil {
		next = l.next
	}
	s.mu.Unlock()
	if l != nil && l.next != "" && next == "" {
		log.Info("queued run not started: the service is shutting down", "queued", l.next)
	}
	if next != "" {
		if err := s.launch(key, l.g, next, "edits made during run "+runID); err != nil && !errors.Is(err, errClosing) {
			log.Error("queued run did not start", "queued", next, "err", err)
		}
	}
}

// queued reports whether runID is a run queued in this process, and of
// which lecture.
func (s *service) queued(runID string) (key string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, l := range s.lectures {
		if l.runID == runID || l.next == runID {
			return k, true
		}
	}
	return "", false
}
