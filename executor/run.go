package executor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
	"github.com/regengraph/regen/progress"
)

// maxCommitConflicts bounds how often a commit of results reloads and
// re-applies after losing a race (64 commits in all, with pauses of about
// 1 s at most in all between them: see run.commit); Options.StoreRetry
// bounds its retries after other errors. Past either, the results are not
// recorded and their nodes count as failed. maxCommitFailures is the
// number of calls that the default StoreRetry allows.
const (
	maxCommitConflicts = 64
	maxCommitFailures  = 5
)

// outcome is what became of a node in a round.
type outcome uint8

const (
	generated outcome = iota
	unchanged
	failed
	cancelled
	superseded
	// unstarted is a node that a worker took but did not call, as the run
	// was cancelled (or drained) first: it was reading its inputs, or waiting for room
	// under Options.Limits or for a start under Options.Rates. It
	// published no node.started, is in no list of the report and counts no
	// attempt; it stays as the plan committed it, as the planned nodes
	// that the cancel kept from being taken do.
	unstarted
	// skippedOutcome is a node skipped, for run.last alone: skips are
	// listed in run.skipped.
	skippedOutcome
)

// result is one settled node, waiting to be committed.
type result struct {
	n        graph.Node
	id       string
	kind     string
	key      string // the batch key of its plan group, "" for a single
	outcome  outcome
	state    dirty.State // the state to record for generated and unchanged
	rev      int64       // the parameters revision the node ran with
	attempts int
	err      error
	took     time.Duration // measured only when there is a sink
	stage    int
	stale    bool // superseded because its inputs or its result changed, not its own edit
}

// run is one run's shared state. Everything below mu is guarded by it.
type run struct {
	e      *Executor
	handle *Run
	req    RunRequest
	g      *graph.Graph
	key    string
	fp     string          // the graph's fingerprint (see GraphStateID)
	made   string          // its graph state's OutputHash when the run started (see GraphStateID)
	resume bool            // a Resume or RerunFailed: the key's graph must be the run's
	of     string          // with resume, the ID of the run whose work it finishes
	ctx    context.Context // cancelled by the run's context or Run.Cancel
	// dctx is ctx's child that a drain (Run.Drain) cancels too: once it
	// has ended, no node starts, nor is a call made again (see drain.go).
	dctx context.Context
	// drainSaid says that the event of the drain went out.
	drainSaid atomic.Bool
	// drainCut says that the drain kept a node from being made: one of
	// the last round's that it kept from starting or from its retry, or
	// a next round's (see endDrain). Set by execute alone.
	drainCut bool
	// limitLeft counts the run's nodes of the round not settled yet, by
	// batch key of Options.Limits, for the ETAs of the executor's runs
	// (see limit): set when the round starts, counted down as they
	// settle (those the machine skips too), those not under way no more
	// once the machine is halted (see haltLimited), and 0 once it ends.
	limitLeft map[string]*atomic.Int64
	// bg is the context of the run's store calls: not cancelled with the
	// run, so that its results are still recorded, but Options.StoreTimeout
	// after a cancel (see boundStoreCalls).
	bg       context.Context
	bgCancel context.CancelCauseFunc
	bgStop   func() bool // stops boundStoreCalls from being called
	bgMu     sync.Mutex
	bgTimer  *time.Timer
	bgEnded  bool
	em       *emitter
	rec      Record
	// recordPut says that the run's first record (running) is stored:
	// replan stores it before the run commits anything (see putRecord).
	// recordTried says that its PutRun was called: failed, it may have
	// gone through all the same (see lostStart).
	recordPut, recordTried bool

	kinds []KindOptions // by template index
	// gens holds each kind's generator, by template index, and bulks its
	// BatchGenerator, if it is one: looked up once, not once a node.
	gens  []Generator
	bulks []BatchGenerator
	// sharedKinds groups the kinds, by name, that share bulk calls, for the
	// machine's Config.Shared (see sharedKinds).
	sharedKinds [][]string
	// batchGet is the asset store, if it is an AssetBatchGetter.
	batchGet AssetBatchGetter

	attempts tally          // this run's generator calls in flight
	workers  sync.WaitGroup // the round's workers, rescuers included
	watch    *watch
	// thenOne and thenBatch are what a rescuer does with the results of
	// a worker it took over from: submit them and carry on as a worker.
	thenOne   func(result) bool
	thenBatch func([]result) bool

	mu         sync.Mutex
	cond       *sync.Cond
	ids        []string      // node IDs, filled on demand
	view       *dirty.States // the latest known stored states
	version    int64
	plan       *planner.Plan
	m          *schedule.Machine
	eta        *eta
	idle       int // workers waiting on cond
	woken      int // workers signalled and not yet back under mu
	changeBuf  []Change
	nodeBuf    []graph.Node
	shared     bool // view was reloaded: another writer committed, so results are checked
	pending    []result
	spare      []result // the other buffer of pending
	committing bool
	// awaiting says that the committer waits out the backoff of a
	// re-commit and commits the results that queue meanwhile, which
	// arrived then signals (see awaitRecommit); nested, that it commits
	// them.
	awaiting, nested bool
	arrived          chan struct{}
	wakeTimer        *time.Timer
	wakeAt           time.Time
	// timed says that the machine reads the clock: for Options.Rates, or
	// for the round's batch windows (KindOptions.BatchWindow), which
	// windowed says it has.
	timed, windowed bool
	// fast says that the last node to end took less than helpDelay: the
	// workers then wake each other lazily (see wakeIdle). helpTimer wakes
	// an idle worker once the busy ones made no progress for helpDelay:
	// helpArmed says it is set, helpMark is the machine's settled count
	// then, and stalled that it found none, until the next node settles.
	fast      bool
	helpTimer *time.Timer
	helpArmed bool
	helpMark  int
	stalled   bool
	// helpWait is helpTimer's next delay: helpDelay, doubled up to
	// maxHelpDelay each time it finds the busy workers kept up.
	helpWait time.Duration
	// crew is the pool's size, and spawned how many of its workers were
	// started this round.
	crew, spawned int
	done          int          // nodes settled in earlier rounds
	total         int          // nodes planned in all rounds
	settled       atomic.Int64 // nodes settled in all rounds, for events sent outside mu
	// etaValue and etaAt are the last ETA computed (ns) and when (Unix ns,
	// 0 before any), for events sent between two node settlements.
	etaValue, etaAt atomic.Int64
	// callAt holds, by node, when the call of a node that runs started,
	// or when its retry will (Unix ns), for the ETA: only with a sink.
	callAt []atomic.Int64
	// putRetry says, by node, that the retry it waits for puts its
	// output alone (its Put kept failing), or commits it (its commit did:
	// see nextCommitAttempt): no call, and no start of its batch key's
	// quota, for the ETA; only with a sink.
	putRetry []atomic.Bool
	// backoffs counts the nodes waiting for a retry, for the ETA: only
	// with a sink.
	backoffs atomic.Int32
	planned  atomic.Int64 // total, for events sent outside mu
	seeking  atomic.Int32 // workers on their way to take a node
	// back counts the workers back from a node on their way to submit
	// it, for a worker that may leave the next node to them (see work).
	back     atomic.Int32
	outcomes [unstarted][]graph.Node // by outcome: those listed in the report
	// unstarted counts the nodes of the round that the machine settled
	// as cancelled but that never started (see outcome unstarted): they
	// are not among the settled nodes that events count.
	unstarted int
	// unreported counts the nodes that the machine skipped and whose
	// node.skipped has not gone out yet: an event's Done counts the nodes
	// settled by the events before it, and by itself.
	unreported int
	skipped    []graph.Node
	failures   []*NodeError
	rounds     int
	// gone is ErrGraphReplaced or ErrGraphDeleted once a reload found
	// the key's graph replaced or deleted: the run is cancelled, and
	// commits nothing more.
	gone error

	// last holds each node's last outcome (unstarted for none) once a
	// run may have more than one round (Options.Converge): a node may
	// then settle in each round, and the report lists it under its last
	// outcome alone. nil before.
	last []outcome
}

// id returns node n's ID, derived once per run. Called with mu held.
func (r *run) id(n graph.Node) string {
	if r.ids[n] == "" {
		r.ids[n] = r.g.NodeID(n)
	}
	return r.ids[n]
}

// nameAll gives an ID to every node of plan, and to their dependencies,
// that has none yet. The IDs are formatted into one string, so that a run
// costs one allocation for them, not one a node, and no worker formats
// one while it holds mu. Called with mu held.
func (r *run) nameAll(plan *planner.Plan) {
	type span struct {
		n   graph.Node
		end int32
	}
	nodes := plan.Nodes()
	var (
		sb      strings.Builder
		scratch [64]byte
	)
	sb.Grow(32 * len(nodes))
	spans := make([]span, 0, len(nodes))
	add := func(n graph.Node) {
		if r.ids[n] != "" || sb.Len() >= math.MaxInt32-len(scratch) {
			return // named, or left to id: spans hold int32 offsets
		}
		r.ids[n] = unnamed
		sb.Write(r.g.AppendID(scratch[:0], n))
		spans = append(spans, span{n, int32(sb.Len())})
	}
	for _, n := range nodes {
		add(n)
		for _, d := range r.g.Deps(n) {
			add(d)
		}
	}
	all := sb.String() // no copy
	start := 0
	for _, sp := range spans {
		r.ids[sp.n] = all[start:sp.end]
		start = int(sp.end)
	}
}

// unnamed marks a node that nameAll is naming. No ID is empty.
const unnamed = "\x00"

// prepare loads, marks, plans and commits the start of a run.
func (e *Executor) prepare(ctx context.Context, req RunRequest, of string) (*run, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	dctx, drain := context.WithCancelCause(rctx)
	bg, bgCancel := context.WithCancelCause(context.WithoutCancel(ctx))
	r := &run{e: e, req: req, g: req.Graph, key: req.GraphKey, ctx: rctx, dctx: dctx, bg: bg, bgCancel: bgCancel,
		handle: &Run{id: req.RunID, cancel: cancel, drain: drain, origin: cancelOrigin{ctx: rctx}, done: make(chan struct{})}}
	r.fp, r.resume, r.of = Fingerprint(r.g), of != "", of
	r.cond = sync.NewCond(&r.mu)
	r.watch = &watch{r: r}
	r.limitLeft = newLimitLeft(e.limits)
	r.thenOne = func(res result) bool { r.submit(res); return r.work(true) }
	r.thenBatch = func(rs []result) bool { r.submit(rs...); return r.work(true) }
	r.ids = make([]string, r.g.Len())
	// Events are not store calls: Options.StoreTimeout does not end them,
	// so that a run whose state store stalled still publishes its end.
	r.em = &emitter{sink: e.opts.Sink, log: e.log, ctx: context.WithoutCancel(ctx), runID: req.RunID, key: req.GraphKey}
	r.arrived = make(chan struct{}, 1)
	r.kinds = make([]KindOptions, r.g.Kinds())
	r.gens, r.bulks = make([]Generator, r.g.Kinds()), make([]BatchGenerator, r.g.Kinds())
	r.batchGet, _ = e.opts.Assets.(AssetBatchGetter)
	for ki := range r.kinds {
		name := r.g.KindName(ki)
		r.kinds[ki] = e.opts.kindOptions(name)
		r.gens[ki] = e.opts.Generators[name] // nil for a kind without one: see missingGenerators
		r.bulks[ki], _ = r.gens[ki].(BatchGenerator)
	}
	r.sharedKinds = sharedKinds(r.g, r.bulks)
	e.warnUnknownKeys(r.g, req.RunID, req.GraphKey)
	e.warnUnbatched(r.g, req.RunID, req.GraphKey)
	r.rec = Record{ID: req.RunID, GraphKey: req.GraphKey, Seconds: r.g.Segments() * graph.SegmentSeconds,
		Graph: r.fp, TriggeredBy: req.TriggeredBy, Reason: req.Reason, Resumes: of, Marks: req.Marks, Status: RunRunning,
		StartedAt: time.Now()}
	if err := r.replan(ctx, req.Marks); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrCancelled) {
			err = wrap(ErrCancelled, "while it started", err, "")
		}
		switch {
		case r.recordPut:
			err = r.failedStart(ctx, err)
		case r.recordTried && retryable(err):
			// The record's PutRun failed, and may have gone through.
			err = r.lostStart(ctx, err)
		}
		cancel(err)
		return nil, err
	}
	r.handle.plan = r.plan
	if r.em.sink != nil {
		r.callAt = make([]atomic.Int64, r.g.Len())
		r.putRetry = make([]atomic.Bool, r.g.Len())
		now := time.Now()
		r.setETA(newETA(r.plan, nil, nil, nil, nil, e.quotas, e.limits, r.limitLeft, &e.opts, nil).at(now, r.plan.Len()), now)
	}
	r.em.emit(progress.Event{Type: progress.RunStarted, Stage: progress.NoStage, Total: r.total, ETA: r.etaNow(),
		Message: fmt.Sprintf("Regenerating %d of %d nodes in %d stages (%s)", r.plan.Len(), r.g.Len(),
			len(r.plan.Stages), e.opts.Mode), Plan: r.outline()})
	r.bgStop = context.AfterFunc(rctx, r.boundStoreCalls)
	return r, nil
}

