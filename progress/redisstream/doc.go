// Package redisstream keeps each run's progress events in a Redis Stream
// (github.com/redis/go-redis/v9), so that progress views on any server can
// replay and follow a run, and resume after a dropped connection.
//
// # Writing
//
// [Stream.Publish] writes one stream per run, keyed by
// [Options].KeyTemplate ("lecture:{runId}" by default), with XADD MAXLEN ~
// 5000 (configurable), one pipeline per call (one more, rarely: see
// below). Each entry's ID is 0-<seq>, the event's sequence number, and
// its one field "event" holds the event's JSON (see package progress).
// Redis refuses an ID that is not above the stream's newest, so a retried
// publish never creates a duplicate, and the IDs mean the same after a
// restart.
//
// By default a finished run's stream expires a day after its final event
// ([Options].FinishedTTL), and one left idle three days after its newest
// event ([Options].IdleTTL): the stream of a run whose final event never
// reached Redis (its process crashed, or an outage at the run's end made
// progress.Buffered send that event to its fallback), which FinishedTTL
// alone would keep for good. So Redis holds the streams of the last few
// days' runs, not of every run ever made: a stream costs some 370 bytes
// an event (about 2.2 events a node: 400 KB for a run of 180 segments),
// and up to about 2 MB at the default MaxLen. A negative FinishedTTL or
// IdleTTL keeps the streams that it would expire, until they are trimmed
// or deleted. A late event that finds the stream
// of its finished run expired creates it again with an expiry: IdleTTL,
// as any write does, or with a negative IdleTTL FinishedTTL, unless its
// call holds the run's first event (which looks like a new run). A
// Stream sweeps the keys of its KeyTemplate a minute after it starts (or
// at IdleTTL/4 if that comes sooner) and then every IdleTTL/4, or
// FinishedTTL/4 with a negative IdleTTL (see [Options].IdleTTL), and once it has published, gives the streams
// without an expiry, written by a release without expiries, FinishedTTL
// if their newest entry is their run's final event and IdleTTL
// otherwise, leaving keys of other types, and streams whose newest entry
// is no event of their run, alone. A Stream that only reads (a
// progress/sse service's) leaves that to the writers' Streams, and
// without a History sends no sweep.
//
// # Reading
//
// [Stream.Replay] reads with XRANGE from the exclusive start "(0-<seq>".
// [Stream.Tail] replays the same way, then follows the run: one goroutine
// per run blocks in XREAD from the explicit ID of the last entry it has
// (never from "$", which would lose the entries that arrive between two
// reads) for at most [Options].BlockTime, and fans the entries out to all
// the run's local readers. Without a History, a reader whose position the
// running goroutine's window covers joins it without a read of its own,
// and [Stream.LastEvent] is answered from that window: so the readers of
// one run, many browser tabs on a run not started yet or an unknown run
// ID, cost one replay and one blocked XREAD in all, whatever their
// number, once the first of them follows the run (readers that come
// before that each replay). (With a History each reader replays, to read
// what only the History holds.) Each run with readers still costs a
// goroutine, and a pooled connection while it blocks in XREAD, which at
// most [Options].MaxBlockingReads runs do at once (the others read
// without blocking once every BlockTime; see [New]); progress/sse's
// EmptyRunTimeout, or
// an Authorize hook that refuses unknown run IDs, bounds how long an
// unknown run is watched. A reader's cancellation returns at once; the
// shared goroutine exits within BlockTime of the run's last reader
// leaving, and [Stream.Close] waits for it. No event follows a run's
// final one (run.finished, run.failed or run.cancelled), so a reader that
// has delivered it, or that starts at or past it, leaves the shared
// goroutine and reads nothing more until its context ends. A reader that
// resumes there learns it from one XREVRANGE (two past an entry that
// another writer added, none if the run's shared goroutine answers), and one History lookup if the stream lacks the end
// ([Stream.LastEvent]). A reader ahead of its run (a Last-Event-ID past
// the newest event of a run still going, or of one not started) follows
// the shared goroutine, which reads from the stream's newest entry, not
// from the reader's position: when the run's final event comes at or
// below the reader, the reader is past the end, and leaves as one that
// resumes there does. Without a History, once the run's stream is gone
// from Redis (it expired, or Redis lost it), the shared goroutine, whose
// XREAD finds nothing new, finds it gone (a read of its first entry a
// BlockTime once it has seen the stream hold entries: an XRANGE, or,
// with a ReadTimeout of -1, or one above 10s, an XREAD with a BLOCK of
// 1ms; a stream emptied of its entries is gone too; stream commands
// alone, which a Redis user without @keyspace may send) and serves no
// one new:
// [Stream.LastEvent] and a new reader then find what Redis holds, as in
// a process that never read the run, while the readers that follow it
// still get the recent events it kept for them, and then end with
// [ErrStreamGone], rather than wait for good for a run whose final
// event never reached Redis (an outage at its end) or whose process
// died. A reader waits through any silence of a run while its stream is
// there (a node may take long): the default [Options].IdleTTL, 72h after
// the run's newest event, bounds that wait. With a History, which the
// progress.Archive beside the Stream fills whatever Redis does, the run's
// shared goroutine reads such a final event from the History within
// [Options].HistoryPoll instead, and its readers end with the run: give
// the Stream a History in production. (With a History, the shared
// goroutine checks that the stream is there only once the run has been
// quiet for IdleTTL, so that a stream that Redis lost while the run goes
// on is followed on; the readers of a run whose final event reached
// neither, its process killed, end with ErrStreamGone then, unless a
// Resume of the run publishes its end before.)
//
// # Gaps and the archive
//
// When the stream no longer has what a reader asks for (its ID is older
// than the stream's first entry after trimming, or the stream is gone
// because it expired or Redis restarted without persistence), the reader
// reads the missing events from [Options].History, a progress.History
// such as progress.MemoryHistory or a host database, then continues with
// the stream and live events, with no gap and no duplicate at either seam
// (progress.Cursor). A gap that the run's shared reader finds in the
// live entries (events published while Redis was down, before a restart
// without persistence) it fills from the History itself, once for all the
// run's readers, so that a restart does not cost the History one read per
// browser tab. The History may be a moment behind Redis (behind a
// progress.Buffered of its own), so the shared reader waits up to
// [Options].HistoryPoll (for each gap) for it to fill such a gap that
// one of the run's readers needs (one that follows the run, or is still
// replaying it below the gap), or that one may reconnect at (the event
// after the gap is younger than HistoryPoll), asking it again every
// RetryDelay (also while it fails), before its readers pass over the gap
// (counted in [Stats].Skipped, and logged). A reader that connects meanwhile (a
// browser reconnecting, even one that was the run's last reader) stops at
// that gap (or inside it: it resumed from an event of the gap that the
// History got) and waits with them, and so does one whose replay finds a
// gap between two entries of the stream, at it or inside it, or below the
// stream's first entry if the stream has lost no entry (the run's first
// events missed Redis, or a restart lost them; Redis 7 tells), that the
// History does not fill yet, before the shared reader has read past it
// (it is the run's first reader, say), unless the event after the gap is
// older than HistoryPoll (by its Time): it follows the shared reader from
// there, which holds the gap for it (or, if the shared reader is past the
// gap already, asks the History itself every RetryDelay, up to
// HistoryPoll). A reader past the gap (its Last-Event-ID is above it) gets
// the entries after it as they come, and a reader that finds another gap
// (a trimmed run whose History lacks the old part) waits for nothing.
// Fan a progress.Archive out beside the stream so the archive receives
// every event:
//
//	hist := progress.NewMemoryHistory()
//	stream, err := redisstream.New(client, redisstream.Options{History: hist})
//	sink := progress.NewFanout(
//		progress.NewArchive(hist),
//		progress.NewBuffered(stream, progress.BufferedOptions{}),
//	)
//
// # Crashes
//
// A process that is killed loses the events that its progress.Buffered
// sinks still queued. With the archive behind a Buffered of its own too
// (as the README's production wiring has it), many of those may have
// reached Redis and not the History. A Resume or RerunFailed of the
// executor that finds the run interrupted publishes the run's final
// event (a run.cancelled whose ResumedBy names the resuming run); the
// Stream, publishing it, copies what the run's stream holds into the
// History ([Stream.Publish]), so that readers get those events from the
// History once the stream has expired or been trimmed (all but its
// corrupt entries, and events the History refuses as invalid, which are
// counted in [Stats].Corrupt and logged). With [Options].IdleTTL (unless
// it is negative), a
// stream that has been idle for half IdleTTL without its run's final
// event, or with a final event that the History lacks (the process was
// killed after its final event reached Redis), is copied into the
// History in the same way before it expires, by every Stream with that
// History (a sweep a minute after the Stream starts and every IdleTTL/4,
// which scans the keys of the KeyTemplate): so a run resumed after IdleTTL, or
// never, keeps what reached Redis. A crash still loses, to readers that
// come after the stream is gone: the events that reached neither Redis
// nor the History; those that the stream no longer holds when it is
// copied (trimmed by MaxLen, lost with a Redis restart without
// persistence, expired while no Stream with a History swept); those of
// a run that is never resumed, with a negative IdleTTL; and those of a copy
// that failed until the stream was gone, or for an hour, or until
// [Stream.Close] (the History was down: a failed copy is retried in the
// background with backoff, logged, and counted in [Stats].CopyErrors).
// So set FinishedTTL well above a History outage.
//
// # Faults
//
// Put the stream behind a progress.Buffered: if Redis is down when a run
// starts or dies during it, the run still succeeds, the events go to the
// Buffered's fallback (slog) and to the archive, and the error counters
// rise. When Redis comes back, publishing resumes, and readers, which
// retry with backoff, continue from the last Seq they delivered, reading
// what Redis lost from the archive. Events that reached the archive but
// never Redis, with no later entry to reveal the gap (a run that ended
// during the outage), are read from the archive as soon as Redis answers
// again, and in any case within [Options].HistoryPoll (5s), or two polls
// after a gap in the archive (with a read that Redis answered between
// them: while Redis is down or hangs, it may hold the gap's events, and
// the events after the gap wait for it): the run's shared reading
// goroutine polls the archive until the run's final event is known, one
// read per run whatever its number of readers. [Stream.Stats] reports publish errors,
// dropped events, read errors, connected readers and their lag.
//
// While Redis is down, a reader that cannot read it (one still replaying
// the run, a browser that connects during the outage, say, or one behind
// the shared goroutine's window) reads the archive itself, at the first
// failed read of the outage and then once every HistoryPoll while Redis
// still fails: it delivers the events that directly follow its position,
// in order, and stops before the first Seq that the archive lacks, which
// it waits for Redis to deliver (never passing over it while Redis
// fails, as the shared goroutine does not either). So a run that the
// archive holds whole, a finished one, is read to its final event, and
// the reader ends there without Redis, as does one that resumes at or
// past that event; a reader of a live run gets the archive's events up
// to its first gap, and waits for Redis for the rest. [Stream.Replay],
// which waits for nothing, reads the archive so too, once: it returns
// nil with the run's final event (or at or past it), and otherwise
// Redis's error, having delivered the archive's events. While Redis hangs
// rather than refuses, a read fails only at the client's ReadTimeout;
// once one has (the Stream's last read of Redis to end failed), a reader
// reads the archive before it reads Redis, rather than wait for a read
// of its own to fail: such reads are few at once (half
// MaxBlockingReads), and readers that connect together would otherwise
// be served one ReadTimeout after the other; and a read of its own that
// would wait for them, all in flight, counts as failed if none of them
// ends within a second, or the one that ends failed (as does a read
// that waited for them since before any failed, and one that Redis
// has not answered within a second, or, made before any failed, within
// a second of the first that does), so that it reads
// the archive every HistoryPoll meanwhile (for the events that a live
// run adds to it), rather than wait in their queue. While Redis answers, no
// reader reads the archive more than before. [Stream.LastEvent], which
// fails while Redis does, answers then with the archive's final event of
// the run, if it holds one (once a read of Redis has failed, without
// asking Redis first): so progress/sse's handler answers 204 to a
// browser that resumes at the end of a finished run. For a run going
// on, and without an archive too, it then asks Redis only if a read can
// start within a second, or one in flight ends then and did not fail
// (Redis is busy: it waits its turn), and otherwise fails, rather than queue behind the reads that a hung Redis
// holds (while Redis answers, busy, or long after a failed read that no
// read has ended since, it waits its turn), and fails too if Redis has
// not answered its read within a second of its start (of the first
// failed read, for one made before any failed), a second after the one
// it may wait for a token; a lookup that waited for
// them since before any failed fails with the first that does: so the
// handler's lookup of the run
// does not delay the stream of a browser that connects during the
// outage, which its Tail serves from the archive (or holds open, with
// keep-alives, until Redis answers).
//
// A Redis that hangs (paused, or cut off by a network fault that sends no
// reset) holds no call past its context, whatever the client's options:
// go-redis applies a context's deadline to a command only with
// redis.Options.ContextTimeoutEnabled, and never its cancellation, so
// [Stream.Publish] (within the Buffered's Timeout), [Stream.Tail],
// [Stream.Replay] and [Stream.LastEvent] return as soon as their context
// ends, and leave their command in flight. Such a command ends at the
// client's ReadTimeout (a blocking XREAD 10s after its block), and
// [Stream.Close] waits for it: with a ReadTimeout of -1 (none), only
// when Redis answers again. A run's shared reader's XREAD ends 10s after
// its block whatever the ReadTimeout (with a ReadTimeout of -1, or one
// above 10s, the XREAD of a run beyond [Options].MaxBlockingReads is
// sent with a BLOCK of 1ms for that, and so are a replay's page, as an
// XREAD, not an XRANGE, and a run's shared reader's check that its
// stream is still there, as an XREAD, not an XRANGE), so that what holds
// Close then is a write of Publish, or a command that no BLOCK can
// bound: a lookup left in flight by a reader that returned
// ([Stream.LastEvent]'s XREVRANGE, or the XINFO STREAM of a check of a
// gap in the live entries), or one of the sweep (see
// [Options].IdleTTL) or of a copy into the History retried in the
// background. Each read left in flight holds one of the few tokens of
// reads that do not block (half [Options].MaxBlockingReads) while it
// lasts. With such a ReadTimeout, LastEvent's XREVRANGE and a gap
// check's XREVRANGE and XINFO STREAM fail for their caller 10s after
// their start without Redis's answer (their wait for a token
// included), whatever the caller's context, and count as failed reads,
// rather than hold the caller for as long as Redis hangs; the command
// goes on until Redis answers.
//
// Tests run against a real Redis (REGEN_REDIS_URL, by default
// redis://127.0.0.1:6379/0) and against private redis-server processes
// that they kill and restart.
package redisstream
