package progress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// BufferedOptions configures a [Buffered] sink. The zero value gives the
// defaults.
type BufferedOptions struct {
	// Fallback receives the events that the downstream sink did not
	// take: those the queue had to let go when full, those refused with
	// an error that retrying cannot fix, those a positive Attempts gave
	// up on, those still waiting when Close's ctx ended, and those
	// published after Close. It gets them in the order they were
	// published. It should be fast and local: the dropped events wait
	// for it (see BufferedStats.Lost).
	// Default: a [Slog] sink on Logger.
	Fallback Sink
	// Logger reports downstream failures and drops. Default: slog.Default().
	Logger *slog.Logger
	// QueueSize bounds the events waiting for the downstream sink. When it
	// is full, the oldest waiting event is dropped (counted in
	// BufferedStats.Dropped) and goes to the Fallback, so that the run's
	// latest state (and its final event) still goes out downstream.
	// Default: 10000.
	QueueSize int
	// BatchSize bounds the events handed to one downstream Publish.
	// Default: 256.
	BatchSize int
	// Timeout bounds one downstream Publish call, through its context.
	// A sink that ignores its context holds the goroutine until it
	// returns (the queue then fills, and drops its oldest events), except
	// at Close, which abandons it when its ctx ends. Default: 5s.
	Timeout time.Duration
	// Attempts is how many times a batch is offered to the downstream sink
	// before it goes to the Fallback. 0, the default, offers it until the
	// sink takes it, while the queue has room: during an outage shorter
	// than the queue can hold, the batch and what is published behind it
	// wait, and reach the sink in order once it is back; once the queue
	// is full, the batch goes to the Fallback (and so do the oldest
	// waiting events that the queue drops), and the next batch is tried.
	// A positive value offers each batch that many times, RetryDelay
	// apart, then hands it to the Fallback, full queue or not (as before
	// 0 was the default). Either way an error that retrying cannot fix
	// sends the batch to the Fallback at once: one wrapping
	// [ErrInvalidEvent] (the sink refused an event for good; the batch is
	// then halved, so that the events the sink does take still reach it),
	// one wrapping [ErrClosed], and a panic of the sink. Close's ctx ends the retries too. Retrying is safe for a
	// sink that ignores duplicate Seqs, as every sink of this module does.
	// Any other error counts as an outage: with 0, a sink that keeps
	// refusing some events of a batch for good, with an error that wraps
	// neither (a sink of a host's that does not mark such refusals with
	// ErrInvalidEvent, as this module's sinks do), holds every newer event
	// back until the queue fills.
	// A negative value counts as 0. Default: 0.
	Attempts int
	// RetryDelay is the pause before the first retry of a batch. With a
	// positive Attempts it is the pause before each retry; with Attempts
	// 0 the pause doubles at each retry up to MaxRetryDelay, and each is
	// jittered (a random duration between half the pause and the pause),
	// so that hosts do not retry in step. Default: 50ms.
	RetryDelay time.Duration
	// MaxRetryDelay caps the growing pause between retries with Attempts
	// 0; it bounds how long after an outage ends the batch waits to be
	// offered again. A value below RetryDelay counts as RetryDelay.
	// Default: 5s.
	MaxRetryDelay time.Duration
}

