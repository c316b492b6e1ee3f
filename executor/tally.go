package executor

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// tally counts things in flight and lets callers wait until none is, with
// a context and without a goroutine. Unlike a sync.WaitGroup, it may be
// added to while someone waits. Adding and removing cost one atomic
// operation each; the lock is taken only when the count drops to zero
// while someone waits.
type tally struct {
	n       atomic.Int64
	waiting atomic.Bool // set before a waiter reads n, so done sees it
	mu      sync.Mutex
	waiters []chan struct{}
}

func (t *tally) add() { t.n.Add(1) }

func (t *tally) done() {
	if t.n.Add(-1) != 0 || !t.waiting.Load() {
		// A waiter sets waiting before it reads n: if it read n before
		// this drop, done sees waiting; if after, the waiter sees 0.
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n.Load() == 0 { // not added to meanwhile
		for _, w := range t.waiters {
			close(w)
		}
		t.waiters = nil
		t.waiting.Store(false)
	}
}

// wait waits until nothing is in flight or ctx ends.
func (t *tally) wait(ctx context.Context) error {
	t.mu.Lock()
	t.waiting.Store(true)
	if t.n.Load() == 0 {
		t.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	t.waiters = append(t.waiters, ch)
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		// Forget ch, so that waits that give up (a Close retried with
		// short contexts while runs go on) do not pile up.
		t.mu.Lock()
		if i := slices.Index(t.waiters, ch); i >= 0 {
			t.waiters = slices.Delete(t.waiters, i, i+1)
		}
		t.mu.Unlock()
		return ctx.Err()
	}
}
