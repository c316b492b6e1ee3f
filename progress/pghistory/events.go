package pghistory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/regengraph/regen/internal/pgschema"
	"github.com/regengraph/regen/progress"
)

// Append stores events, ignoring those whose Seq the History already
// holds for their run, and those repeated within the call (the first
// one stays). Events may come in any order and of any runs. Every event
// is checked first, and an invalid one fails the whole call before any
// SQL: [progress.Event.Validate]'s error, a [*RunIDError] for a run ID
// that Postgres cannot hold or index, or an error wrapping
// [progress.ErrInvalidEvent] for a Seq over [MaxSeq].
//
// Each event is stored as its JSON form ([progress.Event.MarshalJSON]),
// the bytes a Redis stream or a browser gets, so free text needs no
// check of its own: the JSON form escapes NUL and control characters,
// and writes invalid UTF-8 as U+FFFD, as every backend does.
//
// All the events go in one statement, one round trip, that also renews
// the archive time of their runs, in a READ COMMITTED transaction of its
// own (BEGIN and COMMIT go in the same round trip), whatever level the
// role or the database defaults to, so that an append that waits for
// its run's row, which another append renews, goes on. Appends of one
// run from several goroutines or processes at once are safe, and never
// deadlock. A call that the server fails stores nothing.
//
// It returns context.Cause(ctx) if ctx is done before it runs; an Append
// of no events does nothing, and returns nil. If ctx ends while the
// statement runs, or the connection is lost, the events may be stored or
// not: Append then sends the server a cancel request for the statement
// (waiting a second at most for it to go out), so that a wait it is in
// (for an event or a run's row that another transaction writes) does not
// end in a commit after Append returned (if the server cannot be reached
// in that time, the error says that it may store them yet), and returns
// an error that says so, wrapping [ErrInDoubt], and context.Cause(ctx)
// (and ctx.Err(), if the cause is another error) or the driver's error.
// Appending the events again is safe.
func (h *History) Append(ctx context.Context, events ...progress.Event) error {
	for _, e := range events {
		if err := checkEvent(e); err != nil {
			return err
		}
	}
	if len(events) == 0 {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	// Sorted by run ID and Seq, duplicates dropped (the first stays): the
	// order in which concurrent appends take their locks.
	sorted := slices.Clone(events)
	slices.SortStableFunc(sorted, func(a, b progress.Event) int {
		return cmp.Or(cmp.Compare(a.RunID, b.RunID), cmp.Compare(a.Seq, b.Seq))
	})
	sorted = slices.CompactFunc(sorted, func(a, b progress.Event) bool { return a.RunID == b.RunID && a.Seq == b.Seq })
	runIDs := make([]string, len(sorted))
	seqs := make([]int64, len(sorted))
	data := make([][]byte, len(sorted))
	for i, e := range sorted {
		b, err := e.MarshalJSON()
		if err != nil { // Validate checked the time: nothing else fails
			return fmt.Errorf("pghistory: append %s: %w", describe(events), err)
		}
		runIDs[i], seqs[i], data[i] = e.RunID, int64(e.Seq), b
	}
	// In READ COMMITTED whatever the session's default, so that an append
	// that waits for a run's row, which another append renews, goes on.
	if err := pgschema.ReadCommitted(ctx, h.pool, h.q.appendEvents, []any{runIDs, seqs, data},
		func(r pgx.BatchResults) error {
			_, err := r.Exec()
			return err
		}); err != nil {
		var d *pgschema.InDoubtError
		if errors.As(err, &d) {
			d.Done, d.Again = "stored the events", "appending them again is safe"
			return fmt.Errorf("pghistory: append %s: %w", describe(events), d)
		}
		return h.fail(ctx, err, "append %s", describe(events))
	}
	return nil
}

// describe names a batch of events in an error: the run and its Seqs, or
// the number of runs.
func describe(events []progress.Event) string {
	first := events[0]
	lo, hi := first.Seq, first.Seq
	for _, e := range events[1:] {
		if e.RunID != first.RunID {
			return fmt.Sprintf("%d events of several runs (run %s seq %d first)", len(events), pgschema.QuoteKey(first.RunID), first.Seq)
		}
		lo, hi = min(lo, e.Seq), max(hi, e.Seq)
	}
	if lo == hi {
		return fmt.Sprintf("run %s seq %d", pgschema.QuoteKey(first.RunID), lo)
	}
	return fmt.Sprintf("run %s seq %d..%d (%d events)", pgschema.QuoteKey(first.RunID), lo, hi, len(events))
}

// Replay calls fn for each stored event of runID with Seq greater than
// after, in increasing Seq order, and stops with fn's error when fn
// returns one. It reads a page of [Options].PageSize events at a time
// (one indexed query each, that resumes after the last Seq read) and
// calls fn for them only once the page is read and its connection back
// in the pool: fn may be slow, or call the History again, without
// holding a connection. A run appended to while it replays is read as
// it is when each page is read. It returns context.Cause(ctx) once ctx
// is done, checked before each page and each call of fn. A run ID that
// Append would refuse finds nothing, as a run never appended.
func (h *History) Replay(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if !fits(runID) || after >= MaxSeq {
		return nil
	}
	page := make([]progress.Event, 0, h.pageSize)
	for {
		var err error
		page, err = h.readPage(ctx, runID, int64(after), page[:0])
		if err != nil {
			return err
		}
		for _, e := range page {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < h.pageSize {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

// readPage appends to page the events of runID after Seq after, up to a
// page, and releases the connection before it returns.
func (h *History) readPage(ctx context.Context, runID string, after int64, page []progress.Event) ([]progress.Event, error) {
	rows, err := h.pool.Query(ctx, h.q.replay, runID, after, h.pageSize)
	if err != nil {
		return nil, h.fail(ctx, err, "replay run %s after seq %d", pgschema.QuoteKey(runID), after)
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, h.fail(ctx, err, "replay run %s after seq %d", pgschema.QuoteKey(runID), after)
		}
		var e progress.Event
		if err := e.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("pghistory: replay run %s after seq %d: stored event: %w", pgschema.QuoteKey(runID), after, err)
		}
		page = append(page, e)
	}
	if err := rows.Err(); err != nil {
		return nil, h.fail(ctx, err, "replay run %s after seq %d", pgschema.QuoteKey(runID), after)
	}
	return page, nil
}

// LastEvent returns the stored event of runID with the highest Seq, and
// false if none is stored: one query, through the primary key, whatever
// the run's length. It implements [progress.LastEventReader]. A run ID
// that Append would refuse finds nothing, without a query.
func (h *History) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	if ctx.Err() != nil {
		return progress.Event{}, false, context.Cause(ctx)
	}
	if !fits(runID) {
		return progress.Event{}, false, nil
	}
	var data []byte
	err := h.pool.QueryRow(ctx, h.q.lastEvent, runID).Scan(&data)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return progress.Event{}, false, nil
	case err != nil:
		return progress.Event{}, false, h.fail(ctx, err, "last event of run %s", pgschema.QuoteKey(runID))
	}
	var e progress.Event
	if err := e.UnmarshalJSON(data); err != nil {
		return progress.Event{}, false, fmt.Errorf("pghistory: last event of run %s: stored event: %w", pgschema.QuoteKey(runID), err)
	}
	return e, true, nil
}
