// Package sinktest is the conformance kit for progress backends: it checks
// that a [progress.Sink] and the [progress.Source] that reads it back keep
// the contract that browsers rely on. Every Sink/Source pair of this module
// passes it, and so should a host's own.
//
// # Usage
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
//			m := progress.NewMemory(progress.MemoryOptions{})
//			return m, m
//		})
//	}
//
// A Source that falls back to a [progress.History] (for the events its own
// copy no longer has) also runs [RunHistory], which is given the History:
//
//	sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
//		h := progress.NewMemoryHistory()
//		m := progress.NewMemory(progress.MemoryOptions{History: h})
//		return m, m, h
//	})
//
// An archive that a Source falls back to (a [progress.History], such as
// progress.MemoryHistory or progress/pghistory's) checks itself with
// [History]:
//
//	sinktest.History(t, func(t *testing.T) progress.History {
//		return progress.NewMemoryHistory()
//	})
//
// # What it checks
//
//   - order: a replay returns every published event, field for field, in
//     Seq order: events of every type with every field set too
//     (Event.ResumedBy, Event.Counts and Event.Plan included, see [AllFields]), and free text (line
//     breaks, NUL and other control characters, spaces at either end,
//     non-ASCII, 64 KiB) as it went in, from a replay and a tail;
//   - replay after a Seq, and of an unknown run;
//   - tail after a Seq: stored events, then live ones, past the run's
//     final event until the context ends; and after a Seq past the
//     newest event held, or of a run with none: the live events past
//     that Seq only;
//   - no duplicates, when a batch or part of a batch is published again:
//     a Seq held already is ignored, whatever its contents, the first one
//     stored stays;
//   - the seam: events published while readers replay and tail are each
//     delivered once, in order, to every reader;
//   - a gap: Seqs that never reach the sink (a progress.Buffered dropped
//     them, or handed them to its fallback) are passed over by Replay at
//     once, and by Tail within the kit's bound on each wait (15 s), on
//     to the run's final event;
//   - context cancellation: Tail returns with context.Cause within 3 s
//     of its context's cancellation (it should take microseconds; the
//     margin is for a loaded CI machine), whether it waits for live
//     events, for the first event of a run with none, or past the newest
//     event held, and leaves no goroutine behind
//     once the pair is cleaned up;
//   - a callback error ends Replay and Tail with that error, and stops
//     their delivery there;
//   - runs published at once from several goroutines each replay whole;
//   - runs are isolated, also those whose IDs prefix one another's, in a
//     replay and in a tail that follows them as they are published, and
//     invalid events (no run ID, Seq 0, a Time
//     outside the years 0000 to 9999, see [progress.Event.Validate]) are
//     refused with [progress.ErrInvalidEvent];
//   - the events slice is the caller's: Publish does not change it, and
//     once it returns what the pair delivers (LastEvent included) does
//     not change when the caller reuses the slice;
//   - [progress.LastEventReader], of the source and of the sink when they
//     implement it: none for a run never published (one whose ID
//     prefixes another's too), then the event with
//     the highest Seq held, field for field, whatever duplicates of older
//     events came after it (a sink may say [progress.ErrUnsupported]).
//
// RunHistory checks, with events appended to the History alone:
//
//   - a run that only the History holds (its live copy expired, was
//     trimmed, or never got the events) replays field for field, and is
//     tailed, with the live events that follow it delivered once each
//     across the seam, even when the live copy repeats some of the
//     History's;
//   - a History that holds the start of a run and a live copy that holds
//     the rest make one run, with no gap and no duplicate;
//   - so do a live copy that holds the start of a run and a History that
//     holds more of it: the events past the live copy's newest are read
//     from the History;
//   - a gap that opens in the live copy while a reader follows it (events
//     its backend refused, which the History took) is filled from the
//     History, in order, at the gap;
//   - a reader at or past the final event of a run that only the History
//     holds gets nothing, and its Tail still returns context.Cause when
//     its context ends;
//   - a callback error at an event only the History holds ends Replay and
//     Tail with that error, and stops their delivery there;
//   - the source's LastEvent, if it has one, counts what the History
//     holds: a run only the History holds, or more of it than the live
//     copy, and a live copy that goes on past the History.
//
// History checks, with a History alone:
//
//   - order: events appended out of order, in batches of any size, replay
//     field for field in Seq order, across a replay's pages;
//   - duplicates, of a Seq held already or twice in one call, whatever
//     their contents, are ignored: the first one stored stays;
//   - replay after a Seq (a run with a gap too), and of an unknown run or
//     of one whose ID is a prefix of another's;
//   - a callback error stops the replay and is returned;
//   - a cancelled context gives context.Cause: with nothing delivered
//     when it was cancelled before the call; at the latest at the end of
//     the page read when the callback cancels it;
//   - an invalid event fails the whole call with [progress.ErrInvalidEvent]
//     and nothing is stored;
//   - runs appended in one call stay apart;
//   - free text (line breaks, NUL and other control characters, spaces
//     at either end, non-ASCII, 64 KiB) comes back as it went in, and so does every field of events
//     of every type (Event.ResumedBy, Event.Counts and Event.Plan included);
//   - [progress.LastEventReader], when implemented: the highest Seq held,
//     whatever the order of the appends, and not a duplicate's contents,
//     nor another run's whose ID starts with the one asked for;
//   - appends of one run from several goroutines at once, overlapping,
//     keep each event once;
//   - the events slice is the caller's: Append does not change it (nor
//     sorts it in place), and once it returns what the History holds
//     (LastEvent included) does not change when the caller reuses the
//     slice, as a progress.Buffered in front of a progress.Archive does.
//
// # Requirements on the pair
//
// Once Publish returns nil the events must be visible to the Source (an
// asynchronous sink such as [progress.Buffered] is checked by pairing its
// downstream sink instead); for RunHistory, so must those that
// History.Append took once it returns nil. The pair must keep at least
// 3,000 events per run; a History given to [History] too, and it must be
// safe for concurrent use. newPair is called once per subtest; it should
// register cleanup (closing connections, deleting keys) with t.Cleanup,
// which runs before the leak check. The kit uses a fresh run ID in each
// subtest, so a pair may share a backend with other tests, but Run must
// not run in parallel with tests that start goroutines, because the leak
// check sees the whole process.
package sinktest
