package sinktest_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// historyLastPointer is a History whose LastEvent reads the newest event
// through a pointer into the last slice it was given, which the caller
// (an Archive behind a Buffered, which reuses its batch) has reused since.
type historyLastPointer struct {
	*progress.MemoryHistory
	mu   sync.Mutex
	last map[string]*progress.Event
}

func (h *historyLastPointer) Append(ctx context.Context, events ...progress.Event) error {
	if err := h.MemoryHistory.Append(ctx, events...); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range events {
		if p := h.last[events[i].RunID]; p == nil || events[i].Seq > p.Seq {
			h.last[events[i].RunID] = &events[i]
		}
	}
	return nil
}

func (h *historyLastPointer) LastEvent(_ context.Context, run string) (progress.Event, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.last[run]; p != nil {
		return *p, true, nil
	}
	return progress.Event{}, false, nil
}

// historyChangesEvents is a History that writes into the caller's slice:
// it sorts the events in place before storing them.
type historyChangesEvents struct{ *progress.MemoryHistory }

func (h historyChangesEvents) Append(ctx context.Context, events ...progress.Event) error {
	for i := 1; i < len(events); i++ {
		for j := i; j > 0 && events[j].Seq < events[j-1].Seq; j-- {
			events[j], events[j-1] = events[j-1], events[j]
		}
	}
	return h.MemoryHistory.Append(ctx, events...)
}

// TestOwnsBrokenHistory runs History against one broken History.
func TestOwnsBrokenHistory(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestOwnsKitCatchesBroken")
	}
	sinktest.History(t, func(*testing.T) progress.History {
		h := progress.NewMemoryHistory()
		switch os.Getenv(brokenEnv) {
		case "historyLastPointer":
			return &historyLastPointer{MemoryHistory: h, last: map[string]*progress.Event{}}
		case "historyChangesEvents":
			return historyChangesEvents{h}
		}
		return h
	})
}

// TestOwnsKitCatchesBroken runs History, in a child process, against
// Histories that use the caller's events slice after Append returned, or
// change it: History never checked that the slice is the caller's, as
// Run does for a Sink.
func TestOwnsKitCatchesBroken(t *testing.T) {
	tests := []struct {
		broken  string
		failing []string
		passing []string
	}{
		{"historyLastPointer", []string{"CallerOwnsEvents"}, nil},
		{"historyChangesEvents", []string{"CallerOwnsEvents"}, nil},
		{"correct", nil, []string{"CallerOwnsEvents"}},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			t.Parallel()
			checkBrokenChild(t, "TestOwnsBrokenHistory", tt.broken, tt.failing, tt.passing)
		})
	}
}
