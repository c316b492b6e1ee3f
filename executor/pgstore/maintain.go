package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// Defaults and limits of [MaintainOptions].
const (
	// DefaultMaintainEvery is MaintainOptions.Every's default: a run that
	// a dead process left running is resumed about that long after the
	// server has seen the process's sessions end.
	DefaultMaintainEvery = 10 * time.Second
	// MinMaintainEvery is the shortest MaintainOptions.Every that
	// [Store.Maintain] takes: a shorter one (a nanosecond, or an Every
	// given in the wrong unit) would make a loop of passes that hits the
	// database without rest. A host that means to pass more often calls
	// the Resume and prune methods itself. It is the shortest
	// MaintainOptions.PassTimeout too.
	MinMaintainEvery = time.Second
	// DefaultPassTimeout is the least of MaintainOptions.PassTimeout's
	// default, which is Every if that is longer: ten minutes, so that a
	// prune that deletes much (a pghistory History's Prune of a large
	// table, among Pruners) is not cut, while a stalled query still
	// fails its pass.
	DefaultPassTimeout = 10 * time.Minute
	// DefaultPruneEvery is MaintainOptions.PruneEvery's default.
	DefaultPruneEvery = time.Hour
	// MinRetain is the shortest MaintainOptions.Retain that
	// [Store.Maintain] takes. The age must be longer than the longest run
	// (see [Store.PruneAssets]); a shorter one is a mistake (an Every
	// given as Retain, say), which would delete the assets that the runs
	// going on read. A host that means to delete sooner calls the prunes
	// itself.
	MinRetain = time.Minute
)

// ErrPassTimeout is the cause of the end of a pass of [Store.Maintain]
// that lasted MaintainOptions.PassTimeout: Pass.Err wraps it (and
// context.DeadlineExceeded), and the next pass is made all the same.
var ErrPassTimeout = errors.New("pgstore: maintenance pass timed out")

// Pruner deletes what is older than an age, and says how many items it
// deleted: the Prune of a progress/pghistory History, say, which
// [Store.Maintain] calls beside the store's own prunes
// ([MaintainOptions].Pruners), so that this package need not import it.
// Prune must honour ctx, and a negative olderThan is never passed.
type Pruner interface {
	Prune(ctx context.Context, olderThan time.Duration) (int64, error)
}

// PrunerFunc adapts a function to a [Pruner].
type PrunerFunc func(ctx context.Context, olderThan time.Duration) (int64, error)

// Prune calls f(ctx, olderThan).
func (f PrunerFunc) Prune(ctx context.Context, olderThan time.Duration) (int64, error) {
	return f(ctx, olderThan)
}

