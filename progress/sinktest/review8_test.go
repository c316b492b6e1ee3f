package sinktest_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// lastFirst answers LastEvent with the run's first event held, not its
// last.
type lastFirst struct{ *progress.Memory }

func (l lastFirst) LastEvent(ctx context.Context, run string) (progress.Event, bool, error) {
	var first progress.Event
	stop := errors.New("stop")
	err := l.Memory.Replay(ctx, run, 0, func(e progress.Event) error { first = e; return stop })
	if err != nil && !errors.Is(err, stop) {
		return progress.Event{}, false, err
	}
	return first, first.Seq != 0, nil
}

// lastGiven is a sink whose LastEvent is the newest event of the last
// call that had one of the run, a duplicate of an old event included.
type lastGiven struct {
	*progress.Memory
	mu   sync.Mutex
	last map[string]progress.Event
}

func (l *lastGiven) Publish(ctx context.Context, events ...progress.Event) error {
	if err := l.Memory.Publish(ctx, events...); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range events {
		l.last[e.RunID] = e
	}
	return nil
}

func (l *lastGiven) LastEvent(_ context.Context, run string) (progress.Event, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.last[run]
	return e, ok, nil
}

// swallowsErrors replays on, and returns nil, when its callback fails.
type swallowsErrors struct{ *progress.Memory }

func (s swallowsErrors) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return s.Memory.Replay(ctx, run, after, func(e progress.Event) error { _ = fn(e); return nil })
}

// drops stores events without one of their fields (drop clears it), as
// a backend written before the field existed.
type drops struct {
	*progress.Memory
	drop func(*progress.Event)
}

func (d drops) Publish(ctx context.Context, events ...progress.Event) error {
	events = slices.Clone(events)
	for i := range events {
		d.drop(&events[i])
	}
	return d.Memory.Publish(ctx, events...)
}

// lastPointer is a sink that answers LastEvent through a pointer into
// the last slice it was given, which the caller has reused since.
type lastPointer struct {
	*progress.Memory
	mu   sync.Mutex
	last map[string]*progress.Event
}

func (l *lastPointer) Publish(ctx context.Context, events ...progress.Event) error {
	if err := l.Memory.Publish(ctx, events...); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range events {
		if p := l.last[events[i].RunID]; p == nil || events[i].Seq > p.Seq {
			l.last[events[i].RunID] = &events[i]
		}
	}
	return nil
}

func (l *lastPointer) LastEvent(_ context.Context, run string) (progress.Event, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.last[run]; p != nil {
		return *p, true, nil
	}
	return progress.Event{}, false, nil
}

// lenientTime refuses events without a run ID or Seq, but stores one whose
// Time RFC 3339 cannot write with the zero time.
func lenientTime(events []progress.Event) ([]progress.Event, error) {
	events = slices.Clone(events)
	for i, e := range events {
		if e.RunID == "" || e.Seq == 0 {
			return nil, e.Validate()
		}
		if e.Validate() != nil {
			events[i].Time = time.Time{}
		}
	}
	return events, nil
}

type timeLenient struct{ *progress.Memory }

func (l timeLenient) Publish(ctx context.Context, events ...progress.Event) error {
	events, err := lenientTime(events)
	if err != nil {
		return err
	}
	return l.Memory.Publish(ctx, events...)
}

// replacesDuplicates keeps the contents of the last duplicate published
// of each Seq, and delivers those.
type replacesDuplicates struct {
	*progress.Memory
	mu   sync.Mutex
	last map[string]map[uint64]progress.Event
}

func (r *replacesDuplicates) Publish(ctx context.Context, events ...progress.Event) error {
	if err := r.Memory.Publish(ctx, events...); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		if r.last[e.RunID] == nil {
			r.last[e.RunID] = map[uint64]progress.Event{}
		}
		r.last[e.RunID][e.Seq] = e
	}
	return nil
}

func (r *replacesDuplicates) latest(fn func(progress.Event) error) func(progress.Event) error {
	return func(e progress.Event) error {
		r.mu.Lock()
		if l, ok := r.last[e.RunID][e.Seq]; ok {
			e = l
		}
		r.mu.Unlock()
		return fn(e)
	}
}

func (r *replacesDuplicates) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return r.Memory.Replay(ctx, run, after, r.latest(fn))
}

