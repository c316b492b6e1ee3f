package executor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// interruptedPrefix starts the text of an interrupted run's record;
// the ID of the run that resumed it follows.
const interruptedPrefix = "interrupted: it ended without recording its outcome; resumed by run "

// interruptedText is the text that run id's record (Record.Error) and the
// final event of its stream (its Message) give once a Resume or
// RerunFailed, starting run by, found it interrupted, cut to MaxEventText
// as every error text the executor records (by, from
// ResumeOptions.RunID, may be long). The record's counts say what the
// run did (interruptedCounts); the text does not repeat them.
func interruptedText(by string) string {
	if by == "" {
		return notResumedText
	}
	return cutText(interruptedPrefix + by)
}

// notResumedPrefix starts the text of a run recorded as interrupted that
// no run resumes (see notResumed and Abandon); why follows.
const notResumedPrefix = "interrupted: it ended without recording its outcome; not resumed: "

// notResumedText is interruptedText of a run found running by a Resume or
// RerunFailed that was refused, its graph no longer the key's (see
// notResumed): no run resumes it.
const notResumedText = notResumedPrefix + "its graph is no longer the key's (a run of another graph started on the key since, or the graph was deleted)"

// notResumed records run rec as interrupted, resumed by no run, and ends
// its stream, when a Resume or RerunFailed of it, which found its record
// running, was refused with err because its graph is no longer the key's
// (ErrGraphReplaced or ErrGraphDeleted): the caller takes the run for
// dead, as for any Resume, and no later Resume of it can start, so that
// its record would otherwise say running for good, and a host that
// resumes at start-up what RunsByStatus lists as running would find it
// every time. Other refusals change nothing.
//
// It holds the run as Abandon does (holdEnding), as its caller let go of
// the run when its start was refused: an Abandon of the run meanwhile is
// refused, so that one of them writes the record and ends the stream. A
// run that another call holds already (an Abandon, another refused
// Resume, or a Resume that is finishing it) is left to that call.
func (e *Executor) notResumed(ctx context.Context, rec Record, err error, tally interruptedTally) {
	if rec.Status != RunRunning || !errors.Is(err, ErrGraphReplaced) && !errors.Is(err, ErrGraphDeleted) {
		return
	}
	release, herr := e.holdEnding(rec.ID, rec.GraphKey, endingRefused)
	if herr != nil {
		e.log.Debug("regen: a refused resume leaves the run's record to another call", "run", rec.ID, "graph", rec.GraphKey, "err", herr)
		return
	}
	defer release()
	e.markInterrupted(ctx, rec.ID, rec.GraphKey, "", tally)
}

// holdEnding takes run id, of graph key, for a call by that records it as
// interrupted, not resumed (Abandon, notResumed), until release is
// called; a Resume, RerunFailed or Abandon of it is refused meanwhile
// (see finishedLocked). It refuses, with [ErrBusy], a run going
// on in this executor, one that another such call holds, and one that a
// Resume or RerunFailed of this executor resumes (the key's finisher,
// until its call has returned and its run has ended): that call records
// the run. A Resume or RerunFailed of another run of the key is no
// reason: it writes that run's record, and makes the key's nodes, which
// the caller makes none of.
func (e *Executor) holdEnding(id, key string, by endingBy) (release func(), err error) {
	e.startMu.Lock()
	defer e.startMu.Unlock()
	if e.live[id] {
		return nil, fmt.Errorf("%w: it is still running in this executor: cancel it (Run.Cancel) instead", ErrBusy)
	}
	if holder := e.ending[id]; holder != 0 {
		return nil, endingError(id, holder)
	}
	if f, ok := e.finishing[key]; ok && f.of == id {
		return nil, fmt.Errorf("%w: run %s is being resumed by run %s, a Resume or RerunFailed of it under way in this executor, which records it as interrupted, resumed by that run (or, if refused as the run's graph is no longer the key's, not resumed): retry once that call has returned: Abandon then finds the record no longer running, and returns nil (were it still running, the run store having failed that call, retry once run %s has ended too)",
			ErrBusy, quote(id), quote(f.id), quote(f.id))
	}
	if e.ending == nil {
		e.ending = map[string]endingBy{}
	}
	e.ending[id] = by
	return func() {
		e.startMu.Lock()
		delete(e.ending, id)
		if by == endingAbandon {
			e.abandons++ // see recheckAbandoned
		}
		e.startMu.Unlock()
	}, nil
}

