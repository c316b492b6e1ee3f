package executor

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Generators run inline on the worker goroutine that took their node: no
// goroutine and no timer per attempt. A watch keeps the deadlines of the
// calls in flight in a heap, under one timer. When a call passes its
// deadline, or the run is cancelled, the watch cancels the call's context
// and abandons the call: a rescuer goroutine takes over the node's work
// (and then the worker's place), while the abandoned goroutine, when its
// generator finally returns, throws the result away and exits. So a
// generator that ignores its context never holds the run.

// attemptCtx is a call's context: the run's values, the call's deadline,
// and a Done channel made only if the generator asks for it. Its parent
// is its run's context, reached through run: one pointer, not an
// interface, so that a call's context and reporter (see callState) fit a
// smaller size class.
type attemptCtx struct {
	run      *run
	deadline time.Time
	mu       sync.Mutex
	done     chan struct{}
	err      error
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *attemptCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	deadline := c.deadline
	c.mu.Unlock()
	if d, ok := c.run.ctx.Deadline(); ok && d.Before(deadline) {
		return d, true
	}
	return deadline, true
}

func (c *attemptCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *attemptCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *attemptCtx) Value(key any) any { return c.run.ctx.Value(key) }

func (c *attemptCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
}

// The states of an inflight call, in the low bits of its state word; the
// bits above count the calls made with the same inflight, so that a
// deadline that fires for one call can never abandon the next.
const (
	callRunning uint64 = iota
	callReturned
	callAbandoned
	callStateBits = 2
	callStateMask = 1<<callStateBits - 1
)

// inflight is one generator call under way. A worker reuses its inflight
// for the first attempts of the nodes it runs, one after another.
type inflight struct {
	// ctx is the call's context, new for each call: it ends when the call
	// returns, and a generator may keep it (and watch it) after that.
	ctx      *attemptCtx
	timeout  time.Duration
	deadline time.Time
	index    int // in the watch's heap; -1 when out
	// grace is how long the call may still take to return once its
	// context is cancelled at the run's cancel, and at its timeout too
	// when timeoutGrace says so (a bulk call's), before it is abandoned
	// (see callGrace): so that the outputs it has made, and the provider
	// billed, are kept. graced says that it is in its grace. Guarded by
	// the watch's mu while the call is in its heap.
	grace        time.Duration
	timeoutGrace bool
	graced       bool
	state        atomic.Uint64
	begun        uint64 // the state word of the call under way
	// wg is the group of the goroutine making the call; a rescuer takes
	// its place in it.
	wg *sync.WaitGroup
	// rescuer continues the node's work after the call was abandoned.
	rescuer rescuer
	// held and weight are the executor's calls in flight that the call
	// took for its batch key (Options.Limits); whichever of end and
	// abandon wins the call gives them back.
	held   *semaphore.Weighted // of a limit
	weight int64
	// node and kind name a single node's call, for the log of the calls
	// abandoned that still run at the end of the run; node is "" for a
	// bulk call, which batch (its batch key) and kinds (those of its
	// nodes) name instead.
	node, kind string
	batch      string
	kinds      []string
}

// rescuer continues a node's work after its call was abandoned with err,
// on a new goroutine. It reports whether that goroutine then ended
// normally, so that it leaves its group.
type rescuer interface {
	rescue(err error) bool
}

// rescueFunc adapts a function to a rescuer.
type rescueFunc func(error) bool

func (f rescueFunc) rescue(err error) bool { return f(err) }

// watch is a run's deadline heap.
type watch struct {
	r         *run
	mu        sync.Mutex
	calls     callHeap
	timer     *time.Timer
	armed     time.Time
	cancelled error // the run's cause, once cancelled
	// late holds the calls abandoned (at their timeout, or at a cancel)
	// whose generator has not returned yet: those that ignore their
	// context, which the end of the run names (see stillRunning). It
	// counts each inflight's entries, added and taken out by abandon and
	// end (see forgetLate), as an abandon that loses its swap to a return
	// may take its entry out after another call of the same inflight put
	// one in.
	late map[*inflight]int
}

