package progress

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// MemoryOptions configures a [Memory]. The zero value gives the defaults.
type MemoryOptions struct {
	// Capacity is how many events are kept per run, in a ring: publishing
	// beyond it drops the run's oldest events. Default: 10000.
	Capacity int
	// MaxRuns is how many runs are kept; a new run beyond it evicts one:
	// a finished run (its final event, [Type.Final], published), the one
	// that finished first; a live run only when every run kept is live,
	// the one published to least recently. An evicted run's events are
	// gone from the Memory but its newest, and its readers skip those that
	// no History holds: [Memory.Replay] of it then returns [ErrEvicted].
	// The Memory remembers the last 10 × MaxRuns runs it evicted so, and
	// keeps the newest event of each: it is the run's [Memory.LastEvent],
	// and a later event of the run brings the run back, after it. A run
	// evicted before them is unknown again, as one never published. So
	// MaxRuns must be at least the number of runs going on at once in the
	// process: below it, live runs are evicted, each new event of one
	// brings it back in place of another live run, and their views lose
	// events. [MemoryStats].EvictedLive counts the live runs evicted, and
	// Skipped the events readers skipped. Default: 100.
	MaxRuns int
	// History, if set, is read when a reader asks for events that the ring
	// no longer has, or that were never published here. Default: nil, and
	// such events are skipped.
	History History
	// HistoryPoll is how often a tailer that the ring cannot serve asks
	// the History again, while the History lacks what the tailer awaits
	// (see [Memory.Tail]): each such tailer makes one lookup per
	// HistoryPoll until it has what it awaits, or the run's final event,
	// or its ctx ends. A History that is a database may be asked less
	// often, at the cost of a later delivery. Zero or negative gives the
	// default. A positive value below 1ms (a number without its unit, 1
	// meant as 1s) is refused: Tail and Replay return an error wrapping
	// [ErrInvalidOptions]. Default: 1s.
	HistoryPoll time.Duration
	// HistoryWait is how long a tailer that fell behind the ring waits for
	// the History to hold the events the ring trimmed before it skips
	// them. When the ring's oldest event is past the tailer's position,
	// the events between are only in the History, which may be behind
	// where the run is published (an archive written through a
	// [Buffered], as the package doc advises): with HistoryWait, the
	// tailer delivers what the History holds and asks it again every
	// HistoryPoll until it holds the rest, for up to HistoryWait, and only
	// then skips what it still lacks. Meanwhile the tailer delivers
	// nothing newer, so that its events stay in order. It waits so once
	// each time it falls behind: once HistoryWait has passed, the gaps it
	// meets until it is back within the ring (which moved on during the
	// wait) are skipped at once, as the History is not keeping up; a
	// later fall-behind waits anew. A tailer that the ring cannot serve
	// (its run evicted, or never published here: see [Memory.Tail])
	// waits so too at a gap inside the History (one written out of order
	// holds a later event but not the next), at its first read of the
	// History as at each later poll; once such a wait has passed, it
	// skips such gaps at once until it has caught up with the History (a
	// read of it that finds no gap) or the ring serves it again. A gap
	// within the ring (a Seq never published here, as behind a Buffered
	// that dropped it) is not waited for: a tailer fills it from the
	// History, or skips it, at once. A tailer of a run evicted past it
	// (see MaxRuns) whose History lacks what it missed waits so too, and
	// then gets the run's newest event, which the Memory keeps, after
	// the gap; without HistoryWait it asks the History on until it has
	// them (see [Memory.Tail]). Replay does not wait. Zero or negative: no wait, the missing events
	// are skipped at once. A positive value below 1ms (a number without
	// its unit) is refused: Tail and Replay return an error wrapping
	// [ErrInvalidOptions]. Without a History it does nothing.
	// Default: 0.
	HistoryWait time.Duration
}