// endingError is the refusal of a call about run id while a call by
// records it as interrupted, not resumed (see holdEnding).
func endingError(id string, by endingBy) error {
	switch by {
	case endingAbandon:
		return fmt.Errorf("%w: run %s is being abandoned (an Executor.Abandon of it is under way in this executor): once it returns, the run's record says interrupted, not resumed",
			ErrBusy, quote(id))
	case endingAbandoned:
		return fmt.Errorf("%w: run %s, abandoned, is getting its stream's final event from a Resume or RerunFailed of it, refused as the run was abandoned, in this executor: once that call returns, an Abandon of it returns nil, and a Resume of it is refused",
			ErrBusy, quote(id))
	}
	return fmt.Errorf("%w: run %s is being recorded as interrupted, not resumed, by a Resume or RerunFailed of it that was refused (its graph is no longer the key's) in this executor: once that call returns, the record says so: a Resume of the run is refused, and an Abandon of it returns nil",
		ErrBusy, quote(id))
}

// abandonedReason returns the reason that [Executor.Abandon] recorded in
// rec, and true, when rec says that Abandon recorded the run as
// interrupted, not resumed: its text is notResumedPrefix and a reason
// (cut, as the record's text was), not notResumedText, which a Resume
// refused as the run's graph is no longer the key's records (notResumed).
func abandonedReason(rec Record) (string, bool) {
	if rec.Status != RunInterrupted || rec.Error == notResumedText {
		return "", false
	}
	return strings.CutPrefix(rec.Error, notResumedPrefix)
}

// refuseAbandoned returns the refusal of a Resume or RerunFailed (what
// says which) of run rec when Abandon recorded it (abandonedReason): a
// run abandoned is never resumed, as its record says, and a new run of
// its graph makes what is not clean. Before it returns, it ends the
// run's stream if the Sink failed the Abandon's final event, as another
// Abandon would (endInterrupted, naming no resuming run), holding the
// run as Abandon does (holdEnding), so that one call publishes it; a run
// that another call holds (an Abandon) is left to that call.
func (e *Executor) refuseAbandoned(ctx context.Context, rec Record, what string) error {
	reason, ok := abandonedReason(rec)
	if !ok {
		return nil
	}
	if release, err := e.holdEnding(rec.ID, rec.GraphKey, endingAbandoned); err != nil {
		e.log.Debug("regen: a refused resume of an abandoned run leaves its stream to another call", "run", rec.ID, "graph", rec.GraphKey, "err", err)
	} else {
		e.endInterrupted(ctx, rec, "")
		release()
	}
	return abandonedError(what, rec.ID, reason)
}

// abandonedError is the refusal of a Resume or RerunFailed (what says
// which) of run id, which Abandon recorded with reason.
func abandonedError(what, id, reason string) error {
	return fmt.Errorf("%w: %s run %s: the run was abandoned (Executor.Abandon, with the reason %s), and its record says that no run resumes it: a new run of its graph (Executor.Start or Run) makes the key's nodes that are not clean",
		ErrInvalidRequest, what, quote(id), quote(reason))
}

// abandonsSeen returns the count of the Abandons of this executor that
// have let go of their run (see recheckAbandoned).
func (e *Executor) abandonsSeen() uint64 {
	e.startMu.Lock()
	defer e.startMu.Unlock()
	return e.abandons
}

// recheckAbandoned returns the check that a Resume or RerunFailed (what
// says which) of run id makes once its new run has taken the run
// (begin), before it commits anything: an Abandon of the run in this
// executor may have recorded it between the Resume's read of its record
// (recordFor, which refuses an abandoned run) and that moment, when an
// Abandon is no longer taken (holdEnding). seen is abandonsSeen before
// the read: if no Abandon has let go of its run since, the record is not
// read again. The check refuses a run so abandoned as recordFor would
// (its Abandon published the final event).
func (e *Executor) recheckAbandoned(seen uint64, id, what string) func(context.Context) error {
	return func(ctx context.Context) error {
		if e.abandonsSeen() == seen {
			return nil
		}
		rec, err := e.opts.Runs.GetRun(ctx, id)
		if err != nil {
			err = e.retryStore(ctx, id, "", err, "read the record of", id, func() (err error) {
				rec, err = e.opts.Runs.GetRun(ctx, id)
				return err
			})
		}
		switch {
		case err != nil && ctx.Err() != nil && !errors.Is(err, ErrNotFound):
			return wrap(ErrCancelled, fmt.Sprintf("before it started: %s run %s: read its record again", what, quote(id)), err, "")
		case err != nil:
			return fmt.Errorf("%s run %s: read its record again: %w", what, quote(id), err)
		}
		if reason, ok := abandonedReason(rec); ok {
			return abandonedError(what, id, reason)
		}
		return nil
	}
}

