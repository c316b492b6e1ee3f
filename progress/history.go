package progress

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// MemoryHistory is a [History] that keeps every event of every run in
// memory, without bound: for tests, examples and single-process hosts whose
// runs are small. A host with many runs deletes finished ones with
// [MemoryHistory.Delete], or uses a database-backed History. It is safe
// for concurrent use.
type MemoryHistory struct {
	mu   sync.RWMutex
	runs map[string][]Event // ascending Seq, no duplicates
}

// NewMemoryHistory returns an empty MemoryHistory.
func NewMemoryHistory() *MemoryHistory {
	return &MemoryHistory{runs: make(map[string][]Event)}
}

// Append stores events, ignoring those whose Seq is already stored for
// their run. Events may arrive in any order; they are kept sorted. An
// invalid event fails the whole call with [ErrInvalidEvent] before
// anything is stored. ctx is ignored: appending never blocks.
func (h *MemoryHistory) Append(_ context.Context, events ...Event) error {
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		evs := h.runs[e.RunID]
		if n := len(evs); n == 0 || evs[n-1].Seq < e.Seq {
			h.runs[e.RunID] = append(evs, e)
			continue
		}
		i := sort.Search(len(evs), func(i int) bool { return evs[i].Seq >= e.Seq })
		if evs[i].Seq == e.Seq {
			continue
		}
		evs = append(evs, Event{})
		copy(evs[i+1:], evs[i:])
		evs[i] = e
		h.runs[e.RunID] = evs
	}
	return nil
}

// Replay calls fn for each stored event of runID with Seq > after, in
// order. fn runs without the lock held, so it may be slow or call back.
// A replay that finds nothing allocates nothing: a reader polling the
// History for a run's next events mostly finds none.
func (h *MemoryHistory) Replay(ctx context.Context, runID string, after uint64, fn func(Event) error) error {
	var batch []Event // grown to at most readBatch events, as needed
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		h.mu.RLock()
		evs := h.runs[runID]
		i := sort.Search(len(evs), func(i int) bool { return evs[i].Seq > after })
		batch = append(batch[:0], evs[i:min(len(evs), i+readBatch)]...)
		h.mu.RUnlock()
		if len(batch) == 0 {
			return nil
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		after = batch[len(batch)-1].Seq
	}
}

// LastEvent returns the stored event of runID with the highest Seq, and
// false if none is stored: one lookup, whatever the run's length. It
// implements [LastEventReader].
func (h *MemoryHistory) LastEvent(_ context.Context, runID string) (Event, bool, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	evs := h.runs[runID]
	if len(evs) == 0 {
		return Event{}, false, nil
	}
	return evs[len(evs)-1], true, nil
}

// Delete forgets a run.
func (h *MemoryHistory) Delete(runID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.runs, runID)
}

// Len returns how many events are stored for runID.
func (h *MemoryHistory) Len(runID string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.runs[runID])
}

// Archive is a [Sink] that appends every event to a [History], so that the
// archive can be fanned out beside a live stream (see [Fanout]). It is safe
// for concurrent use if the History is.
type Archive struct {
	history History
}

// NewArchive returns an Archive writing to h.
func NewArchive(h History) *Archive {
	if h == nil {
		panic("progress: NewArchive with a nil History")
	}
	return &Archive{history: h}
}

// LastEvent returns the History's newest event of runID, if the History
// implements [LastEventReader], and [ErrUnsupported] if it does not
// (replaying the run to find it could read thousands of events). It
// implements LastEventReader, so that a [Fanout] or [Buffered] over an
// Archive passes the History's answer on.
func (a *Archive) LastEvent(ctx context.Context, runID string) (Event, bool, error) {
	lr, ok := a.history.(LastEventReader)
	if !ok {
		return Event{}, false, fmt.Errorf("%w: archive: its History does not implement LastEventReader", ErrUnsupported)
	}
	e, ok, err := lr.LastEvent(ctx, runID)
	if err != nil {
		return Event{}, false, fmt.Errorf("archive: %w", err)
	}
	return e, ok, nil
}

// Publish appends events to the History. An invalid event fails the whole
// call with [ErrInvalidEvent]; the History's own error is wrapped with
// "archive:".
func (a *Archive) Publish(ctx context.Context, events ...Event) error {
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	if err := a.history.Append(ctx, events...); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}
