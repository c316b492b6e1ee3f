package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// RecoveryOutcome says what [Store.ResumeLeftRunning] did with one run
// left running, or [Store.ResumeCancelled] with one cancelled run.
type RecoveryOutcome int

const (
	// Resumed: the run was resumed, under its key's lock, which is
	// released once the resuming run ([Recovery].Run) has ended.
	Resumed RecoveryOutcome = iota + 1
	// SkippedLocked: another session holds the key's lock, so a live
	// process runs the key (maybe this very run, which then only looks
	// left running), or is resuming it: nothing was done.
	SkippedLocked
	// SkippedNotRunning: read again under the key's lock, the record no
	// longer says running (for ResumeCancelled: cancelled, with one of
	// the codes asked for): another process resumed or abandoned the run
	// after it was listed. [Recovery].Record is the record so read.
	SkippedNotRunning
	// NotResumed: the run still to resume was not resumed, for
	// [Recovery].Err: graphOf failed, the lock or the record could not be
	// read, the lock was lost before the run could be resumed, or
	// Executor.Resume refused it.
	NotResumed
	// SkippedSuperseded: for ResumeCancelled, under the key's lock, a
	// record of the key names the run in its Resumes, or is of a run
	// started after it (but for a run of its graph that failed as it
	// started, or whose context or lock ended as it started: see
	// [Store.ResumeCancelled]): another
	// process resumed the run after it was listed, or a later run of the
	// key made what the key needs. For ResumeLeftRunning, a later run of
	// the key, left running too, was resumed in its place by this call,
	// and the run was recorded as interrupted, resumed by the run that
	// took over (executor.Executor.AbandonTo), its stream ended with a
	// final event whose ResumedBy names that run: [Recovery].Record is
	// the record so written.
	SkippedSuperseded
	// SkippedGraphReplaced: for ResumeCancelled, under the key's lock,
	// the key's graph is no longer the run's, though no record of the key
	// supersedes the run (the record of the run that made another graph
	// the key's was deleted or pruned, or a tool committed the key's
	// states; or the graph was deleted): executor.Executor.Resume
	// refuses the run for good, with ErrGraphReplaced or ErrGraphDeleted,
	// as a resume would make the older graph the key's again. Nothing
	// was done: the record is left as it is, and [Recovery].Err is nil.
	// Unlike NotResumed, no later call changes it: the run is reported so at
	// each call, never resumed, until a run of its key supersedes it or
	// its record is pruned, so that a host acts on it once (tells its
	// user that the run went with its graph, say) and passes over its
	// Record.ID after that.
	SkippedGraphReplaced
	// SkippedRunningHere: for a pass of [Store.Maintain] only, the run
	// is one that an earlier pass of the same Maintain resumed (the
	// resuming run, [Recovery].Run of that pass), going on in this
	// process under its key's lock: nothing was done. Another process's
	// pass reports it as SkippedLocked.
	SkippedRunningHere
)

var outcomeNames = [...]string{Resumed: "resumed", SkippedLocked: "skipped (locked)",
	SkippedNotRunning: "skipped (not running)", NotResumed: "not resumed", SkippedSuperseded: "skipped (superseded)",
	SkippedGraphReplaced: "skipped (graph replaced)", SkippedRunningHere: "skipped (running here)"}

// String returns "resumed", "skipped (locked)", "skipped (not running)",
// "not resumed", "skipped (superseded)", "skipped (graph replaced)" or
// "skipped (running here)".
func (o RecoveryOutcome) String() string {
	if o >= Resumed && o <= SkippedRunningHere {
		return outcomeNames[o]
	}
	return fmt.Sprintf("RecoveryOutcome(%d)", int(o))
}

// Recovery is what [Store.ResumeLeftRunning] did with one run that
// RunsByStatus listed as running, or [Store.ResumeCancelled] with one
// cancelled run that it found to resume.
type Recovery struct {
	// Record is the run's record: as read again under the key's lock
	// when it was, else as listed.
	Record executor.Record
	// Outcome says what was done.
	Outcome RecoveryOutcome
	// Run is the run that resumes it, for Resumed; nil otherwise. The
	// key's lock is held for it ([GraphLock.Hold]: it is cancelled if the
	// lock is lost; under [Store.Maintain] with [MaintainOptions].Retake,
	// [GraphLock.HoldFor], which first takes a lost lock again), and
	// unlocked once it has ended.
	Run *executor.Run
	// Err says why the run was not resumed, for NotResumed; nil
	// otherwise.
	Err error

	unlockErr func() error // waits for the unlock of a resumed run's lock, and returns its error
	// builtGraph says that graphOf built the run's graph, and refused
	// that Executor.Resume refused the run (see Maintain's warnings).
	builtGraph, refused bool
}