// MaintainOptions configures [Store.Maintain]. The zero value resumes the
// runs left running every 10 s (about), resumes no cancelled run, and
// prunes nothing.
type MaintainOptions struct {
	// Every is the wait between the end of a pass and the start of the
	// next. Each wait is drawn at random within a fifth of Every either
	// way (8 s to 12 s for 10 s), so that the processes of a host,
	// started together, drift apart rather than pass at one instant; at
	// most the longest Duration (math.MaxInt64, some 292 years, which
	// makes only the first pass), and at least [MinMaintainEvery], 1 s.
	// Default: [DefaultMaintainEvery], 10 s.
	Every time.Duration
	// Resume is given to each Resume of a pass ([Store.ResumeLeftRunning]
	// and [Store.ResumeCancelled]). Its RunID must be empty, as it would
	// name every resuming run, and its TriggeredBy and Reason valid UTF-8
	// without NUL, as Resume takes them. Default: each resuming run's TriggeredBy
	// is its resumed run's, and its Reason names that run.
	Resume executor.ResumeOptions
	// ResumeCodes are the cancel codes (executor.Record.CancelledBy) of
	// the cancelled runs that each pass resumes with
	// [Store.ResumeCancelled], after the runs left running: the host's
	// shutdown code (see executor.CancelCode) and [CancelledByLockLost],
	// typically, so that a run that a process's shutdown or a lost lock
	// cut short is finished by a live process within about Every, not at
	// the next start-up. Each code is one that executor.CheckCancelCode
	// takes, or one of the executor's own (executor.CancelledByCancel
	// resumes the runs that users cancelled: rarely meant). Default:
	// none, and no cancelled run is resumed.
	ResumeCodes []string
	// Retain is the age past which the prunes delete: [Store.PruneRuns]
	// (run records that ended, never one that says running),
	// [Store.PruneAssets] (assets that no node state refers to) and each
	// of Pruners, in that order, at the first pass and then at the first
	// pass at least PruneEvery after the last pruning pass began. It must
	// be longer than the longest run, as PruneAssets says, and at least
	// [MinRetain]. Use it only when this Store is the StateStore of every
	// executor that puts assets into it (see PruneAssets). Default: 0,
	// nothing is pruned.
	Retain time.Duration
	// PruneEvery is the least interval between two pruning passes; set
	// only with Retain. PruneAssets walks every asset of the store, so
	// pruning at each pass would cost a scan of the assets table every
	// Every. Default: [DefaultPruneEvery], an hour.
	PruneEvery time.Duration
	// Pruners are pruned with the age Retain too, after the store's own
	// prunes: a progress/pghistory History (its Prune deletes the events
	// of runs idle for longer than the age), or a host's own tables. Each
	// must be non-nil; set only with Retain. A Pruner's panic is its
	// error, an *executor.PanicError (In "Pruner"). Default: none.
	Pruners []Pruner
	// Retake is given, as HoldOptions.Retake, to the hold of each run
	// that a pass resumes ([GraphLock.HoldFor]): a run whose lock's
	// session ends while it goes on (a Postgres restart, a failover, a
	// cut connection) has its key's lock taken again on a new session
	// for up to Retake, and goes on, rather than being cancelled at once
	// with [CancelledByLockLost]; see HoldFor for the window in which
	// another process may resume it too. Set it to about the executor's
	// Options.StoreRetry. Logger gets HoldFor's warnings. Default: 0, no
	// re-take, as [Store.ResumeLeftRunning] and [Store.ResumeCancelled]
	// hold their runs. A negative Retake is refused.
	Retake time.Duration
	// PassTimeout bounds each pass: its queries, and the Prune calls of
	// Pruners, get a context that ends once the pass has lasted
	// PassTimeout, so that a server that stalls a query (a table lock, a
	// dead network that TCP has not given up on) fails the pass, whose
	// Pass.Err then wraps [ErrPassTimeout], rather than stall the loop
	// for good; the next pass is made at its time and tries again. The
	// runs that a pass resumed are not bound by it: their context is
	// Maintain's, and so is that of executor.Executor.Resume's calls,
	// whose store calls the executor's Options.StoreTimeout and
	// StoreRetry bound instead (a pass that resumes a run on a stalled
	// store may so last longer). Default: Every or [DefaultPassTimeout]
	// (ten minutes), whichever is longer: a host whose Pruners take
	// longer sets it above them. A negative PassTimeout is refused,
	// and so is one under [MinMaintainEvery] (1 s), which would end every
	// pass before its first query is answered (a PassTimeout given in the
	// wrong unit, say).
	PassTimeout time.Duration
	// Logger gets a warning for each pass's error and for each run that a
	// pass could not resume (a run whose graphOf fails at pass after
	// pass, or that executor.Executor.Resume refuses as bad input, with
	// executor.ErrInvalidRequest, at pass after pass, as when graphOf
	// builds a graph that is not the run's: once, and again only after a
	// pass in which its graphOf succeeded and Resume did not refuse it so,
	// or in which the reason changed; debug lines in between), an info line for each run resumed and each
	// pass that pruned something, and debug lines for the rest. Default:
	// slog.Default().
	Logger *slog.Logger
	// OnPass, if not nil, is called with each pass's outcome once the
	// pass has ended, from Maintain's goroutine (the next pass waits for
	// it to return): for the host's metrics, say. It may call nothing of
	// Maintain. A panic of it is logged as an error (Logger), and the loop
	// goes on. Default: nil.
	OnPass func(Pass)
}

