package progress

import (
	"context"
	"errors"
	"fmt"
)

// Source reads the events of one run back, for a progress view that
// (re)connects. Runs are identified by their run ID, which is also the
// stream key that an HTTP handler authorizes. An implementation must be
// safe for concurrent use.
//
// Both methods call fn for each event with Seq greater than after, in
// increasing Seq order, each Seq at most once, and stop with fn's error
// when fn returns one. An event that the source no longer has (trimmed,
// expired, lost with a restarted server) and that no [History] holds is
// skipped, never delivered out of order.
type Source interface {
	// Replay delivers the stored events with Seq > after and returns nil
	// once it has delivered the last of them.
	Replay(ctx context.Context, runID string, after uint64, fn func(Event) error) error
	// Tail delivers the stored events with Seq > after and then the live
	// ones as they are published, with no gap and no duplicate at the
	// seam, until ctx ends; then it returns promptly with
	// context.Cause(ctx), having started nothing that outlives it. It
	// does not return at the run's final event, as a run's stream may be
	// followed before its run starts: a reader that should stop there
	// returns an error of its own from fn when ev.Type.Final() (fn's
	// error ends Tail, which returns it).
	Tail(ctx context.Context, runID string, after uint64, fn func(Event) error) error
}

// History is an archive of whole runs, kept longer than a live stream: the
// fallback a [Source] reads when its own copy was trimmed or lost. A run
// store or a host database provides it; [MemoryHistory] is the in-memory
// one. An implementation must be safe for concurrent use.
type History interface {
	// Append stores events. An event whose Seq the archive already holds
	// for its run is a duplicate and is ignored; the others are kept.
	Append(ctx context.Context, events ...Event) error
	// Replay calls fn for each archived event of the run with Seq > after,
	// in increasing Seq order, and stops with fn's error when fn returns one.
	Replay(ctx context.Context, runID string, after uint64, fn func(Event) error) error
}

// LastEventReader is an optional interface of a [Source] or a [History]
// that finds a run's newest event without replaying the run: an index
// lookup, the end of a stream. A reader that resumes at or past a run's
// final event learns from it, at the cost of one lookup, that nothing more
// will come: no event follows a final one ([Type.Final]). [Memory],
// [MemoryHistory], progress/redisstream's Stream and progress/pghistory
// implement it; so should a host's History, where one query does it (the
// highest Seq of the run). [Buffered], [Fanout] and [Archive] pass on the
// answer of what they wrap, or return [ErrUnsupported] when it cannot
// say. The executor asks its Sink, when it implements LastEventReader,
// to number the final event it publishes for a run it finds interrupted.
type LastEventReader interface {
	// LastEvent returns the event with the highest Seq held for runID,
	// and false if none is held. A Source counts what its History holds.
	LastEvent(ctx context.Context, runID string) (Event, bool, error)
}

var (
	_ LastEventReader = (*Memory)(nil)
	_ LastEventReader = (*MemoryHistory)(nil)
	_ LastEventReader = (*Buffered)(nil)
	_ LastEventReader = (*Fanout)(nil)
	_ LastEventReader = (*Archive)(nil)
)

// LastArchived returns the newest event of runID that h holds with Seq
// greater than after, and false if it holds none. If h implements
// [LastEventReader], that is one lookup; otherwise LastArchived replays h
// after after, which reads every archived event past it. A Source that
// falls back to h passes the Seq of the newest event of its own copy, so
// that the read is short whenever that copy is intact.
func LastArchived(ctx context.Context, h History, runID string, after uint64) (Event, bool, error) {
	if lr, ok := h.(LastEventReader); ok {
		e, ok, err := lr.LastEvent(ctx, runID)
		if err != nil || !ok || e.Seq <= after {
			return Event{}, false, err
		}
		return e, true, nil
	}
	var last Event
	err := h.Replay(ctx, runID, after, func(e Event) error {
		if e.RunID == runID && e.Seq > max(after, last.Seq) {
			last = e
		}
		return nil
	})
	if err != nil {
		return Event{}, false, err
	}
	return last, last.Seq != 0, nil
}

// errStop ends a History replay early; it never leaves this package.
var errStop = errors.New("progress: stop replay")