// Wait waits until the resuming run has ended and its key's lock has
// been unlocked, and returns the run's report and error (see
// executor.Run.Wait), joined with Unlock's error if that says something
// the run's error does not (a lock lost during the run cancels it, with
// an error wrapping [ErrLockLost]). For another outcome it returns nil
// and Err.
func (r Recovery) Wait() (*executor.Report, error) {
	if r.Outcome != Resumed || r.Run == nil {
		return nil, r.Err
	}
	if r.unlockErr == nil { // built by the host, not by ResumeLeftRunning
		return r.Run.Wait()
	}
	rep, err := r.Run.Wait()
	if uerr := r.unlockErr(); uerr != nil && !(errors.Is(uerr, ErrLockLost) && errors.Is(err, ErrLockLost)) {
		err = errors.Join(err, uerr)
	}
	return rep, err
}

// GraphOfError is the Err of a [Recovery] whose run was not resumed
// because the graphOf given to [Store.ResumeLeftRunning] failed for it:
// the host cannot build the run's graph (with executor.GraphOf: no
// template of the host has the run's fingerprint at its duration). If
// that will not change, the host calls executor.Executor.Abandon for the
// run, which records it as interrupted, not resumed, so that
// RunsByStatus stops listing it: best from graphOf, under the key's lock
// (see ResumeLeftRunning). Only when no version of the host will build
// it: during a rolling deploy, a process of the old version fails graphOf
// for a run of the new version's template, which a new process resumes,
// unless the old one abandoned it first. It wraps graphOf's error.
type GraphOfError struct {
	// RunID is the run's ID.
	RunID string
	// Err is graphOf's error.
	Err error
}

func (e *GraphOfError) Error() string {
	return fmt.Sprintf("pgstore: resume run %s: build its graph: %v (if no version of the host will build it, abandon the run: Executor.Abandon)",
		quote(e.RunID), e.Err)
}

// Unwrap returns graphOf's error.
func (e *GraphOfError) Unwrap() error { return e.Err }

