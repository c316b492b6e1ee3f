package sinktest_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// errFinal ends the inner Tail of tailEndsAtFinal.
var errFinal = errors.New("final event")

// tailEndsAtFinal is a source whose Tail returns nil once it has
// delivered a final event, where Tail must go on until its context ends.
type tailEndsAtFinal struct{ *progress.Memory }

func (s tailEndsAtFinal) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	err := s.Memory.Tail(ctx, run, after, func(e progress.Event) error {
		if err := fn(e); err != nil {
			return err
		}
		if e.Type.Final() {
			return errFinal
		}
		return nil
	})
	if errors.Is(err, errFinal) {
		return nil
	}
	return err
}

// tailClamps starts its Tail at the run's newest event held when the
// reader's cursor is past it (at 0 for a run with none), as a reader that
// asks the backend for the events after min(cursor, newest) does: it
// delivers again the events between the two as they are published.
type tailClamps struct{ *progress.Memory }

func (s tailClamps) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	e, found, err := s.Memory.LastEvent(ctx, run)
	if err != nil {
		return err
	}
	if !found {
		after = 0
	} else if after > e.Seq {
		after = e.Seq
	}
	return s.Memory.Tail(ctx, run, after, fn)
}

// prefixRuns replays, for a run ID, every run whose ID starts with it, as
// a source that finds a run's events by a prefix scan (a key pattern, a
// LIKE) does.
type prefixRuns struct {
	*progress.Memory
	mu   sync.Mutex
	runs map[string]bool
}

func (s *prefixRuns) Publish(ctx context.Context, events ...progress.Event) error {
	s.mu.Lock()
	for _, e := range events {
		s.runs[e.RunID] = true
	}
	s.mu.Unlock()
	return s.Memory.Publish(ctx, events...)
}

func (s *prefixRuns) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	s.mu.Lock()
	var runs []string
	for r := range s.runs {
		if strings.HasPrefix(r, run) {
			runs = append(runs, r)
		}
	}
	s.mu.Unlock()
	slices.Sort(runs)
	for _, r := range runs {
		if err := s.Memory.Replay(ctx, r, after, fn); err != nil {
			return err
		}
	}
	return nil
}

// trimsText stores events with the spaces at either end of their Message
// and Error trimmed, as a backend that cleans text for display does.
type trimsText struct{ *progress.Memory }

func (s trimsText) Publish(ctx context.Context, events ...progress.Event) error {
	events = slices.Clone(events)
	for i := range events {
		events[i].Message, events[i].Error = strings.TrimSpace(events[i].Message), strings.TrimSpace(events[i].Error)
	}
	return s.Memory.Publish(ctx, events...)
}

// runIDs keeps the run IDs it was given, for the mutants that look runs
// up by a prefix.
type runIDs struct {
	mu   sync.Mutex
	runs map[string]bool
}

func (r *runIDs) add(events []progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == nil {
		r.runs = map[string]bool{}
	}
	for _, e := range events {
		r.runs[e.RunID] = true
	}
}

// withPrefix returns the run IDs given that start with prefix, sorted.
func (r *runIDs) withPrefix(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for run := range r.runs {
		if strings.HasPrefix(run, prefix) {
			out = append(out, run)
		}
	}
	slices.Sort(out)
	return out
}

// lastByPrefix returns the event with the highest Seq that last holds of
// the runs in runs.
func lastByPrefix(ctx context.Context, last progress.LastEventReader, runs []string) (progress.Event, bool, error) {
	var best progress.Event
	found := false
	for _, run := range runs {
		e, ok, err := last.LastEvent(ctx, run)
		if err != nil {
			return progress.Event{}, false, err
		}
		if ok && (!found || e.Seq > best.Seq) {
			best, found = e, true
		}
	}
	return best, found, nil
}

// lastPrefix answers LastEvent with the newest event of every run whose
// ID starts with the one asked for, as a lookup by a prefix (a key
// pattern, a LIKE) does.
type lastPrefix struct {
	*progress.Memory
	ids runIDs
}