// putRecord stores the run's first record, which says it runs, before
// the run commits anything (see replan): a Start that cannot record its
// run changes nothing, and a record left running by a crash between the
// two is of a run of a graph that the key may not have: a Resume of it is
// refused if the key's graph is another (ErrGraphReplaced), and so never
// makes its graph the key's over the newer one, and it finishes the run
// otherwise, as after any crash. (Committed first, a new graph would be
// the key's with no record of a run of it, and the key's run in progress
// stopped, although Start failed.) A failure that may pass (a lost
// connection) is retried, as a node's store calls are.
func (r *run) putRecord(ctx context.Context) error {
	r.recordTried = true
	put := func() error { return r.e.opts.Runs.PutRun(ctx, r.rec) }
	if err := put(); err != nil {
		if err = r.retryStore(ctx, err, "record run", r.handle.id, put); err != nil {
			return fmt.Errorf("record run %s: %w", quote(r.handle.id), err)
		}
	}
	r.recordPut = true
	return nil
}

// failedStart records that the start of the run failed with err once its
// first record was stored: the run ended, as failed (or cancelled, if
// ctx ended), without running anything. Its store call has
// Options.StoreTimeout, even when ctx has ended; if it fails, the
// record stays running (see putRecord), and the failure is logged. It
// returns err, which Start returns, and which says, when ctx's cause had
// a code that CheckCancelCode refuses, that it was recorded as
// CancelledByHost, wrapping the refusal, as a run's error does (see
// finish).
func (r *run) failedStart(ctx context.Context, err error) error {
	rec := r.rec
	rec.Status, rec.EndedAt = RunFailed, time.Now()
	if ctx.Err() != nil {
		cause, replaced := safeCause(ctx)
		code, bad := cancelledBy(cause, ctx.Err())
		if replaced {
			bad = cause
		}
		if bad != nil {
			r.e.log.Warn("regen: cancel code refused", "run", r.handle.id, "graph", r.key, "recorded", code, "err", bad)
			err = fmt.Errorf("%w (recorded as cancelled by %q: %w)", err, code, bad)
		}
		rec.Status, rec.CancelledBy = RunCancelled, code
	}
	rec.Error = cleanText(err.Error())
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.e.opts.StoreTimeout)
	defer cancel()
	put := func() error { return r.e.opts.Runs.PutRun(pctx, rec) }
	perr := put()
	if perr != nil {
		perr = r.retryStore(pctx, perr, "record run", r.handle.id, put)
	}
	if perr != nil {
		r.e.log.Error("regen: record run", "run", r.handle.id, "graph", r.key, "err", perr)
	}
	return err
}

// lostStart records that the start of the run failed with err, the
// error of its first record's PutRun, which may have gone through all
// the same (its reply lost, or ctx ended as the store wrote it): if the
// run store holds the record, as the run put it (running, started when
// the run did), it is recorded as failed, or cancelled (failedStart), so
// that no record says running of a run that never ran, which a host
// would take for one that a crash interrupted. A store that did not keep
// it is left without one. The read has Options.StoreTimeout, even when
// ctx has ended; its failure is logged. It returns err, as failedStart
// does.
func (r *run) lostStart(ctx context.Context, err error) error {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.e.opts.StoreTimeout)
	defer cancel()
	var rec Record
	get := func() (gerr error) {
		rec, gerr = r.e.opts.Runs.GetRun(gctx, r.handle.id)
		return gerr
	}
	gerr := get()
	if gerr != nil {
		gerr = r.retryStore(gctx, gerr, "read the record of", r.handle.id, get)
	}
	switch {
	case errors.Is(gerr, ErrNotFound):
		return err
	case gerr != nil:
		r.e.log.Error("regen: read the record of a run whose start failed, to record it as failed", "run", r.handle.id, "graph", r.key, "err", gerr)
		return err
	}
	if rec.Status == RunRunning && rec.StartedAt.Truncate(time.Microsecond).Equal(r.rec.StartedAt.Truncate(time.Microsecond)) {
		return r.failedStart(ctx, err)
	}
	return err
}

// boundStoreCalls runs when the run is cancelled: from then on its store
// calls, which the cancel does not interrupt, have Options.StoreTimeout
// in all before their context ends.
func (r *run) boundStoreCalls() {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	if r.bgEnded {
		return
	}
	d := r.e.opts.StoreTimeout
	r.bgTimer = time.AfterFunc(d, func() {
		r.bgCancel(fmt.Errorf("%w within Options.StoreTimeout (%v) of the cancel of run %s", errStoresLate, d, quote(r.handle.id)))
	})
}

// endStoreCalls ends the bound of boundStoreCalls at the end of the run.
func (r *run) endStoreCalls() {
	r.bgStop()
	r.bgMu.Lock()
	r.bgEnded = true
	if r.bgTimer != nil {
		r.bgTimer.Stop()
	}
	r.bgMu.Unlock()
}

// replan loads the graph's states, computes what to regenerate, checks
// the generators and commits the plan's nodes as dirty (edited ones with
// a new revision), with the graph's fingerprint at the start of a run
// (see GraphStateID); in a later round it returns ErrGraphReplaced or
// ErrGraphDeleted if the key's graph is no longer the run's. On a
// version conflict it starts over after conflictPause, as Edit does, up
// to maxEditConflicts times, and after another failure of its
// commit (a lost connection) too, after storeWait, within
// Options.StoreRetry (see storeRetries). After the last of them it reloads once more, as after
// the others: a commit whose reply was lost may have gone through, and
// if it did (planApplied), the plan stands and replan returns nil, as the
// key's states hold it (at the start, its graph is the key's); if not,
// or if the reload fails, it returns the commit's error. (Once ctx has
// ended it returns the error without a reload, saying that the commit may
// have gone through.)
func (r *run) replan(ctx context.Context, marks []dirty.Mark) error {
	opts := &r.e.opts
	rs := r.e.storeRetries()
	var (
		lost     []Change             // the changes of a commit that failed, which may have gone through
		lostAt   int64                // the version that commit expected
		recorded bool                 // the marks are stored: a commit went through before its error
		gave     map[graph.Node]int64 // the revisions that lost commits gave edited nodes
		last     error                // the error of the last commit allowed, lost: the reload tells whether it went through
		lostErr  error                // the error of the commit of lost
	)
	for try := 0; ; try++ {
		snap, err := r.e.load(ctx, r.handle.id, r.key)
		if err != nil {
			if lost != nil {
				// Whether the commit went through is unknown: if it did,
				// the key's graph is the run's, and its plan's nodes are
				// dirty (a Resume of the run finishes it).
				return fmt.Errorf("commit the plan of %s: %w (it may have gone through: the reload to find out failed: %w)",
					quote(r.key), lostErr, err)
			}
			return err
		}
		if lost != nil {
			// Applied again, an edit would get a second revision.
			applied := planApplied(snap, lostAt, lost)
			recorded = recorded || applied
			lost = nil
			if last != nil && !applied {
				return fmt.Errorf("commit the plan of %s: %w", quote(r.key), last)
			}
			if last != nil {
				r.e.log.Warn("regen: commit of a plan failed, but it went through, its reply lost: the run goes on",
					"run", r.handle.id, "graph", r.key, "err", last)
			}
			last = nil
		}
		if r.rounds > 0 { // a new round: the graph must still be this run's
			if err := graphGone(snap, r.fp, r.made); err != nil {
				return err
			}
		} else if r.resume {
			if err := resumable(snap, r.fp); err != nil {
				return err
			}
		}
		ms := marks
		if r.resume && r.rounds == 0 {
			ms = unmade(snap, marks)
		}
		view, set, all, err := r.e.plan(ctx, r.handle.id, r.key, r.g, snap, ms)
		if err != nil {
			return err
		}
		plan := planner.New(set)
		if err := missingGenerators(opts.Generators, plan); err != nil {
			return err
		}
		if rs, ok := opts.States.(reserver); ok && len(snap.States) == 0 {
			rs.reserve(r.key, r.g.Len()+1, opts.Assets) // the nodes, and the graph state
		}
		// An edit gets a new revision, so its input hash changes; a forced
		// node forgets the inputs of its last result, so early cutoff
		// cannot skip it, even on a resume after a crash.
		marked := map[graph.Node]dirty.Reason{}
		for _, m := range all {
			n, _ := r.g.Lookup(m.ID)
			if cur, ok := marked[n]; !ok || m.Reason < cur {
				marked[n] = m.Reason // the strongest
			}
		}
		now := time.Now()
		var changes []Change
		for _, n := range set.Nodes() {
			st := view.Get(n)
			reason := marked[n]
			if recorded {
				reason = 0 // the node was stored dirty, with its mark's change
			}
			if st.Status != dirty.StatusClean && reason == 0 {
				continue // not clean in the store already: nothing to record
			}
			st.Status, st.UpdatedAt = dirty.StatusDirty, now
			switch reason {
			case dirty.ReasonEdited:
				// Not when the node has the revision a lost commit gave it:
				// that commit went through, and another commit of the node
				// followed (so stored is false), or another edit, committed
				// after this run loaded, did what the mark would.
				if rev, ok := gave[n]; !ok || st.Rev < rev {
					st.Rev++
				}
			case dirty.ReasonForced, dirty.ReasonAssetMissing, dirty.ReasonInputsChanged:
				st.InputHash = ""
			}
			view.Set(n, st)
			changes = append(changes, Change{ID: r.id(n), State: st})
		}
		made := snap.States[GraphStateID].OutputHash
		if st, ok := snap.States[GraphStateID]; r.rounds == 0 && (!ok || st.InputHash != r.fp) {
			// The key's graph is this run's from now on (see GraphStateID).
			gs := graphState(r.fp)
			gs.UpdatedAt = now
			made = gs.OutputHash
			changes = append(changes, Change{ID: GraphStateID, State: gs})
		}
		if r.rounds == 0 && !r.recordPut {
			if err := r.putRecord(ctx); err != nil {
				return err
			}
		}
		version := snap.Version
		if len(changes) > 0 {
			version, err = opts.States.Commit(ctx, r.key, snap.Version, changes)
			err = hostError(err, inStore)
			if errors.Is(err, ErrConflict) && try < maxEditConflicts && ctx.Err() == nil {
				if sleep(ctx, conflictPause(try)) {
					continue
				}
			}
			if err != nil && !errors.Is(err, ErrConflict) && retryable(err) && ctx.Err() == nil {
				// A lost connection: reload, and commit again (the same
				// plan if the commit did not go through; if it did, the
				// reload shows it, and the marks are not applied twice).
				// After the last commit allowed, the reload alone: if it
				// went through, the plan stands.
				wait, ok := rs.next()
				lost, lostAt, lostErr = changes, snap.Version, err
				for _, n := range set.Nodes() {
					if marked[n] == dirty.ReasonEdited {
						if gave == nil {
							gave = map[graph.Node]int64{}
						}
						gave[n] = view.Get(n).Rev
					}
				}
				if !ok {
					last = err
					continue
				}
				r.e.log.Warn("regen: commit of a plan failed, retrying", "run", r.handle.id, "graph", r.key, "err", err)
				if sleep(ctx, wait) {
					continue
				}
			}
			if err != nil {
				// Here an error after which the commit may have gone
				// through (a lost connection, ctx's own) comes only once
				// ctx has ended, with no reload to tell.
				maybe := !errors.Is(err, ErrConflict) && retryable(err)
				if ctx.Err() != nil {
					err = stoppedBy(ctx, err) // ended in a pause, or during the commit
				}
				if maybe {
					return fmt.Errorf("commit the plan of %s: %w (it may have gone through: ctx ended before a reload could find out)",
						quote(r.key), err)
				}
				return fmt.Errorf("commit the plan of %s: %w", quote(r.key), err)
			}
		}
		r.mu.Lock()
		r.view, r.version, r.plan = view, version, plan
		if r.rounds == 0 {
			r.made = made
		}
		r.total += plan.Len()
		r.planned.Store(int64(r.total))
		r.nameAll(plan)
		r.mu.Unlock()
		return nil
	}
}