type callHeap []*inflight

// lateCall is a call taken out of the heap, with its state word and its
// timeout then. Once it is out of the heap, its inflight may serve another
// call at any time: only the state word, compared and swapped, says
// whether it is still the same call.
type lateCall struct {
	c       *inflight
	word    uint64
	timeout time.Duration
}

func (h callHeap) Len() int           { return len(h) }
func (h callHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h callHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *callHeap) Push(x any) {
	c := x.(*inflight)
	c.index = len(*h)
	*h = append(*h, c)
}
func (h *callHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.index = -1
	return c
}

// begin registers c, a call that the calling goroutine, a member of wg, is
// about to make at now, with ctx, new and zero, as its context, and with
// grace, at a cancel, and at its timeout too if timeoutGrace (see
// inflight.grace). c is new, or a worker's inflight whose last
// call returned. Once the run is cancelled it refuses the call and
// returns the run's cause: the caller must not make it, so that nothing
// starts after a cancel.
func (w *watch) begin(c *inflight, ctx *attemptCtx, now time.Time, timeout, grace time.Duration, timeoutGrace bool, wg *sync.WaitGroup, r rescuer) error {
	c.timeout, c.deadline, c.wg, c.rescuer, c.index = timeout, now.Add(timeout), wg, r, -1
	c.grace, c.timeoutGrace, c.graced = grace, timeoutGrace, false
	ctx.run, ctx.deadline = w.r, c.deadline
	c.ctx = ctx
	c.begun = (c.state.Load()>>callStateBits + 1) << callStateBits // callRunning, next count
	c.state.Store(c.begun)
	w.mu.Lock()
	if cause := w.cancelled; cause != nil || w.r.ctx.Err() != nil {
		w.mu.Unlock()
		if cause == nil {
			// Cancelled, and cancelAll is on its way.
			cause = w.r.cause()
		}
		return cause
	}
	// The call counts until its goroutine passes end, even when it is
	// abandoned meanwhile: the end of a run waits for it (up to its grace).
	// It is counted for the run and for the executor's Close.
	w.r.attempts.add()
	w.r.e.calls.add()
	heap.Push(&w.calls, c)
	if w.timer == nil {
		w.timer = time.AfterFunc(timeout, w.fire)
		w.armed = c.deadline
	} else if c.deadline.Before(w.armed) {
		w.timer.Reset(c.deadline.Sub(now))
		w.armed = c.deadline
	}
	w.mu.Unlock()
	return nil
}

// end records that the call returned. It reports false when the call was
// abandoned meanwhile: the caller must then drop the result, log its
// panic if it was one (latePanic), call ended, and exit. The call counts
// for Close until ended, so that Close returns only once the executor
// uses the host's Logger no more for it.
func (w *watch) end(c *inflight) bool {
	if !c.state.CompareAndSwap(c.begun, c.begun|callReturned) {
		w.forgetLate(c) // after abandon's entry, which came before its swap
		return false
	}
	defer w.ended()
	// The call's context ends with the call, as an HTTP request's does
	// with its handler: a goroutine the generator started to watch it
	// ends, whether it asked for Done before the return or after. The
	// next call of this inflight gets a context of its own (see begin).
	c.ctx.cancel(context.Canceled)
	c.release()
	w.mu.Lock()
	if c.index >= 0 {
		heap.Remove(&w.calls, c.index)
	}
	w.mu.Unlock()
	return true
}

// ended counts a call out of its run's and the executor's calls in
// flight. end calls it for a call that returned in time; the caller of an
// end that reported false calls it itself.
func (w *watch) ended() {
	w.r.attempts.done()
	w.r.e.calls.done()
}

