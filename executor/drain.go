package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// ErrDrained is the cause of a run drained by [Run.Drain] or
// [Executor.Drain] given no cause of the host's: the run's error wraps
// it, besides [ErrCancelled].
var ErrDrained = errors.New("executor: drained")

// Drain drains the run, as a host does before it shuts down: from now on
// no node starts (no generator call, nor a bulk call, nor the retry of a
// node whose attempt failed, which would be a new paid call), while the
// calls under way end as they would have, their outputs checked, stored
// and committed (a Put or a commit that failed beyond Options.StoreRetry
// is tried again, as the node's next attempt: the output is paid for),
// their failures retried by none. The run then ends as
// cancelled, with cause, as if [Run.CancelCause] had cancelled it then:
// its error wraps [ErrCancelled] and cause (ErrDrained for a nil cause),
// its record's Error says cause, and its Record.CancelledBy is the
// host's code of a cause made with [CancelCode] ("shutdown", say), or
// else [CancelledByDrain]. A drain that kept no node from being made
// (the calls under way were the run's last, and Options.Converge found
// nothing for another round) cut nothing: the run ends as it would have
// without it, succeeded or failed. The nodes that the drain kept from
// starting, and those whose retry it kept from being made (recorded as
// cancelled, with their last attempt's error), stay dirty:
// [Executor.Resume] of the run makes them, and them alone, later, as for
// any cancelled run.
//
// A node waiting for room under Options.Limits, for a start under
// Options.Rates, or out its retry's backoff, has no call under way: a
// run with no call under way ends at once. A node waiting out the
// backoff before it puts or commits again an output already made does
// so at once, as at a cancel, rather than after the rest of its backoff;
// an output whose Put then fails again is dropped, and its node
// cancelled. Drain does not wait; see
// [Run.Wait] and [Run.Done]. A cancel (Run.Cancel, Run.CancelCause, the
// run's context) before the calls under way have ended cuts the drain
// short, as it would cut the run: the calls are cancelled, each with
// the grace of any cancel (a tenth of its timeout, at most a second: see
// [Generator]) to return an output already made, and the run's record
// says that cancel's code. Only the first Drain counts; a
// Drain of a run that has ended, or was cancelled, does nothing. It is
// safe for concurrent use.
//
// A drain does not wait for a call that ignores its context beyond its
// timeout (KindOptions.Timeout, BatchTimeout): bound a shutdown's drain,
// and cancel the run once the bound has passed, as [Executor.Drain]'s ctx
// does.
func (r *Run) Drain(cause error) {
	if cause == nil {
		cause = ErrDrained
	}
	r.drain(cause)
}