// MemoryStats is a snapshot of a [Memory]'s counters.
type MemoryStats struct {
	// Runs is the number of runs kept, at most [MemoryOptions].MaxRuns;
	// the evicted runs that the Memory remembers are not counted.
	Runs int
	// Events is the number of events held, over all runs: those of the
	// runs kept, and the newest event of each evicted run remembered. An
	// event published and not a duplicate is counted here while it is
	// held, and in Evicted once it is not: Published is Events plus
	// Evicted.
	Events int
	// Readers is the number of Tail calls in progress.
	Readers int
	// Published counts the events stored since creation.
	Published uint64
	// Duplicates counts the events ignored because their Seq was not above
	// the run's latest stored Seq.
	Duplicates uint64
	// Evicted counts the events dropped from full rings or evicted runs
	// (an evicted run's newest event once the Memory forgets the run:
	// see [MemoryOptions].MaxRuns).
	Evicted uint64
	// EvictedRuns counts the runs evicted beyond MemoryOptions.MaxRuns.
	EvictedRuns uint64
	// EvictedLive counts, of EvictedRuns, the runs evicted before their
	// final event: more runs were going on at once than MaxRuns, and the
	// readers of such a run skip the events it had (see
	// [MemoryOptions].MaxRuns). A host watches it, with Skipped, to
	// raise MaxRuns: above 0, progress views lost events.
	EvictedLive uint64
	// Skipped counts the Seqs that readers jumped over because neither the
	// ring nor the History had them, as they jump over them (after
	// MemoryOptions.HistoryWait, for a tailer).
	Skipped uint64
}

// Memory is a [Sink] and a [Source] that keeps each run's latest events in
// memory, in a bounded ring per run: the embedded default for one process.
// Events are visible to readers as soon as Publish returns. It is safe for
// concurrent use; Publish never blocks on readers and ignores ctx, so that
// a run's final event is kept even when the run's context was cancelled.
//
// Memory use is bounded by Capacity × MaxRuns events, and the newest
// event of each of the last 10 × MaxRuns runs evicted.
type Memory struct {
	capacity int
	maxRuns  int
	maxGone  int // evicted runs remembered: 10 × maxRuns
	history  History
	poll     time.Duration // HistoryPoll
	wait     time.Duration // HistoryWait; <= 0: none
	optErr   error         // MemoryOptions refused: Tail and Replay return it

	mu   sync.Mutex
	runs map[string]*memRun
	// The runs kept, which hold events: live holds those whose newest
	// event is not final, front the most recently published; done holds
	// the finished ones, front the most recently finished. Eviction takes
	// the back of done, or of live when done is empty.
	live, done *list.List
	// gone holds the evicted runs remembered, front the most recently
	// evicted; each keeps its newest event, and stays in runs.
	gone    *list.List
	kept    int // the evicted runs in gone that keep an event
	readers int
	stats   MemoryStats
}

// memRun is one run's ring. A run with readers but no events stays in the
// map, outside the lists of runs kept, so that the readers are woken by
// its first publish.
type memRun struct {
	id      string
	events  []Event // ascending Seq; events[0] is the oldest kept
	last    uint64  // the highest Seq ever stored, even if since evicted
	elem    *list.Element
	done    bool          // elem is in Memory.done, not Memory.live
	gone    *list.Element // in Memory.gone, while the evicted run is remembered
	kept    Event         // the newest event, once evicted; Seq 0 otherwise
	notify  chan struct{} // closed and replaced when events change
	readers int
}