// ResumeLeftRunning resumes the runs that a process which stopped left
// recorded as running, on every key, as a host does at start-up, each
// under its key's lock (see "Locking a graph key" in the package
// documentation), and reports, in the order of RunsByStatus (oldest
// first), what it did with each. For each run it takes the key's lock
// with TryLockGraph; reads the record again under it with GetRun (another
// process may have resumed the run since it was listed); and if it still
// says running, builds the run's graph with graphOf (typically a call of
// executor.GraphOf with the host's templates), checks with the server
// that it still holds the lock ([GraphLock.Check]), resumes the run with
// e.Resume and opts, and holds the lock for the new run ([GraphLock.Hold]:
// a lost lock cancels the run, and the lock is unlocked once the run has
// ended, with ctx's values, bounded by 10 s). It does not wait for
// the runs: they go on, those of different keys side by side, after it
// returns; [Recovery.Wait] waits for one, and for its unlock.
//
// So processes that call it at once, on one schema, never resume a run
// twice: one of them takes the key's lock, and the others find it held
// ([SkippedLocked]) or, once the resuming run has ended and its lock is
// free, the record no longer running ([SkippedNotRunning]): Resume
// records the resumed run as interrupted before it returns. (If the run
// store failed that write, which Resume logs and does not return, the
// record still says running once the resuming run has ended, and a later
// call resumes it again, after that run, never beside it.) A run whose
// process is alive and holds its key's lock, as the recipe has it, is
// skipped too: a record says running while its run goes on; only the
// lock tells a live run from one left behind. A process that ran a key
// without its lock cannot be told from one that crashed.
//
// Only runs recorded as running are resumed. A run that a lost lock
// cancelled (Hold's or Guard's doing: its record says cancelled, with
// the cancel code [CancelledByLockLost] in Record.CancelledBy) or that a
// shutdown cancelled (with a code of the host's, if it cancelled its
// runs with executor.CancelCode, as it should) is not: a host that
// means such runs to finish resumes them itself (e.Resume, under the
// key's lock), say at the key's next request, or at start-up from
// RunsByStatus(ctx, executor.RunCancelled), picking them by their
// record's CancelledBy (never by Error's text, which is for people and
// may change) and skipping those that a record's Resumes names already:
// [Store.ResumeCancelled] does that.
//
// A run that is not resumed is [NotResumed], with the reason in Err, and
// the lock is unlocked at once: graphOf failed (Err is a [*GraphOfError]
// then: if no template of the host builds the run's graph, the host may
// call e.Abandon, which records the run as interrupted, not resumed, so
// that RunsByStatus stops listing it; best from graphOf itself, which
// runs under the key's lock, as Abandon asks, before it returns its
// error); e.Resume refused it
// (a run whose graph is no longer the key's is recorded as interrupted by
// that refusal, see executor.Executor.Resume); the lock or the record
// could not be read (an error wrapping executor.ErrNotFound: the record
// was deleted since it was listed); the lock was lost before the run was
// resumed (an error wrapping [ErrLockLost]: its session ended since it
// was taken, so that another process may have taken it and resumed the
// run; the record is left as it is, for a later call).
//
// Several runs of one key left running (a Resume that started its new
// run, recorded running, and whose process died before it recorded the
// run it resumed as interrupted, as executor.Executor.Resume does them in
// that order; or a host that ran the key without its lock) are recovered
// together, under one lock of the key, in one call: of those whose
// record, read again under the lock, still says running, the newest is
// resumed (or, if it is not resumed, the next newest, and so on), as a
// resume plans the key's states, not the run's, and so makes the key's
// nodes that are not clean, whichever run of the key it resumes; the
// newest run's graph is the one that the host last meant the key to
// have. Once one is resumed, each older one is recorded as interrupted,
// resumed by the run that resumes the newest, with e.AbandonTo, which
// ends its event stream with a final event whose ResumedBy names that
// run, so that its viewers stop waiting, or follow the run that took
// over, as after a resume: it is [SkippedSuperseded] (NotResumed, left
// running for a later call, if AbandonTo failed). A newer one that was not
// resumed stays NotResumed, for a later call.
//
// Each resumed run holds its key's lock, and so a server connection
// taken out of the pool (see [GraphLock]), until it ends: as many runs
// left running, as many connections, beside the pool's. A run whose lock
// the server refuses a connection for (max_connections) is NotResumed,
// and a later call resumes it.
//
// graphOf is called under the key's lock. opts is passed to each Resume:
// its RunID must be empty, as it would name every run (an error wrapping
// executor.ErrInvalidRequest otherwise); by default each new run's
// TriggeredBy is its resumed run's. A nil e or graphOf is refused so
// too, before anything is done.
//
// ctx bounds the whole call, and is the resumed runs' context too, as
// Resume's: cancelling it cancels them. The error is RunsByStatus's, or,
// if ctx ends during the call, ctx's cause with the recoveries made until
// then (the runs already resumed among them go on, and unlock their keys
// when they end): the rest of the runs listed are not reported. Unlocks
// of keys whose run was not resumed are not reported: Unlock closes the
// lock's connection in any case, and the server frees the lock.
func (s *Store) ResumeLeftRunning(ctx context.Context, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts executor.ResumeOptions) ([]Recovery, error) {
	return s.resumeLeftRunning(ctx, ctx, e, graphOf, opts, HoldOptions{})
}

// resumeLeftRunning is ResumeLeftRunning, whose resumed runs are held
// with hold (see GraphLock.HoldFor), as Maintain's passes ask; ctx bounds
// the call, and runs, which ctx must derive from, is the resumed runs'
// context (a pass's deadline on ctx does not end them).
func (s *Store) resumeLeftRunning(ctx, runs context.Context, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts executor.ResumeOptions, hold HoldOptions) ([]Recovery, error) {
	running := func() ([]executor.Record, error) { return s.RunsByStatus(ctx, executor.RunRunning) }
	still := func(ctx context.Context, rec executor.Record) (RecoveryOutcome, error) {
		if rec.Status != executor.RunRunning {
			return SkippedNotRunning, nil
		}
		return 0, nil
	}
	return s.resumeAll(ctx, e, graphOf, opts, resumeJob{what: "the runs left running", call: "ResumeLeftRunning",
		list: running, still: still, together: true, hold: hold, runs: runs})
}

