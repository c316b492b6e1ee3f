package executor

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// quota is one batch key's rate, shared by every run of an executor: a
// provider's quota does not reset because two lectures are generated at
// once. Each run's scheduling machine applies the same rate to the run's
// own starts, deterministically; the quota then spaces the starts of all
// runs together. A node whose run let it start waits here, holding its
// slot, until the quota allows it.
type quota struct {
	rate   Rate
	mu     sync.Mutex
	starts []time.Time // ring of the last rate.Starts start times
	next   int         // ring position of the oldest start
}

// take records a start at now if the quota allows one; otherwise it
// returns when it may.
func (q *quota) take(now time.Time) (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.starts) < q.rate.Starts {
		q.starts = append(q.starts, now)
		return time.Time{}, true
	}
	at := q.starts[q.next].Add(q.rate.Per)
	if now.Before(at) {
		return at, false
	}
	q.starts[q.next] = now
	q.next = (q.next + 1) % q.rate.Starts
	return time.Time{}, true
}

// newQuotas returns a quota per rated batch key.
func newQuotas(rates map[string]Rate) map[string]*quota {
	if len(rates) == 0 {
		return nil
	}
	qs := make(map[string]*quota, len(rates))
	for key, r := range rates {
		qs[key] = &quota{rate: r, starts: make([]time.Time, 0, min(r.Starts, 1024))}
	}
	return qs
}

// awaitQuota waits until the executor's quota of the batch key allows a
// start, and takes it. It returns the run's cause if the run is cancelled
// first. Keys without a rate return at once.
func (r *run) awaitQuota(key string) error {
	q := r.e.quotas[key]
	if q == nil {
		return nil
	}
	for {
		now := time.Now()
		at, ok := q.take(now)
		if ok {
			return nil
		}
		if !sleep(r.ctx, at.Sub(now)) {
			return context.Cause(r.ctx)
		}
	}
}

// newLimits returns a semaphore per limited batch key.
func newLimits(limits map[string]int) map[string]*semaphore.Weighted {
	if len(limits) == 0 {
		return nil
	}
	ls := make(map[string]*semaphore.Weighted, len(limits))
	for key, n := range limits {
		ls[key] = semaphore.NewWeighted(int64(n))
	}
	return ls
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
	sem := r.e.limits[key]
	if sem == nil {
		return nil
	}
	if err := sem.Acquire(r.ctx, int64(n)); err != nil {
		return context.Cause(r.ctx)
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