// Pass is what a pass of [Store.Maintain] did, given to
// [MaintainOptions].OnPass.
type Pass struct {
	// Started is when the pass began, by the process's clock; Took is how
	// long it took.
	Started time.Time
	Took    time.Duration
	// LeftRunning is what [Store.ResumeLeftRunning] did with each run left
	// running, as it returns it, but that a run that an earlier pass
	// resumed, going on under this Maintain, is [SkippedRunningHere], not
	// SkippedLocked (which is then another session's run, or one that
	// this process runs otherwise). The resumed runs go on after the
	// pass: Maintain waits for them (see there).
	LeftRunning []Recovery
	// Cancelled is what [Store.ResumeCancelled] did with each cancelled
	// run to finish, SkippedRunningHere as in LeftRunning; nil without
	// MaintainOptions.ResumeCodes.
	Cancelled []Recovery
	// Pruned says that the pass pruned (see MaintainOptions.Retain), and
	// PrunedRuns, PrunedAssets and PrunedByPruners (one count per
	// MaintainOptions.Pruners, in their order) how many items each prune
	// deleted, until it failed if it did.
	Pruned          bool
	PrunedRuns      int64
	PrunedAssets    int64
	PrunedByPruners []int64
	// Err joins the errors of the pass's steps, each of which runs
	// whatever the others' errors (a pass that ctx ends stops, and its Err
	// wraps ctx's cause); nil if each succeeded. A run that a step could
	// not resume is not an error of the step: it is [NotResumed] in
	// LeftRunning or Cancelled, with its own Err.
	Err error
}

// Count returns how many runs of LeftRunning and Cancelled had outcome o:
// p.Count(Resumed), say, for a metric.
func (p Pass) Count(o RecoveryOutcome) int {
	n := 0
	for _, r := range slices.Concat(p.LeftRunning, p.Cancelled) {
		if r.Outcome == o {
			n++
		}
	}
	return n
}

// MaintainOptionsError is the error of [Store.Maintain] given bad
// arguments or options: Field names the argument or the option, Value is
// the value refused as text, and Want says what is allowed. It wraps
// executor.ErrInvalidRequest, and Err if not nil: [ErrInvalidAge] for a
// negative Retain, executor.ErrInvalidCancelCode for a bad code.
type MaintainOptionsError struct {
	Field, Value, Want string
	Err                error
}