// BufferedStats is a snapshot of a [Buffered] sink's counters.
type BufferedStats struct {
	// Queued is the number of events waiting in the queue for the
	// downstream sink: not those of the batch being offered to it (at
	// most BatchSize), nor the dropped events waiting for the Fallback.
	Queued int
	// Published counts the events the downstream sink accepted.
	Published uint64
	// Batches counts the downstream Publish calls that succeeded.
	Batches uint64
	// Errors counts the downstream Publish calls that failed.
	Errors uint64
	// Fallback counts the events handed to the fallback sink.
	Fallback uint64
	// FallbackErrors counts the events that the fallback sink also failed
	// to take; they are lost.
	FallbackErrors uint64
	// Dropped counts the events dropped because the queue was full (or,
	// after Close, the list of events published after it). Those the
	// Fallback then gets are counted in Fallback (or FallbackErrors) as
	// well; the others in Lost.
	Dropped uint64
	// Lost counts the dropped events that did not reach the Fallback
	// either: those waiting for it were QueueSize already (the goroutine
	// was held meanwhile by a downstream call, by the pauses between the
	// attempts of a positive Attempts, or by the fallback), or they were
	// published after Close, while the queue drained. Every event published is
	// counted once in Published, Fallback, FallbackErrors or Lost, once
	// it has left the Buffered.
	Lost uint64
}

// Buffered is a [Sink] that decouples a run from a slow or failing sink:
// Publish only queues the events and returns, and one goroutine, owned by
// the Buffered and ended by [Buffered.Close], hands them downstream in
// batches of what accumulated while the previous batch was being written
// (each downstream call runs in a goroutine of its own, so that Close can
// stop waiting for it).
// When the downstream sink fails (returns an error or panics), the error
// counter rises and, unless the failure is one that retrying cannot fix
// (a panic is), the batch is retried, with a growing pause, while
// newer events wait behind it (see [BufferedOptions].Attempts): an outage
// shorter than the queue can hold loses nothing. What the queue must let
// go when full (the oldest events), what the sink refuses for good, and
// what is left when Close's ctx ends go to the fallback sink; the caller
// never sees the failure. Memory is bounded by QueueSize events waiting
// and the batch in flight, as many again dropped and waiting for the
// fallback (twice as many while a slow fallback takes the previous
// ones), and as many again published during Close, while the queue
// drains; what does not fit is dropped and counted (Lost). Event order
// is kept, downstream and in the
// fallback. A downstream call that Close abandons counts as failed,
// and its batch goes to the fallback: if the call succeeds after all,
// those events reach both sinks, and Stats counts them as Fallback only.
//
// A Buffered is safe for concurrent use. Publish ignores ctx, so that a
// run's final event is queued even when the run's context was cancelled.
type Buffered struct {
	next       Sink
	fallback   Sink
	logger     *slog.Logger
	queueSize  int
	batchSize  int
	timeout    time.Duration
	attempts   int
	retryDelay time.Duration
	maxDelay   time.Duration

	ctx    context.Context // the worker's; cancelled when Close gives up waiting
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: "the queue is not empty"
	stop   chan struct{} // closed by Close: drain, then exit
	exited chan struct{} // closed by the worker on exit

	// Events accepted by Publish are numbered 0, 1, 2, ... in the order
	// accepted. queue holds [head, enqueued); overflow, the events the
	// full queue dropped for the fallback, holds [head-len(overflow),
	// head); the worker's events in flight (those it took from overflow,
	// then its batch) hold [inflightAt, inflightAt+inflight), older than
	// both. An event is settled once it was published, handed to the
	// fallback or lost: everything before the oldest of these ranges.
	mu         sync.Mutex
	queue      []Event
	overflow   []Event // dropped from the full queue, for the worker to hand to the fallback
	closed     bool
	late       []Event // published after Close while the worker drains; for the fallback, after it
	drained    bool    // the worker is done with the fallback: Publish calls it
	dropping   bool
	enqueued   uint64        // events accepted by Publish, ever
	head       uint64        // the number of queue[0]
	inflightAt uint64        // the number of the batch's first event
	inflight   int           // the size of the batch in flight, 0 if none
	batch      []Event       // the batch in flight, while inflight > 0; the worker's, read under mu only
	progress   chan struct{} // closed and replaced when the oldest unsettled event moves
	stats      BufferedStats
}