// unmade returns the marks of a RerunFailed (a Resume has none) whose
// nodes are not clean in snap: a failed node of the run that an earlier
// rerun, or another run, has made clean since keeps its result, rather
// than be paid for again. marks is not modified.
func unmade(snap Snapshot, marks []dirty.Mark) []dirty.Mark {
	var out []dirty.Mark
	for i, m := range marks {
		if snap.States[m.ID].Status == dirty.StatusClean {
			if out == nil {
				out = append(make([]dirty.Mark, 0, len(marks)), marks[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, m)
		}
	}
	if out == nil {
		return marks
	}
	return out
}

// load loads the states of graphKey for run runID ("" for a preview),
// retrying a failure that may pass (a lost connection), as the calls of a
// run's nodes are: the start of a run must not fail for it.
func (e *Executor) load(ctx context.Context, runID, graphKey string) (Snapshot, error) {
	snap, err := e.opts.States.Load(ctx, graphKey)
	if err != nil {
		err = e.retryStore(ctx, runID, graphKey, err, "load the states of", graphKey, func() (err error) {
			snap, err = e.opts.States.Load(ctx, graphKey)
			return err
		})
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("load states of %s: %w", quote(graphKey), err)
	}
	return snap, nil
}

// plan computes what a run of g from the stored states snap regenerates,
// with the marks given: the dense states, the dirty set, and the marks
// with those that the graph's changes add. A clean node made from other
// dependencies than the graph's (the lecture's length changed, or the
// template) is forced; a clean node whose asset is gone is dirty, unless
// Options.SkipAssetCheck. runID and graphKey name the run in the log
// (runID "" for a preview).
func (e *Executor) plan(ctx context.Context, runID, graphKey string, g *graph.Graph, snap Snapshot, marks []dirty.Mark) (*dirty.States, *dirty.Set, []dirty.Mark, error) {
	view := statesOf(g, snap)
	all := marks
	stale, err := dirty.StaleInputs(g, view)
	if err != nil {
		return nil, nil, nil, err // not for a graph and its own states
	}
	if len(stale) > 0 {
		all = append(slices.Clip(marks), stale...)
	}
	var lost map[graph.Node]bool
	if !e.opts.SkipAssetCheck {
		var err error
		if lost, err = e.lostAssets(ctx, runID, graphKey, g, view); err != nil {
			return nil, nil, nil, err
		}
	}
	set, err := dirty.Compute(g, dirty.Input{States: view, Marks: all,
		AssetExists: func(n graph.Node, _ dirty.State) bool { return !lost[n] }})
	if errors.Is(err, dirty.ErrInvalidMark) {
		// A mark of the caller's (RunRequest.Marks, or a RerunFailed's
		// of a graph not the run's): the *dirty.MarkError stays reachable.
		return nil, nil, nil, wrap(ErrInvalidRequest, "", err, "")
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return view, set, all, nil
}

// lostAssets asks the asset store about every clean node's asset. A
// failure that may pass (a lost connection) is retried, as the calls of a
// run's nodes are.
func (e *Executor) lostAssets(ctx context.Context, runID, graphKey string, g *graph.Graph, view *dirty.States) (map[graph.Node]bool, error) {
	lost := map[graph.Node]bool{}
	if checker, ok := e.opts.Assets.(AssetChecker); ok {
		var (
			nodes []graph.Node
			refs  []string
		)
		for i := range view.Len() {
			n := graph.Node(i)
			if view.Status(n) != dirty.StatusClean {
				continue
			}
			if ref := view.Get(n).AssetRef; ref == "" {
				lost[n] = true
			} else {
				nodes, refs = append(nodes, n), append(refs, ref)
			}
		}
		if len(refs) == 0 {
			return lost, nil
		}
		missing, err := checker.Missing(ctx, refs)
		if err != nil {
			err = e.retryStore(ctx, runID, graphKey, err, "check the assets of", fmt.Sprintf("%d clean nodes", len(refs)), func() (err error) {
				missing, err = checker.Missing(ctx, refs)
				return err
			})
		}
		if err != nil {
			return nil, fmt.Errorf("check the assets of %d clean nodes: %w", len(refs), err)
		}
		gone := make(map[string]bool, len(missing))
		for _, ref := range missing {
			gone[ref] = true
		}
		for _, n := range nodes {
			// From the view, not refs: the store must not modify refs,
			// but one that sorted them would lose other nodes' assets.
			if gone[view.Get(n).AssetRef] {
				lost[n] = true
			}
		}
		return lost, nil
	}
	for i := range view.Len() {
		n := graph.Node(i)
		if view.Status(n) != dirty.StatusClean {
			continue
		}
		ref := view.Get(n).AssetRef
		if ref == "" {
			lost[n] = true
			continue
		}
		ok, err := e.opts.Assets.Exists(ctx, ref)
		if err != nil {
			err = e.retryStore(ctx, runID, graphKey, err, "check the asset of", g.NodeID(n), func() (err error) {
				ok, err = e.opts.Assets.Exists(ctx, ref)
				return err
			})
		}
		if err != nil {
			return nil, fmt.Errorf("check asset of %s: %w", g.NodeID(n), err)
		}
		if !ok {
			lost[n] = true
		}
	}
	return lost, nil
}

// execute runs the rounds, then records and reports the outcome.
func (r *run) execute() {
	defer r.e.runs.done() // after done: Close returns once Done is closed
	defer close(r.handle.done)
	defer r.e.forget(r.handle.id, r.of, r.key) // before done: a Resume after Wait finds it ended
	defer r.handle.cancel(nil)
	defer r.endStoreCalls() // before the cancel above, which would start the bound
	defer joinLimits(r.e.limits, r.limitLeft)()
	for {
		r.rounds++
		r.round()
		if r.dctx.Err() != nil {
			r.mu.Lock()
			r.drainCut = r.m.Settled() < r.m.Len() || r.unstarted > 0 || len(r.outcomes[cancelled]) > 0
			r.mu.Unlock()
		}
		if r.ctx.Err() != nil || r.drainCut || len(r.failures) > 0 || r.rounds > r.e.opts.Converge {
			break
		}
		if r.last == nil {
			r.mu.Lock()
			r.trackLast()
			r.mu.Unlock()
		}
		if err := r.replan(r.ctx, nil); err != nil {
			if errors.Is(err, ErrGraphReplaced) || errors.Is(err, ErrGraphDeleted) {
				r.mu.Lock()
				r.stop(err, nil)
				r.mu.Unlock()
				break
			}
			r.failures = append(r.failures, &NodeError{Node: "(converge)", Err: err})
			break
		}
		if r.plan.Len() == 0 {
			break // finish counts the last round's settled nodes
		}
		if r.dctx.Err() != nil {
			r.drainCut = true // no new round: its nodes stay dirty
			break
		}
		r.mu.Lock()
		r.done += r.settledNodes()
		r.mu.Unlock()
		if r.em.sink != nil { // the new round's bound, until its nodes settle
			now := time.Now()
			r.setETA(newETA(r.plan, nil, nil, nil, nil, r.e.quotas, r.e.limits, r.limitLeft, &r.e.opts, r.eta).at(now, r.plan.Len()), now)
		}
		// The round remakes what changed during the run (edited, or made
		// stale) and what depends on it: it counts the nodes to remake.
		what := "nodes"
		if r.plan.Len() == 1 {
			what = "node"
		}
		r.em.emit(progress.Event{Type: progress.Message, Stage: progress.NoStage, Round: r.rounds + 1, Done: r.done, Total: r.total,
			ETA: r.etaNow(), Message: fmt.Sprintf("Round %d: %d %s to remake after changes during the run", r.rounds+1, r.plan.Len(), what),
			Plan: r.outline()})
	}
	r.endDrain()
	r.finish()
}

// outline returns the outline of the round's plan, for the event that
// starts the round, or nil if no sink reads it.
func (r *run) outline() *progress.Outline {
	if r.em.sink == nil {
		return nil
	}
	return outline(r.g, r.plan)
}

// round runs one plan to its end with a pool of workers.
func (r *run) round() {
	opts := &r.e.opts
	windows := r.windows()
	m, err := schedule.New(r.plan, schedule.Config{Mode: opts.Mode, Workers: opts.Workers, Rates: opts.Rates, Caps: opts.Limits,
		Windows: windows, MaxBatch: opts.MaxBatch, Shared: r.sharedKinds})
	if err != nil {
		// Options were validated in New; this is a programming error.
		panic("executor: " + err.Error())
	}
	r.mu.Lock()
	r.m, r.unstarted = m, 0
	if r.limitLeft != nil {
		r.countLimited()
		defer func() {
			for _, c := range r.limitLeft {
				c.Store(0)
			}
		}()
	}
	r.windowed = len(windows) > 0
	r.timed = len(opts.Rates) > 0 || r.windowed
	// Most nodes end generated: room for all of them at once.
	r.outcomes[generated] = slices.Grow(r.outcomes[generated], r.plan.Len())
	if r.em.sink != nil { // the ETA is reported with events only
		r.eta = newETA(r.plan, m, r.callAt, r.putRetry, &r.backoffs, r.e.quotas, r.e.limits, r.limitLeft, opts, r.eta)
	}
	if r.em.sink != nil { // no summary that nobody reads
		stages := make([]string, len(r.plan.Stages))
		sizes := make([]int, len(r.plan.Stages))
		batches := make([][]batchCount, len(r.plan.Stages))
		for s, st := range r.plan.Stages {
			stages[s] = r.plan.Summary(s)
			for _, grp := range st.Groups {
				sizes[s] += len(grp.Nodes)
				if grp.Kind == planner.Batch {
					batches[s] = append(batches[s], batchCount{key: grp.BatchKey, size: len(grp.Nodes)})
				}
			}
		}
		r.em.newRound(r.rounds, stages, sizes, batches)
	}
	r.mu.Unlock()
	halted := make(chan struct{})
	stop := context.AfterFunc(r.ctx, func() {
		defer close(halted)
		r.mu.Lock()
		r.m.Halt()
		r.haltLimited()
		r.cond.Broadcast()
		r.mu.Unlock()
		r.watch.cancelAll(r.cause())
	})
	stopDrain := r.haltOnDrain()
	// One worker starts; wakeIdle starts the others, up to the pool's
	// size, as work for them turns up.
	r.mu.Lock()
	r.crew, r.spawned, r.helpWait = workerCount(r.plan, opts.Workers), 0, helpDelay
	r.spawn()
	r.mu.Unlock()
	r.workers.Wait()
	if !stop() {
		// The cancel's goroutine started: it is one of the run's, so the
		// run waits for it too.
		<-halted
	}
	stopDrain()
	r.watch.stop()
	r.mu.Lock()
	if r.wakeTimer != nil {
		r.wakeTimer.Stop()
		r.wakeTimer = nil
	}
	if r.helpTimer != nil {
		r.helpTimer.Stop()
		r.helpTimer = nil
	}
	r.helpArmed, r.stalled, r.fast = false, false, false
	r.mu.Unlock()
}

// countLimited sets r.limitLeft to the round's nodes of each limited
// batch key. O(D) for the plan's D nodes.
func (r *run) countLimited() {
	n := make(map[string]int64, len(r.limitLeft))
	for _, st := range r.plan.Stages {
		for _, grp := range st.Groups {
			for _, node := range grp.Nodes {
				if key, _ := r.g.BatchKey(r.g.KindOf(node)); key != "" {
					n[key]++
				}
			}
		}
	}
	for key, c := range r.limitLeft {
		c.Store(n[key])
	}
}

// haltLimited sets r.limitLeft, once the round's machine is halted (by a
// drain or a cancel), to the round's nodes of each limited batch key
// under way (waiting for room, or in flight): the others will never
// start, and no other run's ETA is to count them (see limit). Each node
// counted settles once; a node that the machine skips from now on is not
// counted down (see skip). Called with mu held. O(D) for the plan's D
// nodes.
func (r *run) haltLimited() {
	if r.limitLeft == nil {
		return
	}
	n := make(map[string]int64, len(r.limitLeft))
	for _, st := range r.plan.Stages {
		for _, grp := range st.Groups {
			for _, node := range grp.Nodes {
				if s, _ := r.m.State(node); s == schedule.Running {
					if key, _ := r.g.BatchKey(r.g.KindOf(node)); key != "" {
						n[key]++
					}
				}
			}
		}
	}
	for key, c := range r.limitLeft {
		c.Store(n[key])
	}
}

// windows returns the batch windows of the round's plan, by kind name:
// those of its kinds with a batch key whose generator is a
// BatchGenerator, in Dataflow mode; nil for none.
func (r *run) windows() map[string]time.Duration {
	if r.e.opts.Mode != Dataflow {
		return nil
	}
	var out map[string]time.Duration
	for ki, k := range r.kinds {
		name := r.g.KindName(ki)
		if key, _ := r.g.BatchKey(ki); k.BatchWindow <= 0 || key == "" {
			continue
		}
		if _, ok := r.e.opts.Generators[name].(BatchGenerator); !ok {
			continue
		}
		if out == nil {
			out = map[string]time.Duration{}
		}
		out[name] = k.BatchWindow
	}
	return out
}

// spawn starts one more worker of the pool; it counts as woken until it
// holds mu. Called with mu held.
func (r *run) spawn() {
	r.spawned++
	r.woken++
	r.workers.Add(1)
	go func() {
		if r.work(false) {
			r.workers.Done()
		}
	}()
}

// workerCount is the pool size: the plan's batch concurrency plus its
// singles, up to 64 of them without a global cap; a global cap lowers it
// but never raises it, since more workers than that could never all run,
// and neither can more than the plan's nodes. A key's concurrency counts
// up to the plan's nodes, so that a host's "no limit" (math.MaxInt) does
// not overflow the sum.
func workerCount(p *planner.Plan, cap int) int {
	nodes := p.Len()
	seen := map[string]bool{}
	total, singles := 0, 0
	for _, st := range p.Stages {
		for _, grp := range st.Groups {
			if grp.Kind == planner.Single {
				singles += len(grp.Nodes)
			} else if !seen[grp.BatchKey] {
				seen[grp.BatchKey] = true
				total = min(total+min(grp.Concurrency, nodes), nodes)
			}
		}
	}
	if cap > 0 {
		return max(min(cap, total+singles, nodes), 1)
	}
	return max(min(total+min(singles, 64), nodes), 1)
}

// work is one worker: it takes what the machine says may start, runs it
// and submits the results, until the round is over; it then returns true.
// It returns false if a hung generator made it abandon its place (see
// watch.go). locked says whether the caller holds mu; work takes it
// otherwise.
func (r *run) work(locked bool) bool {
	var own *job // reused from node to node while this goroutine runs them
	// yield is set after a node that took less than helpDelay: if another
	// worker is on its way to take a node meanwhile, this one leaves the
	// work to it and waits, so that instant generators keep one worker
	// busy rather than all of them queueing on mu (see wakeIdle).
	yield := false
	fresh := !locked // started by spawn, which counted it as woken
	for {
		r.seeking.Add(1)
		if !locked {
			r.mu.Lock()
		}
		locked = false
		if fresh {
			fresh = false
			// A worker woken by a Broadcast may have taken this one's
			// count already (see below): woken may undercount, which
			// costs at most a wakeup more, never one lost.
			if r.woken > 0 {
				r.woken--
			}
		}
		var first [1]schedule.Step
		steps := first[:0]
		var now time.Time
		for {
			if r.dctx.Err() != nil { // a cancel's, or a drain's
				r.m.Halt() // at once, before the AfterFunc gets the lock
			}
			if r.m.Done() {
				r.seeking.Add(-1)
				r.cond.Broadcast()
				r.mu.Unlock()
				return true
			}
			if r.timed { // the machine reads the clock for rates and batch windows only
				now = time.Now()
			}
			if yield && r.fast && !r.stalled && (r.seeking.Load() > 1 || r.back.Load() > 0) {
				yield = false
			} else if st, ok := r.m.Next(now); ok {
				steps = append(steps, st)
				r.seeking.Add(-1)
				r.wakeIdle(now, true)
				break
			} else if at, ok := r.m.Wake(); ok {
				r.armWake(now, at)
			}
			r.idle++
			r.seeking.Add(-1)
			r.cond.Wait()
			r.seeking.Add(1)
			r.idle--
			if r.woken > 0 {
				r.woken--
			}
		}
		ki := r.g.KindOf(steps[0].Node)
		kind, gen, bulk := r.g.KindName(ki), r.gens[ki], r.bulks[ki]
		// A kind without a batch key has no batch: its nodes are called
		// one by one, within the cap on singles, even by a bulk generator.
		if bulk == nil || steps[0].Key == "" {
			if own == nil {
				own = &job{blocks: true}
			}
			r.newJob(own, steps[0], kind)
			r.mu.Unlock()
			// A rescuer that takes over from this goroutine submits the
			// result and carries on as a worker; own is then its.
			res, ok := r.runOne(gen, own, &r.workers, r.thenOne)
			if !ok {
				return false
			}
			// A node kept by early cutoff made no call: it counts as fast.
			now = time.Now()
			yield = own.start.IsZero() || now.Sub(own.start) < helpDelay
			r.back.Add(1)
			r.submitAt(now, yield, res)
			locked = true
			continue
		}
		for (r.e.opts.MaxBatch == 0 || len(steps) < r.e.opts.MaxBatch) && len(steps) < r.e.limitOf(steps[0].Key) {
			st, ok := r.m.More(now, steps[0].Node)
			if !ok {
				break
			}
			steps = append(steps, st)
		}
		// The call's requests in node order, whatever order its nodes
		// became ready in: the same batch makes the same call.
		slices.SortFunc(steps, func(a, b schedule.Step) int { return cmp.Compare(a.Node, b.Node) })
		// A call may span the kinds that share its generator: each node
		// is of its own kind, with its kind's options.
		jobs := make([]*job, len(steps))
		for i, st := range steps {
			jobs[i] = new(job)
			r.newJob(jobs[i], st, st.Kind)
		}
		r.mu.Unlock()
		results, ok := r.runBatch(bulk, jobs, &r.workers, r.thenBatch)
		if !ok {
			return false
		}
		r.back.Add(1)
		r.submitAt(time.Now(), false, results...)
		locked = true
		yield = false // a bulk call is not a quick node
	}
}

// helpDelay is how long a node may take, from its call to its output
// stored, to count as quick, and how long the busy workers of a run may
// make no progress, while nodes end quickly, before an idle worker is
// woken to start another node (see wakeIdle).
const helpDelay = 200 * time.Microsecond

// maxHelpDelay bounds the delay of the check that wakes an idle worker,
// which grows while the busy workers keep up (see armHelp).
const maxHelpDelay = 3200 * time.Microsecond

// wakeIdle wakes one idle worker if a node may start, so that workers
// wake only for work; that worker does the same for the next. No worker
// is woken while another is already on its way to take a node (just
// signalled, or back from one): that one takes the node and then looks
// again. While nodes end quickly (the last took less than helpDelay),
// none is woken either while a worker is busy, self (the caller, which
// looks for work itself next) or another: a moment later the busy worker
// takes the next node itself, so that instant generators keep one worker
// busy instead of all of them queueing on mu; and a worker back from a
// quick call leaves the work to one on its way (see work). Only when no
// node settled for helpDelay (the calls under way take time after all)
// is an idle worker woken, and then the next one at once, and so on,
// until a node settles again. Calls that take time wake workers at once.
// Called with mu held.
func (r *run) wakeIdle(now time.Time, self bool) {
	if r.woken > 0 || r.seeking.Load() > 0 || r.idle == 0 && r.spawned >= r.crew {
		return
	}
	if r.m.Done() {
		if r.idle > 0 {
			r.woken++
			r.cond.Signal()
		}
		return
	}
	if r.timed && now.IsZero() {
		now = time.Now()
	}
	if !r.m.CanStart(now) {
		if at, ok := r.m.WakeAt(now); ok {
			// Only a rate holds a node back: the workers look again
			// when it allows a start.
			r.armWake(now, at)
		}
		return
	}
	if r.fast && !r.stalled && (self || r.m.Running() > 0) {
		r.armHelp()
		return
	}
	if r.idle == 0 {
		r.spawn()
		return
	}
	r.woken++
	r.cond.Signal()
}

// armHelp makes sure that, in helpDelay, an idle worker is woken if no
// node settled meanwhile (see wakeIdle). Called with mu held.
func (r *run) armHelp() {
	if r.helpArmed {
		return
	}
	r.helpArmed, r.helpMark = true, r.m.Settled()
	if r.helpTimer != nil {
		r.helpTimer.Reset(r.helpWait)
		return
	}
	var t *time.Timer
	t = time.AfterFunc(r.helpWait, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.helpTimer != t || !r.helpArmed {
			// Stopped at the end of its round, once it had fired: a
			// later round's workers are none of its business.
			return
		}
		r.helpArmed = false
		if r.m.Settled() == r.helpMark {
			r.stalled, r.helpWait = true, helpDelay
		} else {
			// The busy workers keep up: look less often.
			r.helpWait = min(2*r.helpWait, maxHelpDelay)
		}
		r.wakeIdle(time.Time{}, false)
	})
	r.helpTimer = t
}

// armWake makes sure the workers wake when a rate limit allows a start.
// Called with mu held.
func (r *run) armWake(now, at time.Time) {
	if r.wakeTimer != nil && r.wakeAt.After(now) && !at.Before(r.wakeAt) {
		return
	}
	if r.wakeTimer != nil {
		r.wakeTimer.Stop()
	}
	r.wakeAt = at
	var t *time.Timer
	t = time.AfterFunc(at.Sub(now), func() {
		r.mu.Lock()
		if r.wakeTimer != t {
			// Replaced, or stopped at the end of its round, once it had
			// fired.
			r.mu.Unlock()
			return
		}
		r.cond.Broadcast()
		if r.idle == 0 {
			r.wakeIdle(time.Time{}, false) // starts a worker if none waits
		}
		r.mu.Unlock()
	})
	r.wakeTimer = t
}

// submit queues results for commit. The first worker to find no commit in
// progress commits everything queued, in batches, until the queue is
// empty (group commit); the others go back to work. It returns with mu
// held, so that the worker takes its next node without letting it go.
func (r *run) submit(results ...result) {
	r.back.Add(1)
	r.submitAt(time.Now(), false, results...)
}

// submitAt is submit, by a worker counted in back, at now, read before mu (the clock is slow on some
// machines); fast says whether the results' calls took less than
// helpDelay (see wakeIdle).
func (r *run) submitAt(now time.Time, fast bool, results ...result) {
	r.mu.Lock()
	r.back.Add(-1)
	r.fast = fast
	if r.committing {
		r.pending = append(r.pending, results...)
		if r.awaiting {
			select {
			case r.arrived <- struct{}{}:
			default: // signalled already
			}
		}
		return
	}
	r.committing = true
	if len(r.pending) == 0 {
		// The caller's results are committed as they are, not copied
		// into the queue and cleared out of it.
		r.commitSettle(results, now)
		now = time.Time{}
	} else {
		r.pending = append(r.pending, results...)
	}
	for len(r.pending) > 0 {
		// Two buffers take turns: results queue in one while the other
		// is committed.
		batch := r.pending
		r.pending = r.spare[:0]
		r.commitSettle(batch, now)
		now = time.Time{}
		clear(batch)
		r.spare = batch[:0]
	}
	r.committing = false
}

// commitSettle commits batch, at now, and settles its results, for
// submitAt. Called with mu held.
func (r *run) commitSettle(batch []result, now time.Time) {
	at := r.commit(batch, now)
	r.settle(batch, at)
	r.stalled = false // progress: the busy workers keep up
	r.wakeIdle(time.Time{}, true)
}

// commit records a batch of results in one compare-and-swap commit. A
// result made, or a failure, with a parameters revision that is no longer
// the stored one was superseded by an edit: it is not recorded, and the
// edit stays. On a conflict, commit reloads the states and applies only
// its own results again; it never retries blindly. After the first
// conflict it reloads and commits again at once (another writer's one
// commit, the usual case, costs no wait); after each later one in a row it
// first waits conflictPause, jittered and growing from about 1 ms to
// 16 ms, so that a key that another writer commits to often (runs and
// edits of a busy graph) does not make it lose its maxCommitConflicts
// races in a few microseconds, nor retry in step with that writer: about
// 1 s of pauses at most in all. After another failure
// (a lost connection) it reloads at once, to tell whether the commit went
// through, and if not (or if the reload failed too) commits again after
// storeWait, within Options.StoreRetry (see storeRetries): jittered, so that
// runs whose commits failed together do not all commit again at one
// instant. Once those retries are spent, the outputs made are committed
// again at their nodes' next attempts (see nextCommitAttempt), each with
// the same retries, while the nodes have attempts left; the results
// queued meanwhile are committed on their own as they come (see
// awaitRecommit).
// A wait or a pause ends early when r.bg ends (Options.StoreTimeout
// after a cancel), and commit makes no store call once r.bg has ended
// (not even the reload after a Commit that returned once it had), even
// to a store that ignores its context: the results are then not
// recorded, with an error that wraps r.bg's cause. It is called with mu held,
// and lets it go only while it calls the store; only one commit runs at a
// time. now is the commit's time, or zero to read the clock. It returns
// the time that the states it recorded were stamped with (read before the
// store's call), for the events that report them, or zero when it
// recorded none of the batch's.
func (r *run) commit(batch []result, now time.Time) time.Time {
	opts := &r.e.opts
	if r.gone != nil {
		r.stop(r.gone, batch)
		return time.Time{}
	}
	conflicts, rs := 0, r.e.storeRetries()
	// unsure says that a commit of the batch failed with an error after
	// which it may have gone through (its reply lost), and that no reload
	// has told yet whether it did: the next commit, made at the same
	// version, conflicts with it if it did.
	unsure := false
	var stamp time.Time
	var last error // the last commit's error, if any
	for {
		if r.gone != nil {
			// Found gone by a commit of results made while this one
			// waited out a re-commit's backoff (see awaitRecommit): its
			// view is no longer of the run's graph.
			r.stop(r.gone, batch)
			return time.Time{}
		}
		version := r.version
		if !unsure {
			if now.IsZero() {
				now = time.Now()
			}
			// Every state of the commit changes at once; a retry reads
			// the clock again, but for the changes of a commit that may
			// have gone through, made again as they were, so that a
			// reload tells whether the store holds them.
			stamp = now
		}
		now = time.Time{}
		// One committer at a time: its buffers are reused.
		changes, nodes := r.changeBuf[:0], r.nodeBuf[:0]
		var dirtied map[graph.Node]bool // by dirtyDependents, made on demand
		for i := range batch {
			res := &batch[i]
			cur := r.view.Get(res.n)
			made := res.outcome == generated || res.outcome == unchanged
			if cur.Rev != res.rev {
				// Edited while it ran: what it made is not kept, and a
				// failure is not the edited node's, whose new parameters
				// were never tried. Both are superseded: the node stays
				// dirty, for the next round or run.
				if made || res.outcome == failed {
					res.outcome = superseded
				}
				continue
			}
			if cur.Status == dirty.StatusClean {
				// Every planned node was stored not clean when the round
				// began, and this run commits each once: another run has
				// committed this one since.
				if r.madeFromView(res.n, cur.Rev, cur.InputHash) {
					// Its result is current: it stands for this run's, as
					// with early cutoff, whatever this run's attempt gave.
					if res.outcome != cancelled && res.outcome != unstarted {
						res.outcome, res.err = unchanged, nil
					}
					continue
				}
				// Its result is stale: a current one of this run's
				// replaces it below.
			}
			if made && r.shared {
				// Another run has committed during this one: a result is
				// kept only if made from the outputs that the store now
				// holds for its dependencies, all clean. (Without a
				// reload, the view is the store, and it is.)
				if !r.madeFromView(res.n, res.rev, res.state.InputHash) {
					res.outcome, res.stale = superseded, true
					continue
				}
				if res.outcome == unchanged && cur.Status != dirty.StatusClean && (cur.InputHash != res.state.InputHash ||
					cur.OutputHash != res.state.OutputHash || cur.AssetRef != res.state.AssetRef) {
					// The node changed since this run kept its stored
					// result (another run forced it): the cutoff is void.
					res.outcome, res.stale = superseded, true
					continue
				}
			}
			var st dirty.State
			switch res.outcome {
			case generated, unchanged:
				st = res.state
				st.UpdatedAt = stamp
			case failed, cancelled:
				st = cur
				st.Status = dirty.StatusFailed
				if res.outcome == cancelled {
					st.Status = dirty.StatusCancelled
				}
				st.Attempts, st.UpdatedAt = res.attempts, stamp
				if res.err != nil {
					st.LastError = cleanText(res.err.Error())
				}
			default:
				continue
			}
			changes = append(changes, Change{ID: res.id, State: st})
			nodes = append(nodes, res.n)
			if made && r.shared && st.OutputHash != cur.OutputHash {
				// A new output: a dependent that another run made clean
				// from the old one is stale now, and must not stay clean
				// if this run does not get to it (a cancel, a crash).
				changes, nodes, dirtied = r.dirtyDependents(res.n, stamp, changes, nodes, dirtied)
			}
		}
		r.changeBuf, r.nodeBuf = changes, nodes
		if len(changes) == 0 {
			return stamp
		}
		if r.bg.Err() != nil {
			// Past the bound of the run's store calls (ended during the
			// reload, or before this commit): no call with r.bg, which a
			// store might ignore.
			err := causeOf(r.bg)
			if last != nil {
				err = stoppedBy(r.bg, last)
			}
			r.unrecordable(batch, err)
			return time.Time{}
		}
		r.mu.Unlock()
		v, err := opts.States.Commit(r.bg, r.key, version, changes)
		err = hostError(err, inStore)
		last = err
		if !r.realign(changes, nodes) {
			// Beyond repair: the run cannot tell which state is whose.
			err = fmt.Errorf("%w: the StateStore's Commit changed the node IDs of the changes it was given", ErrInvalidRequest)
			r.mu.Lock()
			r.unrecordable(batch, err)
			return time.Time{}
		}
		if err == nil {
			r.mu.Lock()
			r.version = v
			for i, c := range changes {
				r.view.Set(nodes[i], c.State)
			}
			return stamp
		}
		if r.bg.Err() != nil {
			// Ended during the call (a store that ignores its context
			// returned late): no reload with it.
			r.mu.Lock()
			r.unrecordable(batch, stoppedBy(r.bg, err))
			return time.Time{}
		}
		if errors.Is(err, ErrConflict) && !unsure && conflicts > 0 && conflicts+1 < maxCommitConflicts {
			// Lost again: another writer commits to the key often. A
			// pause lets it pass, and the reload after it sees its last
			// commit (see conflictPause).
			if !sleep(r.bg, conflictPause(conflicts-1)) {
				r.mu.Lock()
				r.unrecordable(batch, fmt.Errorf("%d version conflicts in a row: %w", conflicts+1, stoppedBy(r.bg, err)))
				return time.Time{}
			}
		}
		// A conflict, or an error after which the commit may or may not
		// have been applied: reload before anything else.
		snap, lerr := opts.States.Load(r.bg, r.key)
		lerr = hostError(lerr, inStore)
		if lerr == nil {
			if gone := graphGone(snap, r.fp, r.made); gone != nil {
				r.mu.Lock()
				r.stop(gone, batch)
				return time.Time{}
			}
		}
		if lerr == nil {
			// Other commits may have followed this one: its states, to
			// the microsecond, or a new output of it, tell it apart. A
			// conflict, or an error no retry can fix, applied nothing,
			// but a conflict after an earlier commit of the same changes
			// that may have gone through may be with that one.
			maybe := (unsure || !errors.Is(err, ErrConflict) && retryable(err)) && snap.Version > version
			unsure = false
			exact := maybe && stored(snap, changes)
			applied := exact || maybe && r.appliedTake(snap, changes, nodes)
			if applied && !exact {
				// Another run may have committed the same take of a node
				// (a deterministic provider): a result of this commit
				// counts as recorded only if the store holds its take.
				r.unrecorded(snap, batch, nodes)
			}
			view := statesOf(r.g, snap)
			r.mu.Lock()
			prev := r.view
			r.view, r.version = view, snap.Version
			r.shared = true
			r.invalidateEdited(prev)
			if applied {
				return time.Time{} // the commit went through before the error
			}
			if errors.Is(err, ErrConflict) {
				if conflicts++; conflicts < maxCommitConflicts {
					continue // re-apply only our own results on the new version
				}
				err = fmt.Errorf("%d version conflicts in a row: %w", conflicts, err)
			}
			r.mu.Unlock()
		} else {
			// The commit is made again, and the states reloaded again: a
			// conflict too, which a reload alone resolves.
			unsure = unsure || !errors.Is(err, ErrConflict) && retryable(err)
			err = errors.Join(err, fmt.Errorf("reload: %w", lerr))
		}
		wait, ok := rs.next()
		if !ok && retryable(err) && !(lerr == nil && errors.Is(err, ErrConflict)) && r.bg.Err() == nil {
			// The store retries are spent: the nodes whose outputs were
			// made commit them again at their next attempts.
			if wait, ok = r.nextCommitAttempt(batch, err, unsure); ok {
				rs = r.e.storeRetries()
			}
		}
		if !ok || lerr == nil && errors.Is(err, ErrConflict) || !retryable(err) || r.bg.Err() != nil {
			r.mu.Lock()
			r.unrecordable(batch, err)
			return time.Time{}
		}
		r.e.log.Warn("regen: commit failed, retrying", "run", r.handle.id, "graph", r.key, "err", err)
		if !sleep(r.bg, wait) {
			// The run's store calls are past their bound: no more of
			// them, even to a store that would ignore r.bg.
			r.mu.Lock()
			r.unrecordable(batch, stoppedBy(r.bg, err))
			return time.Time{}
		}
		r.mu.Lock()
	}
}

// nextCommitAttempt is called, with mu not held, when a commit of batch
// failed with err, an error that may pass, and its store retries are
// spent: the results that a generator made (generated) are not dropped,
// as their outputs were paid for and are stored, but committed again at
// their nodes' next attempts, after their kinds' backoff, each counting
// as an attempt (in the result's attempts and state, with a
// node.retrying). A generated result whose attempts are used up fails
// (see unrecordable); a kept one (unchanged) rides along with the
// others, as it cost no call. With unsure (the last commit may have gone
// through, and no reload told), the changes must be made again as they
// were, for the next reload to tell: the states' Attempts are left as
// they were, and a result without an attempt left rides along too. It
// returns the wait before the commit, the
// longest backoff of those nodes (ended early by a cancel or a drain of
// the run, after which the commits are bounded by r.bg alone), and false when no
// result of batch has an attempt left: the caller then fails them all.
func (r *run) nextCommitAttempt(batch []result, err error, unsure bool) (time.Duration, bool) {
	var wait time.Duration
	var next []int // the results that take an attempt
	r.mu.Lock()
	for i := range batch {
		res := &batch[i]
		if res.outcome != generated {
			continue
		}
		p := r.kinds[r.g.KindOf(res.n)].Retry
		if res.attempts >= p.MaxAttempts {
			if !unsure {
				res.outcome, res.err = failed, fmt.Errorf("record result: %w", err)
			}
			continue
		}
		res.attempts++
		if !unsure {
			res.state.Attempts = res.attempts
		}
		wait = max(wait, p.wait(res.attempts))
		next = append(next, i)
	}
	r.mu.Unlock()
	if len(next) == 0 {
		return 0, false
	}
	ids := make([]string, 0, min(len(next), maxLoggedNodes))
	for _, i := range next[:min(len(next), maxLoggedNodes)] {
		ids = append(ids, batch[i].id)
	}
	r.e.log.Warn("regen: commit of results failed; their nodes' next attempts commit them again, without a generator call",
		"run", r.handle.id, "graph", r.key, "nodes", len(next), "first", ids, "wait", wait, "err", err)
	if r.callAt != nil {
		// For the ETA, as for a retried call (see tryFrom): the nodes
		// start over after the backoff, their attempts taking no start
		// of their keys' rates, as a retry that only puts an output.
		at := time.Now().Add(wait).UnixNano()
		for _, i := range next {
			r.putRetry[batch[i].n].Store(true)
			r.callAt[batch[i].n].Store(at)
		}
		r.backoffs.Add(int32(len(next)))
		defer r.backoffs.Add(-int32(len(next)))
	}
	if r.em.sink != nil {
		// The ETA is recomputed at each node.retrying, as for a retried
		// call (see retryingEvent).
		r.mu.Lock()
		now := time.Now()
		eta := r.eta.afresh(now, r.m.Len()-r.m.Settled())
		r.setETA(eta, now)
		r.mu.Unlock()
		for _, i := range next {
			res := &batch[i]
			p := r.kinds[r.g.KindOf(res.n)].Retry
			r.em.emit(progress.Event{Type: progress.NodeRetrying, Node: res.id, Kind: res.kind, BatchKey: res.key, Stage: res.stage,
				Attempt: res.attempts, Error: errText(fmt.Errorf("record result: %w", err)),
				Message: fmt.Sprintf("attempt %d of %d in %v: commit the output made again", res.attempts, p.MaxAttempts, wait),
				Done:    int(r.settled.Load()), Total: int(r.planned.Load()), ETA: eta})
		}
	}
	r.awaitRecommit(wait, unsure)
	return 0, true
}

// awaitRecommit waits out the backoff of a re-commit (see
// nextCommitAttempt): until wait has passed, or the run is cancelled or
// drained (a drain waits for no node that has no call under way: the
// output is committed again at once, as at a cancel).
// Meanwhile the results that the run's other nodes queue are committed
// and settled as they come, on their own, so that one node's backoff (up
// to its kind's MaxInterval) does not hold the commits of the others,
// nor the nodes that wait for them, once the state store is back. Not
// when unsure: a commit in between would change the version at which the
// batch's changes must be made again (see commit); nor within such a
// commit of results that queued (nested), whose own re-commit then waits
// alone. Called, with mu not held, by the committer.
func (r *run) awaitRecommit(wait time.Duration, unsure bool) {
	r.mu.Lock()
	alone := unsure || r.nested
	r.mu.Unlock()
	if alone {
		sleep(r.dctx, wait)
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		select {
		case <-t.C:
			return // whatever queued waits: results that keep coming must not hold the re-commit
		case <-r.dctx.Done():
			return
		default:
		}
		if len(r.pending) == 0 {
			r.awaiting = true
			r.mu.Unlock()
			ended := false
			select {
			case <-t.C:
				ended = true
			case <-r.dctx.Done():
				ended = true
			case <-r.arrived:
			}
			r.mu.Lock()
			r.awaiting = false
			if ended {
				return
			}
			continue
		}
		batch := r.pending
		r.pending = nil // the committer's batch holds one of the buffers
		r.nested = true
		at := r.commit(batch, time.Time{})
		r.nested = false
		r.settle(batch, at)
		r.stalled = false
		r.wakeIdle(time.Time{}, false) // this committer takes no node meanwhile
		if r.gone != nil {
			return // the run stops: see commit
		}
	}
}

// maxLoggedNodes bounds the node IDs that a warning lists.
const maxLoggedNodes = 10

// unrecordable fails the results of batch that were made (or kept): a
// commit could not record them, with err, so they do not count, and their
// nodes stay dirty in the store. Called with mu held.
func (r *run) unrecordable(batch []result, err error) {
	for i := range batch {
		if batch[i].outcome == generated || batch[i].outcome == unchanged {
			batch[i].outcome = failed
			batch[i].err = fmt.Errorf("record result: %w", err)
		}
	}
}

// realign puts the changes of a commit back in the order of nodes, the
// nodes they are of, when the store's Commit reordered them (sorted them
// for its lock order, say), against StateStore's contract: what the run
// records in its view, and hands to generators as their inputs, must be
// each node's own state. A store that did is warned of once. It reports
// false when the changes are no longer those of nodes (the store changed
// their IDs). It reads the IDs of nodes, which are set (by id) before
// their changes are made, so it runs without mu.
func (r *run) realign(changes []Change, nodes []graph.Node) bool {
	i := 0
	for i < len(changes) && changes[i].ID == r.ids[nodes[i]] {
		i++
	}
	if i == len(changes) {
		return true
	}
	r.e.reorderWarn.Do(func() {
		r.e.log.Warn("regen: the StateStore's Commit reordered the changes it was given; it must not modify them",
			"run", r.handle.id, "graph", r.key)
	})
	// The last change of a node is the one recorded, in the store's
	// order as in the run's.
	last := make(map[string]dirty.State, len(changes))
	for _, c := range changes {
		last[c.ID] = c.State
	}
	for k, n := range nodes {
		st, ok := last[r.ids[n]]
		if !ok {
			return false
		}
		changes[k] = Change{ID: r.ids[n], State: st}
	}
	return true
}

// stop ends the run once its graph was replaced or deleted (gone): it is
// cancelled with gone as the cause, and the results of batch, and of
// every later commit, are not recorded; those that were made are
// superseded (and, the run being cancelled, their dependents are not
// skipped: they never start), and those that early cutoff kept get no
// event, as nodes that had not started. Called with mu held.
func (r *run) stop(gone error, batch []result) {
	if r.gone == nil {
		r.gone = gone
		r.e.log.Warn("regen: run stopped", "run", r.handle.id, "graph", r.key, "err", gone)
		r.handle.cancel(gone)
	}
	for i := range batch {
		switch res := &batch[i]; {
		case res.outcome == unchanged && res.attempts == 0:
			// Kept by early cutoff, it made no call: as a node that had
			// not started when a run is cancelled, it gets no event.
			res.outcome = unstarted
		case res.outcome == generated, res.outcome == unchanged:
			// Made (an unchanged result with attempts made them, and
			// another run committed the node meanwhile): superseded.
			res.outcome = superseded
		}
	}
}

// dirtyDependents adds to a commit a change that makes dirty each direct
// dependent of n that is clean in the view and not in the commit yet; the
// next plan covers what depends on them. Called with mu held.
func (r *run) dirtyDependents(n graph.Node, stamp time.Time, changes []Change, nodes []graph.Node,
	dirtied map[graph.Node]bool) ([]Change, []graph.Node, map[graph.Node]bool) {
	for _, c := range r.g.Dependents(n) {
		if r.view.Status(c) != dirty.StatusClean || dirtied[c] {
			continue
		}
		if dirtied == nil {
			dirtied = map[graph.Node]bool{}
		}
		dirtied[c] = true
		st := r.view.Get(c)
		st.Status, st.UpdatedAt = dirty.StatusDirty, stamp
		changes = append(changes, Change{ID: r.id(c), State: st})
		nodes = append(nodes, c)
	}
	return changes, nodes, dirtied
}

// appliedTake reports whether a snapshot holds a new output of one of a
// commit's clean changes (an output and asset that the view did not hold
// before the commit): as commits are atomic, the commit then went
// through, even if later commits changed its states since. Called by the
// committer, which alone writes the view.
func (r *run) appliedTake(snap Snapshot, changes []Change, nodes []graph.Node) bool {
	for i, c := range changes {
		before := r.view.Get(nodes[i])
		if c.State.Status != dirty.StatusClean ||
			(c.State.OutputHash == before.OutputHash && c.State.AssetRef == before.AssetRef) {
			continue
		}
		if got, ok := snap.States[c.ID]; ok && got.OutputHash == c.State.OutputHash && got.AssetRef == c.State.AssetRef {
			return true
		}
	}
	return false
}

// unrecorded supersedes the results of a commit, taken as applied by
// appliedTake, whose take the snapshot does not hold: the commit may not
// have gone through after all. nodes are the commit's.
func (r *run) unrecorded(snap Snapshot, batch []result, nodes []graph.Node) {
	in := make(map[graph.Node]bool, len(nodes))
	for _, n := range nodes {
		in[n] = true
	}
	for i := range batch {
		res := &batch[i]
		if (res.outcome != generated && res.outcome != unchanged) || !in[res.n] {
			continue
		}
		if got, ok := snap.States[res.id]; !ok || got.OutputHash != res.state.OutputHash || got.AssetRef != res.state.AssetRef {
			res.outcome, res.stale = superseded, true
		}
	}
}

// madeFromView reports whether a state of node n with revision rev and
// input hash inputHash was made from the outputs that the view now holds
// for n's dependencies, every one of them clean. Called with mu held.
func (r *run) madeFromView(n graph.Node, rev int64, inputHash string) bool {
	ds := r.g.Deps(n)
	hashes := make([]string, len(ds))
	for i, d := range ds {
		if r.view.Status(d) != dirty.StatusClean {
			return false
		}
		hashes[i] = r.view.Get(d).OutputHash
	}
	return string(dirty.AppendInputHash(nil, rev, hashes)) == inputHash
}

// planApplied reports whether snap, loaded after a commit of a plan's
// changes (expecting version at) failed with an error after which it may
// or may not have been applied, shows that it went through: its version
// is past at, and it holds the graph state the commit gave the key (a
// new making of its graph, whose random token no other commit writes),
// or, for a commit without one, every change as given (stored).
func planApplied(snap Snapshot, at int64, changes []Change) bool {
	if snap.Version <= at {
		return false
	}
	for _, c := range changes {
		if c.ID == GraphStateID {
			got, ok := snap.States[GraphStateID]
			return ok && got.OutputHash == c.State.OutputHash
		}
	}
	return stored(snap, changes)
}

// stored reports whether a snapshot holds every change as given (times
// to the microsecond, which is what stores keep).
func stored(snap Snapshot, changes []Change) bool {
	for _, c := range changes {
		if got, ok := snap.States[c.ID]; !ok || !sameState(got, c.State) {
			return false
		}
	}
	return true
}

// sameState reports whether got, a state a store gave back, is want, as
// written: its UpdatedAt may be in another location, and cut to
// microseconds (as Postgres keeps it).
func sameState(got, want dirty.State) bool {
	if !got.UpdatedAt.Truncate(time.Microsecond).Equal(want.UpdatedAt.Truncate(time.Microsecond)) {
		return false
	}
	got.UpdatedAt, want.UpdatedAt = time.Time{}, time.Time{}
	return got == want
}

// settle moves committed results through the machine and reports them.
// at is the time commit stamped them with, which their events' ETAs are
// computed at (one clock reading for the batch); if zero, each event
// reads the clock. Called with mu held.
func (r *run) settle(batch []result, at time.Time) {
	now := at
	var readyAt time.Time
	if r.windowed {
		// When the nodes that the batch releases became ready, for the
		// batch windows.
		readyAt = time.Now()
	}
	for i := range batch {
		res := &batch[i]
		if c := r.limitLeft[res.key]; c != nil {
			c.Add(-1)
		}
		if res.outcome == unstarted {
			// The machine lets it go; no event, no list, no attempt.
			if _, err := r.m.Cancel(res.n); err != nil {
				panic("executor: " + err.Error()) // the machine and the runner disagree: a bug
			}
			r.unstarted++
			if r.callAt != nil {
				r.callAt[res.n].Store(0)
			}
			continue
		}
		ev := progress.Event{Node: res.id, Kind: res.kind, BatchKey: res.key, Stage: res.stage, Attempt: res.attempts}
		var sr schedule.Result
		var err error
		switch res.outcome {
		case generated, unchanged:
			sr, err = r.m.SucceedAt(res.n, readyAt)
			ev.Type = progress.NodeSucceeded
			if res.outcome == unchanged {
				ev.Type = progress.NodeUnchanged
				ev.Message = "inputs unchanged: kept the stored result"
			} else if r.em.sink != nil { // the ETA is reported with events only
				r.eta.observe(r.g.KindOf(res.n), res.took)
			}
		case failed:
			sr, err = r.m.Fail(res.n)
			ev.Type, ev.Error = progress.NodeFailed, errText(res.err)
			r.failures = append(r.failures, &NodeError{Node: res.id, Attempt: res.attempts, Err: res.err})
		case superseded:
			if r.gone != nil {
				// The run stops, as cancelled: the nodes after it never
				// start, and get no event, as in any cancelled run.
				sr, err = r.m.Cancel(res.n)
			} else {
				sr, err = r.m.Supersede(res.n)
			}
			ev.Type = progress.NodeSuperseded
			switch {
			case r.em.sink == nil: // no text that nobody reads
			case r.gone != nil:
				ev.Message = "its result was not kept: " + errText(r.gone)
			case res.stale:
				ev.Message = r.staleWhy(res.n)
			case res.err != nil && res.attempts == 0:
				// It failed before its call (its inputs could not be read).
				ev.Message = fmt.Sprintf("edited while it ran: it failed before its call (%s): "+
					"the failure was not recorded, and it stays dirty", errText(res.err))
			case res.err != nil:
				// Its attempts failed on its old parameters.
				ev.Message = fmt.Sprintf("edited while it ran: attempt %d, of its old parameters, failed (%s): "+
					"the failure was not recorded, and it stays dirty", res.attempts, errText(res.err))
			default:
				ev.Message = "edited while it ran: its result was not kept, and it stays dirty"
			}
		case cancelled:
			sr, err = r.m.Cancel(res.n)
			ev.Type, ev.Error = progress.NodeCancelled, errText(res.err)
		}
		r.rec.Counts.Attempts += res.attempts
		if r.callAt != nil {
			r.callAt[res.n].Store(0) // not running any more
		}
		if err != nil {
			panic("executor: " + err.Error()) // the machine and the runner disagree: a bug
		}
		r.outcomes[res.outcome] = append(r.outcomes[res.outcome], res.n)
		if r.last != nil {
			r.last[res.n] = res.outcome
		}
		r.unreported = len(sr.Skipped) // settled, but their events follow
		r.report(ev, now)
		why := "failed"
		if res.outcome == superseded {
			why = "was superseded"
		}
		r.skip(sr, res.id, why, now)
	}
}

// staleWhy says why a result made from inputs that are no longer current
// was not kept: a dependency that the view no longer holds clean was edited
// or made stale (an Executor.Edit, another run's force) while the node ran;
// otherwise another run committed its inputs or its result. Called with mu
// held.
func (r *run) staleWhy(n graph.Node) string {
	for _, d := range r.g.Deps(n) {
		if r.view.Status(d) != dirty.StatusClean {
			return "its input " + r.id(d) + " was edited or made stale while it ran: its result was not kept, and it stays dirty"
		}
	}
	return "another run committed its inputs or its result while it ran: its result was not kept"
}

// skip reports the nodes and stages that a transition of the machine
// skipped and finished because of upstream. Called with mu held.
func (r *run) skip(sr schedule.Result, upstream, why string, now time.Time) {
	r.unreported = len(sr.Skipped)
	for _, s := range sr.Skipped {
		r.unreported--
		r.skipped = append(r.skipped, s)
		if r.last != nil {
			r.last[s] = skippedOutcome
		}
		ki := r.g.KindOf(s)
		if c := r.limitLeft[batchKeyOf(r.g, ki)]; c != nil && !r.m.Halted() {
			// Settled: no call of its key to come (see limit); once the
			// machine is halted, it was not counted (see haltLimited).
			c.Add(-1)
		}
		ev := progress.Event{Type: progress.NodeSkipped}
		if r.em.sink != nil { // no text that nobody reads
			ev.Node, ev.Message = r.id(s), fmt.Sprintf("skipped: upstream %s %s", upstream, why)
			// The kind's key is that of the node's plan group: New makes a
			// batch of every kind with a key.
			ev.Kind, ev.BatchKey = r.g.KindName(ki), batchKeyOf(r.g, ki)
			ev.Stage, _ = r.plan.StageOf(s)
		}
		r.report(ev, now)
	}
	for _, s := range sr.StagesFinished {
		// A stage whose nodes were all skipped starts here (see
		// emitter.opens).
		r.stageFinished(s)
	}
}

// invalidateEdited skips the nodes that have not started and depend on a
// node edited, or made not clean (forced, failed), since prev, the view
// before a reload: such a change of a node that already succeeded in this
// round, or that is not in its plan, makes their inputs stale, so running
// them now would be wasted work. They stay dirty in the store, for the
// next round or run. An edited node that has not started yet runs with
// its new revision, and one that runs is superseded when it ends. Called
// with mu held.
func (r *run) invalidateEdited(prev *dirty.States) {
	if r.m == nil {
		return
	}
	for i := range r.view.Len() {
		n := graph.Node(i)
		unclean := prev.Status(n) == dirty.StatusClean && r.view.Status(n) != dirty.StatusClean
		if !unclean && r.view.Get(n).Rev == prev.Get(n).Rev {
			continue
		}
		sr, err := r.m.Invalidate(n)
		if err != nil {
			panic("executor: " + err.Error()) // n is in the graph: a bug
		}
		why := "was edited during the run"
		switch st := r.view.Get(n); {
		case st.Status == dirty.StatusMissing && prev.Status(n) != dirty.StatusMissing:
			why = "was deleted during the run" // DeleteGraph, or a store's cleanup
		case st.Rev == prev.Get(n).Rev && st.OutputHash == prev.Get(n).OutputHash && st.OutputHash != "":
			// Its output kept: forced, or its asset found missing, by
			// another run. (A state deleted and made again has none.)
			why = "was made stale during the run"
		}
		r.skip(sr, r.id(n), why, time.Time{})
	}
}

// stageFinished emits stage s's stage.finished, with the planner's
// summary line. (Its stage.started, the emitter sends before the first
// event of the stage: see emitter.opens.) Called with mu held.
func (r *run) stageFinished(s int) {
	if r.em.sink == nil {
		return // no summary that nobody reads
	}
	r.em.emit(progress.Event{Type: progress.StageFinished, Stage: s, Message: r.plan.Summary(s),
		Done: r.done + r.settledNodes(), Total: r.total, ETA: r.etaNow()})
}

// setETA records the ETA computed at now, for the events that follow.
func (r *run) setETA(eta time.Duration, now time.Time) {
	r.etaValue.Store(int64(eta))
	r.etaAt.Store(now.UnixNano())
}

// etaNow returns the last ETA computed, counted down since (never below
// minETA while work is left), or 0 (not known) before any. Events other
// than a node's settlement carry it.
func (r *run) etaNow() time.Duration {
	at := r.etaAt.Load()
	if at == 0 || r.em.sink == nil {
		return 0
	}
	return countdown(time.Duration(r.etaValue.Load()), time.Since(time.Unix(0, at)))
}

// settledNodes returns the number of the round's nodes that settled,
// for the events' Done: the machine's count, but for the nodes that it
// let go unstarted, which no event counts. Called with mu held.
func (r *run) settledNodes() int { return r.m.Settled() - r.unstarted - r.unreported }

// report emits a node event with the counts and the ETA. Called with mu
// held.
func (r *run) report(ev progress.Event, now time.Time) {
	settled := r.settledNodes()
	ev.Done, ev.Total = r.done+settled, r.total
	r.settled.Store(int64(ev.Done))
	if r.em.sink == nil {
		return // nobody listens: no event, no ETA
	}
	if now.IsZero() {
		now = time.Now()
	}
	ev.ETA = r.eta.at(now, r.m.Len()-settled)
	r.setETA(ev.ETA, now)
	r.em.emit(ev)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// cleanText makes an error text storable anywhere: valid UTF-8, no NUL,
// and cut to MaxEventText bytes, so that generators' huge errors do not
// bloat every failed node's state and the run's record.
func cleanText(s string) string {
	return cutText(strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", ""))
}

// finish records the run's outcome (unless the deletion of its graph
// deleted its record: see recordDeleted) and emits its final event.
func (r *run) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := r.sortedIDs
	rep := &Report{Generated: r.lastIDs(generated, r.outcomes[generated]), Unchanged: r.lastIDs(unchanged, r.outcomes[unchanged]),
		Failed: r.lastIDs(failed, r.outcomes[failed]), Skipped: r.lastIDs(skippedOutcome, r.skipped),
		Superseded: r.lastIDs(superseded, r.outcomes[superseded]), Cancelled: r.lastIDs(cancelled, r.outcomes[cancelled]),
		Dirty: ids(r.notClean()), Rounds: r.rounds}
	rec := &r.rec
	rec.EndedAt = time.Now()
	rec.Counts = Counts{Planned: r.total, Generated: len(rep.Generated), Unchanged: len(rep.Unchanged),
		Failed: len(rep.Failed), Skipped: len(rep.Skipped), Superseded: len(rep.Superseded),
		Cancelled: len(rep.Cancelled), Attempts: rec.Counts.Attempts}
	rec.Failed = rep.Failed
	var err error
	final := progress.Event{Stage: progress.NoStage, Done: r.done + r.settledNodes(), Total: r.total}
	switch {
	case r.ctx.Err() != nil:
		rec.Status = RunCancelled
		cause, replaced := safeCause(r.ctx)
		code, bad := r.handle.cancelledBy(cause)
		rec.CancelledBy = code
		switch {
		case cause == ErrCancelled: // Cancel, or CancelCause(nil)
			err = fmt.Errorf("%w: run %s", ErrCancelled, quote(r.handle.id))
		case errors.Is(cause, ErrCancelled): // a host's cause that says it already
			err = fmt.Errorf("run %s: %w", quote(r.handle.id), cause)
		default:
			err = wrap(ErrCancelled, "run "+quote(r.handle.id), cause, "")
		}
		if bad != nil { // the cancel stands; the record says CancelledByHost
			r.e.log.Warn("regen: cancel code refused", "run", r.handle.id, "graph", r.key, "recorded", code, "err", bad)
			err = fmt.Errorf("%w (recorded as cancelled by %q: %w)", err, code, bad)
		} else if replaced { // the error says why already: the cause is ErrInvalidCancelCode's
			r.e.log.Warn("regen: cancel code refused", "run", r.handle.id, "graph", r.key, "recorded", code, "err", cause)
		}
		final.Type, final.CancelledBy = progress.RunCancelled, code
	case len(r.failures) > 0:
		rec.Status = RunFailed
		err = &RunError{RunID: r.handle.id, Failed: r.failuresInGraphOrder()}
		final.Type = progress.RunFailed
	default:
		rec.Status = RunSucceeded
		final.Type = progress.RunFinished
	}
	if err != nil {
		rec.Error = cleanText(err.Error())
	}
	final.Message = fmt.Sprintf("%s: %d generated, %d unchanged, %d failed, %d skipped, %d superseded, %d cancelled",
		rec.Status, rec.Counts.Generated, rec.Counts.Unchanged, rec.Counts.Failed, rec.Counts.Skipped,
		rec.Counts.Superseded, rec.Counts.Cancelled)
	if len(rep.Dirty) > 0 {
		final.Message += fmt.Sprintf("; %d left dirty", len(rep.Dirty))
	}
	final.Error = rec.Error
	// The Report's counts, the run's whole (each node once, under its
	// last outcome), as its record's, and what it left dirty.
	final.Counts = &progress.Counts{Generated: rec.Counts.Generated, Unchanged: rec.Counts.Unchanged,
		Failed: rec.Counts.Failed, Skipped: rec.Counts.Skipped, Superseded: rec.Counts.Superseded,
		Cancelled: rec.Counts.Cancelled, Dirty: len(rep.Dirty)}
	// The record has a bound of its own: commits that used up the run's
	// after a cancel may have stalled on the state store alone. A failed
	// PutRun is tried again until that bound ends, not within the budget
	// of the run's other store calls: a record left saying "running"
	// would wait for a Resume to say "interrupted", and would make what
	// the run left dirty again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.bg), r.e.opts.StoreTimeout)
	var perr error
	if !r.recordDeleted(ctx) {
		perr = r.e.opts.Runs.PutRun(ctx, *rec)
	}
	if perr != nil {
		perr = r.e.retryStoreWithin(ctx, storeRetries{budget: -1, graph: r.key}, r.handle.id, perr, "record run", r.handle.id,
			func() error { return r.e.opts.Runs.PutRun(ctx, *rec) })
	}
	if perr != nil {
		perr = fmt.Errorf("record run %s: %w", quote(r.handle.id), perr)
		r.e.log.Error("regen: the run's final record was not stored: its stored record still says running",
			"run", r.handle.id, "graph", r.key, "status", rec.Status, "err", perr)
	}
	cancel()
	rep.Record, rep.RecordErr = *rec, perr
	r.em.emit(final)
	r.mu.Unlock()
	r.waitAttempts()
	r.mu.Lock()
	r.handle.report, r.handle.err = rep, err
}

// trackLast starts keeping each node's last outcome (see run.last), at
// the end of the first round, from the outcomes of that round, in which
// each node settled once at most. Called with mu held.
func (r *run) trackLast() {
	r.last = make([]outcome, r.g.Len())
	for i := range r.last {
		r.last[i] = unstarted
	}
	for o, nodes := range r.outcomes {
		for _, n := range nodes {
			r.last[n] = outcome(o)
		}
	}
	for _, n := range r.skipped {
		r.last[n] = skippedOutcome
	}
}

// lastIDs returns the IDs of nodes, those that had outcome o in some
// round, for the report (see sortedIDs): with more than one round, only
// those whose last outcome was o, so that each node is listed once.
// Called with mu held.
func (r *run) lastIDs(o outcome, nodes []graph.Node) []string {
	if r.last != nil {
		nodes = slices.DeleteFunc(slices.Clone(nodes), func(n graph.Node) bool { return r.last[n] != o })
	}
	return r.sortedIDs(nodes)
}

// recordDeleted reports whether the record of the run, stopped as its
// graph was deleted (r.gone is ErrGraphDeleted), was deleted with the
// graph's states (DeleteGraph of MemoryStore, pgstore): the run then
// writes it not again, so that a host that deleted the graph holds no
// record of it (the Report keeps it). A record found, put after the
// deletion (the run's first, once its plan was committed) or kept by a
// store that deletes the states alone, is written as ever, and so is one
// that the store cannot say: it must not say running for good. A run
// stopped as its graph was replaced (ErrGraphReplaced, also when the
// graph was deleted and then made again) writes its record as ever: the
// key's history goes on. Called with mu held.
func (r *run) recordDeleted(ctx context.Context) bool {
	if !errors.Is(r.gone, ErrGraphDeleted) {
		return false
	}
	get := func() error {
		_, err := r.e.opts.Runs.GetRun(ctx, r.handle.id)
		return err
	}
	err := get()
	if err != nil {
		err = r.retryStore(ctx, err, "read the record of", r.handle.id, get)
	}
	if errors.Is(err, ErrNotFound) {
		r.e.log.Debug("regen: the run's graph was deleted, and its record with it: not written again", "run", r.handle.id, "graph", r.key)
		return true
	}
	return false
}

// notClean returns the nodes that the view holds not clean, in node
// order: none, at no cost, when every node is clean. Called with mu held.
func (r *run) notClean() []graph.Node {
	n := r.g.Len()
	if r.view.Count(dirty.StatusClean) == n {
		return nil
	}
	var nodes []graph.Node
	for i := range graph.Node(n) {
		if r.view.Status(i) != dirty.StatusClean {
			nodes = append(nodes, i)
		}
	}
	return nodes
}

// sortedIDs returns the IDs of nodes in the order of [Report]: by kind
// name, then by segment number, each node once (a node can have the same
// outcome in two rounds). A graph numbers each kind's nodes contiguously,
// by segment, so a long list is ordered in O(graph) by walking the kinds
// in name order over a bitmap; a short one is sorted. Called with mu held.
func (r *run) sortedIDs(nodes []graph.Node) []string {
	kinds := make([]int, r.g.Kinds())
	for i := range kinds {
		kinds[i] = i
	}
	slices.SortFunc(kinds, func(a, b int) int { return strings.Compare(r.g.KindName(a), r.g.KindName(b)) })
	var order []graph.Node
	if len(nodes) >= r.g.Len()/16 {
		in := make([]uint64, (r.g.Len()+63)/64)
		for _, n := range nodes {
			in[n/64] |= 1 << (n % 64)
		}
		order = make([]graph.Node, 0, len(nodes))
		for _, k := range kinds {
			first, count := r.g.KindNodes(k)
			for n := first; n < first+graph.Node(count); n++ {
				if in[n/64]&(1<<(n%64)) != 0 {
					order = append(order, n)
				}
			}
		}
	} else {
		rank := make([]uint64, len(kinds))
		for i, k := range kinds {
			rank[k] = uint64(i)
		}
		// Within a kind, node numbers follow segments.
		key := func(n graph.Node) uint64 { return rank[r.g.KindOf(n)]<<32 | uint64(n) }
		order = slices.Clone(nodes)
		slices.SortFunc(order, func(a, b graph.Node) int { return cmp.Compare(key(a), key(b)) })
		order = slices.Compact(order)
	}
	out := make([]string, len(order))
	for i, n := range order {
		out[i] = r.id(n)
	}
	return out
}

// failuresInGraphOrder returns the run's failures sorted by node, in the
// graph's order (a failure that is no node's, a Converge re-plan's, last),
// rather than in the order the nodes failed, which varies from run to
// run: the same failures give the same RunError text.
func (r *run) failuresInGraphOrder() []*NodeError {
	type ranked struct {
		n int
		f *NodeError
	}
	fs := make([]ranked, len(r.failures))
	for i, f := range r.failures {
		fs[i] = ranked{r.g.Len(), f}
		if n, err := r.g.Lookup(f.Node); err == nil {
			fs[i].n = int(n)
		}
	}
	slices.SortStableFunc(fs, func(a, b ranked) int { return cmp.Compare(a.n, b.n) })
	for i := range fs {
		r.failures[i] = fs[i].f
	}
	return r.failures
}

// waitAttempts waits, up to the grace period, for generator calls that
// outlived their attempts.
func (r *run) waitAttempts() {
	ctx, cancel := context.WithTimeout(context.Background(), r.e.opts.Grace)
	defer cancel()
	if r.attempts.wait(ctx) != nil {
		calls, nodes, kinds := r.watch.stillRunning()
		r.e.log.Warn("regen: generators still running after the run ended; they ignore their context",
			"run", r.handle.id, "graph", r.key, "grace", r.e.opts.Grace, "calls", calls, "nodes", nodes, "kinds", kinds)
	}
}