// resumedBy returns the ID of the run that rec, the record of a run found
// interrupted, names as the one that resumed it (interruptedText), and
// false when its text names none whole: it is another text, or it may
// have been cut.
func resumedBy(rec Record) (string, bool) {
	by, ok := strings.CutPrefix(rec.Error, interruptedPrefix)
	if !ok || by == "" || len(rec.Error) > MaxEventText-64 {
		return "", false
	}
	return by, true
}

// interruptedTally is what the key's states show that a run found
// interrupted did (interruptedCounts): the counts and the failed nodes
// of its record, if ok.
type interruptedTally struct {
	counts Counts
	failed []string
	ok     bool
}

// tallyInterrupted returns what the key's states show that run rec did,
// if its record says running: a Resume or RerunFailed calls it before it
// starts its own run, whose commits would hide the nodes that rec's run
// committed, and Abandon, with g nil (see interruptedCounts). Its store
// calls get Options.StoreTimeout within ctx, each try its own; a failure
// that may pass is tried again as the calls' other store calls are
// (retryStore), and one that remains is logged, and the record then
// keeps its counts.
func (e *Executor) tallyInterrupted(ctx context.Context, g *graph.Graph, rec Record) interruptedTally {
	if rec.Status != RunRunning {
		return interruptedTally{}
	}
	var t interruptedTally
	count := func() error {
		cctx, cancel := context.WithTimeout(ctx, e.opts.StoreTimeout)
		defer cancel()
		var err error
		t, err = e.interruptedCounts(cctx, g, rec)
		return err
	}
	err := count()
	if err != nil {
		err = e.retryStore(ctx, rec.ID, rec.GraphKey, err, "count what it did: interrupted run", rec.ID, count)
	}
	if err != nil {
		e.log.Warn("regen: count what an interrupted run did; its record keeps the counts it had", "run", rec.ID, "graph", rec.GraphKey, "err", err)
	}
	return t
}

// interrupted does what a Resume or RerunFailed, which started run by to
// finish run rec (as its record read before said), owes a run that
// ended without recording its outcome. A record that says running is
// recorded as interrupted, with the tally taken before run by started,
// and its stream ended (markInterrupted). A record that says interrupted
// already (an earlier Resume found it so) gets its stream ended now if
// that Resume could not (its sink failed then, or stalled): the final
// event is the one the earlier Resume would have published, with the
// record's text and naming the run that the record names (by, when the
// text names none whole, and none when the text says that no run resumed
// it: notResumed recorded it; a Resume of a run that Abandon recorded is
// refused, see refuseAbandoned), and nothing is published when the stream's
// newest event is final already, so a stream gets one final event
// however often its run is resumed. The sink's failures are logged, as
// in endInterrupted, never returned.
func (e *Executor) interrupted(ctx context.Context, rec Record, by string, tally interruptedTally) {
	switch rec.Status {
	case RunRunning:
		e.markInterrupted(ctx, rec.ID, rec.GraphKey, by, tally)
	case RunInterrupted:
		if named, ok := resumedBy(rec); ok {
			by = named
		} else if strings.HasPrefix(rec.Error, notResumedPrefix) {
			by = "" // recorded so by notResumed: the event it would have published
		}
		e.endInterrupted(ctx, rec, by)
	}
}

