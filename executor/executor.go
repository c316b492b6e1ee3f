package executor

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// Executor runs regeneration plans through the host's generators,
// storage and progress sink. It is safe for concurrent use: several runs,
// on different graphs or the same one, may go on at once; their commits
// are serialized by the state store's versions.
type Executor struct {
	opts Options
	log  *slog.Logger
	// calls counts the generator calls in flight, of every run, including
	// those of generators that ignore their context and outlive their run;
	// Close waits for them.
	calls tally
	// quotas are the rates of Options.Rates, and limits the caps of
	// Options.Limits, shared by all runs.
	quotas map[string]*quota
	limits map[string]*limit
	// reorderWarn warns once of a StateStore whose Commit reordered the
	// changes it was given (see realign).
	reorderWarn sync.Once
	// batchReadMin is the fewest dependencies read with one GetMany call
	// from the asset store (see readDeps).
	batchReadMin int
	// unbatched holds, under its mutex, the kinds already warned of for a
	// BatchGenerator without a batch key (see warnUnbatched).
	unbatchedMu sync.Mutex
	unbatched   map[string]bool
	// shapes holds, under its mutex, the shapes of graph (their kinds and
	// batch keys) already checked for names of the options that they
	// lack (see warnUnknownKeys), by a hash of each, up to
	// maxWarnedShapes.
	shapesMu sync.Mutex
	shapes   map[[sha256.Size]byte]struct{}

	// runs counts the runs started and not ended, those being started
	// included; Close waits for them.
	runs tally

	// live holds the IDs of the runs being started or running, so that
	// two Starts with one ID at once cannot both pass the check of the
	// RunStore, and a Resume of a run that is going on is refused.
	// finishing holds, by graph key, the Resume or RerunFailed of the key
	// that is live: every one of a key finishes the same work, the key's
	// nodes that are not clean, whichever of its runs it names (the same
	// run, the run that resumed it, or another), so a second one is
	// refused rather than pay the generators again. ending holds the
	// runs whose record a call is writing as interrupted, not resumed,
	// or whose stream an Abandon of a run recorded so is ending, and
	// which call: an Abandon, or a Resume or RerunFailed refused as the
	// run's graph is no longer the key's (notResumed) or as the run was
	// abandoned (refuseAbandoned, which ends the stream only). A Resume,
	// RerunFailed or Abandon of one is refused meanwhile, so that one
	// call writes the record and ends the stream. abandons counts the
	// Abandons that have let go of their run (see recheckAbandoned).
	// closed is set by Close.
	startMu   sync.Mutex
	live      map[string]bool
	finishing map[string]finisher
	ending    map[string]endingBy
	abandons  uint64
	closed    bool
	// ended is closed, and set to nil, when a live run ends (forget):
	// calls that wait for a run to end wait for it (see endedLocked).
	ended chan struct{}
	// handles holds the runs that run, by ID, for Executor.Drain; drains
	// counts the Drains under way, and drainCause is the first's cause,
	// which drains the runs that start meanwhile (see track).
	handles    map[string]*Run
	drains     int
	drainCause error
	// drained holds the runs that started while a Drain waited, for the
	// Drains to wait for their Done (see Executor.Drain); emptied when
	// the last Drain returns.
	drained []*Run
}

// endedLocked returns a channel that is closed when a run that is live
// now ends (or another one does: the caller looks again). Called with
// startMu held.
func (e *Executor) endedLocked() <-chan struct{} {
	if e.ended == nil {
		e.ended = make(chan struct{})
	}
	return e.ended
}

// recordEnded reports whether run id's record says that it ended: one
// read, whose failure says no.
func (e *Executor) recordEnded(ctx context.Context, id string) bool {
	rec, err := e.opts.Runs.GetRun(ctx, id)
	return err == nil && rec.Status != RunRunning
}

// endingBy says which call holds a run in Executor.ending.
type endingBy int

const (
	endingAbandon   endingBy = iota + 1 // Abandon
	endingRefused                       // a Resume or RerunFailed refused as the run's graph is no longer the key's (notResumed)
	endingAbandoned                     // a Resume or RerunFailed refused as the run was abandoned (refuseAbandoned)
)

// finisher is a live Resume or RerunFailed: run id, which finishes run
// of. It holds its key until both its run has ended and the call that
// started it has returned (refs counts them), since the call records
// the run it finishes as interrupted after its own run started, and that
// run may end at once.
type finisher struct {
	id, of string
	refs   int
}