// resumeJob is what [Store.ResumeLeftRunning] or [Store.ResumeCancelled]
// asks of resumeAll: what (the runs to resume, for errors) and call (its
// name); list lists the runs to resume, oldest first; still, given a
// run's record read again under its key's lock, says whether to resume
// it (0), or skip it (the outcome), or returns an error (NotResumed); and
// goneSkips says that a run that Resume refuses as its graph is no longer
// the key's is [SkippedGraphReplaced], not NotResumed; hold is how each
// resumed run's lock is held (see GraphLock.HoldFor); runs is the resumed
// runs' context, of which the call's is; together says that the runs of
// one key are recovered together (see recoverRuns), as the runs left
// running of one key are.
type resumeJob struct {
	what, call string
	list       func() ([]executor.Record, error)
	still      func(ctx context.Context, rec executor.Record) (RecoveryOutcome, error)
	goneSkips  bool
	together   bool
	hold       HoldOptions
	runs       context.Context
}

// resumeAll is the work of ResumeLeftRunning and ResumeCancelled: each
// run that job lists, resumed under its key's lock (recoverRuns), one run
// of a key at a time. With job.together, the runs of one key that job
// lists are recovered together, under one lock, when the first of them
// comes: one is resumed, in the others' place (see recoverRuns).
func (s *Store) resumeAll(ctx context.Context, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts executor.ResumeOptions, job resumeJob) ([]Recovery, error) {
	switch {
	case e == nil:
		return nil, fmt.Errorf("%w: pgstore: resume %s: the executor is nil", executor.ErrInvalidRequest, job.what)
	case graphOf == nil:
		return nil, fmt.Errorf("%w: pgstore: resume %s: graphOf is nil: pass a function that builds a run's graph from its record, such as one that calls executor.GraphOf with the host's templates",
			executor.ErrInvalidRequest, job.what)
	case opts.RunID != "":
		return nil, fmt.Errorf("%w: pgstore: resume %s: ResumeOptions.RunID %s would name every resuming run: leave it empty, for random IDs",
			executor.ErrInvalidRequest, job.what, quote(opts.RunID))
	}
	listed, err := job.list()
	if err != nil {
		return nil, fmt.Errorf("pgstore: resume %s: %w", job.what, err)
	}
	// of holds, with job.together, the indexes in listed of each key's
	// runs, oldest first.
	of := map[string][]int{}
	if job.together {
		for i, rec := range listed {
			of[rec.GraphKey] = append(of[rec.GraphKey], i)
		}
	}
	done := make([]*Recovery, len(listed))
	report := func() []Recovery { // in the order listed, those done
		out := make([]Recovery, 0, len(listed))
		for _, r := range done {
			if r != nil {
				out = append(out, *r)
			}
		}
		return out
	}
	resumedOf := map[string]Recovery{} // graph key -> the run this call resumed of it
	for i, rec := range listed {
		if done[i] != nil {
			continue // recovered with an older run of its key
		}
		if ctx.Err() != nil {
			return report(), fmt.Errorf("pgstore: resume %s: %w", job.what, context.Cause(ctx))
		}
		if first, ok := resumedOf[rec.GraphKey]; ok {
			done[i] = &Recovery{Record: rec, Outcome: NotResumed,
				Err: fmt.Errorf("%w: pgstore: resume run %s: this call resumed run %s of graph %s already, by run %s, which makes the key's nodes that are not clean, and the executor resumes one run of a key at a time: call %s again once run %s has ended",
					executor.ErrBusy, quote(rec.ID), quote(first.Record.ID), quote(rec.GraphKey), quote(first.Run.ID()), job.call, quote(first.Run.ID()))}
			continue
		}
		at := []int{i}
		if len(of[rec.GraphKey]) > 1 {
			at = of[rec.GraphKey]
		}
		recs := make([]executor.Record, len(at))
		for j, k := range at {
			recs[j] = listed[k]
		}
		for j, r := range s.recoverRuns(ctx, e, graphOf, opts, recs, job) {
			if r.Outcome == Resumed {
				resumedOf[rec.GraphKey] = r
			}
			done[at[j]] = &r
		}
	}
	if ctx.Err() != nil { // during the last run listed
		return report(), fmt.Errorf("pgstore: resume %s: %w", job.what, context.Cause(ctx))
	}
	return report(), nil
}