// markInterrupted records run id, which its record says is running, as
// interrupted and resumed by run by (by none if by is ""), with the counts of tally, and the
// Total of its stream's last event as Planned, or the nodes counted when
// more (see Record.Counts), and then ends its event
// stream (publishInterrupted): after the stream's newest event, or as its
// first (Seq 1) when the sink holds none, since its process stopped
// before any reached the sink and its views wait for the first (a stream
// expired since the crash gets that one event too; see endInterrupted). It reads the record again just before, so
// as not to write over an outcome recorded meanwhile; a failure is
// logged, since the resuming run goes on regardless, and leaves the
// stream as it is (a later Resume ends it; see interrupted). The two
// store calls share one Options.StoreTimeout, and each of the sink's two
// calls gets one of its own: the sink is asked first, for the run's last
// event, and the final event is published after the store calls.
func (e *Executor) markInterrupted(ctx context.Context, id, key, by string, tally interruptedTally) {
	if err := e.recordInterrupted(ctx, id, key, by, interruptedText(by), tally); err != nil {
		e.log.Warn("regen: record run as interrupted", "run", id, "graph", key, "resumed_by", by, "err", err)
	}
}

// recordInterrupted is markInterrupted with text as the record's Error,
// returning the store's error.
func (e *Executor) recordInterrupted(ctx context.Context, id, key, by, text string, tally interruptedTally) error {
	kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.StoreTimeout)
	defer kcancel()
	last, known := e.interruptedLast(kctx, id, key, by)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.StoreTimeout)
	defer cancel()
	rec, err := e.opts.Runs.GetRun(sctx, id)
	err = hostError(err, inStore)
	marked := false
	if err == nil && rec.Status == RunRunning {
		rec.Status, rec.EndedAt = RunInterrupted, time.Now()
		rec.Error, rec.CancelledBy = text, "" // not cancelled: its process stopped
		if tally.ok {
			rec.Counts, rec.Failed = tally.counts, tally.failed
		}
		if known && last.Seq > 0 {
			rec.Counts.Planned = last.Total
		}
		// A run planned the nodes it settled: the stream may hold none of
		// its events, or not the last round's.
		rec.Counts.Planned = max(rec.Counts.Planned, settled(rec.Counts))
		err = hostError(e.opts.Runs.PutRun(sctx, rec), inStore)
		marked = err == nil
	} else if err == nil && rec.Status == RunInterrupted && rec.Error == text {
		// An earlier try of this call (Abandon retries it) went through,
		// its reply lost: its stream still waits for its final event.
		marked = true
	}
	if marked && known && !last.Type.Final() {
		// A timeout of its own: the store calls may have taken most of
		// kctx's.
		pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.StoreTimeout)
		defer pcancel()
		e.publishInterrupted(pctx, rec, by, last)
	}
	return err
}