// New returns an executor. Options.Generators is required; every other
// field has a default.
func New(opts Options) (*Executor, error) {
	bad := func(format string, args ...any) (*Executor, error) {
		return nil, fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
	}
	if len(opts.Generators) == 0 {
		return bad("Options.Generators is empty: register a generator for each kind")
	}
	for _, kind := range sortedKeys(opts.Generators) {
		gen := opts.Generators[kind]
		if f, ok := gen.(GeneratorFunc); gen == nil || ok && f == nil {
			return bad("Options.Generators[%q] is nil", kind)
		}
	}
	switch {
	case opts.Mode != Dataflow && opts.Mode != Staged:
		return bad("Options.Mode %d: want Dataflow or Staged", opts.Mode)
	case opts.Workers < 0:
		return bad("Options.Workers %d: want 0 (no cap) or more", opts.Workers)
	case opts.Converge < 0:
		return bad("Options.Converge %d: want 0 or more rounds", opts.Converge)
	case opts.MaxBatch < 0:
		return bad("Options.MaxBatch %d: want 0 (no cap) or more", opts.MaxBatch)
	case opts.Grace < 0:
		return bad("Options.Grace %v: want 0 (default) or more", opts.Grace)
	case opts.StoreTimeout < 0:
		return bad("Options.StoreTimeout %v: want 0 (default) or more", opts.StoreTimeout)
	case opts.StoreRetry < 0:
		return bad("Options.StoreRetry %v: want 0 (default: %v) or more", opts.StoreRetry, defaultStoreRetry)
	}
	for _, key := range sortedKeys(opts.Rates) {
		if key == "" {
			return bad("Options.Rates has an empty batch key: rates apply to batch keys, and singles have none")
		}
		if r := opts.Rates[key]; r.Starts <= 0 || r.Per <= 0 {
			return bad("Options.Rates[%q] is %d per %v: want at least 1 start per positive period", key, r.Starts, r.Per)
		}
	}
	for _, key := range sortedKeys(opts.Limits) {
		if key == "" {
			return bad("Options.Limits has an empty batch key: limits apply to batch keys, and singles have none")
		}
		if n := opts.Limits[key]; n < 1 {
			return bad("Options.Limits[%q] is %d: want at least 1 call in flight", key, n)
		}
	}
	if err := opts.checkKinds(); err != nil {
		return nil, err
	}
	if opts.States == nil && opts.Assets == nil {
		// One value, so that its assets can be pruned: it knows what
		// states refer to.
		ms := NewMemoryStore()
		opts.States, opts.Assets = ms, ms
		if opts.Runs == nil {
			opts.Runs = ms
		}
	}
	if opts.States == nil {
		opts.States = NewMemoryStates()
	}
	if opts.Assets == nil {
		opts.Assets = NewMemoryAssets()
	}
	if opts.Runs == nil {
		opts.Runs = NewMemoryRuns()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StoreTimeout == 0 {
		opts.StoreTimeout = 30 * time.Second
	}
	if opts.Grace == 0 {
		opts.Grace = 5 * time.Second
	}
	if opts.StoreRetry == 0 {
		opts.StoreRetry = defaultStoreRetry
	}
	// The runs read the maps for as long as the executor lives: they are
	// copied, so that a host that changes its own afterwards (reusing its
	// Options for another executor, say) changes nothing here, where the
	// quotas and limits below were made from them.
	opts.Generators, opts.Kinds = maps.Clone(opts.Generators), maps.Clone(opts.Kinds)
	opts.Rates, opts.Limits = maps.Clone(opts.Rates), maps.Clone(opts.Limits)
	e := &Executor{opts: opts, log: opts.Logger, quotas: newQuotas(opts.Rates), limits: newLimits(opts.Limits),
		batchReadMin: batchReadMin}
	if _, ok := opts.Assets.(localAssets); ok {
		e.batchReadMin = localBatchReadMin
	}
	e.warnStagedWindows()
	return e, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// States returns the executor's state store.
func (e *Executor) States() StateStore { return e.opts.States }

// Assets returns the executor's asset store.
func (e *Executor) Assets() AssetStore { return e.opts.Assets }

// Runs returns the executor's run store.
func (e *Executor) Runs() RunStore { return e.opts.Runs }

// Close shuts the executor down: it starts no run from then on (Start,
// Run, Resume and RerunFailed return [ErrClosed]), nor calls its stores
// (Edit, Plan, Abandon, AbandonTo, Forget, Output and the reads of an
// Outputs loop return ErrClosed too), and it waits
// until every run it started has ended, its outcome recorded, every
// Resume, RerunFailed, Edit, Plan, Abandon, AbandonTo, Forget and Output
// under way (and an Outputs loop's store call) has returned (a Resume
// with the record of the run it resumed as interrupted, or with
// ErrClosed), and every generator
// call it started has returned, including calls abandoned at a timeout,
// a cancel or the end of a run; or until ctx ends, and then returns
// ctx.Err(). Once it has returned nil, the executor calls its stores no
// more, and the host may close them. It does not cancel the runs: cancel their contexts
// (or [Run.Cancel]) first to stop them sooner, as a host does on
// shutdown before it closes the stores' connections, after a bounded
// [Executor.Drain] if it keeps the calls under way. Give ctx a
// deadline (context.WithTimeout): a generator that ignores its context
// never returns, and Close, waiting for its call, would wait for good.
// Close may be called again, for example with a longer ctx.
func (e *Executor) Close(ctx context.Context) error {
	e.startMu.Lock()
	e.closed = true
	e.startMu.Unlock()
	if err := e.runs.wait(ctx); err != nil {
		return err
	}
	return e.calls.wait(ctx)
}

// begin counts a run of graph key that is starting, under ID id, unless
// the executor is closed or id is live: a run ID names one run, its
// record, its events and its stream. of is the ID of the run that it
// resumes (Resume, RerunFailed), or "": a Resume or RerunFailed is
// refused while another one of the key is live (see finishedLocked). A
// run that ends, or fails to start, calls forget and then e.runs.done.
func (e *Executor) begin(id, of, key string) error {
	e.startMu.Lock()
	defer e.startMu.Unlock()
	if e.closed {
		return fmt.Errorf("%w: it starts no run", ErrClosed)
	}
	if e.live[id] {
		return fmt.Errorf("%w: %s %s is taken by a run that is starting or running in this executor: give each run its own ID, or none for a random one",
			ErrInvalidRequest, runIDField(of), quote(id))
	}
	if err := e.finishedLocked(of, key); err != nil {
		return err
	}
	if e.live == nil {
		e.live, e.finishing = map[string]bool{}, map[string]finisher{}
	}
	e.live[id] = true
	if of != "" {
		e.finishing[key] = finisher{id: id, of: of, refs: 2} // the run and its Resume's call
	}
	e.runs.add()
	return nil
}

// finishedLocked refuses a Resume or RerunFailed of run of, of graph
// key, if another one of the key is under way in this executor (its call
// or its run; see finisher): it finishes
// the same work, the key's nodes that are not clean, whether it resumes
// the same run, a run of its chain (the run that resumed of, or that of
// resumed) or another run of the key. It returns nil for of "" (a Start).
// Called with startMu held.
func (e *Executor) finishedLocked(of, key string) error {
	f, ok := e.finishing[key]
	switch {
	case of != "" && e.ending[of] != 0:
		return endingError(of, e.ending[of])
	case of == "" || !ok:
		return nil
	case f.of == of:
		return fmt.Errorf("%w: run %s is already being finished by run %s, a Resume or RerunFailed that is under way in this executor (its call not returned, or its run not ended): wait for it to end (Run.Wait), even once cancelled: a cancelled run counts until it has ended",
			ErrBusy, quote(of), quote(f.id))
	}
	return fmt.Errorf("%w: run %s is already being finished by run %s, a Resume or RerunFailed of run %s, of the same graph %s, that is under way in this executor (its call not returned, or its run not ended): each one of a graph key makes the same nodes, those not clean: wait for it to end (Run.Wait), even once cancelled: a cancelled run counts until it has ended",
		ErrBusy, quote(of), quote(f.id), quote(f.of), quote(key))
}

// runIDField names the field that gave the ID of a run that resumes
// run of ("" for a Start): ResumeOptions.RunID for a Resume or
// RerunFailed, whose caller built no RunRequest.
func runIDField(of string) string {
	if of != "" {
		return "ResumeOptions.RunID"
	}
	return "RunRequest.RunID"
}

// forget takes run id, of graph key, which resumes run of (or "" for
// none), off the live runs; the key stays finished by it until the
// Resume or RerunFailed that started it has returned too (see unfinish).
// It wakes the calls that wait for a run to end (endedLocked).
func (e *Executor) forget(id, of, key string) {
	e.startMu.Lock()
	delete(e.live, id)
	delete(e.handles, id)
	if e.ended != nil {
		close(e.ended)
		e.ended = nil
	}
	if of != "" {
		e.unfinishLocked(id, key)
	}
	e.startMu.Unlock()
}

// unfinish is called by the Resume or RerunFailed that started run id,
// of graph key, when it returns: once the run has ended too, another one
// of the key may start.
func (e *Executor) unfinish(id, key string) {
	e.startMu.Lock()
	e.unfinishLocked(id, key)
	e.startMu.Unlock()
}

func (e *Executor) unfinishLocked(id, key string) {
	f, ok := e.finishing[key]
	if !ok || f.id != id {
		return
	}
	if f.refs--; f.refs > 0 {
		e.finishing[key] = f
		return
	}
	delete(e.finishing, key)
}

// RunRequest asks for a run.
type RunRequest struct {
	// GraphKey identifies the graph in the stores, for example the
	// lecture's ID. Required.
	//
	// GraphKey, RunID, TriggeredBy and Reason must be valid UTF-8
	// without NUL bytes, as stores keep them as text. Other text is
	// refused with [ErrInvalidRequest] before anything is committed.
	GraphKey string
	// Graph is the graph to regenerate, made by graph.Build. Required:
	// nil, or a zero graph.Graph, is refused with [ErrInvalidRequest].
	Graph *graph.Graph
	// Marks say what changed. An edited mark bumps the node's parameters
	// revision when the run starts. Without marks the run regenerates
	// what is not clean: a new graph, or the rest of an interrupted run.
	//
	// A bad mark is refused with [ErrInvalidRequest] and the
	// [*dirty.MarkError] that says which. A mark is bad when its node ID
	// is malformed or unknown, or its reason cannot be marked.
	Marks []dirty.Mark
	// TriggeredBy says who started the run, for the audit record.
	TriggeredBy string
	// Reason says why, for the audit record.
	Reason string
	// RunID names the run: its record, its events and its stream.
	// Default: a random ID. Never reuse an ID.
	//
	// An ID already recorded, or given to a run this executor is
	// starting, is refused. Executors in several processes that share a
	// RunStore need IDs unique by construction, such as the random
	// default. An ID whose Start failed after recording the run stays
	// taken: its record then says failed or cancelled (see
	// Executor.Start).
	//
	// An ID used again once its record is gone is not refused. The record
	// is gone after PruneRuns or DeleteGraph, or in an in-memory RunStore
	// after a restart. But a sink may still hold the earlier run's events
	// under the ID, as a Redis stream does within its FinishedTTL (a day
	// by default; for good if negative), and progress.Memory does. It then takes the new run's events for
	// duplicates and drops them, and its readers get the earlier run's
	// events, of another graph perhaps.
	RunID string
}

// Report is the outcome of a run. It marshals to JSON with lower camel
// case names, as its Record does.
type Report struct {
	// Record is the run's audit record, as stored; when RecordErr is not
	// nil, as the run meant to store it.
	Record Record `json:"record"`
	// RecordErr is nil once the run's final record is stored. Otherwise
	// it is the error of the run store's last PutRun of it, which was
	// retried until Options.StoreTimeout ended (or failed with an error
	// that no retry can fix, wrapped in [Permanent]): the stored record
	// still says running, as after a crash, and a later Resume (or
	// pgstore's ResumeLeftRunning) would record the run as interrupted
	// and make what it left dirty. Wait's error says the run's outcome,
	// not its record's: a run that succeeded returns nil with a RecordErr.
	// A host that can store it later does so with the run store's PutRun
	// of Record, which is the final record. It is not marshalled: a host
	// that sends the Report on sends its text itself.
	RecordErr error `json:"-"`
	// The nodes by outcome, as IDs sorted by kind name, then by segment
	// number (so segment[2] comes before segment[10]); never nil, so they
	// marshal as [] when empty. Cancelled lists the nodes running when the
	// run was cancelled, those that had started (node.started; see the
	// package doc's Progress); planned
	// nodes that a cancel kept from starting (among them those still
	// reading their inputs, or waiting for room under Options.Limits or
	// for a start under Options.Rates) are in no list, and stay dirty for
	// a resume. Each node is in one list at most: with Converge, where a
	// node settles in each round it is planned in, that of its last
	// outcome, the one its last settling event says (a node superseded
	// and then generated is in Generated alone; one superseded and then
	// kept from starting by a cancel stays in Superseded).
	Generated  []string `json:"generated"`
	Unchanged  []string `json:"unchanged"`
	Failed     []string `json:"failed"`
	Skipped    []string `json:"skipped"`
	Superseded []string `json:"superseded"`
	Cancelled  []string `json:"cancelled"`
	// Dirty lists, in the same order and never nil, the nodes of the graph
	// that are not clean as the run last saw the states (at its last
	// commit): those it planned and did not make (failed, skipped,
	// superseded, cancelled, or kept from starting by a cancel), and
	// those an edit made dirty while it ran that its commits met. A run
	// can succeed and leave nodes dirty: an edit during the run supersedes
	// a node and skips its dependents, without failing the run (see
	// Options.Converge). An empty Dirty says the run left the whole graph
	// clean, short of an edit after its last commit. Dirty names those
	// nodes only, not what depends on them, which the next run makes too:
	// [Executor.Plan] says what that run would make, and why.
	Dirty []string `json:"dirty"`
	// Rounds is the number of plans run: 1, plus convergence rounds.
	Rounds int `json:"rounds"`
}

// Run is a handle on a run that [Executor.Start] started.
type Run struct {
	id     string
	plan   *planner.Plan
	cancel context.CancelCauseFunc
	drain  context.CancelCauseFunc // see Drain
	origin cancelOrigin            // which cancel came first: see cancelByHandle
	done   chan struct{}
	report *Report
	err    error
}

// ID returns the run's ID.
func (r *Run) ID() string { return r.id }

// Plan returns the run's plan, as computed when it started. Convergence
// rounds plan again; their plans are not kept.
func (r *Run) Plan() *planner.Plan { return r.plan }

// Cancel cancels the run: nothing new starts, running generators are
// cancelled, every slot is freed (a call's once it returns, within its
// grace, whose output is kept: see [Generator] and [BatchGenerator]) and
// the interrupted nodes are recorded as cancelled. It does not wait; see [Run.Wait]. [Run.Drain] stops the
// run without cancelling the calls under way; a Cancel during a drain
// cuts it short.
func (r *Run) Cancel() { r.cancelByHandle(ErrCancelled) }

// CancelCause is Cancel with a cause, as context.WithCancelCause's
// function is: the run's error wraps [ErrCancelled] and cause, and its
// record's Error says it, so that a host tells a user's cancel from its
// own shutdown or a lost lock (a run cancelled by its shutdown is one to
// resume at the next start, say). A nil cause is ErrCancelled. Only the
// first cancel counts, whether by Cancel, CancelCause or the run's
// context: a host that cancels its runs with a shutdown cause of its own
// starts them on a context that its signal does not end first (one of
// context.WithCancelCause, not of signal.NotifyContext, whose cause
// "interrupt signal received" would then be the records'). A cause made
// with [CancelCode] also names a code of the host's, which the record
// keeps in Record.CancelledBy, for the host to find such runs by code
// rather than by Error's text; a cause without a code (context.Canceled
// or context.DeadlineExceeded given here included) records
// [CancelledByHost], and a nil cause or ErrCancelled [CancelledByCancel].
func (r *Run) CancelCause(cause error) {
	if cause == nil {
		cause = ErrCancelled
	}
	r.cancelByHandle(cause)
}

// Done is closed when the run has ended. Its record comes first, then its
// final event (as long as the sink's Publish takes), and then the run
// waits, up to Options.Grace, for the generator calls that ignore their
// context (Close waits for them longer), and ends. A Resume or RerunFailed of the run
// meanwhile waits for Done rather than refuse it (see [Executor.Resume]).
func (r *Run) Done() <-chan struct{} { return r.done }

// Wait waits for the run to end and returns its report and error: nil
// when it succeeded, a [*RunError] when nodes failed, an error wrapping
// [ErrCancelled] when it was cancelled. The report is never nil. The
// error says the run's outcome, not whether its final record was stored:
// Report.RecordErr says that.
//
// A cancelled run's error also wraps what cancelled it, for errors.Is:
// the cause of its context when that ended (context.Canceled,
// context.DeadlineExceeded, or the cause given to
// context.WithCancelCause's function), the cause given to
// [Run.CancelCause], [ErrGraphReplaced] or [ErrGraphDeleted] when it
// stopped because its graph was replaced or deleted, and nothing more
// for [Run.Cancel]. Only the first cancel counts. The run's [Record]
// keeps the error's text (Record.Error), which names the cause, and a
// code for what cancelled it (Record.CancelledBy): the executor's
// ([CancelledByCancel] for Run.Cancel, [CancelledByContext],
// [CancelledByDeadline], [CancelledByGraphReplaced],
// [CancelledByGraphDeleted], [CancelledByHost] for a host's cause
// without a code) or the host's, given with [CancelCode]. A host's code
// that [CheckCancelCode] refuses is recorded as CancelledByHost, and
// the error then wraps [ErrInvalidCancelCode] too and says so.
func (r *Run) Wait() (*Report, error) {
	<-r.done
	return r.report, r.err
}

// Run starts a run and waits for it. See [Executor.Start].
func (e *Executor) Run(ctx context.Context, req RunRequest) (*Report, error) {
	r, err := e.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	return r.Wait()
}

// Start plans a run and starts it in the background. It returns the run's
// handle once the run is recorded and its plan committed, or an error; a
// failed Start has run nothing. A closed executor starts no run: it
// returns [ErrClosed].
//
// ctx bounds the start and is the run's lifetime too: when it ends, even
// long after Start has returned, the run is cancelled, as by
// [Run.Cancel], with ctx's cause. So do not pass the context of a
// request that starts a run in the background: net/http cancels it when
// the handler returns, and the run with it. Pass one that lives as long
// as the run may, such as the service's, cancelled at shutdown (with a
// cause of the host's, which the records then say: see
// [Run.CancelCause]), or
// context.WithoutCancel(r.Context()), which keeps the request's values;
// cancel the run with Run.Cancel or Run.CancelCause. The same holds for
// Resume, RerunFailed and pgstore's ResumeLeftRunning. Take the key's
// lock (pgstore's LockGraph) with the request's context, which bounds
// its wait, and not the run's. To bound the start alone by the request,
// cancel the run's context from the request's end only until Start has
// returned:
//
//	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
//	stop := context.AfterFunc(r.Context(), func() { cancel(context.Cause(r.Context())) })
//	run, err := e.Start(runCtx, req)
//	if !stop() && err == nil {
//		// The request ended as Start returned: the run is cancelled.
//	}
//
// A start cut short so fails as any Start whose ctx ends (see below);
// cancel(cause) or run.Cancel cancels the run later.
//
// Before anything runs, Start:
//   - loads the graph's states;
//   - checks the assets of clean nodes;
//   - computes the dirty set from the marks;
//   - checks that every kind in the plan has a generator;
//   - stores the run's record, which says running;
//   - commits the plan's nodes as dirty, and the edited ones with a new
//     revision, and the graph as the key's, so that a crash leaves them to
//     be resumed.
//
// A request that [RunRequest]'s field docs refuse gives an error wrapping
// [ErrInvalidRequest]. A plan with a kind that has no generator gives an
// error that holds a [*MissingGeneratorError].
//
// A clean node whose recorded input hash does not match its dependencies'
// current outputs is regenerated too ([dirty.ReasonInputsChanged]). Its
// dependencies changed since it was made. The timeline's do when the
// lecture is made longer or shorter on the same graph key, and any kind's
// do with a new template.
//
// Store retries: a store call before the run starts that fails with an
// error that may pass, such as a lost connection, is made again with
// backoff, as a node's store calls are, unless the error is wrapped in
// [Permanent] or ctx ends: after waits of 100, 200, 400, 800 ms and so on
// up to 3.2 s at most, each drawn at random from half of that to all of
// it, so that the callers whose calls failed together (several Starts of
// one key, say) do not all try again at one instant, for as long as
// Options.StoreRetry allows: by default 1.5 s of waits at most (0.75 s
// at least), 5 calls in all. Any failure that remains is returned, and
// nothing has run.
//
// A Start that fails changes nothing in the key's states (but for a lost
// reply, below): its graph does not become the key's, and a run of the
// key's graph goes on. The record
// is stored before anything is committed. A failure after it, the
// commit's, records the run as failed, or cancelled if ctx ended, without
// counts. So does a failure of that record's PutRun that may have gone
// through all the same, if the run store then holds the record. Its reply
// may have been lost, or ctx ended as the store wrote it. So no record
// says running of a run that never ran.
//
// A commit that failed with an error that may pass may have gone
// through all the same, its reply lost. Start then loads the states
// again:
//   - if they hold its plan, the run goes on, and Start returns it;
//   - if not, it commits again, or after the last try, the run is
//     recorded as failed;
//   - if they cannot be read, it is unknown: the run is recorded as
//     failed, and Start's error says that the commit may have gone
//     through, with the commit's error and the reload's.
//
// A ctx that ends first leaves this unknown too. The record says
// cancelled, and Start's error says that the commit may have gone
// through. If the commit went through, the key's graph is the run's,
// its plan's nodes are dirty, and a Resume of the run finishes it. These
// are the only failed Starts that may have changed the key's states.
//
// A crash between the record and the commit leaves a record that says
// running of a run that committed nothing. A Resume of it is refused if
// the key's graph is another ([ErrGraphReplaced]), and finishes the key's
// work otherwise.
func (e *Executor) Start(ctx context.Context, req RunRequest) (*Run, error) {
	return e.start(ctx, req, "", nil)
}

// start is Start; of is the ID of the earlier run whose work the run
// finishes (Resume, RerunFailed), or "": such a run refuses a key whose
// graph is no longer its own, and a run that another one already
// finishes. recheck, if not nil, is called once the run has taken run of
// (begin), before anything is stored: its error refuses the run.
func (e *Executor) start(ctx context.Context, req RunRequest, of string, recheck func(context.Context) error) (*Run, error) {
	if err := checkRequestGraph(req.Graph); err != nil {
		return nil, err
	}
	if req.GraphKey == "" {
		return nil, fmt.Errorf("%w: RunRequest.GraphKey is empty", ErrInvalidRequest)
	}
	if err := checkRequestText(req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, wrap(ErrCancelled, "before it started", causeOf(ctx), "")
	}
	given := req.RunID != ""
	if !given {
		req.RunID = newRunID()
	}
	// From here the run counts for Close, and its ID is live: a Resume of
	// it is refused while it starts too.
	if err := e.begin(req.RunID, of, req.GraphKey); err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			e.forget(req.RunID, of, req.GraphKey)
			if of != "" {
				e.unfinish(req.RunID, req.GraphKey) // its Resume's hold: no run to wait for
			}
			e.runs.done()
		}
	}()
	if recheck != nil {
		if err := recheck(ctx); err != nil {
			return nil, err
		}
	}
	if given {
		// A run ID names one run: its record, its events and its stream.
		rec, err := e.opts.Runs.GetRun(ctx, req.RunID)
		if err != nil {
			err = e.retryStore(ctx, req.RunID, req.GraphKey, err, "check the run ID", req.RunID, func() (err error) {
				rec, err = e.opts.Runs.GetRun(ctx, req.RunID)
				return err
			})
		}
		switch {
		case err == nil:
			return nil, fmt.Errorf("%w: %s %s is taken by a run of graph %s started at %v: give each run its own ID, or none for a random one",
				ErrInvalidRequest, runIDField(of), quote(req.RunID), quote(rec.GraphKey), rec.StartedAt.Format(time.RFC3339))
		case ctx.Err() != nil && !errors.Is(err, ErrNotFound):
			return nil, wrap(ErrCancelled, "while it started: check run ID "+quote(req.RunID), err, "")
		case !errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("check run ID %s: %w", quote(req.RunID), err)
		}
	}
	r, err := e.prepare(ctx, req, of)
	if err != nil {
		return nil, err
	}
	started = true
	e.track(r.handle)
	go r.execute()
	return r.handle, nil
}