// recoverRuns is resumeAll's work on the runs of recs, as listed, all of
// one key, oldest first, under one lock of the key; job.still says
// whether each record, read again under the lock, is still one to
// resume. Of those that are, the newest is resumed, or, if it is not
// resumed, the next newest, and so on; once one is, the older ones are
// recorded as interrupted, resumed by its resuming run
// (executor.Executor.AbandonTo, which ends their streams naming it): that
// run makes the key's nodes that are not clean, which is what a resume
// of any of them would make (executor.Executor.Resume plans the key's
// states, not the run's), and the executor resumes one run of a key at a
// time. The newest is the one to resume: a run of the key starts after
// the older ones' process stopped them (a Resume that started it and died
// before it recorded the run it resumed as interrupted, which
// executor.Executor.Resume does after the new run's start), and its graph
// is the one the host last meant the key to have. It returns one
// Recovery per record of recs, in their order.
func (s *Store) recoverRuns(ctx context.Context, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts executor.ResumeOptions, recs []executor.Record,
	job resumeJob) []Recovery {
	out := make([]Recovery, len(recs))
	notResumed := func(rec executor.Record, err error) Recovery {
		return Recovery{Record: rec, Outcome: NotResumed, Err: fmt.Errorf("pgstore: resume run %s: %w", quote(rec.ID), err)}
	}
	each := func(f func(executor.Record) Recovery) []Recovery {
		for i, rec := range recs {
			out[i] = f(rec)
		}
		return out
	}
	lock, err := s.TryLockGraph(ctx, recs[0].GraphKey)
	if errors.Is(err, ErrGraphLocked) {
		return each(func(rec executor.Record) Recovery { return Recovery{Record: rec, Outcome: SkippedLocked} })
	}
	if err != nil {
		return each(func(rec executor.Record) Recovery { return notResumed(rec, err) })
	}
	unlock := func() error {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		return lock.Unlock(uctx)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = unlock() // Unlock closes the connection anyway: the server frees the lock
		}
	}()
	// Another process may have resumed, or abandoned, a run between the
	// listing and the lock.
	var still []int // the indexes of the runs still to resume
	for i, rec := range recs {
		again, err := s.GetRun(ctx, rec.ID)
		if err != nil {
			out[i] = notResumed(rec, err)
			continue
		}
		switch skip, err := job.still(ctx, again); {
		case err != nil:
			out[i] = notResumed(again, err)
		case skip != 0:
			out[i] = Recovery{Record: again, Outcome: skip}
		default:
			out[i] = Recovery{Record: again}
			still = append(still, i)
		}
	}
	for j := len(still) - 1; j >= 0; j-- {
		i := still[j]
		r, run := s.resumeLocked(ctx, e, graphOf, opts, lock, out[i].Record, job)
		out[i] = r
		if run == nil {
			continue
		}
		resumed = true
		for _, k := range still[:j] {
			out[k] = s.supersede(ctx, e, out[k].Record, out[i].Record, run)
		}
		// Held once the older runs are recorded, so that no other
		// process's recovery takes them up meanwhile.
		held := lock.holdFor(job.runs, run, job.hold)
		out[i].unlockErr = sync.OnceValue(func() error { return <-held })
		break
	}
	return out
}

// resumeLocked resumes the run of rec, read again under lock, its key's
// lock: it builds its graph (graphOf), checks the lock, and resumes it
// (e.Resume), returning its Recovery and the resuming run, or nil for a
// run not resumed. The caller holds the lock for the run.
func (s *Store) resumeLocked(ctx context.Context, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts executor.ResumeOptions, lock *GraphLock,
	rec executor.Record, job resumeJob) (Recovery, *executor.Run) {
	g, err := graphOf(rec)
	if err != nil {
		return Recovery{Record: rec, Outcome: NotResumed, Err: &GraphOfError{RunID: rec.ID, Err: err}}, nil
	}
	notResumed := func(err error) Recovery {
		return Recovery{Record: rec, Outcome: NotResumed, Err: fmt.Errorf("pgstore: resume run %s: %w", quote(rec.ID), err),
			builtGraph: true}
	}
	// The lock may have been lost since it was taken (its session ended
	// while graphOf or GetRun ran), and another process may hold it and
	// resume the run too: ask the server, just before the run is resumed.
	// From there on the guard cancels the run if the lock is lost.
	if err := lock.Check(ctx); err != nil {
		return notResumed(err), nil
	}
	run, err := e.Resume(job.runs, g, rec.ID, opts)
	if err != nil {
		if job.goneSkips && (errors.Is(err, executor.ErrGraphReplaced) || errors.Is(err, executor.ErrGraphDeleted)) {
			return Recovery{Record: rec, Outcome: SkippedGraphReplaced, builtGraph: true}, nil
		}
		r := notResumed(err)
		r.refused = true
		return r, nil
	}
	return Recovery{Record: rec, Outcome: Resumed, Run: run, builtGraph: true}, run
}