// Abandon records run id, whose record says running, as [RunInterrupted]
// without resuming it. It ends the run's event stream as a Resume does,
// with a run.cancelled that names no resuming run ([Executor.AbandonTo]
// names the run that took over its work, for a run left running beside a
// newer run of its key that was resumed in its place). It returns nil once the
// run is recorded, or when there is nothing to record (see below), and an
// error otherwise.
//
// Abandon is for a run that no process runs any more, as it crashed or
// was killed, and that the host will not resume. An example is a run whose
// graph the host can no longer build: [GraphOf] fails, as the run's
// template was dropped. RunStatusLister.RunsByStatus then stops listing
// the run.
//
// The record's Error is "interrupted: it ended without recording its
// outcome; not resumed: " and reason, cut to MaxEventText. reason must be
// storable text and not empty. It must not be the text that a Resume,
// refused as the run's graph is no longer the key's, records after that
// prefix: that would make the record one that a later Resume takes up. A
// reason that breaks these rules is refused with [ErrInvalidRequest], and
// so is an empty run ID.
//
// The record's counts and failed nodes are what the key's states show
// that the run did, as a Resume records them (see Record.Counts). Abandon
// has no graph: the node IDs are in the states. If the states cannot be
// read, the failure is logged, and the counts stay as they were but
// Planned. Planned is the Total of the stream's last event, when the
// Sink can say it, or the nodes counted when more.
//
// Records that do not say running:
//   - a record that says interrupted, not resumed, already is left as it
//     is, and Abandon returns nil. An earlier Abandon recorded it, or a
//     Resume or RerunFailed refused as its graph is no longer the key's.
//     But if its stream's newest event is not final, as the Sink failed
//     that call's final event, Abandon publishes the event that call
//     would have. So a run that no Resume will end gets its final event by
//     an Abandon again: one final event, however often the run is
//     abandoned;
//   - any other record that does not say running is left as it is, and
//     Abandon returns nil: so is the record of a run of this executor
//     that says it ended while the run still waits for its generator
//     calls (see Run.Done);
//   - an unknown run gives an error wrapping [ErrNotFound].
//
// A run whose record says running, or interrupted, not resumed, is
// refused with [ErrBusy] (not ErrInvalidRequest: once what it waits for
// has ended, the same call may be taken) when:
//   - it is going on in this executor;
//   - a Resume or RerunFailed of it in this executor is resuming it. Retry
//     once that call has returned: it records the run as interrupted, or
//     ends its stream, and Abandon then returns nil;
//   - another Abandon is abandoning it;
//   - a Resume or RerunFailed refused as its graph is no longer the key's
//     is recording it as interrupted (see Resume).
//
// A Resume or RerunFailed of the run while Abandon is under way is refused
// with ErrBusy too: one call records the run, and its stream
// gets one final event. Once Abandon has recorded the run, a Resume or
// RerunFailed of it is refused with ErrInvalidRequest, saying that it was
// abandoned, and why. A new run of its graph, with Start or Run, makes the
// key's nodes that are not clean. If the stream's newest event is still
// not final, the refused call publishes the final event, as another
// Abandon would. It holds the run meanwhile as Abandon does, so an Abandon
// then is refused. A Resume or RerunFailed of another run of the key does
// not stop an Abandon of this run: it writes that run's record, not this
// one's.
//
// As for a Resume, the caller vouches that the run goes on nowhere else:
// with pgstore, it holds the run's key's lock (TryLockGraph).
//
// Store calls are retried as Edit's are; the sink's failures are logged. A
// ctx that ends before Abandon writes the record returns an error wrapping
// ctx's cause, and the record is left as it was. That covers a ctx that
// ends while Abandon reads the record, or counts what the run did. Once
// the record is written, the stream's final event is published
// regardless.
func (e *Executor) Abandon(ctx context.Context, id, reason string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: abandon run: the run ID is empty", ErrInvalidRequest)
	case !storableText(id):
		return checkRequestField("the run ID", id)
	}
	if reason == "" {
		return fmt.Errorf("%w: abandon run %s: the reason is empty: say why the run is not resumed (its record's Error ends with it)",
			ErrInvalidRequest, quote(id))
	}
	if err := checkRequestField("the reason", reason); err != nil {
		return err
	}
	if notResumedPrefix+reason == notResumedText {
		// Its record could not be told from a refused Resume's
		// (abandonedReason), and a Resume of the run would be taken.
		return fmt.Errorf("%w: abandon run %s: the reason %s is the text of a Resume refused as the run's graph is no longer the key's, whose record a later Resume may take up: say why this run is not resumed in other words",
			ErrInvalidRequest, quote(id), quote(reason))
	}
	return e.abandon(ctx, id, "", cutText(notResumedPrefix+reason))
}

// AbandonTo records run id, whose record says running, as
// [RunInterrupted], resumed by run by, a run of its graph key that took
// over its work, as a Resume that started run by to finish it would
// record it: its record's Error is "interrupted: it ended without
// recording its outcome; resumed by run " and by (cut to MaxEventText),
// and its event stream ends with a run.cancelled whose ResumedBy is by,
// so that a view that followed the run follows run by next. It is for a
// run left running beside a newer run of its key, which the host
// resumed in its place (the newer run's resume makes the key's nodes
// that are not clean, as a resume of this one would): pgstore's
// ResumeLeftRunning calls it so. Unlike [Executor.Abandon]'s, such a
// record does not refuse a later Resume or RerunFailed of the run, which
// finds it interrupted and resumed, as after any resume.
//
// by must name another run of the run's graph key, as its record says;
// it is not checked that run by is going on. An empty run ID or by, a by
// that is id, or that names no run of the key, is refused with
// [ErrInvalidRequest], and nothing is recorded; an unknown run id gives
// an error wrapping [ErrNotFound].
//
// Otherwise it works as Abandon does, and is refused with [ErrBusy] as
// Abandon is: the counts it records, the holds, the retries, ctx. A
// record that says interrupted already is left as it is, and AbandonTo
// returns nil; if its stream's newest event is not final, it publishes
// the final event that the call which recorded it would have (naming
// the run that the record names, or, for a record that says that no run
// resumed it, none), as a Resume of it would. As for Abandon, the caller
// vouches that the run goes on nowhere else: with pgstore, it holds the
// run's key's lock.
func (e *Executor) AbandonTo(ctx context.Context, id, by string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: abandon run: the run ID is empty", ErrInvalidRequest)
	case !storableText(id):
		return checkRequestField("the run ID", id)
	case by == "":
		return fmt.Errorf("%w: abandon run %s: the run that took over is empty: name the run of its graph key that took over its work (or call Abandon, with a reason)",
			ErrInvalidRequest, quote(id))
	case !storableText(by):
		return checkRequestField("the run that took over", by)
	case by == id:
		return fmt.Errorf("%w: abandon run %s: the run that took over, %s, is the run itself: name another run of its graph key",
			ErrInvalidRequest, quote(id), quote(by))
	}
	return e.abandon(ctx, id, by, interruptedText(by))
}