// Cursor is one reader's position in one run: the building block that
// gives a [Source] its exactly-once, in-order delivery. Feed it the events
// the source reads, in Seq order, with [Cursor.Deliver]; it drops any it
// has already delivered, and when an event arrives after a gap it first
// fills the gap from the History, so the reader sees no gap and no
// duplicate at the seam between the archive and the live stream. Seqs
// that neither had are counted by [Cursor.Skipped].
//
// A Cursor is not safe for concurrent use: it belongs to one reader.
type Cursor struct {
	runID   string
	last    uint64
	history History
	fn      func(Event) error
	final   bool
	skipped uint64
	onSkip  func(first, last uint64)
}

// NewCursor returns a Cursor for runID that has delivered everything up to
// and including Seq after, and that passes events on to fn. history may be
// nil; gaps are then skipped.
func NewCursor(runID string, after uint64, history History, fn func(Event) error) *Cursor {
	return &Cursor{runID: runID, last: after, history: history, fn: fn}
}

// Last returns the Seq of the last event delivered (or the starting point).
func (c *Cursor) Last() uint64 { return c.last }

// Final reports whether the cursor has delivered a final event
// ([Type.Final]); nothing should follow it.
func (c *Cursor) Final() bool { return c.final }

// Skipped returns how many Seqs the cursor jumped over because neither the
// source nor the History had them.
func (c *Cursor) Skipped() uint64 { return c.skipped }

// OnSkip sets f, which the cursor calls each time it jumps over Seqs that
// neither the source nor the History had, first to last inclusive, as it
// jumps: before it delivers the event after them. A source counts and
// reports the gap there, while its reader goes on following the run,
// rather than once the reader leaves. f must not call the Cursor.
func (c *Cursor) OnSkip(f func(first, last uint64)) { c.onSkip = f }

// skip counts the Seqs from first to last, which the cursor jumps over.
func (c *Cursor) skip(first, last uint64) {
	c.skipped += last - first + 1
	if c.onSkip != nil {
		c.onSkip(first, last)
	}
}

// Deliver passes e on unless it was already delivered. If e.Seq leaves a
// gap after the last delivered event, the gap is first filled from the
// History. It returns fn's error, or the History's error wrapped with
// "history:". An event of another run is refused with [ErrInvalidEvent].
func (c *Cursor) Deliver(ctx context.Context, e Event) error {
	if e.RunID != c.runID {
		return fmt.Errorf("%w: cursor of run %q got seq %d of run %q", ErrInvalidEvent, c.runID, e.Seq, e.RunID)
	}
	if e.Seq <= c.last {
		return nil
	}
	if e.Seq > c.last+1 {
		if _, err := c.fill(ctx, e.Seq, false); err != nil {
			return err
		}
		if e.Seq > c.last+1 {
			c.skip(c.last+1, e.Seq-1)
		}
	}
	return c.emit(e)
}

// FillFromHistory delivers every archived event after the last delivered
// one. A source calls it when its own copy has nothing more, because the
// stream may be gone while the archive still has the run. Without a
// History it does nothing.
func (c *Cursor) FillFromHistory(ctx context.Context) error {
	_, err := c.fill(ctx, 0, false)
	return err
}

// FillContiguous delivers the archived events that directly follow the
// last delivered one, and stops before the first Seq the archive lacks,
// skipping nothing. A source that follows a live stream calls it instead
// of [Cursor.FillFromHistory] when the stream may still deliver the
// missing events: then they are not passed over. Without a History it
// does nothing.
func (c *Cursor) FillContiguous(ctx context.Context) error {
	_, err := c.fill(ctx, 0, true)
	return err
}

// fill delivers History events with Seq in (last, before), or all after
// last when before is 0; contiguous stops it at the first gap, and
// gapped then reports that it did: the History holds a later event.
func (c *Cursor) fill(ctx context.Context, before uint64, contiguous bool) (gapped bool, err error) {
	if c.history == nil {
		return false, nil
	}
	var fnErr error
	err = c.history.Replay(ctx, c.runID, c.last, func(h Event) error {
		if before != 0 && h.Seq >= before {
			return errStop
		}
		if h.Seq <= c.last || h.RunID != c.runID {
			return nil
		}
		if h.Seq > c.last+1 {
			if contiguous {
				gapped = true
				return errStop
			}
			c.skip(c.last+1, h.Seq-1)
		}
		if err := c.emit(h); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	switch {
	case fnErr != nil:
		return false, fnErr
	case err == nil, errors.Is(err, errStop):
		return gapped, nil
	default:
		return false, fmt.Errorf("history: %w", err)
	}
}

func (c *Cursor) emit(e Event) error {
	if err := c.fn(e); err != nil {
		return err
	}
	c.last = e.Seq
	if e.Type.Final() {
		c.final = true
	}
	return nil
}