func (r *replacesDuplicates) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return r.Memory.Tail(ctx, run, after, r.latest(fn))
}

// lastOfLiveCopy answers LastEvent from the live copy alone, not counting
// what the History holds.
type lastOfLiveCopy struct {
	*progress.Memory
	live *progress.Memory // gets what the sink publishes, without a History
}

func (l lastOfLiveCopy) LastEvent(ctx context.Context, run string) (progress.Event, bool, error) {
	return l.live.LastEvent(ctx, run)
}

// historyDrops archives events without one of their fields (drop
// clears it).
type historyDrops struct {
	*progress.MemoryHistory
	drop func(*progress.Event)
}

func (h historyDrops) Append(ctx context.Context, events ...progress.Event) error {
	events = slices.Clone(events)
	for i := range events {
		h.drop(&events[i])
	}
	return h.MemoryHistory.Append(ctx, events...)
}

func dropResumedBy(e *progress.Event) { e.ResumedBy = "" }
func dropKind(e *progress.Event)      { e.Kind = "" }

// fieldDrops are mutations that each lose one of the fields that a
// view's per-stage and per-batch-key bars read, by the name of the
// broken pair ("drops" + the name) or History ("historyDrops" + the
// name).
var fieldDrops = map[string]func(*progress.Event){
	"BatchKey":   func(e *progress.Event) { e.BatchKey = "" },
	"Round":      func(e *progress.Event) { e.Round = 0 },
	"StageDone":  func(e *progress.Event) { e.StageDone = 0 },
	"StageTotal": func(e *progress.Event) { e.StageTotal = 0 },
	"BatchDone":  func(e *progress.Event) { e.BatchDone = 0 },
	"BatchTotal": func(e *progress.Event) { e.BatchTotal = 0 },
	"Counts":     func(e *progress.Event) { e.Counts = nil },
	// A count lost in a wire form of the backend's own: the pointer is
	// the caller's, so the copy kept is changed, not the event given.
	"Skipped": func(e *progress.Event) {
		if e.Counts != nil {
			c := *e.Counts
			c.Skipped = 0
			e.Counts = &c
		}
	},
	"Plan": func(e *progress.Event) { e.Plan = nil },
	// A group's number lost in a wire form of the backend's own, the
	// outline copied as deep as it is changed, as the caller's is kept.
	"Concurrency": func(e *progress.Event) {
		if e.Plan != nil && len(e.Plan.Stages) > 1 && len(e.Plan.Stages[1].Groups) > 1 {
			o := progress.Outline{Stages: slices.Clone(e.Plan.Stages)}
			o.Stages[1].Groups = slices.Clone(o.Stages[1].Groups)
			o.Stages[1].Groups[1].Concurrency = 0
			e.Plan = &o
		}
	},
}

// historyTimeLenient archives an event whose Time RFC 3339 cannot write
// with the zero time.
type historyTimeLenient struct{ *progress.MemoryHistory }

func (h historyTimeLenient) Append(ctx context.Context, events ...progress.Event) error {
	events, err := lenientTime(events)
	if err != nil {
		return err
	}
	return h.MemoryHistory.Append(ctx, events...)
}

// TestReview8BrokenPair runs Run against one broken pair.
func TestReview8BrokenPair(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestReview8KitCatchesBroken")
	}
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		m := progress.NewMemory(progress.MemoryOptions{})
		switch os.Getenv(brokenEnv) {
		case "lastFirst":
			return m, lastFirst{m}
		case "lastGiven":
			return &lastGiven{Memory: m, last: map[string]progress.Event{}}, m
		case "swallowsErrors":
			return m, swallowsErrors{m}
		case "dropsResumedBy":
			return drops{m, dropResumedBy}, m
		case "dropsKind":
			return drops{m, dropKind}, m
		case "dropsBatchKey", "dropsRound", "dropsStageDone", "dropsStageTotal", "dropsBatchDone", "dropsBatchTotal",
			"dropsCounts", "dropsSkipped", "dropsPlan", "dropsConcurrency":
			return drops{m, fieldDrops[strings.TrimPrefix(os.Getenv(brokenEnv), "drops")]}, m
		case "lastPointer":
			return &lastPointer{Memory: m, last: map[string]*progress.Event{}}, m
		case "timeLenient":
			return timeLenient{m}, m
		case "scratch":
			sc := &scratch{Memory: m}
			return sc, m
		case "replacesDuplicates":
			r := &replacesDuplicates{Memory: m, last: map[string]map[uint64]progress.Event{}}
			return r, r
		}
		return m, m
	})
}