// NewBuffered returns a Buffered feeding next, and starts its goroutine.
// Call [Buffered.Close] to flush and stop it.
func NewBuffered(next Sink, opts BufferedOptions) *Buffered {
	if next == nil {
		panic("progress: NewBuffered with a nil sink")
	}
	b := &Buffered{
		next:       next,
		fallback:   opts.Fallback,
		logger:     opts.Logger,
		queueSize:  opts.QueueSize,
		batchSize:  opts.BatchSize,
		timeout:    opts.Timeout,
		attempts:   opts.Attempts,
		retryDelay: opts.RetryDelay,
		maxDelay:   opts.MaxRetryDelay,
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		exited:     make(chan struct{}),
		progress:   make(chan struct{}),
	}
	if b.logger == nil {
		b.logger = slog.Default()
	}
	if b.fallback == nil {
		b.fallback = NewSlog(b.logger, SlogOptions{})
	}
	if b.queueSize <= 0 {
		b.queueSize = 10000
	}
	if b.batchSize <= 0 {
		b.batchSize = 256
	}
	if b.timeout <= 0 {
		b.timeout = 5 * time.Second
	}
	if b.attempts < 0 {
		b.attempts = 0
	}
	if b.retryDelay <= 0 {
		b.retryDelay = 50 * time.Millisecond
	}
	if b.maxDelay <= 0 {
		b.maxDelay = 5 * time.Second
	}
	b.maxDelay = max(b.maxDelay, b.retryDelay)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	go b.run()
	return b
}