func (e *MaintainOptionsError) Error() string {
	msg := fmt.Sprintf("pgstore: maintain: %s %s: want %s", e.Field, e.Value, e.Want)
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

// Unwrap returns executor.ErrInvalidRequest, and Err if not nil.
func (e *MaintainOptionsError) Unwrap() []error {
	if e.Err == nil {
		return []error{executor.ErrInvalidRequest}
	}
	return []error{executor.ErrInvalidRequest, e.Err}
}

// check refuses bad options, and returns them with their defaults.
// minEvery is the shortest Every taken.
func (o MaintainOptions) check(minEvery time.Duration) (MaintainOptions, error) {
	bad := func(field string, value any, want string, err error) error {
		return &MaintainOptionsError{Field: field, Value: fmt.Sprint(value), Want: want, Err: err}
	}
	switch {
	case o.Every < 0 || (o.Every > 0 && o.Every < minEvery):
		return o, bad("Every", o.Every, fmt.Sprintf("an interval of at least %v (MinMaintainEvery), such as 10s, or 0 for the default, 10s", minEvery), nil)
	case o.Resume.RunID != "":
		return o, bad("Resume.RunID", quote(o.Resume.RunID), "an empty one: it would name every resuming run", nil)
	case o.Retain < 0:
		return o, bad("Retain", o.Retain, "0 (no pruning), or an age of at least 1m, longer than the longest run", ErrInvalidAge)
	case o.Retain > 0 && o.Retain < MinRetain:
		return o, bad("Retain", o.Retain, "0 (no pruning), or an age of at least 1m, longer than the longest run (PruneAssets deletes what older runs may read)", nil)
	case o.PassTimeout < 0 || (o.PassTimeout > 0 && o.PassTimeout < minEvery):
		return o, bad("PassTimeout", o.PassTimeout, fmt.Sprintf("a duration of at least %v (MinMaintainEvery), such as 1m, or 0 for the default, Every or 1m, whichever is longer", minEvery), nil)
	case o.Retake < 0:
		return o, bad("Retake", o.Retake, "0 (no re-take), or a positive duration, such as 30s", nil)
	case o.PruneEvery < 0:
		return o, bad("PruneEvery", o.PruneEvery, "a positive interval, such as 1h, or 0 for the default, 1h", nil)
	case o.PruneEvery > 0 && o.Retain == 0:
		return o, bad("PruneEvery", o.PruneEvery, "0 without Retain, which is 0: set Retain to prune", nil)
	case len(o.Pruners) > 0 && o.Retain == 0:
		return o, bad("Pruners", fmt.Sprintf("(%d given)", len(o.Pruners)), "none without Retain, which is 0: set Retain to prune", nil)
	}
	for _, f := range [...]struct{ name, value string }{{"Resume.TriggeredBy", o.Resume.TriggeredBy}, {"Resume.Reason", o.Resume.Reason}} {
		if !utf8.ValidString(f.value) || strings.ContainsRune(f.value, 0) {
			return o, bad(f.name, fmt.Sprintf("%.64q", f.value), "valid UTF-8 without NUL: it is stored as text", nil)
		}
	}
	if i := slices.Index(o.Pruners, nil); i >= 0 {
		return o, bad(fmt.Sprintf("Pruners[%d]", i), "nil", "a Pruner, such as a pghistory History", nil)
	}
	for i, code := range o.ResumeCodes {
		if err := executor.CheckCancelCode(code); err != nil && !slices.Contains(executorCodes[:], code) {
			return o, bad(fmt.Sprintf("ResumeCodes[%d]", i), fmt.Sprintf("%.70q", code),
				"a code that executor.CheckCancelCode takes (such as the host's shutdown code), or the executor's or pgstore's own (such as pgstore.CancelledByLockLost)", err)
		}
	}
	if o.Every == 0 {
		o.Every = DefaultMaintainEvery
	}
	if o.PruneEvery == 0 {
		o.PruneEvery = DefaultPruneEvery
	}
	if o.PassTimeout == 0 {
		o.PassTimeout = max(o.Every, DefaultPassTimeout)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Maintain runs the store's upkeep in a loop, as a host's every process
// does while it lives, until ctx ends: each pass resumes the runs that a
// dead process left running ([Store.ResumeLeftRunning]), then the runs
// cancelled with one of opts.ResumeCodes ([Store.ResumeCancelled]),
// each under its key's lock, and, with opts.Retain, prunes (see
// [MaintainOptions]). The first pass is made at once: it is the
// start-up recovery of the recipe; the next ones every opts.Every,
// jittered. A step that fails is logged and reported (Pass.Err), and the
// next step, and the next pass, are made all the same: a database that
// is down fails passes, not the loop. Each pass's outcome goes to
// opts.OnPass, for metrics. The host's code that it calls does not end
// the loop by a panic: a panic of graphOf makes its run [NotResumed],
// with a [*GraphOfError] wrapping an *executor.PanicError (In "graphOf"),
// one of a Pruner is its error, and one of opts.OnPass is logged.
//
// ctx must be the process's own context, cancelled at its shutdown (with
// executor.CancelCode, as the recipe says: see "Locking a graph key" in
// the package documentation), never one bounded for the start-up
// (context.WithTimeout): it is, as ResumeLeftRunning's and
// ResumeCancelled's, the context of the runs that the passes resume, and
// its end cancels them, recorded with its cause's code: with
// executor.CancelCode's, which opts.ResumeCodes should name for the next
// pass of a process to finish them; a ctx cancelled without a code
// records them with executor.CancelledByContext
// (executor.CancelledByHost for a cause without a code, as
// signal.NotifyContext's), which only a ResumeCodes naming it resumes.
// Every process of every host on the schema must run its runs under
// their keys' locks, as the recipe does: a pass takes a run recorded as
// running whose key is unlocked for a dead process's, and resumes it.
//
// Maintain returns once ctx has ended, with context.Cause(ctx), never
// nil: it stops the pass under way (whose steps return ctx's cause) and
// waits for it, and then for the runs that its passes resumed to end
// (ctx's end cancels them: up to executor.Options.Grace more for a
// generator that ignores its context, and twice
// executor.Options.StoreTimeout for a stalled store; a progress sink
// that blocks holds them, see StoreTimeout) and for their keys' unlocks
// (bounded by 10 s each). A pass's queries are bounded by
// opts.PassTimeout too: a server that stalls them fails the pass (its
// Pass.Err wraps [ErrPassTimeout]), not the loop. No goroutine
// of it outlives it. Bad arguments or options are refused at once,
// before any pass, with a [*MaintainOptionsError]: a nil e or graphOf
// (see ResumeLeftRunning for both), or an option outside what
// [MaintainOptions] says.
//
// A pass costs ResumeLeftRunning's listing (an index of the running
// records only), and with opts.ResumeCodes ResumeCancelled's (an index of
// the cancelled records, and a ListRuns for each key of a run cancelled
// with one of the codes): with retention, the cancelled records kept
// are the ones of opts.Retain. Each run resumed holds its key's lock, a
// connection of its own, until it ends (see "Sizing connections" in the
// package documentation).
func (s *Store) Maintain(ctx context.Context, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts MaintainOptions) error {
	switch {
	case e == nil:
		return &MaintainOptionsError{Field: "e", Value: "nil", Want: "the executor that resumes the runs"}
	case graphOf == nil:
		return &MaintainOptionsError{Field: "graphOf", Value: "nil",
			Want: "a function that builds a run's graph from its record, such as one that calls executor.GraphOf with the host's templates"}
	}
	opts, err := opts.check(s.minEvery)
	if err != nil {
		return err
	}
	m := maintainer{s: s, e: e, o: opts, graphOf: func(rec executor.Record) (g *graph.Graph, err error) {
		defer recovered("graphOf", &err)
		return graphOf(rec)
	}}
	defer m.runs.Wait()
	timer := time.NewTimer(opts.Every)
	timer.Stop() // reset after each pass (since Go 1.23, a stopped timer delivers nothing stale)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		m.pass(ctx) // the first at once
		timer.Reset(jitter(opts.Every))
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-timer.C:
		}
	}
}

// maintainer is the state of one call of Maintain.
type maintainer struct {
	s       *Store
	e       *executor.Executor
	graphOf func(executor.Record) (*graph.Graph, error)
	o       MaintainOptions
	// runs counts the waiters of the runs that the passes resumed (see
	// watch); pruned is when the last pruning pass began, if pruning.
	runs   sync.WaitGroup
	pruned time.Time
	// warned holds the runs that a pass could not resume for a lasting
	// reason, warned of once, with that reason and the step that listed
	// them (see lastingReason and resumed); a run leaves it when its
	// graphOf succeeds and Resume does not refuse it so, or when that
	// step succeeds without listing it, whatever the other steps did.
	warned map[string]warning
	// here holds the IDs of the resuming runs that the passes started
	// and that go on (see watch), for SkippedRunningHere.
	hereMu sync.Mutex
	here   map[string]bool
}

// runningHere reports whether run id is one that a pass resumed, still
// going on.
func (m *maintainer) runningHere(id string) bool {
	m.hereMu.Lock()
	defer m.hereMu.Unlock()
	return m.here[id]
}

// pass makes one pass, logs it and reports it to OnPass. ctx is
// Maintain's, the resumed runs' context; the pass's steps get one that
// ends after PassTimeout too.
func (m *maintainer) pass(ctx context.Context) {
	p := Pass{Started: time.Now()}
	log := m.o.Logger
	runs := ctx
	// The cause wraps context.DeadlineExceeded too, as ErrPassTimeout
	// says: a step that returns the cause alone (its deadline came
	// between two queries) reports both.
	ctx, cancel := context.WithTimeoutCause(ctx, m.o.PassTimeout,
		fmt.Errorf("%w: it lasted PassTimeout, %v (%w)", ErrPassTimeout, m.o.PassTimeout, context.DeadlineExceeded))
	defer cancel()
	var errs []error
	step := func(err error) bool {
		if err != nil {
			errs = append(errs, err)
		}
		return ctx.Err() == nil
	}
	func() { // the steps, until ctx ends
		var err error
		hold := HoldOptions{Retake: m.o.Retake, Logger: m.o.Logger}
		p.LeftRunning, err = m.s.resumeLeftRunning(ctx, runs, m.e, m.graphOf, m.o.Resume, hold)
		m.resumed(ctx, "left running", p.LeftRunning, err)
		if !step(err) {
			return
		}
		if len(m.o.ResumeCodes) > 0 {
			p.Cancelled, err = m.s.resumeCancelled(ctx, runs, m.e, m.graphOf, m.o.Resume, hold, m.o.ResumeCodes...)
			m.resumed(ctx, "cancelled", p.Cancelled, err)
			if !step(err) {
				return
			}
		}
		if m.o.Retain == 0 || (!m.pruned.IsZero() && time.Since(m.pruned) < m.o.PruneEvery) {
			return
		}
		m.pruned, p.Pruned = time.Now(), true
		p.PrunedRuns, err = m.s.PruneRuns(ctx, m.o.Retain)
		if !step(err) {
			return
		}
		p.PrunedAssets, err = m.s.PruneAssets(ctx, m.o.Retain)
		if !step(err) {
			return
		}
		for i, pr := range m.o.Pruners {
			n, err := func() (n int64, err error) {
				defer recovered("Pruner", &err)
				return pr.Prune(ctx, m.o.Retain)
			}()
			p.PrunedByPruners = append(p.PrunedByPruners, n)
			if err != nil {
				err = fmt.Errorf("pgstore: maintain: Pruners[%d] (%T): prune older than %v: %w", i, pr, m.o.Retain, err)
			}
			if !step(err) {
				return
			}
		}
	}()
	p.Took = time.Since(p.Started)
	if ctx.Err() != nil && runs.Err() == nil && !slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, ErrPassTimeout) }) {
		// A query cut by the deadline says context.DeadlineExceeded
		// alone: the pass says why.
		errs = append(errs, context.Cause(ctx))
	}
	p.Err = errors.Join(errs...)
	switch {
	case p.Err != nil && runs.Err() == nil:
		log.Warn("pgstore: maintenance pass failed; the next pass tries again", "err", p.Err, "took", p.Took)
	case p.Err != nil:
		log.Debug("pgstore: maintenance pass cut short: its context ended", "err", p.Err)
	}
	if p.Pruned {
		level := slog.LevelDebug
		if p.PrunedRuns+p.PrunedAssets+sum(p.PrunedByPruners) > 0 {
			level = slog.LevelInfo
		}
		log.Log(runs, level, "pgstore: maintenance pruned", "olderThan", m.o.Retain, "runs", p.PrunedRuns,
			"assets", p.PrunedAssets, "byPruners", p.PrunedByPruners)
	}
	log.Debug("pgstore: maintenance pass", "took", p.Took, "resumed", p.Count(Resumed),
		"leftRunning", len(p.LeftRunning), "cancelled", len(p.Cancelled), "pruned", p.Pruned)
	if m.o.OnPass != nil {
		var err error
		func() {
			defer recovered("OnPass", &err)
			m.o.OnPass(p)
		}()
		if pe := (*executor.PanicError)(nil); errors.As(err, &pe) {
			log.Error("pgstore: maintenance OnPass panicked; the loop goes on", "err", err, "stack", string(pe.Stack))
		}
	}
}

