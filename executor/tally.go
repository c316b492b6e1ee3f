package executor

import (
	"context"
	"sync"
)

// tally counts things in flight and lets callers wait until none is, with
// a context and without a goroutine. Unlike a sync.WaitGroup, it may be
// added to while someone waits.
type tally struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0; nil while n is 0
}

func (t *tally) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.zero = make(chan struct{})
	}
	t.n++
}

func (t *tally) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.zero)
		t.zero = nil
	}
}

// wait waits until nothing is in flight or ctx ends.
func (t *tally) wait(ctx context.Context) error {
	t.mu.Lock()
	ch := t.zero
	t.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