// supersede records the run of rec, left running beside a newer run of
// its key, newest, which run resumes, as interrupted, resumed by run
// (executor.Executor.AbandonTo, which ends its stream with a final event
// whose ResumedBy names run, so that a view of it follows run, as after
// a resume): [SkippedSuperseded], with the record so written; NotResumed
// if AbandonTo failed, the record left running for a later call.
func (s *Store) supersede(ctx context.Context, e *executor.Executor, rec, newest executor.Record, run *executor.Run) Recovery {
	if err := e.AbandonTo(ctx, rec.ID, run.ID()); err != nil {
		return Recovery{Record: rec, Outcome: NotResumed, Err: fmt.Errorf("pgstore: resume run %s: record it as interrupted, run %s of its key resumed in its place by run %s: %w",
			quote(rec.ID), quote(newest.ID), quote(run.ID()), err)}
	}
	if again, err := s.GetRun(ctx, rec.ID); err == nil {
		rec = again
	}
	return Recovery{Record: rec, Outcome: SkippedSuperseded}
}

// failedAtStart reports whether rec is the record of a run that failed as
// it started: the executor records one (of a Start, Resume or
// RerunFailed whose plan's commit failed once its first record was
// stored) as failed with all its counts 0, as it planned no node, let
// alone attempted or committed one; a run that planned a node counts it
// (Counts.Planned). It is the record of an ended run that committed no
// node, which the executor's tally of an interrupted run passes over
// too (see executor.Record.Counts).
func failedAtStart(rec executor.Record) bool {
	return rec.Status == executor.RunFailed && rec.Counts == (executor.Counts{})
}

// startedNoNode reports whether rec, the record of an ended run, says
// that the run started no node: no attempt, and no node generated,
// unchanged, failed, superseded or cancelled (a node it planned, or
// skipped, it never ran). A run cancelled as it started, before any of
// its workers took a node, leaves such a record: with its plan's nodes in
// Counts.Planned, or, cancelled before its plan's commit, all its counts
// 0.
func startedNoNode(rec executor.Record) bool {
	c := rec.Counts
	c.Planned, c.Skipped = 0, 0
	return c == (executor.Counts{})
}

// cutCode reports whether code, a cancelled record's, says that the run's
// context ended, it was drained without a code of the host's
// (executor.CancelledByDrain, a shutdown's), or its lock was lost, rather
// than that a user or the host stopped it on purpose: the executor's own
// codes but a user's cancel (executor.CancelledByCancel), and
// [CancelledByLockLost]. A code of the
// host's own (one that executor.CheckCancelCode takes) is a stop that the
// host chose, as its shutdown's is; empty is a record older than
// CancelledBy.
func cutCode(code string) bool {
	return code == CancelledByLockLost || (code != executor.CancelledByCancel && slices.Contains(executorCodes[:], code))
}

// executorCodes are the executor's own cancel codes, which
// executor.CheckCancelCode refuses as a host's, and a run may be recorded
// with all the same.
var executorCodes = [...]string{executor.CancelledByCancel, executor.CancelledByContext, executor.CancelledByDeadline,
	executor.CancelledByGraphReplaced, executor.CancelledByGraphDeleted, executor.CancelledByHost, executor.CancelledByDrain}