// fire abandons the calls past their deadline, after their grace for
// those that have one, and re-arms the timer for the earliest one left.
// The timer is not re-armed when a call ends, so it may fire early; it
// then just re-arms.
func (w *watch) fire() {
	now := time.Now()
	var late []lateCall
	var graced []*attemptCtx
	w.mu.Lock()
	for len(w.calls) > 0 && !w.calls[0].deadline.After(now) {
		c := heap.Pop(&w.calls).(*inflight)
		word := c.state.Load()
		if c.grace > 0 && c.timeoutGrace && !c.graced && word&callStateMask == callRunning {
			// Timed out: its context ends now, and it may still return
			// what it has made within its grace.
			c.graced, c.deadline = true, now.Add(c.grace)
			heap.Push(&w.calls, c)
			graced = append(graced, c.ctx)
			continue
		}
		late = append(late, lateCall{c, word, c.timeout})
	}
	if len(w.calls) > 0 && w.timer != nil {
		w.armed = w.calls[0].deadline
		w.timer.Reset(w.armed.Sub(now))
	} else {
		w.armed = now.Add(365 * 24 * time.Hour)
	}
	cancelled := w.cancelled // a call in its grace after a cancel
	w.mu.Unlock()
	for _, ctx := range graced {
		ctx.cancel(context.DeadlineExceeded)
	}
	for _, l := range late {
		var err error = &TimeoutError{Timeout: l.timeout}
		if cancelled != nil {
			err = cancelled
		}
		w.abandon(l, err, context.DeadlineExceeded)
	}
}

// callGrace is the grace of a call with timeout (see inflight.grace), a
// bulk call's or a single node's: a tenth of it, at most a second.
func callGrace(timeout time.Duration) time.Duration {
	return min(timeout/10, time.Second)
}

// timedOut reports whether c, a call that returned, was in its grace:
// it timed out, or the run was cancelled.
func (w *watch) timedOut(c *inflight) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return c.graced
}

// cancelAll abandons every call in flight with the run's cause; begin
// refuses every later one. A call with a grace (see callGrace: a single
// node's as a bulk call's) is not abandoned at once: its context ends, and it has its grace
// to return what it has made (a bulk call's as at its timeout), so that
// the outputs it made and paid for are kept; one already in the grace of
// its timeout keeps it. A single node's grace ends at its deadline at
// the latest, as it would have been abandoned then without the cancel.
// Once its grace has passed it is abandoned with the cause too. The
// grace ends with Options.StoreTimeout, the bound of the run's store
// calls from the cancel on (see run.boundStoreCalls): an output returned
// later could not be stored, and waiting for it would hold the run past
// its documented bound. A run stopped because its graph was replaced or
// deleted gives no grace, and takes a call in its grace back from it: the
// outputs would be superseded, never used by a resume, so every call is
// abandoned at once.
func (w *watch) cancelAll(cause error) {
	now := time.Now()
	stores := now.Add(w.r.e.opts.StoreTimeout)
	graceful := !stoppedGone(cause)
	w.mu.Lock()
	if w.cancelled != nil {
		w.mu.Unlock()
		return
	}
	w.cancelled = cause
	calls := make([]lateCall, 0, len(w.calls))
	var kept []*inflight
	var graced []*attemptCtx
	for len(w.calls) > 0 {
		c := heap.Pop(&w.calls).(*inflight)
		word := c.state.Load()
		// A call whose timeout gives no grace (a single node's) is
		// abandoned at its deadline still: the grace does not outlast it.
		if graceful && c.grace > 0 && word&callStateMask == callRunning && (c.timeoutGrace || c.deadline.After(now)) {
			if !c.graced {
				end := now.Add(c.grace)
				if !c.timeoutGrace && c.deadline.Before(end) {
					end = c.deadline
				}
				c.graced, c.deadline = true, end
				graced = append(graced, c.ctx)
			}
			if c.deadline.After(stores) {
				c.deadline = stores
			}
			kept = append(kept, c)
			continue
		}
		calls = append(calls, lateCall{c, word, c.timeout})
	}
	for _, c := range kept {
		heap.Push(&w.calls, c)
	}
	if len(w.calls) > 0 && w.timer != nil && w.calls[0].deadline.Before(w.armed) {
		w.armed = w.calls[0].deadline
		w.timer.Reset(w.armed.Sub(now))
	}
	w.mu.Unlock()
	for _, ctx := range graced {
		ctx.cancel(context.Canceled)
	}
	for _, l := range calls {
		w.abandon(l, cause, context.Canceled)
	}
}