// recovered, deferred, turns a panic of the host's code (in: "graphOf",
// "Pruner" or "OnPass") into an *executor.PanicError in *err, so that
// the loop goes on, and the runs that a pass resumed before it are
// waited for.
func recovered(in string, err *error) {
	if p := recover(); p != nil {
		*err = &executor.PanicError{Value: p, Stack: debug.Stack(), In: in}
	}
}

// warning is a run warned of once: the lasting reason it was not
// resumed for, and the step that listed it then ("left running" or
// "cancelled").
type warning struct{ reason, step string }

// lastingReason says why a pass could not resume r, if the reason lasts
// until the host changes something: "graphOf" for its graphOf's failure
// (no template builds the run's graph any more, say), "resume" for
// Executor.Resume's refusal of it as bad input (executor.ErrInvalidRequest:
// graphOf builds a graph that is not the run's, say); "" for another
// outcome or reason.
func lastingReason(r Recovery) string {
	var ge *GraphOfError
	switch {
	case r.Outcome != NotResumed:
		return ""
	case errors.As(r.Err, &ge):
		return "graphOf"
	case r.refused && errors.Is(r.Err, executor.ErrInvalidRequest):
		return "resume"
	}
	return ""
}

// resumed logs what a step did with the runs it listed (what: "left
// running" or "cancelled"), and watches those it resumed. A step that
// succeeded (err nil) listed all its runs: the runs warned of that it
// listed before and lists no more are gone from it, and forgotten. A run not resumed for a lasting reason (lastingReason) is
// warned of once, and again only after a pass in which its graphOf
// succeeded and Resume did not refuse it so, or whose reason was another:
// at debug level in between, as a run that no template builds any more
// would be at every pass.
func (m *maintainer) resumed(ctx context.Context, what string, recs []Recovery, err error) {
	log := m.o.Logger
	if err == nil {
		listed := make(map[string]bool, len(recs))
		for _, r := range recs {
			listed[r.Record.ID] = true
		}
		maps.DeleteFunc(m.warned, func(id string, w warning) bool { return w.step == what && !listed[id] })
	}
	for i, r := range recs {
		if r.Outcome == SkippedLocked && m.runningHere(r.Record.ID) {
			r.Outcome = SkippedRunningHere
			recs[i] = r // the Pass says so
		}
		switch reason := lastingReason(r); {
		case reason != "" && m.warned[r.Record.ID].reason == reason:
			m.warned[r.Record.ID] = warning{reason, what}
			log.Debug("pgstore: maintenance could not resume a run, for the reason warned of already; a later pass tries again",
				"run", r.Record.ID, "graphKey", r.Record.GraphKey, "was", what, "err", r.Err)
			continue
		case reason != "":
			if m.warned == nil {
				m.warned = map[string]warning{}
			}
			m.warned[r.Record.ID] = warning{reason, what}
		case r.builtGraph: // graphOf succeeded, and Resume did not refuse the run for good
			delete(m.warned, r.Record.ID)
		}
		switch r.Outcome {
		case Resumed:
			log.Info("pgstore: maintenance resumed a run", "run", r.Record.ID, "graphKey", r.Record.GraphKey,
				"was", what, "by", r.Run.ID())
			m.watch(r)
		case NotResumed:
			if ctx.Err() == nil {
				log.Warn("pgstore: maintenance could not resume a run; a later pass tries again", "run", r.Record.ID,
					"graphKey", r.Record.GraphKey, "was", what, "err", r.Err)
			}
		default:
			log.Debug("pgstore: maintenance left a run", "run", r.Record.ID, "graphKey", r.Record.GraphKey,
				"was", what, "outcome", r.Outcome.String())
		}
	}
}