// TestReview8BrokenHistoryPair runs RunHistory against one broken triple.
func TestReview8BrokenHistoryPair(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestReview8KitCatchesBroken")
	}
	sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
		h := progress.NewMemoryHistory()
		m := progress.NewMemory(progress.MemoryOptions{History: h})
		switch os.Getenv(brokenEnv) {
		case "lastOfLiveCopy":
			live := progress.NewMemory(progress.MemoryOptions{})
			return progress.NewFanout(m, live), lastOfLiveCopy{Memory: m, live: live}, h
		case "swallowsErrors":
			return m, swallowsErrors{m}, h
		case "fillOnlyWhenEmpty":
			live := progress.NewMemory(progress.MemoryOptions{})
			return live, fillOnlyWhenEmpty{live: live, h: h}, h
		}
		return m, m, h
	})
}

// TestReview8BrokenHistory runs History against one broken History.
func TestReview8BrokenHistory(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestReview8KitCatchesBroken")
	}
	sinktest.History(t, func(*testing.T) progress.History {
		h := progress.NewMemoryHistory()
		switch os.Getenv(brokenEnv) {
		case "historyDropsResumedBy":
			return historyDrops{h, dropResumedBy}
		case "historyDropsKind":
			return historyDrops{h, dropKind}
		case "historyDropsBatchKey", "historyDropsRound", "historyDropsStageDone", "historyDropsStageTotal",
			"historyDropsBatchDone", "historyDropsBatchTotal", "historyDropsCounts", "historyDropsSkipped",
			"historyDropsPlan", "historyDropsConcurrency":
			return historyDrops{h, fieldDrops[strings.TrimPrefix(os.Getenv(brokenEnv), "historyDrops")]}
		case "historyTimeLenient":
			return historyTimeLenient{h}
		}
		return h
	})
}