func (l *lastPrefix) Publish(ctx context.Context, events ...progress.Event) error {
	l.ids.add(events)
	return l.Memory.Publish(ctx, events...)
}

func (l *lastPrefix) LastEvent(ctx context.Context, run string) (progress.Event, bool, error) {
	return lastByPrefix(ctx, l.Memory, l.ids.withPrefix(run))
}

// historyLastPrefix is lastPrefix for a History.
type historyLastPrefix struct {
	*progress.MemoryHistory
	ids runIDs
}

func (h *historyLastPrefix) Append(ctx context.Context, events ...progress.Event) error {
	h.ids.add(events)
	return h.MemoryHistory.Append(ctx, events...)
}

func (h *historyLastPrefix) LastEvent(ctx context.Context, run string) (progress.Event, bool, error) {
	return lastByPrefix(ctx, h.MemoryHistory, h.ids.withPrefix(run))
}

// TestMutationBrokenPair runs Run against one broken pair.
func TestMutationBrokenPair(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestMutationKitCatchesBroken")
	}
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		m := progress.NewMemory(progress.MemoryOptions{})
		switch os.Getenv(brokenEnv) {
		case "tailEndsAtFinal":
			return m, tailEndsAtFinal{m}
		case "tailClamps":
			return m, tailClamps{m}
		case "prefixRuns":
			p := &prefixRuns{Memory: m, runs: map[string]bool{}}
			return p, p
		case "trimsText":
			return trimsText{m}, m
		case "lastPrefix":
			l := &lastPrefix{Memory: m}
			return l, l
		}
		return m, m
	})
}

// TestMutationBrokenHistory runs History against one broken History.
func TestMutationBrokenHistory(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestMutationKitCatchesBroken")
	}
	sinktest.History(t, func(*testing.T) progress.History {
		h := progress.NewMemoryHistory()
		switch os.Getenv(brokenEnv) {
		case "historyLastPrefix":
			return &historyLastPrefix{MemoryHistory: h}
		}
		return h
	})
}

// TestMutationKitCatchesBroken runs the kit, in a child process, against
// pairs that each break one rule of the contract that a mutation test of
// the kit found it let through, and checks that the subtests meant to
// catch it fail, and that the correct pair passes them.
func TestMutationKitCatchesBroken(t *testing.T) {
	tests := []struct {
		test    string // TestMutationBrokenPair or TestMutationBrokenHistory
		broken  string
		failing []string // subtests that must fail
		passing []string // and some that must pass
	}{
		// Tail returned nil at the run's final event: the kit tailed
		// only runs without one, but for a History's.
		{"TestMutationBrokenPair", "tailEndsAtFinal", []string{"TailAfter"}, nil},
		// Tail from a cursor past the run's newest event delivered the
		// events up to the cursor as they were published: the kit tailed
		// only from a Seq held, or from 0.
		{"TestMutationBrokenPair", "tailClamps", []string{"TailPastEnd"}, nil},
		// Replay of a run delivered the events of the runs whose IDs it
		// prefixes: no run ID of the kit's Run prefixed another.
		{"TestMutationBrokenPair", "prefixRuns", []string{"RunsIsolated"}, nil},
		// Text was trimmed: only History checked free text, Run published
		// none with spaces at its ends.
		{"TestMutationBrokenPair", "trimsText", []string{"Text"}, nil},
		// LastEvent answered the newest event of the runs whose IDs start
		// with the one asked for: the kit's other runs had IDs of their
		// own.
		{"TestMutationBrokenPair", "lastPrefix", []string{"LastEvent"}, nil},
		{"TestMutationBrokenHistory", "historyLastPrefix", []string{"LastEvent"}, nil},
		{"TestMutationBrokenPair", "correct", nil, []string{"TailAfter", "TailPastEnd", "RunsIsolated", "Text", "LastEvent"}},
		{"TestMutationBrokenHistory", "correct", nil, []string{"LastEvent"}},
	}
	for _, tt := range tests {
		t.Run(tt.test+"/"+tt.broken, func(t *testing.T) {
			t.Parallel()
			checkBrokenChild(t, tt.test, tt.broken, tt.failing, tt.passing)
		})
	}
}