// ResumeCancelled resumes the runs recorded as cancelled with one of
// codes (Record.CancelledBy), such as the host's own shutdown code (see
// executor.CancelCode) and [CancelledByLockLost], that a host means to
// finish: at start-up, say, after ResumeLeftRunning. It works as
// [Store.ResumeLeftRunning] does, and says so per run (one run of a key
// at a time, each under the key's lock, read again under it; graphOf,
// opts, ctx, the Recovery outcomes and the error are as there), but
// for the runs that it lists: RunsByStatus(ctx, executor.RunCancelled),
// those whose CancelledBy is one of codes, and of them those still to
// finish: the newest record of their key (no other record of the key
// started at the same time as it, to the microsecond, or later; but of
// runs of one graph tied so, each cancelled with one of codes, none went
// on, and the one that ListRuns lists last is taken), which no record's
// Resumes names. A run of the key started after the
// cancelled one (its resume, by this call of another process or by the
// host, or a run a user started) made the key's nodes that were not
// clean, or was meant to replace it: the cancelled run is left as it is,
// and out of the report. A record of the run's graph (Record.Graph)
// that failed as it started does not supersede it, whether it resumes it
// or not: a record of status failed with all its counts 0
// (executor.Record.Counts), which a run whose plan's commit failed
// leaves, planned no node and committed none, so a resume of the run
// that failed so (a store down at start-up, say) does not end its
// resumption: the next call resumes it again. A run that failed after
// its start (it planned nodes) supersedes it, as any run does, and lists
// its failed nodes for RerunFailed; so does a Start of another graph that
// failed as it started, as the host meant it to replace the run's graph
// (a resume would be refused anyway if its commit went through). So, too,
// a record of the run's graph cancelled before it started a node (no
// attempt, and no node generated, unchanged, failed, superseded or
// cancelled: Counts.Planned and Skipped alone may be above 0), with a
// code not in codes that says that its context ended or its lock was lost
// (one of the executor's own codes, such as executor.CancelledByContext
// or executor.CancelledByDrain, or CancelledByLockLost), does not
// supersede it: a resume of the run
// that its ctx (this call's, ended as the host's start-up was cut short)
// or a lost lock cancelled so made nothing of what the key needs, and the
// next call with the run's code resumes it again. A user's cancel
// (executor.CancelledByCancel) of such a record still supersedes the run,
// as the user stopped the key's newest run, and so does a stop with a
// code of the host's own that is not in codes (the host chose to end the
// key's work, as a user does), and one without a code (written before
// Record.CancelledBy existed); a record cancelled so with one of codes is
// itself resumed, in the run's place. Read
// again under the key's lock, a run whose record no longer says
// cancelled with one of codes is [SkippedNotRunning], and one that a
// record of the key, read under the lock too, supersedes so is
// [SkippedSuperseded]. A ListRuns that fails as the runs are listed
// leaves the run listed, to be read again under the lock, where the
// failure makes it [NotResumed]. A run whose graph is no longer its
// key's, though no record supersedes it (see executor.GraphStateID), is
// [SkippedGraphReplaced], at each call, until a run of the key
// supersedes it: executor.Executor.Resume would refuse it, for good.
// Under the lock, the key's states are loaded (Load) to
// find it before graphOf is called, which so need not build a graph
// the host may have no template for any more; a record without
// Record.Graph, or of a deleted graph, is found by Resume's refusal
// (executor.ErrGraphReplaced or executor.ErrGraphDeleted), once graphOf
// has built its graph.
//
// RunsByStatus of cancelled runs reads the partial index runs_cancelled
// (a scan of the runs table where the schema lacks it, see
// [Store.Migrate]), and ListRuns is called once for each key of a run so
// listed: a host that keeps many cancelled records prunes them
// (PruneRuns). codes must name one code at least,
// each one that executor.CheckCancelCode takes or one of the executor's
// own (such as executor.CancelledByCancel, for a user's cancels): a code
// that no run is recorded with, empty or "Shutdown" for "shutdown", is
// refused with an error wrapping executor.ErrInvalidRequest, before
// anything is done. They are compared exactly.
func (s *Store) ResumeCancelled(ctx context.Context, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts executor.ResumeOptions, codes ...string) ([]Recovery, error) {
	return s.resumeCancelled(ctx, ctx, e, graphOf, opts, HoldOptions{}, codes...)
}