// Drain drains every run of the executor, those that start while it
// waits included, with cause (see [Run.Drain]), and waits until they have
// all ended, or until ctx ends: it then returns ctx.Err(), and the runs
// go on draining; a host cancels them, as at its shutdown:
//
//	ctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
//	defer stop()
//	if err := e.Drain(ctx, executor.CancelCode("shutdown", nil)); err != nil {
//		cancelRuns(executor.CancelCode("shutdown", nil)) // the host's own runs' Run.CancelCause
//	}
//
// A run that starts while two Drains wait is drained with the first's
// cause. Drain starts no run and refuses none: a host that starts no
// more stops calling Start first (or calls [Executor.Close] once Drain
// has returned). It is safe for concurrent use.
func (e *Executor) Drain(ctx context.Context, cause error) error {
	if cause == nil {
		cause = ErrDrained
	}
	e.startMu.Lock()
	if e.drains == 0 {
		e.drainCause = cause
	}
	e.drains++
	runs := make([]*Run, 0, len(e.handles))
	for _, h := range e.handles {
		runs = append(runs, h)
	}
	e.startMu.Unlock()
	defer func() {
		e.startMu.Lock()
		if e.drains--; e.drains == 0 {
			e.drainCause, e.drained = nil, nil
		}
		e.startMu.Unlock()
	}()
	for _, h := range runs {
		h.Drain(cause)
	}
	for {
		e.startMu.Lock()
		if len(e.live) == 0 {
			// A run leaves live a moment before its Done is closed (see
			// execute): wait for that too, so that each has ended.
			runs = append(runs, e.drained...)
			e.startMu.Unlock()
			for _, h := range runs {
				select {
				case <-h.done:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
		ended := e.endedLocked()
		e.startMu.Unlock()
		select {
		case <-ended:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// track notes run h as running, for Executor.Drain, and drains it if a
// Drain is under way (and notes it in drained, for the Drains to wait
// for). forget drops it from handles.
func (e *Executor) track(h *Run) {
	e.startMu.Lock()
	defer e.startMu.Unlock()
	if e.handles == nil {
		e.handles = map[string]*Run{}
	}
	e.handles[h.id] = h
	if e.drains > 0 {
		e.drained = append(e.drained, h)
		h.Drain(e.drainCause)
	}
}

// haltOnDrain halts the round's machine once the run is drained (or
// cancelled), so that no node starts, and wakes the workers, which end
// once the nodes running have settled; it says so once in an event if
// the run was drained. It returns a func that stops it, and waits for it
// if it had begun, called when the round's workers have ended.
func (r *run) haltOnDrain() func() {
	halted := make(chan struct{})
	stop := context.AfterFunc(r.dctx, func() {
		defer close(halted)
		r.mu.Lock()
		r.m.Halt()
		r.haltLimited()
		r.cond.Broadcast()
		running := r.m.Running()
		eta := r.haltETA()
		r.mu.Unlock()
		if r.ctx.Err() == nil && r.em.sink != nil && r.drainSaid.CompareAndSwap(false, true) {
			r.em.emit(progress.Event{Type: progress.Message, Stage: progress.NoStage, Done: int(r.settled.Load()),
				Total: int(r.planned.Load()), ETA: eta,
				Message: fmt.Sprintf("Draining (%s): no node starts; the run ends once the %d under way have ended",
					errText(r.haltCause()), running)})
		}
	})
	return func() {
		if !stop() {
			<-halted
		}
	}
}

// haltETA makes the round's ETA, once its machine is halted, count the
// calls under way alone, as no node starts any more (one that waits for
// room under Options.Limits or a start under Options.Rates never will),
// and returns it, computed afresh. Called with mu held.
func (r *run) haltETA() time.Duration {
	if r.em.sink == nil || r.eta == nil || r.eta.m != r.m {
		return r.etaNow()
	}
	m, callAt := r.m, r.callAt
	r.eta.costs.Finished = func(n graph.Node) bool {
		s, _ := m.State(n)
		return s != schedule.Running || callAt == nil || callAt[n].Load() == 0
	}
	now := time.Now()
	eta := r.eta.afresh(now, r.m.Len()-r.m.Settled())
	r.setETA(eta, now)
	return eta
}

// endDrain cancels the run with its drain's cause, once its rounds have
// ended, if it was drained and not cancelled, and the drain kept a node
// from being made (drainCut): its record then says that it was
// cancelled, and by which code (see Run.cancelledBy). A drain that kept
// none (the calls under way were the run's last) leaves the run to end
// as it would have without it, succeeded or failed.
func (r *run) endDrain() {
	if r.ctx.Err() != nil || r.dctx.Err() == nil || !r.drainCut {
		return
	}
	h := r.handle
	o := &h.origin
	o.mu.Lock()
	defer o.mu.Unlock()
	cause := context.Cause(r.dctx)
	if !o.byHandle && o.ctx.Err() == nil {
		o.byHandle, o.cause, o.drained = true, cause, true
	}
	h.cancel(cause)
}

// noRetry reports whether j's node, whose attempt failed and whose
// policy allows another, is not retried as the run is drained: a retry is
// a new call. The Put of an output already made is retried all the same,
// at once (see drainedAfter).
func (r *run) noRetry(j *job) bool {
	return j.unput == nil && r.dctx.Err() != nil
}

// drainedRetry is the error of a node whose retry, past its backoff,
// waited for room under Options.Limits or a start under Options.Rates,
// and got neither, with err: prev, its last attempt's error, if the run
// was drained and not cancelled (a drain keeps such a node's error, as
// for a node drained during its backoff), else err.
func (r *run) drainedRetry(err, prev error) error {
	if r.ctx.Err() == nil && prev != nil {
		return prev
	}
	return err
}

// haltCause is the cause of the run's cancel, or else of its drain, made
// safe (see safeCause); nil if neither.
func (r *run) haltCause() error {
	if cause := r.cause(); cause != nil {
		return cause
	}
	return causeOf(r.dctx)
}