// Publish queues events and returns at once. An invalid event fails the
// whole call with [ErrInvalidEvent]; downstream failures never reach the
// caller. After Close, events go to the fallback sink and Publish
// returns [ErrClosed]: while Close still drains the queue, they wait (at
// most QueueSize of them, the oldest dropped) to follow, in order, the
// queued events that the fallback may yet get.
func (b *Buffered) Publish(_ context.Context, events ...Event) error {
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	if len(events) == 0 {
		return nil
	}
	b.mu.Lock()
	if b.closed {
		if !b.drained {
			// The worker may still hand events to the fallback: it
			// hands these after them, so that the fallback gets every
			// event in order.
			b.late = appendBounded(b.late, events, b.queueSize, &b.stats)
			b.mu.Unlock()
			return ErrClosed
		}
		b.mu.Unlock()
		b.toFallback(events)
		return ErrClosed
	}
	b.enqueued += uint64(len(events))
	b.queue = append(b.queue, events...)
	var warn uint64 // the drops so far, if this call starts an episode of drops
	if over := len(b.queue) - b.queueSize; over > 0 {
		// The oldest go to the fallback, through the worker, after the
		// batch it holds (older still); they wait at most QueueSize.
		b.overflow = append(b.overflow, b.queue[:over]...)
		clear(b.queue[:over])
		b.queue = b.queue[over:]
		b.head += uint64(over)
		b.stats.Dropped += uint64(over)
		if lost := len(b.overflow) - b.queueSize; lost > 0 {
			clear(b.overflow[:lost])
			b.overflow = b.overflow[lost:]
			b.stats.Lost += uint64(lost)
			b.progressLocked()
		}
		if !b.dropping {
			b.dropping = true
			warn = b.stats.Dropped
		}
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	if warn > 0 {
		// Logged without the lock: a slow handler delays this call only.
		b.logger.Warn("progress: buffered sink queue full, handing the oldest events to the fallback",
			"queueSize", b.queueSize, "dropped", warn)
	}
	return nil
}

// Flush waits until every event published before the call has been
// handed downstream or to the fallback, or lost (see
// [BufferedStats].Lost). During an outage it waits for the downstream
// sink to be back, or for the full queue to let the events go (see
// [BufferedOptions].Attempts). It returns context.Cause(ctx) if ctx ends
// first.
func (b *Buffered) Flush(ctx context.Context) error {
	b.mu.Lock()
	target := b.enqueued
	b.mu.Unlock()
	for {
		b.mu.Lock()
		// Events settle in order, except that drops from the queue may
		// settle newer events before the batch in flight: count from the
		// oldest unsettled event, not how many have settled.
		done, ch := b.unsettledLocked() >= target, b.progress
		b.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Close stops accepting events, hands the queued ones downstream and stops
// the goroutine. During an outage it keeps offering them to the
// downstream sink (as Attempts says) until ctx ends: give it a ctx with a
// deadline. If ctx ends first, the write or pause in progress is cancelled and
// waited for 100 ms more at most (a downstream sink that ignores its
// context is then abandoned: its call's goroutine ends when the call
// returns), the events still queued go to the fallback sink, and Close
// returns context.Cause(ctx) after the goroutine has exited. Past ctx's
// end, Close waits only for the fallback and that grace, never longer for
// the downstream sink. Close does not close the downstream sink. Calling
// it again waits for the same exit, and returns nil once the goroutine
// has exited.
func (b *Buffered) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.mu.Unlock()
	select {
	case <-b.exited:
		// Exited already (an earlier Close): nothing to give up on,
		// whatever ctx says. A select would pick at random.
		return nil
	default:
	}
	select {
	case <-b.exited:
		return nil
	case <-ctx.Done():
		b.cancel()
		<-b.exited
		return context.Cause(ctx)
	}
}

// LastEvent returns the newest event of runID that the Buffered was
// given: the downstream sink's answer, if it implements
// [LastEventReader], unless an event of the run still waits in the
// Buffered's queue, or is being handed downstream, with a higher Seq:
// that one wins, since the sink does not hold it yet. If the sink does
// not implement LastEventReader, or answers [ErrUnsupported], so does
// LastEvent, whatever waits; a sink's error is returned, prefixed with
// "buffered sink:". A waiting event counts even if the sink then fails
// to take it (it goes to the Fallback) or the queue drops it. It costs
// the sink's lookup and a scan of the events waiting. LastEvent
// implements LastEventReader, so that a host that publishes a run's last
// event itself (the executor, for a run it finds interrupted) can number
// it; it is safe for concurrent use, and after Close.
func (b *Buffered) LastEvent(ctx context.Context, runID string) (Event, bool, error) {
	lr, ok := b.next.(LastEventReader)
	if !ok {
		return Event{}, false, fmt.Errorf("%w: buffered sink: its downstream sink does not implement LastEventReader", ErrUnsupported)
	}
	// The queue is read before the sink: an event that moves from one to
	// the other meanwhile is then found in the sink, never missed.
	b.mu.Lock()
	waiting, found := newestOf(b.queue, runID)
	if !found && b.inflight > 0 {
		waiting, found = newestOf(b.batch, runID)
	}
	b.mu.Unlock()
	e, ok, err := lr.LastEvent(ctx, runID)
	switch {
	case err != nil:
		return Event{}, false, fmt.Errorf("buffered sink: %w", err)
	case found && (!ok || waiting.Seq > e.Seq):
		return waiting, true, nil
	}
	return e, ok, nil
}

// newestOf returns the event of runID with the highest Seq in events.
func newestOf(events []Event, runID string) (Event, bool) {
	var last Event
	for i := len(events) - 1; i >= 0; i-- {
		if e := events[i]; e.RunID == runID && e.Seq > last.Seq {
			last = e
		}
	}
	return last, last.Seq != 0
}

// Stats returns a snapshot of the counters.
func (b *Buffered) Stats() BufferedStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.Queued = len(b.queue)
	return s
}

// run is the worker: the only goroutine a Buffered starts.
func (b *Buffered) run() {
	defer close(b.exited)
	defer b.cancel()
	batch := make([]Event, 0, b.batchSize)
	for {
		b.mu.Lock()
		// What the full queue dropped is older than the queue and newer
		// than the batch before: it goes to the fallback now, in order.
		spill := b.overflow
		b.overflow = nil
		n := min(len(b.queue), b.batchSize)
		if b.ctx.Err() != nil {
			n = len(b.queue) // Close gave up: the rest to the fallback in one call
		}
		batch = append(batch[:0], b.queue[:n]...)
		clear(b.queue[:n])
		b.queue = b.queue[n:]
		b.inflightAt, b.inflight, b.batch = b.head-uint64(len(spill)), len(spill)+n, batch
		b.head += uint64(n)
		if len(b.queue) == 0 {
			b.queue = nil
			b.dropping = false
		}
		b.mu.Unlock()
		if len(spill) > 0 {
			b.toFallback(spill)
		}
		if n > 0 && b.deliver(batch) {
			// An abandoned call may still read batch: never reuse it.
			batch = make([]Event, 0, b.batchSize)
		}
		if n > 0 || len(spill) > 0 {
			b.mu.Lock()
			b.inflight, b.batch = 0, nil
			b.progressLocked()
			b.mu.Unlock()
			continue
		}
		select {
		case <-b.wake:
			continue
		case <-b.stop:
		}
		// Closed: take whatever Publish queued before Close, then
		// hand the fallback what was published since, and exit.
		b.mu.Lock()
		empty := len(b.queue) == 0 && len(b.overflow) == 0
		b.mu.Unlock()
		if empty {
			b.drainLate()
			return
		}
	}
}

// deliver offers batch to the downstream sink, as Attempts says, then to
// the fallback. It reports whether it abandoned a downstream call that
// was still running when Close gave up: that call may still read batch.
func (b *Buffered) deliver(batch []Event) (abandoned bool) {
	for attempt := 1; b.ctx.Err() == nil; attempt++ {
		if attempt > 1 && !b.pause(attempt-1) {
			break // Close gave up, or the queue is full
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
		ab, err := b.publishNext(ctx, batch)
		cancel()
		abandoned = abandoned || ab
		if err == nil {
			b.mu.Lock()
			b.stats.Published += uint64(len(batch))
			b.stats.Batches++
			b.mu.Unlock()
			return abandoned
		}
		b.mu.Lock()
		b.stats.Errors++
		b.mu.Unlock()
		if permanent(err) {
			if errors.Is(err, ErrInvalidEvent) && len(batch) > 1 && !ab {
				// The sink refused the whole call for some of its
				// events, and stored none: halve it, so that the
				// others still reach the sink, in order. The event
				// found is warned of below; the halving is detail.
				b.logger.Debug("progress: buffered sink: downstream refused an event; splitting the batch",
					"events", len(batch), "firstSeq", batch[0].Seq, "error", err)
				h := len(batch) / 2
				first := b.deliver(batch[:h])
				second := b.deliver(batch[h:])
				return abandoned || first || second
			}
			b.logger.Warn("progress: buffered sink: downstream refused the batch; handing it to the fallback",
				"attempt", attempt, "events", len(batch), "runID", batch[0].RunID, "firstSeq", batch[0].Seq, "error", err)
			break
		}
		b.logger.Warn("progress: buffered sink: downstream publish failed",
			"attempt", attempt, "events", len(batch), "firstSeq", batch[0].Seq, "error", err)
		if b.attempts > 0 && attempt >= b.attempts {
			break
		}
		if b.attempts == 0 && b.queueFull() {
			b.logger.Warn("progress: buffered sink: queue full during a downstream failure; handing the oldest batch to the fallback",
				"queueSize", b.queueSize, "events", len(batch), "firstSeq", batch[0].Seq)
			break
		}
	}
	b.toFallback(batch)
	return abandoned
}

// errSinkPanicked marks the error of a sink that panicked.
var errSinkPanicked = errors.New("sink panicked")

// permanent reports whether err is one that retrying the same call
// cannot fix: a refused event, a closed sink, a panic.
func permanent(err error) bool {
	return errors.Is(err, ErrInvalidEvent) || errors.Is(err, ErrClosed) || errors.Is(err, errSinkPanicked)
}

// queueFull reports whether the queue has no room left: it is full, or
// dropped events already.
func (b *Buffered) queueFull() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue) >= b.queueSize || len(b.overflow) > 0
}