// resumeCancelled is ResumeCancelled, whose resumed runs are held with
// hold (see GraphLock.HoldFor), as Maintain's passes ask; ctx and runs are
// as resumeLeftRunning's.
func (s *Store) resumeCancelled(ctx, runs context.Context, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts executor.ResumeOptions, hold HoldOptions,
	codes ...string) ([]Recovery, error) {
	const what = "the cancelled runs"
	if len(codes) == 0 {
		return nil, fmt.Errorf("%w: pgstore: resume %s: no cancel code given: name the codes of the cancels to resume, such as the host's shutdown code and pgstore.CancelledByLockLost",
			executor.ErrInvalidRequest, what)
	}
	if slices.Contains(codes, "") {
		return nil, fmt.Errorf("%w: pgstore: resume %s: an empty cancel code, which only runs that were not cancelled have: give codes that executor.CheckCancelCode takes, or the executor's or pgstore's",
			executor.ErrInvalidRequest, what)
	}
	for _, code := range codes {
		if err := executor.CheckCancelCode(code); err != nil && !slices.Contains(executorCodes[:], code) {
			return nil, fmt.Errorf("%w: pgstore: resume %s: cancel code %.70q, which no run is cancelled with: %w: give codes that executor.CheckCancelCode takes, or the executor's",
				executor.ErrInvalidRequest, what, code, err)
		}
	}
	// superseded reports whether a record of runs, the list of rec's key
	// in ListRuns's order, supersedes rec: it resumes rec, or it started
	// at the same time as rec (a tie, which ListRuns sorts by ID, may be
	// the later run) or after it; unless it is of rec's graph and failed
	// as it started (failedAtStart), or was cancelled before it started a
	// node as its context ended or its lock was lost, with a code not
	// asked for (cutAtStart): it
	// made nothing of what rec's resume would. (One of another graph says
	// that the host meant to replace rec's.) Of two tied runs of one
	// graph, both cancelled with one of codes, neither went on: the one
	// that ListRuns lists last is resumed, and supersedes the other.
	superseded := func(rec executor.Record, runs []executor.Record) bool {
		// cutAtStart: r was cancelled before it started a node, with a
		// code not asked for (it is not resumed in rec's place) that says
		// its context ended or its lock was lost (cutCode), not a user's,
		// nor a host's own, whose stop of the key's newest run ends the
		// work (nor what a record older than CancelledBy does not say).
		cutAtStart := func(r executor.Record) bool {
			return r.Status == executor.RunCancelled && startedNoNode(r) && cutCode(r.CancelledBy) &&
				!slices.Contains(codes, r.CancelledBy)
		}
		at := slices.IndexFunc(runs, func(r executor.Record) bool { return r.ID == rec.ID })
		return slices.ContainsFunc(runs, func(r executor.Record) bool {
			if r.Resumes != rec.ID && (r.ID == rec.ID || r.StartedAt.Before(rec.StartedAt)) {
				return false
			}
			if r.Resumes != rec.ID && r.StartedAt.Equal(rec.StartedAt) && r.Graph == rec.Graph &&
				r.Status == executor.RunCancelled && slices.Contains(codes, r.CancelledBy) &&
				at >= 0 && slices.IndexFunc(runs, func(o executor.Record) bool { return o.ID == r.ID }) < at {
				return false // a tie to resume, listed first
			}
			return !((failedAtStart(r) || cutAtStart(r)) && r.Graph == rec.Graph)
		})
	}
	list := func() ([]executor.Record, error) {
		cancelled, err := s.RunsByStatus(ctx, executor.RunCancelled)
		if err != nil {
			return nil, err
		}
		of := map[string][]executor.Record{} // graph key -> its records
		out := []executor.Record{}
		for _, rec := range cancelled {
			if !slices.Contains(codes, rec.CancelledBy) {
				continue
			}
			runs, ok := of[rec.GraphKey]
			if !ok {
				if runs, err = s.ListRuns(ctx, rec.GraphKey); err != nil {
					if ctx.Err() != nil {
						return nil, err
					}
					runs = nil // read again under the lock, which says what failed
				}
				of[rec.GraphKey] = runs
			}
			if !superseded(rec, runs) {
				out = append(out, rec)
			}
		}
		return out, nil
	}
	still := func(ctx context.Context, rec executor.Record) (RecoveryOutcome, error) {
		if rec.Status != executor.RunCancelled || !slices.Contains(codes, rec.CancelledBy) {
			return SkippedNotRunning, nil
		}
		runs, err := s.ListRuns(ctx, rec.GraphKey)
		if err != nil {
			return 0, err
		}
		if superseded(rec, runs) {
			return SkippedSuperseded, nil
		}
		// A key whose graph state names another graph: Resume would
		// refuse the run (ErrGraphReplaced), and graphOf need not build
		// a graph that the host may no longer have a template for. The
		// other cases (a deleted graph, a record older than Record.Graph)
		// are told by Resume's refusal.
		snap, err := s.Load(ctx, rec.GraphKey)
		if err != nil {
			return 0, err
		}
		if st, ok := snap.States[executor.GraphStateID]; ok && rec.Graph != "" && st.InputHash != rec.Graph {
			return SkippedGraphReplaced, nil
		}
		return 0, nil
	}
	return s.resumeAll(ctx, e, graphOf, opts, resumeJob{what: what, call: "ResumeCancelled", list: list, still: still, goneSkips: true, hold: hold, runs: runs})
}