// TestReview8KitCatchesBroken runs the kit, in a child process, against
// pairs, triples and Histories that each break one rule that the kit let
// through before review 8, and checks that the subtests meant to catch it
// fail, and that the correct ones pass them.
func TestReview8KitCatchesBroken(t *testing.T) {
	tests := []struct {
		test    string // TestReview8BrokenPair, ...HistoryPair or ...History
		broken  string
		failing []string // subtests that must fail
		passing []string // and some that must pass
	}{
		// LastEvent answered the run's first event held, not its last.
		{"TestReview8BrokenPair", "lastFirst", []string{"LastEvent"}, nil},
		// The sink's LastEvent was the newest event of its last call, a
		// retried old one included.
		{"TestReview8BrokenPair", "lastGiven", []string{"LastEvent"}, nil},
		// The source's LastEvent did not count what its History holds.
		{"TestReview8BrokenHistoryPair", "lastOfLiveCopy", []string{"HistoryLastEvent"}, nil},
		// The sink's LastEvent read the caller's slice after Publish
		// returned.
		{"TestReview8BrokenPair", "lastPointer", []string{"CallerOwnsEvents"}, nil},
		// Replay went on, and returned nil, when its callback failed.
		{"TestReview8BrokenPair", "swallowsErrors", []string{"ReplayCallbackError"}, nil},
		{"TestReview8BrokenHistoryPair", "swallowsErrors", []string{"HistoryCallbackError"}, nil},
		// ResumedBy was not kept: no event of the kit had it.
		{"TestReview8BrokenPair", "dropsResumedBy", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsResumedBy", []string{"AllFields"}, nil},
		// Kind was not kept: no event of the kit had it.
		{"TestReview8BrokenPair", "dropsKind", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsKind", []string{"AllFields"}, nil},
		// BatchKey, Round, StageDone, StageTotal, BatchDone or BatchTotal
		// was not kept: no event of the kit had them.
		{"TestReview8BrokenPair", "dropsBatchKey", []string{"AllFields"}, nil},
		{"TestReview8BrokenPair", "dropsRound", []string{"AllFields"}, nil},
		{"TestReview8BrokenPair", "dropsStageDone", []string{"AllFields"}, nil},
		{"TestReview8BrokenPair", "dropsStageTotal", []string{"AllFields"}, nil},
		{"TestReview8BrokenPair", "dropsBatchDone", []string{"AllFields"}, nil},
		{"TestReview8BrokenPair", "dropsBatchTotal", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsBatchKey", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsRound", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsStageDone", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsStageTotal", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsBatchDone", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsBatchTotal", []string{"AllFields"}, nil},
		// Counts, or one of its counts, was not kept: no event of the kit
		// had them.
		{"TestReview8BrokenPair", "dropsCounts", []string{"AllFields"}, nil},
		{"TestReview8BrokenPair", "dropsSkipped", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsCounts", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsSkipped", []string{"AllFields"}, nil},
		// The outline of a plan, or a number of one of its groups, was not
		// kept.
		{"TestReview8BrokenPair", "dropsPlan", []string{"AllFields"}, nil},
		{"TestReview8BrokenPair", "dropsConcurrency", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsPlan", []string{"AllFields"}, nil},
		{"TestReview8BrokenHistory", "historyDropsConcurrency", []string{"AllFields"}, nil},
		// An event whose Time RFC 3339 cannot write was stored, with the
		// zero time, rather than refused.
		{"TestReview8BrokenPair", "timeLenient", []string{"InvalidEvent"}, nil},
		{"TestReview8BrokenHistory", "historyTimeLenient", []string{"InvalidEvent"}, nil},
		// A duplicate with other contents replaced the event stored.
		{"TestReview8BrokenPair", "replacesDuplicates", []string{"NoDuplicates"}, nil},
		// A sink reused one buffer for every call, without a lock: the
		// kit never published from two goroutines at once.
		{"TestReview8BrokenPair", "scratch", []string{"ConcurrentRuns"}, nil},
		{"TestReview8BrokenPair", "correct", nil, []string{
			"ConcurrentRuns",
			"AllFields",
			"ReplayCallbackError",
			"CallerOwnsEvents",
			"LastEvent",
			"InvalidEvent",
			"NoDuplicates",
		}},
		// The source read the History past its live copy's newest event
		// only when the live copy had none.
		{"TestReview8BrokenHistoryPair", "fillOnlyWhenEmpty", []string{"HistoryPastLive"}, nil},
		{"TestReview8BrokenHistoryPair", "correct", nil, []string{
			"HistoryPastLive",
			"HistoryCallbackError",
			"HistoryLastEvent",
		}},
		{"TestReview8BrokenHistory", "correct", nil, []string{
			"AllFields",
			"InvalidEvent",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.test+"/"+tt.broken, func(t *testing.T) {
			t.Parallel()
			checkBrokenChild(t, tt.test, tt.broken, tt.failing, tt.passing)
		})
	}
}

// scratch reuses one buffer for every call, without a lock: calls at the
// same time overwrite each other's events.
type scratch struct {
	*progress.Memory
	buf []progress.Event
}

func (s *scratch) Publish(ctx context.Context, events ...progress.Event) error {
	s.buf = append(s.buf[:0], events...)
	runtime.Gosched()
	return s.Memory.Publish(ctx, s.buf...)
}

// fillOnlyWhenEmpty reads the History for the events before the first of
// its live copy, but for those after its newest only when the live copy
// has none: the events that only the History got after the live copy
// stopped getting them (a Redis outage, while the archive went on) are
// lost.
type fillOnlyWhenEmpty struct {
	live *progress.Memory // without a History
	h    progress.History
}

func (f fillOnlyWhenEmpty) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	cur := progress.NewCursor(run, after, f.h, fn)
	n := 0
	if err := f.live.Replay(ctx, run, after, func(e progress.Event) error { n++; return cur.Deliver(ctx, e) }); err != nil {
		return err
	}
	if n == 0 {
		return cur.FillFromHistory(ctx)
	}
	return nil
}

func (f fillOnlyWhenEmpty) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	cur := progress.NewCursor(run, after, f.h, fn)
	n := 0
	deliver := func(e progress.Event) error { n++; return cur.Deliver(ctx, e) }
	if err := f.live.Replay(ctx, run, after, deliver); err != nil {
		return err
	}
	if n == 0 {
		if err := cur.FillFromHistory(ctx); err != nil {
			return err
		}
	}
	return f.live.Tail(ctx, run, cur.Last(), deliver)
}