// abandon is the work of Abandon (by "") and AbandonTo: it records run id
// as interrupted, resumed by run by, with text as its record's Error.
func (e *Executor) abandon(ctx context.Context, id, by, text string) error {
	if !e.enter() {
		return fmt.Errorf("%w: abandon run %s", ErrClosed, quote(id))
	}
	defer e.runs.done()
	rec, err := e.getRun(ctx, id)
	if err != nil {
		return fmt.Errorf("abandon run %s: %w", quote(id), err)
	}
	if by != "" {
		took, err := e.getRun(ctx, by)
		switch {
		case errors.Is(err, ErrNotFound):
			return fmt.Errorf("%w: abandon run %s: the run that took over, %s, is no run (%w): name a run of graph key %s",
				ErrInvalidRequest, quote(id), quote(by), err, quote(rec.GraphKey))
		case err != nil:
			return fmt.Errorf("abandon run %s: read the record of the run that took over, %s: %w", quote(id), quote(by), err)
		case took.GraphKey != rec.GraphKey:
			return fmt.Errorf("%w: abandon run %s: the run that took over, %s, is a run of graph key %s, not of the run's, %s",
				ErrInvalidRequest, quote(id), quote(by), quote(took.GraphKey), quote(rec.GraphKey))
		}
	}
	// A record already interrupted, not resumed (an earlier Abandon, or
	// a refused Resume: notResumed), may have left its stream without its
	// final event, its sink failing then; no Resume will end it. So may
	// one that an earlier AbandonTo recorded, resumed.
	ended := rec.Status == RunInterrupted && (strings.HasPrefix(rec.Error, notResumedPrefix) || by != "")
	if rec.Status != RunRunning && !ended {
		return nil
	}
	// Held until it returns: a Resume of the run taken meanwhile would
	// finish it while its record is written not resumed, and a refused
	// one would write the record too; and either, or another Abandon,
	// would publish a final event too.
	release, err := e.holdEnding(id, rec.GraphKey, endingAbandon)
	if err != nil {
		return fmt.Errorf("abandon run %s: %w", quote(id), err)
	}
	defer release()
	if ended {
		// The event the call that recorded it would have published, if
		// the stream's newest event is not final: read under the hold.
		e.interrupted(ctx, rec, by, interruptedTally{})
		return nil
	}
	tally := e.tallyInterrupted(ctx, nil, rec)
	if ctx.Err() != nil {
		// The tally may have failed for it: the record would say that the
		// run did nothing.
		return fmt.Errorf("abandon run %s: before it recorded the run: %w", quote(id), causeOf(ctx))
	}
	err = e.recordInterrupted(ctx, id, rec.GraphKey, by, text, tally)
	if err != nil {
		err = e.retryStore(ctx, id, rec.GraphKey, err, "record as interrupted", id, func() error {
			return e.recordInterrupted(ctx, id, rec.GraphKey, by, text, tally)
		})
	}
	if err != nil {
		return fmt.Errorf("abandon run %s: %w", quote(id), err)
	}
	return nil
}

// getRun reads the record of run id, retried as Abandon's store calls
// are.
func (e *Executor) getRun(ctx context.Context, id string) (Record, error) {
	rec, err := e.opts.Runs.GetRun(ctx, id)
	if err != nil {
		err = e.retryStore(ctx, id, "", err, "read the record of", id, func() (err error) {
			rec, err = e.opts.Runs.GetRun(ctx, id)
			return err
		})
	}
	return rec, err
}

