package executor

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// quota is one batch key's rate, shared by every run of an executor: a
// provider's quota does not reset because two lectures are generated at
// once. Each run's scheduling machine applies the same rate to the run's
// own starts, deterministically; the quota then spaces the starts of all
// runs together. A call whose run let it start waits here, holding its
// slot, until the quota allows all its nodes to start.
//
// A call takes the starts of all its nodes at once, each stamped with the
// moment the call starts, so that the stamps are the nodes' real starts:
// taken one by one, a bulk call that got its first starts early and then
// waited for its last started all its nodes late, beside the next call,
// which the early stamps no longer held back. The calls waiting take
// their turns in the order they came, so that a bulk call is not starved
// by single calls that each need one start.
type quota struct {
	rate Rate
	mu   sync.Mutex
	// starts holds the start times still in the window, oldest first:
	// at most rate.Starts, and no more than the starts of the last Per,
	// however large rate.Starts is.
	starts []time.Time
	// queue holds the calls waiting, in the order they came: each one's
	// channel is closed when it heads the queue, and it then takes its
	// starts once the window allows them.
	queue []chan struct{}
	// freed, made by the call that heads the queue when it must wait, is
	// closed when starts are given back (see taken.giveBack), so that it
	// looks again at once rather than when the starts it waited for leave
	// the window.
	freed chan struct{}
}

// taken is the starts that a call took of a quota (none when q is nil):
// stamped at, n of them.
type taken struct {
	q  *quota
	at time.Time
	n  int
}

// giveBack gives back the starts of a call that was never made: its run
// was cancelled after it took them, before its generator was called. A
// quota counts provider calls: kept, they would hold back, for a whole
// window, the calls of a resume or of the executor's other runs. Those
// that have left the window meanwhile count no more anyway.
func (t taken) giveBack() {
	q := t.q
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	back := 0
	for i := len(q.starts) - 1; i >= 0 && back < t.n; i-- {
		if q.starts[i].Equal(t.at) {
			q.starts = slices.Delete(q.starts, i, i+1)
			back++
		}
	}
	if back > 0 && q.freed != nil {
		close(q.freed)
		q.freed = nil
	}
}

// take records n starts at now if the quota allows them all (n above
// rate.Starts counts as rate.Starts: a window never holds more);
// otherwise it returns when it may. now is never before the last start
// taken (time.Now, monotonic, under mu). Called with mu held.
func (q *quota) take(now time.Time, n int) (time.Time, bool) {
	n = min(max(n, 1), q.rate.Starts)
	// The starts that have left the window count no more, and are
	// dropped: with a large rate.Starts, keeping the last rate.Starts
	// would keep every start the executor ever made.
	left := 0
	for left < len(q.starts) && !now.Before(q.starts[left].Add(q.rate.Per)) {
		left++
	}
	q.starts = q.starts[left:]
	// The oldest need starts must have left the window.
	if need := len(q.starts) + n - q.rate.Starts; need > 0 {
		return q.starts[need-1].Add(q.rate.Per), false
	}
	for range n {
		q.starts = append(q.starts, now)
	}
	return time.Time{}, true
}

// wait returns how long from now until the quota allows a start, for the
// ETA: it counts every start taken, a retry's and another run's too.
func (q *quota) wait(now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	left := 0
	for left < len(q.starts) && !now.Before(q.starts[left].Add(q.rate.Per)) {
		left++
	}
	if need := len(q.starts) - left + 1 - q.rate.Starts; need > 0 {
		return q.starts[left+need-1].Add(q.rate.Per).Sub(now)
	}
	return 0
}

// await waits until the quota allows n starts, the calls that came first
// served first, and takes them at the moment it returns: it returns what
// it took, for giveBack. It returns ctx's cause if ctx ends first, having
// taken nothing.
func (q *quota) await(ctx context.Context, n int) (taken, error) {
	took := func(now time.Time) taken { return taken{q: q, at: now, n: min(max(n, 1), q.rate.Starts)} }
	q.mu.Lock()
	if len(q.queue) == 0 {
		now := time.Now()
		if _, ok := q.take(now, n); ok {
			q.mu.Unlock()
			return took(now), nil
		}
	}
	turn := make(chan struct{})
	if len(q.queue) == 0 {
		close(turn)
	}
	q.queue = append(q.queue, turn)
	q.mu.Unlock()
	defer q.leave(turn)
	select {
	case <-turn:
	case <-ctx.Done():
		return taken{}, causeOf(ctx)
	}
	for {
		q.mu.Lock()
		now := time.Now()
		at, ok := q.take(now, n)
		var freed chan struct{}
		if !ok {
			if q.freed == nil {
				q.freed = make(chan struct{})
			}
			freed = q.freed
		}
		q.mu.Unlock()
		if ok {
			return took(now), nil
		}
		t := time.NewTimer(at.Sub(now))
		select {
		case <-t.C:
		case <-freed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return taken{}, causeOf(ctx)
		}
	}
}