// publishNext publishes batch to the downstream sink from a goroutine of
// its own, and waits for it until Close gives up: then a sink that
// ignores ctx is abandoned (its goroutine ends when it returns), so that
// it cannot hold Close.
func (b *Buffered) publishNext(ctx context.Context, batch []Event) (abandoned bool, err error) {
	done := make(chan error, 1)
	go func() { done <- publishRecover(ctx, b.next, batch) }()
	select {
	case err = <-done:
		return false, err
	case <-b.ctx.Done():
	}
	// ctx, under b.ctx, is cancelled too: a sink that honours it returns
	// at once, and is waited for, so that it is not still writing when
	// its client is closed after Close.
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case err = <-done:
		return false, err
	case <-t.C:
		return true, fmt.Errorf("abandoned when Close gave up: %w", context.Cause(b.ctx))
	}
}

// closeGrace is how long Close, once its ctx ended, waits for the
// downstream call under way, whose context it cancelled, before it
// abandons the call.
const closeGrace = 100 * time.Millisecond

// drainLate hands the events published after Close to the fallback,
// until none is left; Publish then calls the fallback itself.
func (b *Buffered) drainLate() {
	for {
		b.mu.Lock()
		late := b.late
		b.late = nil
		b.drained = len(late) == 0
		b.mu.Unlock()
		if len(late) == 0 {
			return
		}
		b.toFallback(late)
	}
}