// stoppedGone reports whether cause, a run's, says that its graph was
// replaced or deleted: the run's outputs would be superseded then, and no
// resume could use them.
func stoppedGone(cause error) bool {
	return errors.Is(cause, ErrGraphReplaced) || errors.Is(cause, ErrGraphDeleted)
}

// abandon gives up on a call: its context is cancelled, and a rescuer
// takes over the node's work and its goroutine's place. The state word
// was read when the call left the heap: a call that returned meanwhile,
// or an inflight that already serves another call, is left alone.
func (w *watch) abandon(l lateCall, err, ctxErr error) {
	c := l.c
	if l.word&callStateMask != callRunning {
		return // it returned just now
	}
	// Counted as late before the swap, so that its end, which comes
	// after the swap, finds it to forget.
	w.mu.Lock()
	if w.late == nil {
		w.late = map[*inflight]int{}
	}
	w.late[c]++
	w.mu.Unlock()
	if !c.state.CompareAndSwap(l.word, l.word|callAbandoned) {
		w.forgetLate(c)
		return // it returned just now
	}
	// The call's slots go back now: a generator that ignores its context
	// must not hold them.
	c.release()
	c.ctx.cancel(ctxErr)
	c.wg.Add(1) // the rescuer
	go func() {
		if c.rescuer.rescue(err) {
			c.wg.Done()
		}
	}()
	c.wg.Done() // the abandoned goroutine leaves the group
}

// forgetLate takes an entry of c out of w.late.
func (w *watch) forgetLate(c *inflight) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.late[c]--; w.late[c] <= 0 {
		delete(w.late, c)
	}
}

// stillRunning returns the calls abandoned whose generators have not
// returned: their count, and the sorted node IDs (a bulk call's as "bulk
// call of batch key K"; a node whose attempts both still run once) and
// kinds of them (each of a bulk call's), at most maxLoggedNodes each, for
// the log.
func (w *watch) stillRunning() (calls int, nodes, kinds []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	for c := range w.late {
		node, ks := c.node, c.kinds
		if node == "" {
			node = "bulk call of batch key " + c.batch
		} else {
			ks = []string{c.kind}
		}
		nodes = append(nodes, node)
		for _, k := range ks {
			if k != "" && !seen[k] {
				seen[k] = true
				kinds = append(kinds, k)
			}
		}
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	slices.Sort(kinds)
	return len(w.late), nodes[:min(len(nodes), maxLoggedNodes)], kinds[:min(len(kinds), maxLoggedNodes)]
}

// stop stops the timer at the end of a round.
func (w *watch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// protect calls f, turning a panic into a *PanicError.
func protect[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	v, err = f()
	return v, hostError(err, "")
}

// hostError returns err, an error that host code returned (a
// generator's, a bulk call's outcome's, a validator's, a store's), or a
// *PanicError (In in) in its place when its own methods panic, as those of a typed
// nil pointer that read its fields do (var e *MyErr; return e), or
// when a *PanicError that errors.As finds in it is a nil one: the
// executor calls its Error, Is and As later, to report and classify the
// attempt, and reads the In of such a *PanicError (retryable, and
// latePanic for a call abandoned meanwhile, even when a permanent error
// in it settles retryable first), where a panic would end the host's
// process.
func hostError(err error, in string) (out error) {
	if err == nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			out = &PanicError{Value: fmt.Sprintf("the error it returned, a %T, panicked in its methods: %v", err, p),
				Stack: debug.Stack(), In: in}
		}
	}()
	_ = err.Error()
	_ = retryable(err)
	_ = errors.Is(err, context.Canceled)
	if pe := (*PanicError)(nil); errors.As(err, &pe) {
		_ = pe.In // a nil one panics here, as in latePanic
	}
	return err
}