// leave takes turn off the queue and, if it headed it, gives the next
// call its turn.
func (q *quota) leave(turn chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.queue, turn)
	q.queue = slices.Delete(q.queue, i, i+1)
	if i == 0 && len(q.queue) > 0 {
		close(q.queue[0])
	}
}

// newQuotas returns a quota per rated batch key.
func newQuotas(rates map[string]Rate) map[string]*quota {
	if len(rates) == 0 {
		return nil
	}
	qs := make(map[string]*quota, len(rates))
	for key, r := range rates {
		qs[key] = &quota{rate: r}
	}
	return qs
}

// awaitQuota waits until the executor's quota of the batch key allows the
// n nodes of a call to start, and takes their starts, stamped with the
// moment it returns: the caller starts the call at once, or, if its run
// is cancelled before it calls the generator, gives them back. It returns
// the run's cause if the run is cancelled first. Keys without a rate
// return at once.
func (r *run) awaitQuota(key string, n int) (taken, error) {
	q := r.e.quotas[key]
	if q == nil {
		return taken{}, nil
	}
	return q.await(r.dctx, n) // a drain starts no call either
}

// limit is a batch key's cap of Options.Limits, shared by the runs of
// the executor: a semaphore of its calls in flight, and the runs' counts
// of their nodes of the key not settled yet (waiting in their schedule,
// waiting for room, or in flight), which the ETA of each run reads (see
// eta.limitBound).
type limit struct {
	sem  *semaphore.Weighted
	n    int
	mu   sync.Mutex
	left map[*atomic.Int64]struct{} // by run
}

// newLimits returns a limit per limited batch key.
func newLimits(limits map[string]int) map[string]*limit {
	if len(limits) == 0 {
		return nil
	}
	ls := make(map[string]*limit, len(limits))
	for key, n := range limits {
		ls[key] = &limit{sem: semaphore.NewWeighted(int64(n)), n: n, left: map[*atomic.Int64]struct{}{}}
	}
	return ls
}

// newLimitLeft returns a run's counts of its nodes not settled in its
// round, by limited batch key (see run.limitLeft).
func newLimitLeft(limits map[string]*limit) map[string]*atomic.Int64 {
	if len(limits) == 0 {
		return nil
	}
	left := make(map[string]*atomic.Int64, len(limits))
	for key := range limits {
		left[key] = new(atomic.Int64)
	}
	return left
}

// joinLimits has each limit count the run's nodes of its key not settled
// (left, from newLimitLeft) until the returned leave is called, at the
// run's end.
func joinLimits(limits map[string]*limit, left map[string]*atomic.Int64) (leave func()) {
	for key, l := range limits {
		l.mu.Lock()
		l.left[left[key]] = struct{}{}
		l.mu.Unlock()
	}
	return func() {
		for key, l := range limits {
			l.mu.Lock()
			delete(l.left, left[key])
			l.mu.Unlock()
		}
	}
}

// others appends to dst the counts of nodes not settled of the runs
// other than the one counting mine, those above 0, and returns it.
func (l *limit) others(dst []int64, mine *atomic.Int64) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.left {
		if c != mine {
			if n := c.Load(); n > 0 {
				dst = append(dst, n)
			}
		}
	}
	return dst
}

// limitOf returns how many calls of the batch key may be in flight at
// once across the executor's runs: Options.Limits, or no limit.
func (e *Executor) limitOf(key string) int {
	if n, ok := e.opts.Limits[key]; ok {
		return n
	}
	return math.MaxInt
}

// acquire takes n of the executor's calls in flight of the batch key for
// call c, waiting for them; c gives them back when it ends or is
// abandoned. It returns the run's cause if the run is cancelled first.
// Keys without a limit return at once.
func (r *run) acquire(c *inflight, key string, n int) error {
	l := r.e.limits[key]
	if l == nil {
		return nil
	}
	sem := l.sem
	if err := sem.Acquire(r.dctx, int64(n)); err != nil { // a drain starts no call either
		return r.haltCause()
	}
	c.held, c.weight = sem, int64(n)
	return nil
}

// release gives back what acquire took for c, once.
func (c *inflight) release() {
	if c.held != nil {
		c.held.Release(c.weight)
		c.held, c.weight = nil, 0
	}
}