// NewMemory returns an empty Memory. Options it refuses (a HistoryPoll or
// HistoryWait below 1ms but positive) make every [Memory.Tail] and [Memory.Replay]
// return an error wrapping [ErrInvalidOptions], which names the option.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{
		capacity: opts.Capacity,
		maxRuns:  opts.MaxRuns,
		history:  opts.History,
		poll:     opts.HistoryPoll,
		wait:     opts.HistoryWait,
		runs:     make(map[string]*memRun),
		live:     list.New(),
		done:     list.New(),
		gone:     list.New(),
	}
	for _, o := range []struct {
		name    string
		value   time.Duration
		example string // the option with its unit
	}{
		{"HistoryPoll", opts.HistoryPoll, "time.Second, not 1"},
		{"HistoryWait", opts.HistoryWait, "10 * time.Second, not 10"},
	} {
		// Most likely a number without its unit: each tailer waiting on
		// the History would ask it without pause, or not wait at all.
		if o.value > 0 && o.value < time.Millisecond {
			m.optErr = fmt.Errorf("%w: %s %v is below 1ms; give a duration with its unit (%s), or 0 for the default",
				ErrInvalidOptions, o.name, o.value, o.example)
			break
		}
	}
	if m.poll <= 0 {
		m.poll = defaultHistoryPoll
	}
	if m.capacity <= 0 {
		m.capacity = 10000
	}
	if m.maxRuns <= 0 {
		m.maxRuns = 100
	}
	m.maxGone = math.MaxInt
	if m.maxRuns <= math.MaxInt/evictedRunsKept {
		m.maxGone = evictedRunsKept * m.maxRuns
	}
	return m
}

// Publish stores events. An event whose Seq is not above the latest Seq
// stored for its run is a duplicate and is ignored, without error; the
// others in the same call are kept. An invalid event fails the whole call
// with [ErrInvalidEvent] before anything is stored.
func (m *Memory) Publish(_ context.Context, events ...Event) error {
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var touched []*memRun
	for _, e := range events {
		r := m.runs[e.RunID]
		if r == nil {
			r = &memRun{id: e.RunID, notify: make(chan struct{})}
			m.runs[e.RunID] = r
		}
		if e.Seq <= r.last {
			m.stats.Duplicates++
			continue
		}
		if r.elem == nil {
			m.revive(r)
			r.elem = m.live.PushFront(r)
			m.evictOver()
		}
		m.place(r, e.Type.Final())
		r.events = append(r.events, e)
		r.last = e.Seq
		if len(r.events) > m.capacity {
			r.events[0] = Event{}
			r.events = r.events[1:]
			m.stats.Evicted++
		}
		m.stats.Published++
		if len(touched) == 0 || touched[len(touched)-1] != r {
			touched = append(touched, r)
		}
	}
	for _, r := range touched {
		r.wake()
	}
	return nil
}

// place puts r, which is kept and whose newest event is now final or
// not, at the front of its list: done for a finished run, live for the
// others. Called with m.mu held.
func (m *Memory) place(r *memRun, final bool) {
	switch {
	case final == r.done && final:
		// A finished run keeps its place (when it finished) among the
		// finished, as another final event changes nothing.
	case final == r.done:
		m.live.MoveToFront(r.elem)
	case final:
		m.live.Remove(r.elem)
		r.elem, r.done = m.done.PushFront(r), true
	default:
		// An event after a final one (a host's own): live again.
		m.done.Remove(r.elem)
		r.elem, r.done = m.live.PushFront(r), false
	}
}

// evictOver evicts runs beyond maxRuns: the finished run that finished
// first, or, when every run kept is live, the least recently published.
// The run just pushed to the front of live, whose event is not stored
// yet, is never the one: there is at least one other run behind it.
// Called with m.mu held.
func (m *Memory) evictOver() {
	for m.live.Len()+m.done.Len() > m.maxRuns {
		from := m.done
		if from.Len() == 0 {
			from = m.live
			m.stats.EvictedLive++
		}
		r := from.Remove(from.Back()).(*memRun)
		r.elem, r.done = nil, false
		m.stats.EvictedRuns++
		if n := len(r.events); n > 0 {
			// The newest event is kept while the run is remembered.
			m.stats.Evicted += uint64(n - 1)
			r.kept = r.events[n-1]
			m.kept++
		}
		r.events = nil
		r.gone = m.gone.PushFront(r)
		for m.gone.Len() > m.maxGone {
			g := m.gone.Remove(m.gone.Back()).(*memRun)
			g.gone = nil
			if g.kept.Seq != 0 {
				g.kept = Event{}
				m.kept--
				m.stats.Evicted++
			}
			if g.readers == 0 && m.runs[g.id] == g {
				delete(m.runs, g.id)
			}
			// Its readers, if any, keep it until they leave, and read
			// it as a run the Memory never had: so does Publish, which
			// takes its events anew, as without readers.
			g.last = 0
		}
		r.wake()
	}
}