// watch waits, in a goroutine that Maintain waits for, until r's run has
// ended and its key is unlocked, and logs its end.
func (m *maintainer) watch(r Recovery) {
	m.hereMu.Lock()
	if m.here == nil {
		m.here = map[string]bool{}
	}
	m.here[r.Run.ID()] = true
	m.hereMu.Unlock()
	m.runs.Go(func() {
		rep, err := r.Wait()
		m.hereMu.Lock()
		delete(m.here, r.Run.ID())
		m.hereMu.Unlock()
		attrs := []any{"run", r.Run.ID(), "resumed", r.Record.ID, "graphKey", r.Record.GraphKey}
		if rep != nil {
			attrs = append(attrs, "status", string(rep.Record.Status))
		}
		if errors.Is(err, ErrLockLost) {
			m.o.Logger.Warn("pgstore: a resumed run lost its key's lock", append(attrs, "err", err)...)
			return
		}
		m.o.Logger.Debug("pgstore: a resumed run ended", append(attrs, "err", err)...)
	})
}

// jitter returns d give or take up to a fifth of it, at random, but
// never more than the longest Duration (d + d/5 would wrap around to a
// negative wait for a d above four fifths of it).
func jitter(d time.Duration) time.Duration {
	f := d / 5
	if f <= 0 {
		return d
	}
	lo, span := d-f, 2*f
	span = min(span, math.MaxInt64-lo)
	return lo + rand.N(span+1)
}

func sum(ns []int64) int64 {
	var t int64
	for _, n := range ns {
		t += n
	}
	return t
}