// checkRequestGraph refuses a request without a graph: nil, or a zero
// graph.Graph, which no graph.Build made and which has no node to run.
func checkRequestGraph(g *graph.Graph) error {
	switch {
	case g == nil:
		return fmt.Errorf("%w: RunRequest.Graph is nil", ErrInvalidRequest)
	case g.Len() == 0:
		return fmt.Errorf("%w: RunRequest.Graph is a zero graph.Graph: build it with graph.Build", ErrInvalidRequest)
	}
	return nil
}

// checkRequestText refuses a request whose graph key, run ID, TriggeredBy
// or Reason is not valid UTF-8 without NUL: stores keep them as text (a
// SQL database refuses NUL and invalid UTF-8, and would fail the run's
// first commit with a driver error after retrying it), and events carry
// them as JSON strings, which would replace invalid bytes and so name
// another run or graph. The same request is refused whatever the store,
// before anything is committed.
func checkRequestText(req RunRequest) error {
	for _, f := range [...]struct{ name, value string }{
		{"RunRequest.GraphKey", req.GraphKey}, {"RunRequest.RunID", req.RunID},
		{"RunRequest.TriggeredBy", req.TriggeredBy}, {"RunRequest.Reason", req.Reason},
	} {
		if err := checkRequestField(f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}

// checkRequestField refuses a request's text that is not valid UTF-8 without NUL.
func checkRequestField(name, s string) error {
	if !storableText(s) {
		return fmt.Errorf("%w: %s %.64q is not valid UTF-8 without NUL: it is stored as text, where only valid UTF-8 without NUL bytes is allowed", ErrInvalidRequest, name, s)
	}
	return nil
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Plan returns the plan that a run of req would execute if it started
// now, and the dirty set it comes from, which says why each node is in it
// ([dirty.Set.Explain]), without committing or running anything: a
// preview, such as "this edit regenerates 3 nodes". A closed executor
// returns [ErrClosed]. It loads the stored
// states and checks the clean nodes' assets as [Executor.Start] does
// (retrying a store's passing failure as it does), and returns its
// errors: an invalid request or mark (wrapping [ErrInvalidRequest], and
// for a mark the [*dirty.MarkError] too), a store's error, or a
// [*MissingGeneratorError]. req.RunID, TriggeredBy and Reason are not
// used. A run started later may plan differently if the states change
// meanwhile.
func (e *Executor) Plan(ctx context.Context, req RunRequest) (*planner.Plan, *dirty.Set, error) {
	if err := checkRequestGraph(req.Graph); err != nil {
		return nil, nil, err
	}
	if req.GraphKey == "" {
		return nil, nil, fmt.Errorf("%w: RunRequest.GraphKey is empty", ErrInvalidRequest)
	}
	if err := checkRequestField("RunRequest.GraphKey", req.GraphKey); err != nil {
		return nil, nil, err
	}
	if !e.enter() {
		return nil, nil, fmt.Errorf("%w: it calls its stores no more: plan a run of %s", ErrClosed, quote(req.GraphKey))
	}
	defer e.runs.done()
	snap, err := e.load(ctx, "", req.GraphKey)
	if err != nil {
		return nil, nil, err
	}
	_, set, _, err := e.plan(ctx, "", req.GraphKey, req.Graph, snap, req.Marks)
	if err != nil {
		return nil, nil, err
	}
	plan := planner.New(set)
	if err := missingGenerators(e.opts.Generators, plan); err != nil {
		return nil, nil, err
	}
	return plan, set, nil
}

// Resume starts a run that finishes what run id left undone. The new run
// regenerates the nodes of the run's graph that are not clean; nodes
// committed clean are never run again. Resume returns the new run, or the
// error that refused it.
//
// g must be the run's graph, built again from its template and
// Record.Seconds. Its fingerprint ([Fingerprint]) must be the one that the
// run's record keeps in Record.Graph. A graph of another template or
// duration is refused with [ErrInvalidRequest] alone, before anything is
// committed, and at once, even while the run goes on or another call
// below is under way (it is bad input, never [ErrBusy]). A record written before Record.Graph existed is checked by
// its duration only.
//
// Resume is refused with [ErrBusy], not ErrInvalidRequest, while what
// it must not overlap is under way, and the same call may be taken once
// that has ended (a host answers it as a conflict, to retry later):
//   - while run id is still going on in this executor, its record saying
//     running;
//   - while another Resume or RerunFailed of the run's graph key is under
//     way in this executor, whichever run that one names: this run, the
//     run that resumed it, the run it resumed, or another run of the key.
//     It is under way until both that call has returned and the run it
//     started has ended. Each makes the same nodes, the key's that are
//     not clean: a retry pressed twice, or on two runs of one chain, would
//     pay for them twice;
//   - while an [Executor.Abandon] of run id is under way;
//   - while a Resume or RerunFailed of run id, refused because its graph
//     is no longer the key's (see below), is recording it as interrupted,
//     not resumed.
//
// It is refused with ErrInvalidRequest, for good, when
// [Executor.Abandon] recorded the run as interrupted, not resumed, and
// so even while another call above is under way. The error says that it
// was abandoned, and why.
//
// A run whose record says that it ended may still be ending in this
// executor: it publishes its final event (as long as the sink's Publish
// takes), then waits, up to Options.Grace, for generator calls that
// ignore their context, before its Done closes.
// A Resume of it then, or while such a run of the key holds it (a
// Resume's run whose own call has returned), is not refused: it waits
// for that run to end, as the caller saw it end, and goes on. A ctx that
// ends first ends the wait with an error wrapping [ErrCancelled] and
// ctx's cause, and nothing started.
//
// An abandoned run is refused even when an Abandon of it in this executor
// recorded it while the Resume read its record: the record is read again
// then, before the new run stores anything. Its record says that no run
// resumes it. A new run of its graph, with Start or Run, makes the key's
// nodes that are not clean. If its stream still ends without a final
// event, because the Sink failed the Abandon's, the refused call publishes
// the one the Abandon would have, as another Abandon would.
//
// A run whose graph is no longer the key's is refused with
// [ErrInvalidRequest] and [ErrGraphReplaced] or [ErrGraphDeleted]. That is
// the case when a run of another graph started since, or the graph was
// deleted. A resume would make the older graph the key's again (see
// [GraphStateID]). A run started with [Executor.Start] does that, if the
// host means to. For a record that keeps Record.Graph, ErrGraphReplaced
// says that the key's graph is another run's, never that g is not the
// run's graph.
//
// A run so refused whose record still says running is recorded as
// [RunInterrupted] all the same, resumed by no run, and its stream ends,
// as for a crashed run below. No Resume of it can start, and
// RunStatusLister.RunsByStatus would otherwise list it as running for
// good. The Resume holds the run meanwhile, as Abandon does: an Abandon
// under way then records it instead, with its reason. Such a record is
// not one that Abandon made. A later Resume of the run is refused so while
// its graph is not the key's. It is taken once a run of its graph, with
// Start, has made that graph the key's again.
//
// The DeleteGraph of MemoryStore and of pgstore deletes the graph's run
// records too. A run of the graph going on then does not write its record
// again when it stops ([ErrGraphDeleted]). A Resume of a run of a graph
// deleted so finds no record, and returns an error wrapping [ErrNotFound].
//
// Crashed runs: a run recorded as still running, but not going on here,
// was interrupted, as its process crashed. Once the resuming run has
// started:
//   - the old run's record says [RunInterrupted], with the counts that the
//     key's states show for it (see Record.Counts);
//   - its event stream, which the crash left without a final event, gets
//     one: a run.cancelled naming the resuming run, so that its viewers
//     end. This needs an Options.Sink that can say the run's last event
//     (see the package doc's Progress).
//
// A run recorded as interrupted already, whose stream still ends without a
// final event, gets that event now. Its stream lacks it when the Sink
// failed as a Resume found the run interrupted, or as a refused Resume
// recorded it. The event names the run that its record names: none, for a
// refused Resume's. So the stream gets one final event however often the
// run is resumed.
//
// Across processes, a host runs one run at a time per graph key (see the
// package doc). The caller vouches that run id goes on nowhere else: with
// pgstore, it holds the key's lock (TryLockGraph).
// pgstore.Store.ResumeLeftRunning does this recovery at start-up, for the
// runs left running on every key. A run truly going on in another process
// then records its outcome over the interrupted record when it ends.
//
// The new run's record names run id in Record.Resumes, from its first
// record on, whatever [ResumeOptions] says. Its Marks are empty. opts, at
// most one, names the new run and says who started it and why (see
// [ResumeOptions]). By default its TriggeredBy is the resumed run's. The
// new run starts as [Executor.Start] starts one: see it for store retries
// and ctx. A closed executor returns [ErrClosed].
func (e *Executor) Resume(ctx context.Context, g *graph.Graph, id string, opts ...ResumeOptions) (*Run, error) {
	o, err := oneResumeOptions(opts, "resume", id)
	if err != nil {
		return nil, err
	}
	if !e.enter() {
		return nil, fmt.Errorf("%w: it starts no run: resume run %s", ErrClosed, quote(id))
	}
	defer e.runs.done()
	recheck := e.recheckAbandoned(e.abandonsSeen(), id, "resume")
	rec, err := e.recordFor(ctx, g, id, "resume")
	if err != nil {
		return nil, err
	}
	tally := e.tallyInterrupted(ctx, g, rec) // before the new run commits
	r, err := e.start(ctx, o.request(rec, g, nil, "resume of run "+id), id, recheck)
	if err != nil {
		e.notResumed(ctx, rec, err, tally)
		return nil, err
	}
	defer e.unfinish(r.ID(), rec.GraphKey) // once the run it resumes is recorded as interrupted
	e.interrupted(ctx, rec, r.ID(), tally)
	return r, nil
}

// RerunFailed starts a run that forces the nodes that failed in run id
// and are still not clean, and so regenerates them and what depends on
// them. A failed node made clean since (by an earlier RerunFailed of the
// run, or by another run) keeps its result: a second RerunFailed of a
// run pays for none of those again. Like every run, it also regenerates
// the nodes that are not clean. RerunFailed returns the
// new run, or the error that refused it.
//
// g must be the run's graph, as for [Executor.Resume]. Another graph is
// refused with [ErrInvalidRequest] alone, before anything is committed:
// one whose fingerprint is not the one in Record.Graph, or, for an older
// record without it, one whose duration is not Record.Seconds.
//
// It is refused as Resume is:
//   - when the run's graph is no longer the key's (ErrInvalidRequest);
//   - while the run is going on ([ErrBusy]): a run whose record says
//     that it ended, its Done not closed yet, is waited for as by Resume;
//   - while another Resume or RerunFailed of its graph key is under way in
//     this executor: its call, or its run (ErrBusy);
//   - while an Abandon of the run, or a refused Resume that records it as
//     interrupted, is under way (ErrBusy);
//   - when Abandon recorded the run: ErrInvalidRequest, saying that it was
//     abandoned.
//
// Crashed runs are handled as with Resume. A run recorded as still
// running, but not going on here, was interrupted: its record then says
// [RunInterrupted], and its stream ends. So does the stream of a run
// recorded as interrupted whose stream has no final event yet.
//
// The new run's record names run id in Record.Resumes, as a Resume's does.
// Its Marks are the nodes of id's Record.Failed (dirty.ReasonForced), all
// of them, though it forces only those that are not clean as it starts.
// For a run found interrupted, these are the nodes that the key's states
// show it failed, which its record then lists (see Record.Counts). If the
// states cannot be read, they are those its record listed. opts are as
// for Resume.
func (e *Executor) RerunFailed(ctx context.Context, g *graph.Graph, id string, opts ...ResumeOptions) (*Run, error) {
	o, err := oneResumeOptions(opts, "rerun failed nodes of", id)
	if err != nil {
		return nil, err
	}
	if !e.enter() {
		return nil, fmt.Errorf("%w: it starts no run: rerun failed nodes of run %s", ErrClosed, quote(id))
	}
	defer e.runs.done()
	recheck := e.recheckAbandoned(e.abandonsSeen(), id, "rerun failed nodes of")
	rec, err := e.recordFor(ctx, g, id, "rerun failed nodes of")
	if err != nil {
		return nil, err
	}
	tally := e.tallyInterrupted(ctx, g, rec) // before the new run commits
	failed := rec.Failed
	if tally.ok {
		// A record that says running lists no failed node yet: the
		// tally finds them, and the record will list them.
		failed = tally.failed
	}
	marks := make([]dirty.Mark, len(failed))
	for i, n := range failed {
		marks[i] = dirty.Mark{ID: n, Reason: dirty.ReasonForced}
	}
	r, err := e.start(ctx, o.request(rec, g, marks, "rerun of the failed nodes of run "+id), id, recheck)
	if err != nil {
		e.notResumed(ctx, rec, err, tally)
		return nil, err
	}
	defer e.unfinish(r.ID(), rec.GraphKey) // once the run it resumes is recorded as interrupted
	e.interrupted(ctx, rec, r.ID(), tally)
	return r, nil
}

// ResumeOptions tunes the run that [Executor.Resume] or
// [Executor.RerunFailed] starts, for its record and its events. Its
// fields work as the fields of the same names of [RunRequest] do. The
// zero value of each field gives its default.
type ResumeOptions struct {
	// RunID is the new run's ID, checked as RunRequest.RunID is.
	// Default: a random one.
	RunID string
	// TriggeredBy is who started the new run: the user who pressed
	// "retry", say. Default: the resumed run's TriggeredBy.
	TriggeredBy string
	// Reason is why. Default: "resume of run <ID>", or "rerun of the
	// failed nodes of run <ID>", naming the run it finishes. Whatever it
	// says, the record names that run in Record.Resumes.
	Reason string
}

// oneResumeOptions returns the one ResumeOptions of opts, or the zero
// value for none; more than one is refused, and so is a field that is
// not storable text, named as the caller gave it (the RunRequest that
// Resume builds from it would name RunRequest's).
func oneResumeOptions(opts []ResumeOptions, what, id string) (ResumeOptions, error) {
	switch len(opts) {
	case 0:
		return ResumeOptions{}, nil
	case 1:
	default:
		return ResumeOptions{}, fmt.Errorf("%w: %s run %s: %d ResumeOptions given: give at most one",
			ErrInvalidRequest, what, quote(id), len(opts))
	}
	o := opts[0]
	for _, f := range [...]struct{ name, value string }{
		{"ResumeOptions.RunID", o.RunID}, {"ResumeOptions.TriggeredBy", o.TriggeredBy}, {"ResumeOptions.Reason", o.Reason},
	} {
		if err := checkRequestField(f.name, f.value); err != nil {
			return ResumeOptions{}, err
		}
	}
	return o, nil
}

// request returns the request of a run that finishes rec's, with marks,
// reason being the default Reason.
func (o ResumeOptions) request(rec Record, g *graph.Graph, marks []dirty.Mark, reason string) RunRequest {
	req := RunRequest{GraphKey: rec.GraphKey, Graph: g, Marks: marks, RunID: o.RunID,
		TriggeredBy: o.TriggeredBy, Reason: o.Reason}
	if req.TriggeredBy == "" {
		req.TriggeredBy = rec.TriggeredBy
	}
	if req.Reason == "" {
		req.Reason = reason
	}
	return req
}

// enter counts a call that calls the stores outside a run (Resume and
// RerunFailed, from the read of the run's record to the record of the
// run as interrupted and the end of its event stream; Abandon; Edit;
// Plan) as a run for Close, unless the executor
// is closed: it then returns false, and the caller returns ErrClosed
// before any store call. So Close, once it returns, leaves no such call
// behind. The caller calls e.runs.done when it returns; a run it starts
// counts for itself.
func (e *Executor) enter() bool {
	e.startMu.Lock()
	defer e.startMu.Unlock()
	if e.closed {
		return false
	}
	e.runs.add()
	return true
}

// recordFor returns run id's record, checking that the run was not
// abandoned (refuseAbandoned, which ends its stream if need be) and that
// g is the run's graph: that it has the fingerprint the record keeps, or,
// in a record written before Record.Graph existed, the run's duration.
func (e *Executor) recordFor(ctx context.Context, g *graph.Graph, id, what string) (Record, error) {
	if g == nil {
		return Record{}, fmt.Errorf("%w: %s run %s: the graph is nil", ErrInvalidRequest, what, quote(id))
	}
	rec, err := e.opts.Runs.GetRun(ctx, id)
	if err != nil {
		err = e.retryStore(ctx, id, "", err, "read the record of", id, func() (err error) {
			rec, err = e.opts.Runs.GetRun(ctx, id)
			return err
		})
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrNotFound) {
			return Record{}, wrap(ErrCancelled, fmt.Sprintf("before it started: %s run %s", what, quote(id)), err, "")
		}
		return Record{}, fmt.Errorf("%s run %s: %w", what, quote(id), err)
	}
	// Checked after the read: a run's ID is live from before its first
	// record until after its last, so a record read while the run starts
	// or runs is caught here.
	badGraph := runGraph(g, rec, id, what)
	e.startMu.Lock()
	live, resumed := e.live[id], e.finishedLocked(id, rec.GraphKey)
	// The run that holds the key, if its Resume's call has returned: only
	// the run is left of it.
	var holder string
	if f, ok := e.finishing[rec.GraphKey]; ok && resumed != nil && !live && e.ending[id] == 0 && f.refs == 1 && e.live[f.id] {
		holder = f.id
	}
	// A g not the run's is bad input, whatever is under way: refused as
	// busy, it would be refused again once that had ended.
	if badGraph != nil && (live || resumed != nil) {
		e.startMu.Unlock()
		return Record{}, badGraph
	}
	var ended <-chan struct{}
	if live || holder != "" {
		ended = e.endedLocked()
	}
	e.startMu.Unlock()
	// So is a run that Abandon recorded: refused for good, which no end
	// of what is under way changes (a live run is never abandoned).
	if !live && resumed != nil {
		if err := e.refuseAbandoned(ctx, rec, what); err != nil {
			return Record{}, err
		}
	}
	// A run whose final record is written publishes its final event and
	// waits for its generator calls that ignore their context, up to
	// Options.Grace, before it ends: the call waits for that, as its
	// caller saw the run end; ctx bounds the wait.
	if live && rec.Status != RunRunning || holder != "" && e.recordEnded(ctx, holder) {
		select {
		case <-ended:
			return e.recordFor(ctx, g, id, what)
		case <-ctx.Done():
			who := quote(id)
			if !live {
				who = fmt.Sprintf("%s, which finishes the key's nodes", quote(holder))
			}
			return Record{}, wrap(ErrCancelled, fmt.Sprintf("before it started: %s run %s: wait for it to end: its record says it ended, and run %s waits for its generator calls that ignore their context (up to Options.Grace)",
				what, quote(id), who), causeOf(ctx), "")
		}
	}
	if live {
		return Record{}, fmt.Errorf("%w: %s run %s: it is still running in this executor: wait for it to end (Run.Wait), even once cancelled: a cancelled run counts until it has ended",
			ErrBusy, what, quote(id))
	}
	if resumed != nil {
		return Record{}, fmt.Errorf("%s run %s: %w", what, quote(id), resumed)
	}
	if err := e.refuseAbandoned(ctx, rec, what); err != nil {
		return Record{}, err
	}
	if badGraph != nil {
		return Record{}, badGraph
	}
	return rec, nil
}

// runGraph refuses, with ErrInvalidRequest, a g that is not the graph of
// run id, whose record is rec: its fingerprint is not the one the record
// keeps, or, in a record written before Record.Graph existed, its
// duration is not the run's.
func runGraph(g *graph.Graph, rec Record, id, what string) error {
	if secs := g.Segments() * graph.SegmentSeconds; rec.Seconds != 0 && secs != rec.Seconds {
		return fmt.Errorf("%w: %s run %s: it ran on a graph of %d s, and this one is of %d s: build the run's graph again from its template and Record.Seconds",
			ErrInvalidRequest, what, quote(id), rec.Seconds, secs)
	}
	if fp := Fingerprint(g); rec.Graph != "" && fp != rec.Graph {
		other := "another template" // the durations agree
		if rec.Seconds == 0 {
			other = "another template or duration"
		}
		return fmt.Errorf("%w: %s run %s: it ran on a graph of %s than this one (fingerprint %s, not %s): build the run's graph again from its template and Record.Seconds, the one whose Fingerprint is Record.Graph",
			ErrInvalidRequest, what, quote(id), other, short(rec.Graph), short(fp))
	}
	return nil
}

// maxEditConflicts bounds how often Edit (and Forget, and the commit of
// a run's plan) reloads after losing a commit race.
const maxEditConflicts = 64

// conflictPause is how long Edit, Forget or the commit of a run's plan
// waits before it reloads after losing its try-th commit race (try from
// 0), and the commit of a run's results after losing its try+2-th in a
// row (see run.commit): 1 ms, doubled at each try up to 16 ms, each drawn at random between half of it and all of it, so
// that writers which lost to each other do not reload in step, nor spin
// against a run that commits often. The 64 retries wait about 1 s at most
// in all.
func conflictPause(try int) time.Duration {
	d := time.Millisecond << min(try, 4)
	return d/2 + mrand.N(d/2+1)
}

// Edit records that the parameters of the given nodes changed: each gets
// a new revision and becomes dirty, in one commit; a node named twice is
// edited once, and an Edit that names none, or a malformed or unknown
// node ID (with the [*graph.IDError] that says why), is refused with
// [ErrInvalidRequest]. A run in progress that
// is generating one of them will not keep its result. On a version
// conflict Edit reloads and applies its own change again, up to 64 times,
// after a short pause that grows from about 1 ms to 16 ms, jittered
// (about 1 s at most in all); a ctx that ends in a pause ends the Edit at
// once, with an error that wraps ctx's cause and the conflict.
// A store call that fails with an error that may pass (a lost
// connection) is made again with backoff, jittered as a run's is (see
// [Executor.Start]), within Options.StoreRetry (by default 1.5 s of
// waits at most, 5 calls in all), unless the error is wrapped in [Permanent] or ctx ends; after
// a commit that failed so, Edit reloads first, and a commit that went
// through, its reply lost, is not made again (the nodes get one new
// revision), even if another commit of its nodes (a run's) followed it
// (when that reload fails, or is not made, as ctx ended or after the
// last call, the error says that the commit may have gone through: an
// Edit made again then gives its nodes another revision);
// nor is a commit made again when each node got a new revision from
// another edit since Edit loaded, which came after the new parameters
// were saved (see below), and so did what this one would. It returns the
// graph's new version (after a lost reply, the version at which Edit
// found its nodes so). A closed executor returns
// [ErrClosed] ([Executor.Close] waits for an Edit under way).
//
// The nodes edited are the key's graph's: the graph of its newest run,
// whose fingerprint ([Fingerprint]) the key's states keep under
// [GraphStateID]. g is that graph, or one that Edit can take for it: the
// graph that a host still holds when a run of another length has
// started meanwhile (a user made the lecture longer), of the same
// template. Edit then builds the key's graph from g's template: the
// graph of it whose fingerprint is the key's, at the number of segments
// that gives it (found from the key's states alone, which bound it, at
// the cost of a hash of the template's kinds per number tried; else at
// the duration of the newest of the key's records of that graph, read
// with RunStore.ListRuns, retried as its other store calls are, whose
// error fails the Edit, which commits nothing) and, when that graph has
// each node named (a node's ID is the same at each length:
// asset:narration:segment[3] is a node of a lecture of 40 s and of one
// of 120 s), edits those nodes of it. Otherwise (a node that the key's
// graph has not, as the last segment of a lecture made shorter, another
// template, no record of the key's graph) it refuses the edit with a
// [*GraphMismatchError], which wraps [ErrInvalidRequest], names the
// key's fingerprint (Current) and the nodes missing, and nothing is
// committed. A host that gets it has saved parameters that no revision
// records yet: it builds the key's graph (from the newest of the key's
// records whose Record.Graph is Current, with [GraphOf], as a resume
// does), finds which of its nodes the saved parameters are for, and
// calls Edit again with that graph and those nodes (or, when none of
// them is the key's any more, drops the saved parameters). As for
// [Executor.Start], a graph becomes the key's when a run of it starts: a
// host that changes the lecture's length starts a run of the new graph,
// with the edits as edited marks (RunRequest.Marks), which bump their
// revisions as Edit does, or edits once that run has started. A key
// without states (never run, or deleted), or whose states an executor
// older than GraphStateID kept, takes any graph; an edit of a deleted
// graph does not make it the key's again: a Resume of a run of it is
// still refused.
//
// The executor keeps no parameters, only their revision (Request.Rev):
// the host keeps them, and its generators read them when called. Save the
// new parameters before calling Edit, never after: a run in progress may
// start a node with its new revision as soon as Edit has committed, and a
// generator that then read the old parameters would make a result that is
// kept as current. A call that starts between the save and Edit reads the
// new parameters with the old revision, and its result is not kept: the
// node is made again. The same holds for a RunRequest's edited marks,
// which bump the revision when the run starts. A host that wants the new
// revision loads the node's state (States().Load). A host that keeps the
// parameters in the Postgres of pgstore saves them and records the edit
// in one transaction with pgstore's Store.EditTx instead, so that an
// Edit that fails after the save cannot lose the edit ([EditChanges]).
func (e *Executor) Edit(ctx context.Context, g *graph.Graph, graphKey string, ids ...string) (int64, error) {
	nodes, err := editNodes(g, graphKey, ids)
	if err != nil {
		return 0, err
	}
	if !e.enter() {
		return 0, fmt.Errorf("%w: it calls its stores no more: edit %s", ErrClosed, quote(graphKey))
	}
	defer e.runs.done()
	fp := Fingerprint(g)
	var (
		rs      = e.storeRetries()
		lost    []Change // the changes of a commit that failed, which may have gone through
		lostAt  int64    // the version that commit expected
		lostErr error    // the error of that commit
		found   keyGraph // the key's graph, when it is not g
	)
	for try := 0; ; try++ {
		if err := ctx.Err(); err != nil {
			if lost != nil {
				return 0, fmt.Errorf("edit: commit %s: %w (it may have gone through: ctx ended before a reload could find out: %w)",
					quote(graphKey), lostErr, causeOf(ctx))
			}
			return 0, fmt.Errorf("edit %s: %w", quote(graphKey), err)
		}
		snap, err := e.opts.States.Load(ctx, graphKey)
		if err != nil {
			err = e.retryStore(ctx, "", graphKey, err, "edit: load the states of", graphKey, func() (err error) {
				snap, err = e.opts.States.Load(ctx, graphKey)
				return err
			})
		}
		if err != nil {
			if lost != nil {
				return 0, fmt.Errorf("edit: commit %s: %w (it may have gone through: the reload to find out failed: %w)",
					quote(graphKey), lostErr, err)
			}
			return 0, fmt.Errorf("edit: load %s: %w", quote(graphKey), err)
		}
		if lost != nil && snap.Version > lostAt {
			switch {
			case stored(snap, lost):
				// The commit went through, and only its reply was lost:
				// committed again, the edit would get a second revision.
				return lostAt + 1, nil
			case revised(snap, lost):
				// Each node has a newer revision than when Edit loaded:
				// its commit went through and another commit of the node
				// followed (a run made it), or another edit, committed
				// after that load and so after the host saved the
				// parameters, did what this one would.
				return snap.Version, nil
			}
		}
		lost = nil
		eg, enodes := g, nodes
		if me := editable(snap, graphKey, fp); me != nil {
			if eg, enodes, err = e.keyGraph(ctx, g, nodes, snap, me, &found); err != nil {
				return 0, err
			}
		}
		changes := editChanges(eg, enodes, snap, time.Now())
		v, err := e.opts.States.Commit(ctx, graphKey, snap.Version, changes)
		err = hostError(err, inStore)
		if errors.Is(err, ErrConflict) && try < maxEditConflicts && ctx.Err() == nil {
			if sleep(ctx, conflictPause(try)) {
				continue
			}
		}
		if err != nil && !errors.Is(err, ErrConflict) && retryable(err) && ctx.Err() == nil {
			// A lost connection: reload, to find whether the commit went
			// through, and commit again if it did not.
			if wait, ok := rs.next(); ok {
				lost, lostAt, lostErr = changes, snap.Version, err
				e.log.Warn("regen: commit of an edit failed, retrying", "graph", graphKey, "err", err)
				if sleep(ctx, wait) {
					continue
				}
			}
		}
		if err != nil {
			// Here an error after which the commit may have gone through
			// (a lost connection, ctx's own) comes only once ctx has
			// ended, or after the last commit allowed, with no reload to
			// tell.
			maybe := !errors.Is(err, ErrConflict) && retryable(err)
			if ctx.Err() != nil {
				err = stoppedBy(ctx, err) // ended in a pause, or during the commit
			}
			if maybe {
				return 0, fmt.Errorf("edit: commit %s: %w (it may have gone through)", quote(graphKey), err)
			}
			return 0, fmt.Errorf("edit: commit %s: %w", quote(graphKey), err)
		}
		return v, nil
	}
}

// keyGraph is the key's graph that an Edit found (see Executor.keyGraph).
type keyGraph struct {
	fp    string       // its fingerprint
	g     *graph.Graph // the graph, or nil when Edit refuses it
	nodes []graph.Node // the edit's nodes in g
	err   error        // the refusal when g is nil
}

// keyGraph returns the graph that an Edit with g of nodes (sorted, each
// once) edits, with its nodes, when g is not the key's graph, as me, the
// refusal that editable gave for snap, says: the key's graph, g's
// template's graph of the fingerprint me.Current, when there is one and
// it has each node named (the IDs of a lecture's nodes are the same at
// every length). It finds it without a store call when snap bounds its
// number of segments (graphAt), and else builds it at the duration of
// the newest of the key's records whose Graph is me.Current. It returns
// me otherwise, with its Missing when the key's graph was found; an
// error of the RunStore, retried as Edit's calls are, if ListRuns
// failed. found keeps the graph found for the next try of the Edit,
// while the key's graph stays the same.
func (e *Executor) keyGraph(ctx context.Context, g *graph.Graph, nodes []graph.Node, snap Snapshot, me *GraphMismatchError, found *keyGraph) (*graph.Graph, []graph.Node, error) {
	if found.fp == me.Current && (found.g != nil || found.err != nil) {
		return found.g, found.nodes, found.err
	}
	if kg := graphAt(g.Template(), me.Current, snap); kg != nil {
		*found = keyGraph{fp: me.Current, err: me}
		found.take(g, nodes, kg, me)
		return found.g, found.nodes, found.err
	}
	key := me.GraphKey
	recs, err := e.opts.Runs.ListRuns(ctx, key)
	if err != nil {
		err = e.retryStore(ctx, "", key, err, "edit: list the runs of", key, func() (err error) {
			recs, err = e.opts.Runs.ListRuns(ctx, key)
			return err
		})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("edit: list the runs of %s, to find the key's graph (%s; the graph given, %s, is not): %w",
			quote(key), short(me.Current), short(me.Given), err)
	}
	*found = keyGraph{fp: me.Current, err: me}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Graph != me.Current {
			continue
		}
		// The limits of the run that made it are the host's: any that
		// built it then builds it again.
		kg, err := GraphOf(recs[i], anyGraph, g.Template())
		if err != nil {
			break // of another template than g's: the host's to find
		}
		found.take(g, nodes, kg, me)
		break
	}
	return found.g, found.nodes, found.err
}

// anyGraph are the build options of the graph of a run that a host made:
// the limits of the run that made it are the host's, and any that built
// it then builds it again.
var anyGraph = graph.Options{MaxSeconds: graph.MaxSecondsLimit, MaxNodes: math.MaxInt32, MaxEdges: math.MaxInt32}

// take makes kg, the key's graph, the graph that the Edit with g of
// nodes edits, when it has each node named; else it adds those it has
// not to me.Missing, and found stays the refusal.
func (found *keyGraph) take(g *graph.Graph, nodes []graph.Node, kg *graph.Graph, me *GraphMismatchError) {
	knodes := make([]graph.Node, 0, len(nodes))
	for _, n := range nodes {
		if kn, err := kg.Lookup(g.NodeID(n)); err == nil {
			knodes = append(knodes, kn)
		} else {
			me.Missing = append(me.Missing, g.NodeID(n))
		}
	}
	if me.Missing == nil {
		slices.Sort(knodes)
		*found = keyGraph{fp: me.Current, g: kg, nodes: knodes}
	}
}

// graphAt returns template t's graph whose fingerprint is fp, when snap,
// the key's states, bounds its number of segments, else nil. Every node
// of the key's graph has a state once a run of it has started (its plan
// is committed dirty; a node that none had is missing, and planned), so
// a graph of s segments has s states at least of each of t's kinds per
// segment: the number of segments to try, each a fingerprint of its own,
// is at most the number of states over the number of those kinds. A
// template without such kinds, or a fingerprint that none of those
// gives, is left to the records (so is a key whose states would not
// bound it: the bound costs nothing but the records' read). The
// fingerprint says the graph: a graph found so is the one that GraphOf
// builds from a record of it. It costs a hash of t's kinds per number
// tried, and a build of the graph found: no store call.
func graphAt(t graph.Template, fp string, snap Snapshot) *graph.Graph {
	per := 0
	for _, k := range t.Kinds {
		if k.PerSegment {
			per++
		}
	}
	if per == 0 {
		return nil
	}
	kinds := fingerprintKinds(t)
	for s := 1; s <= len(snap.States)/per && s <= graph.MaxSecondsLimit/graph.SegmentSeconds; s++ {
		if fingerprintAt(s, kinds) != fp {
			continue
		}
		g, err := anyGraph.Build(t, s*graph.SegmentSeconds)
		if err != nil || Fingerprint(g) != fp {
			return nil // a template that this build refuses: the records' to say
		}
		return g
	}
	return nil
}

// revised reports whether each node of changes, an Edit's, has at least
// the revision that changes give it in snap: an edit committed since the
// Edit loaded, its own or another, gave it a new one. (A node's revision
// never goes back while its graph is kept.)
func revised(snap Snapshot, changes []Change) bool {
	for _, c := range changes {
		if snap.States[c.ID].Rev < c.State.Rev {
			return false
		}
	}
	return true
}

// statesOf turns a snapshot into dense states. IDs the graph does not
// have (a longer lecture before, or another template) are ignored. A
// snapshot that covers much of the graph is read by formatting each
// node's ID, which costs less than parsing each stored one; IDs are
// canonical, so both find the same.
func statesOf(g *graph.Graph, snap Snapshot) *dirty.States {
	st := dirty.NewStates(g.Len())
	if len(snap.States) < g.Len()/4 {
		for id, s := range snap.States {
			if n, err := g.Lookup(id); err == nil {
				st.Set(n, s)
			}
		}
		return st
	}
	var buf []byte
	for n := range graph.Node(g.Len()) {
		buf = g.AppendID(buf[:0], n)
		if s, ok := snap.States[string(buf)]; ok {
			st.Set(n, s)
		}
	}
	return st
}

// planKinds returns the names of the kinds that have nodes in the plan.
func planKinds(p *planner.Plan) []string {
	g, nodes := p.Graph, p.Nodes()
	var kinds []string
	for ki := range g.Kinds() {
		first, count := g.KindNodes(ki)
		i, _ := slices.BinarySearch(nodes, first)
		if i < len(nodes) && nodes[i] < first+graph.Node(count) {
			kinds = append(kinds, g.KindName(ki))
		}
	}
	return kinds
}