// evictedRunsKept is how many evicted runs a Memory remembers, per run
// kept (MemoryOptions.MaxRuns).
const evictedRunsKept = 10

// revive readies r, which is not kept, to be kept again: a run evicted
// gets its newest event back, before the ones published now. Called
// with m.mu held.
func (m *Memory) revive(r *memRun) {
	if r.gone != nil {
		m.gone.Remove(r.gone)
		r.gone = nil
	}
	if r.kept.Seq != 0 {
		r.events = append(r.events[:0], r.kept)
		r.kept = Event{}
		m.kept--
	}
}

func (r *memRun) wake() {
	close(r.notify)
	r.notify = make(chan struct{})
}

// Stats returns a snapshot of the counters.
func (m *Memory) Stats() MemoryStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Runs = m.live.Len() + m.done.Len()
	s.Readers = m.readers
	s.Events = m.kept
	for _, l := range []*list.List{m.live, m.done} {
		for e := l.Front(); e != nil; e = e.Next() {
			s.Events += len(e.Value.(*memRun).events)
		}
	}
	return s
}

// Replay delivers the stored events of runID with Seq > after, filling
// gaps from the History; see [Source]. Of a run evicted (see
// MemoryOptions.MaxRuns) whose events after after neither the Memory nor
// the History holds, it delivers what they hold, the run's newest event
// included, and then returns an error wrapping [ErrEvicted]. Of a run
// that the Memory never had, or no longer remembers, it delivers what
// the History holds, and returns nil, as for a run with no events yet.
func (m *Memory) Replay(ctx context.Context, runID string, after uint64, fn func(Event) error) error {
	if m.optErr != nil {
		return m.optErr
	}
	return m.read(ctx, runID, after, fn, false)
}

// Tail delivers the stored events of runID with Seq > after and then the
// live ones until ctx ends; see [Source]. It waits for a run that has no
// events yet, or that the Memory never had, or no longer remembers (see
// MemoryOptions.MaxRuns). Without a History, a tailer that lacks events
// of a run evicted (one that the Memory remembers) gets the run's newest
// event, which the Memory keeps, after the gap: of a finished run, that
// is its final event, and Tail then returns an error wrapping
// [ErrEvicted], as nothing more can come to it; of a live run, Tail goes
// on with the run's next events. A tailer behind a run that is evicted
// reads what it missed from the History, if there is one, and asks
// the History again every MemoryOptions.HistoryPoll (1s by default) while
// it lacks those events, as an archive written through a [Buffered] may
// for a moment; so does a tailer of a run that the ring does not hold
// (evicted before the reader came, or published by another process that
// shares the History) once it knows the run (the Memory remembers it as
// evicted, its after is above 0, or the History had events of it), until
// it has the run's final event: a lookup
// per HistoryPoll for each such tailer, until its ctx ends for a run
// whose final event never comes (or a run ID that no one publishes).
// With MemoryOptions.HistoryWait, a tailer of a run evicted past it (one
// that the Memory remembers) whose History still lacks what it missed
// after HistoryWait gets the run's newest event after the gap, as
// without a History: of a finished run, Tail then returns an error
// wrapping ErrEvicted; without HistoryWait it polls on, as above.
// A tailer that falls behind the ring, which trims a run's oldest events
// past MemoryOptions.Capacity, gets the events it missed from the
// History; those the History does not hold are skipped, at once by
// default, or after MemoryOptions.HistoryWait if the History does not
// get them by then. A skip shows to fn as a gap in the Seqs, which are
// gap-free per run (an event whose Seq is above the previous one's plus
// one), and is counted in [MemoryStats].Skipped. A tailer that resumes at the run's final event,
// or past it if the History implements [LastEventReader], looks the run
// up once and then waits without polling. It starts no goroutine.
func (m *Memory) Tail(ctx context.Context, runID string, after uint64, fn func(Event) error) error {
	if m.optErr != nil {
		return m.optErr
	}
	return m.read(ctx, runID, after, fn, true)
}