// interruptedCounts returns what the key's states show that run rec,
// found interrupted, did in its time: from its start to the start of the
// key's next run (one started in between; else now, before the run that
// resumes it starts), as ListRuns says; a run whose record says that it
// ended without committing a node (committedNone: a Start whose plan
// commit failed records one) ends nothing, as no commit after its start
// is its. Generated counts the nodes of g that it committed clean (those
// whose result it kept unchanged among them: the states do not tell them
// apart), Failed and Cancelled those it committed failed or cancelled,
// and the failed ones are listed in the order of [Report]. A node
// committed again since (by a run in between, or made dirty by an Edit)
// no longer shows. Planned, Unchanged, Skipped, Superseded and Attempts
// are 0: the states do not say them. g may be nil (Abandon has no
// graph): every state with a node ID counts then. It counts the same: a
// run commits its own graph's nodes only, and a run of another graph on
// the key either started in the window, and ends it (or committed no
// node), or stopped (ErrGraphReplaced) at rec's run's first commit.
func (e *Executor) interruptedCounts(ctx context.Context, g *graph.Graph, rec Record) (interruptedTally, error) {
	// The window is [from, until), or [from, until] when until is now:
	// read before ListRuns is called, so that a run it does not list, its
	// record stored after it read, committed its nodes after now too.
	from := rec.StartedAt.Truncate(time.Microsecond)
	until, next := time.Now().Truncate(time.Microsecond), false
	runs, err := e.opts.Runs.ListRuns(ctx, rec.GraphKey)
	if err = hostError(err, inStore); err != nil {
		return interruptedTally{}, fmt.Errorf("list the runs of %s: %w", quote(rec.GraphKey), err)
	}
	for _, o := range runs { // oldest first
		if o.ID != rec.ID && o.StartedAt.Truncate(time.Microsecond).After(from) && !committedNone(o) {
			until, next = o.StartedAt.Truncate(time.Microsecond), true
			break
		}
	}
	snap, err := e.opts.States.Load(ctx, rec.GraphKey)
	if err = hostError(err, inStore); err != nil {
		return interruptedTally{}, fmt.Errorf("load the states of %s: %w", quote(rec.GraphKey), err)
	}
	t := interruptedTally{ok: true}
	var failed []graph.ID
	for id, st := range snap.States {
		at := st.UpdatedAt.Truncate(time.Microsecond)
		if at.Before(from) || at.After(until) || next && at.Equal(until) {
			continue
		}
		nid, err := graph.ParseID(id) // GraphStateID is no node ID
		if err != nil {
			continue
		}
		if g != nil {
			if _, err := g.Node(nid); err != nil {
				continue
			}
		}
		switch st.Status {
		case dirty.StatusClean:
			t.counts.Generated++
		case dirty.StatusFailed:
			t.counts.Failed++
			failed = append(failed, nid)
		case dirty.StatusCancelled:
			t.counts.Cancelled++
		}
	}
	slices.SortFunc(failed, func(a, b graph.ID) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), cmp.Compare(a.Segment, b.Segment))
	})
	for _, id := range failed {
		t.failed = append(t.failed, id.String())
	}
	return t, nil
}

// settled returns the nodes that c counts as settled, each once: a run
// planned them all, so Planned is never below it.
func settled(c Counts) int {
	return c.Generated + c.Unchanged + c.Failed + c.Skipped + c.Superseded + c.Cancelled
}

// committedNone reports whether rec is the record of a run that ended
// (succeeded, failed or cancelled) without committing a node that
// interruptedCounts counts: its counts say that it generated, kept
// unchanged, failed and cancelled none (a node whose commit failed
// counts too, so a run that committed one says so). A Start whose plan
// commit failed records one, with all counts 0. Its start does not end
// the count of what a run found interrupted did: no commit after it is
// its. A record that says running, or interrupted, has no counts of its
// own that tell (see Record.Counts), and is never such a record.
func committedNone(rec Record) bool {
	switch rec.Status {
	case RunSucceeded, RunFailed, RunCancelled:
		c := rec.Counts
		return c.Generated == 0 && c.Unchanged == 0 && c.Failed == 0 && c.Cancelled == 0
	}
	return false
}

