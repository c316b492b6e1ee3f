package executor

import (
	"context"
	"sync"
	"time"
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