// LastEvent returns the newest event of runID that a reader would get:
// the ring's newest, or a newer one of the History. It implements
// [LastEventReader]; it reads the History with [LastArchived], so it costs
// one lookup when the History implements LastEventReader too.
func (m *Memory) LastEvent(ctx context.Context, runID string) (Event, bool, error) {
	var last Event
	m.mu.Lock()
	if r := m.runs[runID]; r != nil {
		last = r.kept // Seq 0 unless evicted
		if n := len(r.events); n > 0 {
			last = r.events[n-1]
		}
	}
	m.mu.Unlock()
	if m.history == nil || last.Type.Final() {
		// No event follows a final one.
		return last, last.Seq != 0, nil
	}
	h, ok, err := LastArchived(ctx, m.history, runID, last.Seq)
	switch {
	case err != nil:
		return Event{}, false, fmt.Errorf("history: %w", err)
	case ok:
		return h, true, nil
	}
	return last, last.Seq != 0, nil
}

// readBatch bounds how many events a History replay copies under its
// lock. A reader of a Memory copies at most idleBatch events at a time,
// which is also the largest buffer it keeps between batches: a burst of
// events would otherwise be copied in large part by each reader, and held
// by each while its client is slow.
const (
	readBatch = 256
	idleBatch = 16
)