// endInterrupted publishes the final event of run rec, which its record
// says was interrupted and resumed by run by, so that the views that
// follow its stream end: its process stopped before its final event, and
// nothing else would publish one. The event is a run.cancelled (the run
// was cut short, and is resumed, as after a cancel; no node of it
// failed), with the record's text (Record.Error) as its Message,
// numbered after the run's newest event, which only a sink that
// implements progress.LastEventReader can tell: Seq 1 when it holds
// none. It is for a record found interrupted already, by an earlier call
// that could not end the stream (the sink failed, or could not say the
// run's last event, as when Redis was down at a host's start-up
// recovery), and it publishes the event that call would have. So nothing
// is published when the sink does not implement LastEventReader (or
// answers progress.ErrUnsupported, or fails), or when the run's newest
// event is final already (its process stopped after it, or an earlier
// call published it). A stream that expired, or was evicted, since the
// earlier call ended it gets its final event again, alone: a view of it
// ends, rather than wait for good, as a view of a run whose events never
// reached the sink would. The sink's calls are bounded by
// Options.StoreTimeout, from ctx's values but not its cancel, and their
// failures are logged, never returned: the resuming run goes on
// regardless, and a later Resume or RerunFailed of the run tries again
// (interrupted, or refuseAbandoned), or, of a run not resumed, a later
// Abandon.
func (e *Executor) endInterrupted(ctx context.Context, rec Record, by string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.StoreTimeout)
	defer cancel()
	if last, known := e.interruptedLast(ctx, rec.ID, rec.GraphKey, by); known && !last.Type.Final() {
		e.publishInterrupted(ctx, rec, by, last)
	}
}

// interruptedLast returns the newest event of the stream of run id (of
// graph key key), found
// interrupted and resumed by run by (the zero Event, Seq 0, when the sink
// holds none), and whether the sink could say; it logs the sink's
// failure (see endInterrupted).
func (e *Executor) interruptedLast(ctx context.Context, id, key, by string) (progress.Event, bool) {
	lr, ok := e.opts.Sink.(progress.LastEventReader)
	if !ok {
		return progress.Event{}, false
	}
	last, found, err := lastEvent(ctx, lr, id)
	if err == nil && !found {
		last = progress.Event{}
	}
	switch {
	case errors.Is(err, progress.ErrUnsupported):
		e.log.Debug("regen: the progress sink cannot say an interrupted run's last event; its stream gets no final event",
			"run", id, "graph", key, "resumed_by", by, "err", err)
		return progress.Event{}, false
	case err != nil:
		e.log.Warn("regen: read the last event of an interrupted run; its stream gets no final event",
			"run", id, "graph", key, "resumed_by", by, "err", err)
		return progress.Event{}, false
	}
	return last, true
}

// publishInterrupted publishes the final event of run rec, found
// interrupted and resumed by run by, after last, its stream's newest
// event (see endInterrupted); a failure is logged.
func (e *Executor) publishInterrupted(ctx context.Context, rec Record, by string, last progress.Event) {
	msg := rec.Error
	if msg == "" {
		msg = interruptedText(by)
	}
	ev := progress.Event{RunID: rec.ID, GraphKey: rec.GraphKey, Seq: last.Seq + 1, Time: rec.EndedAt,
		Type: progress.RunCancelled, Stage: progress.NoStage, Message: msg,
		Error: fmt.Sprintf("%v: run %s: interrupted", ErrCancelled, quote(rec.ID)),
		Done:  last.Done, Total: last.Total, ResumedBy: by}
	capText(&ev)
	em := emitter{sink: e.opts.Sink, ctx: ctx}
	if err := em.publish(ev); err != nil {
		e.log.Warn("regen: progress sink failed the final event of an interrupted run",
			"run", rec.ID, "graph", rec.GraphKey, "seq", ev.Seq, "resumed_by", by, "err", err)
	}
}

// lastEvent calls lr.LastEvent; a panic in it is an error, as a sink's
// panic in Publish is.
func lastEvent(ctx context.Context, lr progress.LastEventReader, runID string) (last progress.Event, found bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			last, found, err = progress.Event{}, false, fmt.Errorf("sink panicked: %v", p)
		}
	}()
	return lr.LastEvent(ctx, runID)
}