// appendBounded appends events to q and drops the oldest of q beyond
// limit, counting them in stats as Dropped and Lost.
func appendBounded(q, events []Event, limit int, stats *BufferedStats) []Event {
	q = append(q, events...)
	if over := len(q) - limit; over > 0 {
		clear(q[:over])
		q = q[over:]
		stats.Dropped += uint64(over)
		stats.Lost += uint64(over)
	}
	return q
}

// pause waits before the retry that follows the failed attempt of that
// number: RetryDelay with a positive Attempts; else a jittered pause that
// doubles from RetryDelay up to MaxRetryDelay, cut short when the queue
// fills. It reports false if the worker is cancelled, or the queue is
// full.
func (b *Buffered) pause(attempt int) bool {
	d := b.retryDelay
	if b.attempts == 0 {
		for i := 1; i < attempt && d < b.maxDelay; i++ {
			d *= 2
		}
		d = min(d, b.maxDelay)
		d = d/2 + rand.N(d/2+1)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-b.ctx.Done():
			return false
		case <-b.wake:
			// Publish queued events: the pause ends early if they fill
			// the queue. (The worker finds them in the queue after the
			// batch, without the wake-up.)
			if b.attempts == 0 && b.queueFull() {
				return false
			}
		}
	}
}

func (b *Buffered) toFallback(events []Event) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	err := publishRecover(ctx, b.fallback, events)
	b.mu.Lock()
	if err != nil {
		b.stats.FallbackErrors += uint64(len(events))
	} else {
		b.stats.Fallback += uint64(len(events))
	}
	b.mu.Unlock()
	if err != nil {
		b.logger.Error("progress: buffered sink: fallback publish failed; events lost",
			"events", len(events), "firstSeq", events[0].Seq, "error", err)
	}
}

// unsettledLocked returns the number of the oldest event not yet
// settled, or enqueued if all are. Called with b.mu held.
func (b *Buffered) unsettledLocked() uint64 {
	if b.inflight > 0 {
		return b.inflightAt
	}
	return b.head - uint64(len(b.overflow))
}

// progressLocked wakes the Flush calls waiting for events to settle.
// Called with b.mu held.
func (b *Buffered) progressLocked() {
	close(b.progress)
	b.progress = make(chan struct{})
}