func (m *Memory) read(ctx context.Context, runID string, after uint64, fn func(Event) error, tail bool) error {
	if runID == "" {
		return fmt.Errorf("%w: empty run ID", ErrInvalidEvent)
	}
	m.mu.Lock()
	r := m.runs[runID]
	if r == nil {
		r = &memRun{id: runID, notify: make(chan struct{})}
		m.runs[runID] = r
	}
	r.readers++
	if tail {
		m.readers++
	}
	m.mu.Unlock()
	cur := NewCursor(runID, after, m.history, fn)
	cur.OnSkip(func(first, last uint64) {
		m.mu.Lock()
		m.stats.Skipped += last - first + 1
		m.mu.Unlock()
	})
	defer func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		r.readers--
		if tail {
			m.readers--
		}
		if r.readers == 0 && r.elem == nil && r.gone == nil && m.runs[runID] == r {
			delete(m.runs, runID)
		}
	}()

	replayed := false
	gaveUp := false                   // a tailer's HistoryWait passed, and it is not back within the ring
	historyGaveUp := false            // likewise, for a gap inside the History
	var filledAt uint64               // cur.Last() after the latest fill for evicted events
	endChecked, ended := false, false // whether the run ended at or before after
	// keptAt is when a tailer with a History and HistoryWait first found
	// its run evicted past it, the History lacking what it missed: after
	// HistoryWait, it gets the kept event as a tailer without a History.
	var keptAt time.Time
	var batch []Event
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		m.mu.Lock()
		batch = r.since(cur.Last(), batch[:0])
		notify := r.notify
		ringLast := r.last
		kept := r.kept       // the run's newest event, if it was evicted
		var ringFirst uint64 // the ring's oldest Seq, 0 if it is empty
		if len(r.events) > 0 {
			ringFirst = r.events[0].Seq
		}
		// Events after the reader's position that the ring no longer has:
		// the run was evicted while the reader was behind.
		evicted := len(batch) == 0 && r.last > cur.Last()
		m.mu.Unlock()
		if len(batch) == 0 || batch[0].Seq <= cur.Last()+1 {
			// Within the ring again: a later fall-behind waits anew.
			gaveUp = false
		}
		if len(batch) > 0 && batch[0].Seq <= cur.Last()+1 {
			historyGaveUp = false // served by the ring again
		}
		for _, e := range batch {
			if tail && !gaveUp && e.Seq > cur.Last()+1 && e.Seq == ringFirst {
				// The ring trimmed what the reader awaits (a gap within
				// the ring, a Seq never published here, is not waited
				// for: the reader is live, and all behind it would wait
				// with it). Once the wait
				// has passed, the rest of the batch is stale (the ring
				// moved on meanwhile): the gaps after it are not waited
				// for again, or the reader would get a batch per wait.
				passed, err := m.awaitHistory(ctx, cur, e.Seq)
				if err != nil {
					return err
				}
				gaveUp = passed
			}
			if err := cur.Deliver(ctx, e); err != nil {
				return err
			}
		}
		if len(batch) > 0 {
			if cap(batch) > idleBatch {
				batch = nil // an idle reader holds no large buffer
			}
			continue
		}
		if !replayed || (evicted && cur.Last() != filledAt) {
			// The ring has nothing more: the archive may still have events
			// that were evicted here or never published here. Once the
			// first replay is done, the ring loses events a reader has not
			// had only when its run is evicted; no later event of the run
			// need come to show the gap, so the archive is read at once,
			// and read again only after the reader moved on.
			replayed = true
			if !cur.Final() {
				// A tailer that the ring cannot serve reads the History
				// as at each later poll.
				wait := tail && (evicted || ringLast == 0)
				if err := m.fillFromHistory(ctx, cur, wait, &historyGaveUp); err != nil {
					return err
				}
			}
			filledAt = cur.Last()
			continue
		}
		waitedOut := false
		switch {
		case !evicted || kept.Seq <= cur.Last() || !tail || m.history == nil || m.wait <= 0:
			keptAt = time.Time{}
		case keptAt.IsZero():
			keptAt = time.Now()
		default:
			waitedOut = time.Since(keptAt) >= m.wait
		}
		if evicted && kept.Seq > cur.Last() && (!tail || m.history == nil || waitedOut) {
			// The run was evicted past the reader, and the History (if
			// any) lacks what the reader missed: the reader gets the
			// run's newest event, which the Memory kept, after the gap.
			// A tailer with a History rather waits for the History
			// (which may lag behind the ring) to have the run's final
			// event, as above, for HistoryWait if set (for good if
			// not). A tailer without one ends at the final
			// event, when it lacks events: no event can come to it any
			// more. A tailer of a live run waits for its next events.
			before, skipped := cur.Last(), cur.Skipped()
			if err := cur.Deliver(ctx, kept); err != nil {
				return err
			}
			if n := cur.Skipped() - skipped; n > 0 && (!tail || kept.Type.Final()) {
				return fmt.Errorf("%w: run %q (MaxRuns %d): %d of its events from seq %d to %d are gone, held neither here nor by a History",
					ErrEvicted, runID, m.maxRuns, n, before+1, kept.Seq-1)
			}
			continue
		}
		if !tail {
			return nil
		}
		// The ring lacks what the reader awaits, and no later event of
		// the run may come to it to wake the reader (the run may have
		// ended): the run was evicted while the reader was behind, and
		// the archive lacked what it missed; or the ring holds nothing of
		// a run that the reader knows of (the archive gave it events, or
		// it resumes after a Seq), evicted before the reader came, or run
		// by another process that shares the archive. The archive may be
		// behind where the run is published (written through a Buffered
		// of its own): ask it again every m.poll, until the reader
		// has caught up with the ring, or the run's final event. A reader
		// that resumes at or past the run's final event, the ring holding
		// nothing of the run, has nothing more to come: it asks once.
		if m.history != nil && !endChecked && ringLast == 0 && after > 0 && cur.Last() == after {
			endChecked = true
			var err error
			if ended, err = endedBy(ctx, m.history, runID, after); err != nil {
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				return fmt.Errorf("history: %w", err)
			}
		}
		unserved := evicted || (ringLast == 0 && cur.Last() > 0 && !(ended && cur.Last() == after))
		var poll <-chan time.Time
		var timer *time.Timer
		if m.history != nil && unserved && !cur.Final() {
			d := m.poll
			if !keptAt.IsZero() {
				// Wake when HistoryWait passes, to deliver the kept event.
				d = min(d, max(time.Until(keptAt.Add(m.wait)), 0))
			}
			timer = time.NewTimer(d)
			poll = timer.C
		}
		select {
		case <-notify:
		case <-poll:
			if err := m.fillFromHistory(ctx, cur, true, &historyGaveUp); err != nil {
				return err
			}
			filledAt = cur.Last()
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// awaitHistory delivers from the History the events that cur lacks
// before seq, the oldest the ring holds past cur, asking it again every
// m.poll while it lacks them, for up to m.wait (MemoryOptions.HistoryWait):
// a History written through a Buffered gets them a moment after the ring.
// It returns at once without a wait or a History; what is still missing
// then is for cur.Deliver to skip. passed reports that the wait ran out
// with events still missing.
func (m *Memory) awaitHistory(ctx context.Context, cur *Cursor, seq uint64) (passed bool, err error) {
	if m.wait <= 0 || m.history == nil {
		return false, nil
	}
	deadline := time.Now().Add(m.wait)
	for {
		if err := cur.FillContiguous(ctx); err != nil {
			return false, err
		}
		if cur.Last()+1 >= seq || cur.Final() {
			return false, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return true, nil
		}
		t := time.NewTimer(min(m.poll, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, context.Cause(ctx)
		}
	}
}

// fillFromHistory delivers the History's events after cur, for a
// tailer that the ring cannot serve when wait is set: with
// MemoryOptions.HistoryWait, it stops at a gap inside the History (one
// written out of order holds a later event but not the next) and asks
// it again every m.poll while the gap lasts, for up to m.wait, before it
// skips the gap; once such a wait has passed (*gaveUp), it skips at
// once, as the History is not keeping up, until a read finds no gap (the
// tailer caught up with the History) or the ring serves the tailer
// again. Without wait or HistoryWait it skips at once.
func (m *Memory) fillFromHistory(ctx context.Context, cur *Cursor, wait bool, gaveUp *bool) error {
	if !wait || m.wait <= 0 {
		return cur.FillFromHistory(ctx)
	}
	if *gaveUp {
		gapped, err := cur.fill(ctx, 0, true)
		switch {
		case err != nil || cur.Final():
			return err
		case !gapped:
			// Caught up with the History: it keeps up again, and a
			// later gap is waited for anew.
			*gaveUp = false
			return nil
		}
		return cur.FillFromHistory(ctx)
	}
	var deadline time.Time
	for {
		gapped, err := cur.fill(ctx, 0, true)
		if err != nil || !gapped || cur.Final() {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(m.wait)
		}
		left := time.Until(deadline)
		if left <= 0 {
			*gaveUp = true
			return cur.FillFromHistory(ctx)
		}
		t := time.NewTimer(min(m.poll, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
}

// endedBy reports whether h holds the final event of runID at or below
// after, which is above 0: a reader resuming there gets nothing more. It
// is one lookup when h implements [LastEventReader]; otherwise it reads
// the event at after, and cannot tell of a reader past the final event.
func endedBy(ctx context.Context, h History, runID string, after uint64) (bool, error) {
	if lr, ok := h.(LastEventReader); ok {
		e, ok, err := lr.LastEvent(ctx, runID)
		if err != nil {
			return false, err
		}
		return ok && e.Seq <= after && e.Type.Final(), nil
	}
	ended := false
	err := h.Replay(ctx, runID, after-1, func(e Event) error {
		ended = e.RunID == runID && e.Seq == after && e.Type.Final()
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return false, err
	}
	return ended, nil
}

// defaultHistoryPoll is MemoryOptions.HistoryPoll's default: how often a
// tailer that the ring cannot serve (its run was evicted, or never
// published here) asks the History again.
const defaultHistoryPoll = time.Second

// since appends to dst up to idleBatch events with Seq > after.
// Called with m.mu held.
func (r *memRun) since(after uint64, dst []Event) []Event {
	i := sort.Search(len(r.events), func(i int) bool { return r.events[i].Seq > after })
	end := min(len(r.events), i+idleBatch)
	return append(dst, r.events[i:end]...)
}
