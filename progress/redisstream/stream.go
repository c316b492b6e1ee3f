package redisstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/regengraph/regen/progress"
)

// Errors callers can branch on with [errors.Is].
var (
	// ErrInvalidOptions marks an [Options] value that New refuses.
	ErrInvalidOptions = errors.New("redisstream: invalid options")
	// ErrClosed is returned by a Stream used after Close, and by the Tail
	// calls that Close ends.
	ErrClosed = errors.New("redisstream: stream closed")
	// ErrStreamGone is returned by a Tail that follows a run whose
	// stream goes from Redis (it expired, IdleTTL after the run's newest
	// event or FinishedTTL after its final one; it was deleted; or Redis
	// lost it), once the Tail has delivered the events that it was due:
	// no event of the run can come to it any more, where without the
	// run's final event it would wait for good. With a History, only a
	// run quiet for IdleTTL ends its readers so (see [Stream.Tail]).
	// Tail again from the last Seq delivered (a browser's EventSource
	// reconnects) to read what a late Publish writes again; such a Tail
	// waits as for a run not started.
	ErrStreamGone = errors.New("redisstream: the run's stream is gone from Redis")
	// ErrCorruptEntry marks a stream entry that is not an event written by
	// this package, or that holds an event of another run than the
	// stream's. Readers skip such entries and count them.
	ErrCorruptEntry = errors.New("redisstream: corrupt stream entry")
)

// RunIDPlaceholder is the part of [Options.KeyTemplate] replaced by the
// run ID.
const RunIDPlaceholder = "{runId}"

// eventField is the stream entry field that holds the event's JSON.
const eventField = "event"

// Options configures a [Stream]. The zero value gives the defaults.
type Options struct {
	// KeyTemplate names a run's stream: RunIDPlaceholder is replaced by
	// the run ID, so "lecture:{runId}" gives "lecture:r1". It must contain
	// the placeholder exactly once. The run ID goes into the key as it is:
	// give the template a prefix of its own, so that a run ID a client
	// sends (in an SSE URL) names no key but a run's stream, and refuse
	// unknown run IDs in the SSE handler's Authorize. Default:
	// "lecture:{runId}".
	KeyTemplate string
	// MaxLen caps each stream with approximate trimming (XADD MAXLEN ~):
	// Redis keeps at least MaxLen entries, and trims whole internal nodes
	// beyond it. Readers that fall further behind read the History.
	// Default: 5000.
	MaxLen int64
	// FinishedTTL expires a run's stream that long after its final event
	// (run.finished, run.failed or run.cancelled) is published; later
	// readers then read the History. A negative FinishedTTL keeps a
	// finished run's stream until it is trimmed or deleted, unless
	// IdleTTL, which the call of the final event then sets as any other
	// call, expires it IdleTTL after that event (see IdleTTL). A stream costs
	// some 370 bytes an event, up to about 2 MB at the default MaxLen:
	// kept for good, the streams of every run ever made fill Redis.
	// Without IdleTTL (a negative one), the events of a Publish call
	// without the run's first event (Seq 1) that find their run's
	// stream gone (a late retry after the stream expired, or Redis lost
	// it while the run goes on) create it again with FinishedTTL too, so
	// that no stream is left without an expiry; that costs the call one
	// more round trip. (A late retry of a call that holds a run's first
	// event, alone or with others but without the final one, looks like
	// a new run, and creates a stream without an expiry.) A final event
	// sets it with PEXPIRE, in one more round trip after the call's
	// XADDs, and only on a stream that took the event (or had it
	// already: a retry), never on a key of another type that the run's
	// key names, which refuses it (WRONGTYPE); a stream created again
	// gets it in the transaction that creates it. So FinishedTTL needs
	// no EVAL: the Redis user's ACL must allow PEXPIRE (the @keyspace
	// category; streams alone, @stream, are not enough), and
	// @scripting only for IdleTTL. Where the ACL refuses it, the events
	// are written and the call succeeds: the refusal is counted in
	// Stats.ExpiryErrors and logged (a warning the first time), and the
	// stream has no expiry (MaxLen bounds its length, not its life): the
	// sweep gives it one where the ACL allows PEXPIRE (see IdleTTL), and
	// where it does not, the stream is kept until it is deleted. It must
	// be negative, 0 or at least 1s. Default (0): 24h.
	FinishedTTL time.Duration
	// IdleTTL expires a run's stream that long after its newest
	// publish: each publish sets it again, and a final event's
	// FinishedTTL, if set, takes over. So the stream of a run that never
	// published its final event (its process crashed, or that publish
	// failed: a Redis outage at the run's end, which progress.Buffered
	// outlasts by sending the event to its fallback) still expires,
	// which FinishedTTL alone never makes it do; and a Tail that
	// follows such a run returns ErrStreamGone then, where it would
	// otherwise wait for good (see History and [Stream.Tail]). A
	// negative IdleTTL
	// keeps such a stream until it is trimmed or deleted, and writes no
	// expiry before the final event. It must be negative, 0 or at least
	// 1s. Default (0): 72h, three times the default FinishedTTL, so that
	// a sweep (every IdleTTL/4, see below) comes before FinishedTTL
	// expires a finished stream. The default does not follow a
	// FinishedTTL that is set: with one below 18h, set IdleTTL to at most
	// four times it, or a sweep may come too late for a finished stream.
	//
	// Set it well above the longest quiet spell of a run (a run emits at
	// least an event per node). Both TTLs give every stream an expiry,
	// which makes it one that Redis may evict under a volatile-*
	// maxmemory-policy (volatile-lru, volatile-ttl...): give Redis
	// noeviction and the memory of the streams that the TTLs keep. Publish sets it with a Lua script (EVAL,
	// which reads the stream with XRANGE and sets PEXPIRE), so the Redis
	// user's ACL must allow EVAL (the @scripting category) and the
	// script's PEXPIRE (@keyspace). Where the ACL refuses EVAL, Publish
	// sends the script's commands without it, in one more round trip:
	// XRANGE, then PEXPIRE on a stream without an entry above the call's
	// newest event, which is not atomic: a final event that another call
	// writes between them gets IdleTTL in place of its FinishedTTL.
	// Where the ACL refuses PEXPIRE, each Publish writes its events and
	// succeeds, and counts the expiry it could not set in
	// Stats.ExpiryErrors, which it logs (a warning the first time).
	//
	// With a History too, the Stream copies into it the streams that
	// IdleTTL is about to expire without their run's final event, so
	// that the events that only Redis held (a killed process's queue for
	// the archive died with it) are not lost when the stream expires
	// before the run is resumed, or because it never is. A minute after
	// the Stream starts (or IdleTTL/4, if sooner: so that processes that
	// live less than IdleTTL/4 sweep too), and then every IdleTTL/4, it
	// scans the keys of KeyTemplate (SCAN MATCH ... TYPE stream, which
	// takes Redis 6 or later, on each master of a cluster) and looks up
	// their expiry (PTTL, pipelined a page); a stream with IdleTTL/2 or
	// less left, whose newest entry (one XREVRANGE) is not a final event,
	// or is one that the History lacks (one Replay of the History: the
	// process was killed after its final event reached Redis, before its
	// archive's queue reached the History), is copied as an interrupted
	// run's is (see [Stream.Publish]), once by each Stream for each newest
	// entry: every Stream of the hosts'
	// servers copies it, and the History ignores what it holds. A scan
	// costs a round trip per 1,000 keys of the Redis database (SCAN reads
	// the whole keyspace, whatever the pattern): give the Streams a
	// database of their own if it holds millions of keys. The ACL must
	// allow SCAN and PTTL (@keyspace). A failed scan is logged and counted
	// in Stats.ReadErrors, a failed copy in Stats.CopyErrors, and the
	// next sweep tries again while the stream is left. Still lost are the
	// entries that MaxLen trimmed, and a stream gone before a sweep
	// copied it (Redis restarted without persistence, the sweeps failed,
	// no Stream with a History ran while it was idle, or, for a run that
	// ended, a FinishedTTL below IdleTTL/4 expired it between sweeps).
	//
	// With or without a History, the same sweeps (every FinishedTTL/4
	// with a negative IdleTTL; none with both TTLs negative) of a Stream
	// that has published give an expiry to the streams of KeyTemplate
	// that have none (PTTL -1):
	// those that a release without expiries wrote, which no Publish
	// would expire, as their runs publish no more. A stream whose newest
	// entry is its run's final event gets FinishedTTL, and one whose
	// newest entry is another event of its run IdleTTL, from the sweep
	// (unless that TTL is negative); a stream whose newest entry is no
	// event of its run (another writer's, or corrupt), and every key of
	// another type, are left as they are. That costs, for each page of
	// the scan with such streams, one pipeline of XREVRANGE COUNT 1 and
	// one of EVAL (a script that sets PEXPIRE only if the key is still a
	// stream without an expiry and with the same newest entry); where
	// the Redis user's ACL refuses EVAL (no @scripting), one more of
	// PEXPIRE NX (Redis 7 or later), which checks only that the key has
	// no expiry yet (@keyspace, as PTTL and SCAN are). An expiry that
	// Redis refuses it (no PEXPIRE, or PEXPIRE NX before Redis 7) is
	// counted in Stats.ExpiryErrors at each sweep, and warned of once
	// (at debug level after). A Stream
	// that has not published (one that only reads, a progress/sse
	// service's, whose Redis user may lack EVAL, PEXPIRE or SCAN) leaves
	// that to the writers' Streams: it sweeps only to copy idle streams
	// into its History, and without a History and IdleTTL sends nothing.
	IdleTTL time.Duration
	// History is read when a reader asks for events the stream no longer
	// has: older than its first entry, or the whole stream after it
	// expired or Redis restarted without persistence. A History that
	// fails (its database restarts) does not end a Tail: the reader
	// follows the stream, waits with backoff only for a gap that the
	// History alone can fill, and the run's shared reader reads the
	// History again at its next poll. It is also written to, once a run
	// that crashed is resumed: Publish copies the run's stream into it
	// with the run's final event (see [Stream.Publish]), so that what
	// reached Redis and not the archive is kept, and with IdleTTL, a
	// stream about to expire without its run's final event is copied
	// into it (see IdleTTL); give the History that the progress.Archive
	// beside the Stream appends to. Default: nil,
	// and such events are skipped (counted in Stats.Skipped, and logged,
	// as the reader jumps over them).
	//
	// Set a History in production. Without one, a reader that follows a
	// run whose final event never reached Redis (an outage at the run's
	// end, which progress.Buffered outlasts by sending the event to its
	// fallback) waits until IdleTTL expires the run's stream (72h after
	// its newest event, by default), then returns ErrStreamGone; with one,
	// the run's shared reader finds that event in the History, which the
	// progress.Archive fills whatever Redis does, within HistoryPoll, and
	// the reader gets it and ends with the run. (A run whose final event
	// reached neither, its process killed, ends its readers with
	// ErrStreamGone once it has been quiet for IdleTTL, and its stream
	// has expired, unless a Resume publishes its end before.)
	History progress.History
	// BlockTime bounds each blocking XREAD. go-redis does not interrupt a
	// blocked read when its context is cancelled, so this is the longest a
	// run's reading goroutine outlives its last reader, and what Close may
	// wait. Readers themselves return at once on cancellation.
	// Default: 1s.
	BlockTime time.Duration
	// PageSize is the COUNT of each XRANGE and XREAD. Default: 500.
	PageSize int64
	// HubBuffer is how many recent events the reading goroutine of a run
	// keeps for the run's local readers; a reader further behind reads
	// Redis itself until it catches up. Default: 1024.
	HubBuffer int
	// RetryDelay is the first pause after a failed read; it doubles up to
	// 2s while Redis stays unreachable. It must be at least 1ms.
	// Default: 100ms.
	RetryDelay time.Duration
	// HistoryPoll bounds how long readers wait for the History, and sets
	// how often the run's reading goroutine asks it for events that Redis
	// lacks. It applies only with a History. It must be at least 1ms.
	// Default: 5s.
	//
	// Polling: until the run's final event is known, the run's reading
	// goroutine (one per run with readers, whatever their number) reads
	// the History every HistoryPoll, and as soon as Redis answers again
	// after an outage, for events that reached the History but not Redis
	// and that no later entry of the stream reveals as a gap, such as the
	// end of a run during an outage. While it polls, its XREAD blocks no
	// longer than until the next poll; and while Redis does not answer
	// (paused, or cut off by a network fault), so that the XREAD takes
	// more than a second over its block, it polls as it waits for the
	// XREAD to return, and as it waits for its turn to read without
	// blocking (see MaxBlockingReads). Events after a gap in the History
	// wait one more poll, so that Redis may deliver the missing ones
	// first, and until Redis has answered an XREAD made since the gap
	// was found: while it does not answer (it hangs, or is down), it may
	// hold them, and the readers that passed over them would skip them
	// for good.
	//
	// Holding a gap: when the stream's entries skip events that the
	// History lacks too (Redis refused a batch and took the next, while
	// the History, behind a progress.Buffered of its own, is a moment
	// behind), the run's shared reader holds the entries after the gap for
	// up to one HistoryPoll, and asks the History again every RetryDelay.
	// The wait starts again when the History fills a part of the gap; a
	// failing History counts as one that lacks the events. Then the
	// readers pass over the gap, which they see as a jump in Seq.
	//   - Only readers that have yet to deliver the gap's events wait:
	//     those that follow the run, those still replaying it, and those
	//     that connect meanwhile at, inside or before the gap (or before
	//     the shared reader has read past it, if the event after the gap
	//     is younger than HistoryPoll).
	//   - A reader that resumed past the gap reads on at once: from the
	//     shared reader, or, past the entries after the gap that the
	//     shared reader reads again and again and holds (PageSize of them
	//     at most, and HubBuffer), from Redis itself, once every
	//     RetryDelay.
	//   - When the last reader that waits leaves, the hold goes on, for no
	//     reader, until the History fills the gap or HistoryPoll passes, so
	//     that a browser that reconnects at the gap waits too; and so
	//     does a hold that no reader waits for, because the readers that
	//     follow the run are past the gap, while the event after the gap
	//     is younger than HistoryPoll (by its Time).
	//   - A reader that waits at a gap below everything that the shared
	//     reader holds (it started above the gap, for a reader that
	//     resumed past it) asks the History itself, and Redis, once every
	//     RetryDelay, up to HistoryPoll by its own clock.
	//   - Each gap is held once: a later gap is held in its turn.
	HistoryPoll time.Duration
	// MaxBlockingReads caps how many runs' reading goroutines block in
	// XREAD at once, each holding a pooled connection of the client while
	// it does. The reading goroutines of other runs read without blocking,
	// once every BlockTime (their readers then wait up to BlockTime more
	// for new events; with a client's ReadTimeout of -1, or one above
	// 10s, with a BLOCK of 1ms, so that go-redis ends such a read 10s on
	// while Redis does not answer, as it ends a blocking one, rather than
	// wait with it, and Close, until Redis answers), so that watching
	// more runs than the client's pool holds never takes every connection
	// from Publish and the replays;
	// reads that do not block, theirs and the replays', are capped at
	// half MaxBlockingReads at once (at least one). With such a client,
	// a replay's page is read so too (XREAD with a BLOCK of 1ms, not
	// XRANGE), so that a page's read that a reader left in flight on a
	// connection cut without a reset gives its token back 10s on, not
	// once TCP gives the connection up.
	// Default: half the client's PoolSize for a *redis.Client (go-redis's
	// default pool is 10 connections per GOMAXPROCS), or half its
	// MaxActiveConns if that is set and lower; the same of a node's pool
	// for a *redis.ClusterClient or a *redis.Ring (every run's stream may
	// be on one node); and 16 for other clients.
	MaxBlockingReads int
	// Logger reports read errors, corrupt entries, and the events a
	// reader skips because neither the stream nor the History holds them
	// (a warning for each gap, naming its first and last Seq). Default:
	// slog.Default().
	Logger *slog.Logger
}

// Stats is a snapshot of a [Stream]'s counters since it was created.
type Stats struct {
	// Published counts the events written to Redis.
	Published uint64
	// Duplicates counts the events Redis already had (a retried publish),
	// which were therefore not written again.
	Duplicates uint64
	// PublishErrors counts the Publish calls that failed, wholly or partly.
	PublishErrors uint64
	// Dropped counts the events that failed Publish calls did not write.
	// A caller such as progress.Buffered may retry them or send them to a
	// fallback sink.
	Dropped uint64
	// ReadErrors counts the failed reads; readers retry them with backoff.
	// It counts the failed sweeps for idle streams, and for streams
	// without an expiry, too (see [Options].IdleTTL), which the next
	// sweep makes again.
	ReadErrors uint64
	// Readers is the number of Tail calls in progress.
	Readers int
	// Runs is the number of runs with a reading goroutine (one per run
	// with readers short of its final event, whatever their number; and,
	// up to HistoryPoll, one per run whose last reader left while that
	// goroutine held the entries after a gap, see [Options].HistoryPoll).
	Runs int
	// Lag is how many events the furthest-behind reader has yet to
	// deliver, of those its stream is known to hold.
	Lag uint64
	// Skipped counts the events that readers jumped over because neither
	// the stream nor the History had them, as they jump over them.
	Skipped uint64
	// Corrupt counts the stream entries skipped as not being events of
	// their run, by readers and by the copies of a run's stream into the
	// History (see [Stream.Publish] and [Options].IdleTTL), at each read
	// of them, and the events of such a copy that the History refused as
	// invalid (progress.ErrInvalidEvent), which are not copied either.
	Corrupt uint64
	// CopyErrors counts the failed copies of an interrupted run's stream
	// into the History, which Publish makes with the run's final event
	// (see [Stream.Publish]), and the failed retries of them; and the
	// failed copies of a stream that IdleTTL is about to expire (see
	// [Options].IdleTTL).
	CopyErrors uint64
	// Copying is the number of interrupted runs whose copy failed and
	// waits to be retried.
	Copying int
	// ExpiryErrors counts the expiries (FinishedTTL or IdleTTL) that
	// the Redis user's ACL refused on streams that took a Publish
	// call's events (see [Options].FinishedTTL and [Options].IdleTTL):
	// such a call returns no error for them, as its events are written,
	// and the streams have no expiry until the sweep gives them one,
	// which it can only where the ACL allows PEXPIRE (else they are
	// kept until deleted); and the expiries that the sweep could not
	// give such streams as Redis refused them (an ACL without PEXPIRE,
	// or PEXPIRE NX before Redis 7), at each sweep. Anything but 0
	// means the ACL, or the Redis version, lacks a command that the
	// options need; the first refusal of a Stream, and the sweep's
	// first, are logged as warnings.
	ExpiryErrors uint64
}

// Stream is a [progress.Sink] and [progress.Source] over Redis Streams,
// one stream per run. It is safe for concurrent use.
//
// Publish writes each event with XADD and the explicit entry ID 0-<seq>,
// pipelined per call, so a retried event is refused by Redis as a
// duplicate and IDs survive a restart. Readers replay with XRANGE from
// the exclusive ID after the last Seq they saw, then tail. Tailing is
// shared: one goroutine per run blocks in XREAD (never from "$") and fans
// the entries out to every local reader of the run, so a thousand browsers
// on one run cost one Redis connection. Gaps, where the stream was trimmed
// or lost, are filled from the History.
type Stream struct {
	client     redis.UniversalClient
	keyPrefix  string
	keySuffix  string
	maxLen     int64
	ttl        time.Duration
	idleTTL    time.Duration
	history    progress.History
	blockTime  time.Duration
	pageSize   int64
	hubBuffer  int
	retryDelay time.Duration
	poll       time.Duration
	logger     *slog.Logger
	// blocking holds a token for each reading goroutine blocked in XREAD;
	// its capacity is MaxBlockingReads.
	blocking chan struct{}
	// reads holds a token for each read that does not block: a reading
	// goroutine's XREAD without a blocking token, a page of a replay, a
	// lookup of a run's newest entry. They are half as many as blocking
	// ones at most (at least one), so that bursts of them (the runs beyond
	// the cap read once every BlockTime together, browsers reconnect
	// together) never take the connections left to Publish: go-redis
	// fails a call at once when a client's MaxActiveConns are busy. One
	// waits for a token at most the reads before it, a round trip each.
	reads chan struct{}
	// readsFailing says that the last read of Redis to end, a reader's or
	// a run's shared reader's, failed as Redis does when it is down or
	// does not answer: a reader then serves itself from the History
	// before it reads Redis (see tail.early).
	readsFailing atomic.Bool
	// readFailed is closed, and replaced, under failMu, whenever a read
	// of Redis fails (see readEnded): a read of readNow that waits for a
	// token since before any failed fails then (see takeReadNow).
	failMu     sync.Mutex
	readFailed chan struct{}
	// readWait bounds how long a read that has an answer of its own for
	// an outage (LastEvent's, a Tail's, a Replay's with a History) waits
	// for a token of reads that do not block while readsFailing, and for
	// Redis's answer (see readNow).
	readWait time.Duration
	// lookupWait bounds a lookup that no BLOCK bounds (LastEvent's
	// XREVRANGE, a gap check's XREVRANGE and XINFO STREAM) on a client
	// whose ReadTimeout does not (blockAll): blockMargin, else 0 (none:
	// the ReadTimeout does). See lookupNow.
	lookupWait time.Duration

	ctx    context.Context // the hubs'; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per hub goroutine and per copy retried

	mu      sync.Mutex
	closed  bool
	hubs    map[string]*hub
	readers map[*reader]struct{}
	copying map[string]struct{} // the runs whose copy is retried
	// inFlight holds, by run, the last write that a Publish whose context
	// ended left in flight, until it ends: the run's next write waits for
	// it, so that Redis gets the run's events in the order of the calls.
	inFlight map[string]*write
	// leftWait bounds a write's wait for the one left in flight before
	// it (leftWriteTimeout; tests set it).
	leftWait time.Duration
	// blockAll says that the client's ReadTimeout bounds a command
	// without a BLOCK later than go-redis bounds one with (its block and
	// 10s), or not at all (-1): a run's shared reader that reads without
	// blocking then sends a BLOCK of 1ms (see runHub).
	blockAll bool
	writes   uint64 // the calls of Publish so far, which number the writes
	// handing, if set, is called by each write of Publish as it hands its
	// result to its call (tests set it).
	handing atomic.Pointer[func()]
	// leftTimer, if set, gives a write that waits for writes left in
	// flight, by its seq, what ends its wait in place of a timer of its
	// bound (tests set it).
	leftTimer atomic.Pointer[func(seq uint64) <-chan time.Time]

	// hasPublished says that Publish has been called with events: only
	// then do the sweeps give expiries (see sweep).
	hasPublished atomic.Bool

	published, duplicates, publishErrors, dropped atomic.Uint64
	readErrors, skipped, corrupt, copyErrors      atomic.Uint64
	expiryErrors                                  atomic.Uint64
	expiryRefused                                 atomic.Bool // a refused expiry was warned of
	sweepExpiryRefused                            atomic.Bool // an expiry refused to the sweep was warned of
}

// blockMargin is what go-redis gives a blocking command over its block
// before it takes the connection for dead, whatever the client's
// ReadTimeout.
const blockMargin = 10 * time.Second

// unboundedReads reports whether client's ReadTimeout bounds a command
// without a BLOCK later than go-redis bounds one with (its block and
// blockMargin), or not at all: a ReadTimeout of -1 (none) or -2 (no
// deadline set), or one above blockMargin. It reports false for a client
// of another type.
func unboundedReads(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client:
		// As go-redis keeps it: -1 given is 0, -2 given is -1.
		rt := c.Options().ReadTimeout
		return rt <= 0 || rt > blockMargin
	case *redis.ClusterClient:
		rt := c.Options().ReadTimeout
		return rt <= 0 || rt > blockMargin
	case *redis.Ring:
		// As given: 0 is go-redis's default of 5s.
		rt := c.Options().ReadTimeout
		return rt < 0 || rt > blockMargin
	}
	return false
}

// maxBlockingReads returns the cap on blocked XREADs: n if set, else
// half the connections the client holds to one server at most (its
// PoolSize, or its MaxActiveConns if lower; per node for a cluster or a
// ring, where every run's stream may be on one node), else 16.
func maxBlockingReads(client redis.UniversalClient, n int) int {
	if n > 0 {
		return n
	}
	var pool, active int
	switch c := client.(type) {
	case *redis.Client:
		pool, active = c.Options().PoolSize, c.Options().MaxActiveConns
	case *redis.ClusterClient:
		pool, active = c.Options().PoolSize, c.Options().MaxActiveConns
	case *redis.Ring:
		pool, active = c.Options().PoolSize, c.Options().MaxActiveConns
	default:
		return 16
	}
	if pool <= 0 {
		pool = 10 * runtime.GOMAXPROCS(0) // go-redis's default
	}
	if active > 0 {
		pool = min(pool, active) // the most it ever holds
	}
	return max(pool/2, 1)
}

// New returns a Stream over client, which the caller keeps owning and
// closes after [Stream.Close]. Options are checked here; the error wraps
// [ErrInvalidOptions].
//
// Tailing holds one pooled connection per run with readers while it
// blocks in XREAD, for at most MaxBlockingReads runs at once (by default
// half the client's pool); the runs beyond read without blocking once
// every BlockTime. Reads that do not block (those, the pages of replays,
// the lookups of a run's newest entry) are capped at half as many at
// once (at least one; so a client of 2 connections or fewer has none to
// spare). So watching more runs than the pool holds delays their
// readers by up to BlockTime, and never takes every connection from
// Publish (before the cap, 200 runs with 3 readers each on a pool of 20
// made 79 pool timeouts and sent 276 of 4,000 events to Buffered's
// fallback). Size the client's PoolSize, or MaxBlockingReads, for the
// runs watched at once to keep every reader blocking. A host may also
// publish through a Stream on a client of its own and serve readers from
// another Stream, on another client, with the same KeyTemplate.
func New(client redis.UniversalClient, opts Options) (*Stream, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidOptions)
	}
	tmpl := opts.KeyTemplate
	if tmpl == "" {
		tmpl = "lecture:" + RunIDPlaceholder
	}
	if strings.Count(tmpl, RunIDPlaceholder) != 1 {
		return nil, fmt.Errorf("%w: key template %q must contain %s exactly once", ErrInvalidOptions, tmpl, RunIDPlaceholder)
	}
	for _, o := range []struct {
		name  string
		value int64
		dur   bool
	}{
		{"MaxLen", opts.MaxLen, false},
		{"BlockTime", int64(opts.BlockTime), true}, {"PageSize", opts.PageSize, false},
		{"HubBuffer", int64(opts.HubBuffer), false}, {"RetryDelay", int64(opts.RetryDelay), true},
		{"HistoryPoll", int64(opts.HistoryPoll), true}, {"MaxBlockingReads", int64(opts.MaxBlockingReads), false},
	} {
		if o.value < 0 {
			v := fmt.Sprint(o.value)
			if o.dur {
				v = time.Duration(o.value).String()
			}
			return nil, fmt.Errorf("%w: %s is %s; it must be 0 (the default) or positive", ErrInvalidOptions, o.name, v)
		}
	}
	if opts.BlockTime > 0 && opts.BlockTime < time.Millisecond {
		return nil, fmt.Errorf("%w: BlockTime %v is below Redis's resolution of 1ms", ErrInvalidOptions, opts.BlockTime)
	}
	for _, o := range []struct {
		name  string
		value time.Duration
	}{{"HistoryPoll", opts.HistoryPoll}, {"RetryDelay", opts.RetryDelay}} {
		// Most likely a number without its unit (5, meant as 5s): a poll
		// of the History, or a retry of Redis, a few nanoseconds apart.
		if o.value > 0 && o.value < time.Millisecond {
			return nil, fmt.Errorf("%w: %s %v is below 1ms; give a duration with its unit (5 * time.Second, not 5)", ErrInvalidOptions, o.name, o.value)
		}
	}
	for _, o := range []struct {
		name  string
		value time.Duration
		def   time.Duration
	}{{"FinishedTTL", opts.FinishedTTL, defaultFinishedTTL}, {"IdleTTL", opts.IdleTTL, defaultIdleTTL}} {
		if o.value > 0 && o.value < time.Second {
			return nil, fmt.Errorf("%w: %s %v is below 1s; give at least 1s, 0 for the default (%v), or a negative one to keep the streams it would expire",
				ErrInvalidOptions, o.name, o.value, o.def)
		}
	}
	prefix, suffix, _ := strings.Cut(tmpl, RunIDPlaceholder)
	blockingReads := maxBlockingReads(client, opts.MaxBlockingReads)
	s := &Stream{
		client:     client,
		keyPrefix:  prefix,
		keySuffix:  suffix,
		maxLen:     defaultTo(opts.MaxLen, 5000),
		ttl:        ttlOrDefault(opts.FinishedTTL, defaultFinishedTTL),
		idleTTL:    ttlOrDefault(opts.IdleTTL, defaultIdleTTL),
		history:    opts.History,
		blockTime:  defaultTo(opts.BlockTime, time.Second),
		pageSize:   defaultTo(opts.PageSize, 500),
		hubBuffer:  defaultTo(opts.HubBuffer, 1024),
		retryDelay: defaultTo(opts.RetryDelay, 100*time.Millisecond),
		poll:       defaultTo(opts.HistoryPoll, 5*time.Second),
		logger:     opts.Logger,
		hubs:       make(map[string]*hub),
		readers:    make(map[*reader]struct{}),
		copying:    make(map[string]struct{}),
		blocking:   make(chan struct{}, blockingReads),
		reads:      make(chan struct{}, max(blockingReads/2, 1)),
		leftWait:   leftWriteTimeout,
		readWait:   hungAfter,
		readFailed: make(chan struct{}),
		blockAll:   unboundedReads(client),
	}
	if s.blockAll {
		s.lookupWait = blockMargin
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.sweepEvery() > 0 {
		s.wg.Add(1)
		go s.sweepIdle(firstSweep)
	}
	return s, nil
}

// The expiries of a run's stream that the zero Options give (see
// Options.FinishedTTL and Options.IdleTTL): a finished run's stream is
// read from Redis for a day, and the stream of a run that never ended
// (its process died, or its final event was lost in an outage) is kept
// three days after its newest event, so that the idle sweep (every
// IdleTTL/4, 18h) comes before a finished stream expires.
const (
	defaultFinishedTTL = 24 * time.Hour
	defaultIdleTTL     = 72 * time.Hour
)

// ttlOrDefault is the expiry that a TTL option gives: def for 0, none
// (0) for a negative one, which keeps the stream.
func ttlOrDefault(v, def time.Duration) time.Duration {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// goneQuiet is how long a run's shared reader waits, since the run's
// last new event, before it checks that the run's stream is still there
// (see hub.checksGone): at once without a History, IdleTTL with one.
func (s *Stream) goneQuiet() time.Duration {
	if s.history == nil {
		return 0
	}
	return s.idleTTL
}

func defaultTo[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Key returns the Redis key of runID's stream.
func (s *Stream) Key(runID string) string { return s.keyPrefix + runID + s.keySuffix }

// entryID is the stream entry ID of a Seq.
func entryID(seq uint64) string { return "0-" + strconv.FormatUint(seq, 10) }

// Publish writes events in one pipeline, each with XADD MAXLEN ~ and the
// entry ID 0-<seq>. An event Redis already has, or whose Seq is not above
// the stream's newest entry, is a duplicate: it is skipped without error,
// and the other events of the call are still written. (Redis refuses
// every 0-<seq> after an entry that another writer added with an ID of its
// own, XADD key * ..., with the same error: an event refused only for that
// is no duplicate but an event not written. Telling them apart costs an
// XREVRANGE for each stream that refused events in the call.) If some events
// could not be written, Publish returns an error naming how many; writing
// them again later is safe. An invalid event fails the whole call with
// progress.ErrInvalidEvent before anything is written. Refusals of
// Redis that writing again cannot fix make the error wrap
// progress.ErrInvalidEvent too: an event above another writer's entry,
// an event whose run's key holds another type than a stream
// (WRONGTYPE), and an XADD that the Redis user's ACL refuses (NOPERM:
// a configuration error, returned as a *PermissionError). An expiry
// that the ACL refuses (the PEXPIRE or EVAL that sets one, see
// Options.FinishedTTL and Options.IdleTTL) on streams that took their
// events is no error of the call, whose events are written: it is
// counted in Stats.ExpiryErrors and logged. The call's other events are written nonetheless (written
// again, they are duplicates): so a progress.Buffered halves its batch
// down to the events refused, and hands those to its fallback at once,
// instead of retrying them while every newer event of every run waits
// behind them (for good, for an ACL's refusal, until an operator fixes
// the ACL). Every other failure may pass, and does not wrap it: Redis
// down, slow or unreachable, LOADING, BUSY, READONLY, MASTERDOWN, a
// cluster's MOVED, TRYAGAIN or CLUSTERDOWN, OOM, an expiry not set for
// another reason than the ACL (a retry, whose events are then
// duplicates, sets it). A final event
// also sets the stream's expiry to FinishedTTL, and each call sets the
// expiry of each stream it writes to to IdleTTL (a final event's
// FinishedTTL, if not negative, wins), unless the stream has an entry
// above the call's newest event there: events Redis refused as older
// than the stream's newest leave the expiry as it was. Both expiries are
// set by default; a negative one is not set. FinishedTTL is set with
// PEXPIRE, in one more round trip, after the XADDs, on the streams that
// took the final event (or had it: a retry); IdleTTL with EVAL, in the
// same pipeline as the XADDs, or, where the ACL refuses EVAL, with
// XRANGE and PEXPIRE in two more round trips (see Options.FinishedTTL and
// Options.IdleTTL); each on a stream only: a key of another type keeps
// its expiry. With FinishedTTL and a negative IdleTTL, the
// events of a run in a call without its first event (Seq 1) are written
// with XADD NOMKSTREAM, and those that found the stream gone are written
// again in a second round trip, a transaction that creates the stream
// with FinishedTTL (see Options.FinishedTTL).
//
// With a History, a call that writes the final event of a run that a
// Resume or RerunFailed found interrupted (its ResumedBy is set), or
// finds it written already (a retry), then copies what the run's stream
// holds into the History: XRANGE in pages of PageSize, one History.Append
// a page, which ignores the events the History holds (a stream of 5000
// entries is 10 pages by default). Corrupt entries, and events that the
// History refuses as invalid (progress.ErrInvalidEvent), are passed over,
// counted in Stats.Corrupt and logged: every other event is copied, in
// order. The run's process stopped without its
// final event, and the events it had queued for an archive of the History
// behind a progress.Buffered of its own died with it, although many
// reached Redis through the Stream's Buffered: copied, they are not lost
// to readers when the stream expires or is trimmed. The copy is bounded by
// ctx (behind a Buffered, by its Timeout, off the path of every run), and
// Close ends it, and its retries, at once. It never fails the call, whose final event is written: a failure (the
// History is down) is logged and counted in Stats.CopyErrors, and the
// copy is retried in the background, with backoff from RetryDelay
// doubling up to 30s, each try bounded by 30s, until it succeeds, the
// run's stream is gone (nothing is left to copy), the Stream is closed,
// or an hour has passed; each outcome is logged (Stats.Copying counts
// the runs it waits for). A copy whose read Redis refuses for good (the
// Redis user's ACL refuses XRANGE: NOPERM) is not retried. Other events, and the final events of runs
// that ended by themselves, cost nothing more.
//
// Publish returns context.Cause(ctx) as soon as ctx ends, even while
// Redis does not answer (paused, or cut off by a network fault), so that
// a progress.Buffered's Timeout bounds it: go-redis applies a context's
// deadline to a command only with redis.Options.ContextTimeoutEnabled,
// and never its cancellation. The write goes on in a goroutine of the
// Stream, which Close waits for, at most until the client's ReadTimeout,
// and may yet reach Redis: writing the events again is safe. A later
// call with events of the same run writes them only once that write has
// ended (or the Stream is closed), so that they cannot reach Redis first,
// and the earlier events be refused as older than the stream's newest;
// if its context ends while it waits, its write is left in flight too,
// and goes out once the one before it has ended. It waits 30s at most (a
// write that a network fault holds without a reset, with a client's
// ReadTimeout of -1, may not end until TCP gives up, minutes later):
// then it writes the run's events that the write still in flight sends
// (and those of the writes that one still waits for) first, in the same
// pipeline, so that whichever of the two reaches Redis first, the stream
// gets the events in order, and the other's are duplicates (counted in
// Stats.Duplicates; the later call's error, if any, counts the events it
// wrote again too). Once it has written them, the run's next writes no
// longer wait for the held write, from before its call returns; if it
// failed, they still do, and so do the writes that waited for the one
// that failed.
// Each call costs that goroutine and a copy of the events slice (and of
// the events that it writes again).
func (s *Stream) Publish(ctx context.Context, events ...progress.Event) error {
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	if len(events) == 0 {
		return nil
	}
	s.hasPublished.Store(true)
	events = slices.Clone(events) // the write may outlive the call
	done := make(chan error, 1)
	w := &write{ended: make(chan struct{}), sent: events}
	ok := s.spawnAfter(w, events, func(after []*write) {
		wctx, send := ctx, events
		var gaveUp []*write
		if len(after) > 0 {
			send, gaveUp = s.resend(w, s.waitWrites(w, after, events), events)
			if s.ctx.Err() == nil {
				// The call may have returned while the write waited, its
				// ctx ended, which go-redis would refuse before sending
				// anything: the write goes on, as one left on its way
				// does, bounded by leftWriteTimeout and by Close.
				var cancel context.CancelFunc
				wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), leftWriteTimeout)
				defer cancel()
				defer context.AfterFunc(s.ctx, cancel)()
			}
		}
		err := s.publish(wctx, send)
		// Recorded before the call returns: the call's next Publish must
		// not find the writes that this one wrote again still waited for.
		s.wrote(w, events, gaveUp, err != nil)
		if f := s.handing.Load(); f != nil {
			(*f)()
		}
		done <- err
	})
	if !ok {
		return ErrClosed
	}
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		select {
		case err = <-done:
		default:
			err = fmt.Errorf("redisstream: publish: %w", context.Cause(ctx))
			s.leftInFlight(w, events)
		}
	}
	if err != nil {
		s.publishErrors.Add(1)
	}
	return err
}

// leftWriteTimeout bounds a write's wait for one left in flight by an
// earlier call (see Stream.waitWrites), and the write after it: its own
// call's context may have ended meanwhile, and no longer bounds it (an
// interrupted run's copy to the History, which its final event's write
// makes, would otherwise have no bound but Close).
const leftWriteTimeout = 30 * time.Second

// write is a Publish's write, which a call whose context ended left in
// flight: the runs' next writes wait for it (see Stream.inFlight).
type write struct {
	// seq orders the writes by their calls.
	seq uint64
	// wait bounds its wait for the writes before it (Stream.leftWait
	// when its call came).
	wait time.Duration
	// after is what it waits for (under Stream.mu), until it stops
	// waiting: the writes left in flight before it with events of its
	// runs. A write that gives up on it meanwhile sends their events
	// too, which it has yet to add to sent (see Stream.resend).
	after []*write
	// sent is what it sends (under Stream.mu): its call's events, after
	// those of the writes before it that it gave up waiting for.
	sent []progress.Event
	// standIns, once it failed, are the writes it gave up waiting for
	// that were still in flight as it ended, with events of its call's
	// runs, in the order of their calls: the writes that waited for it
	// wait for them in its place (see Stream.waitWrites), and give up on
	// them as they would on it (see Stream.resend), as the runs' next
	// writes do (see Stream.wrote). Set before ended is closed.
	standIns []*write
	// state is writeRunning, then writeEnded, or writeLeft once its call
	// returned before it ended and it is in Stream.inFlight.
	state atomic.Int32
	ended chan struct{} // closed once it ended
}

const (
	writeRunning = iota
	writeEnded
	writeLeft
)

// waitWrites waits for the writes in after, w's, whose call's events are
// events, to end, up to w.wait in all, or until Close. It returns those
// that have not ended by then, in the order of their calls: a write that
// a network fault holds without a reset, with a client's ReadTimeout of
// -1, may not end before TCP gives up, minutes later, and the run's
// later events would miss Redis as long. For a write that ended failed,
// it waits for that write's stand-ins (write.standIns) with events of
// events' runs in its place, within the same bound: their events may
// still reach Redis, and must not find later ones there. The others,
// with events of the failed write's other runs alone, are not w's to
// wait for (it would not send their events).
func (s *Stream) waitWrites(w *write, after []*write, events []progress.Event) (late []*write) {
	var timeout <-chan time.Time
	if f := s.leftTimer.Load(); f != nil {
		timeout = (*f)(w.seq)
	} else {
		t := time.NewTimer(w.wait)
		defer t.Stop()
		timeout = t.C
	}
	waiting := slices.Clone(after)
	standIn := func(a *write) { // a has ended
		if len(a.standIns) == 0 {
			return
		}
		// a's standIns, set before it ended, no longer change; those
		// stand-ins' sent may, under mu.
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, b := range a.standIns {
			if !slices.Contains(waiting, b) && sendsOf(b, events) {
				waiting = append(waiting, b)
			}
		}
	}
	for i := 0; i < len(waiting); i++ {
		select {
		case <-waiting[i].ended:
			standIn(waiting[i])
		case <-s.ctx.Done():
			return nil
		case <-timeout:
			for ; i < len(waiting); i++ {
				select {
				case <-waiting[i].ended:
					standIn(waiting[i])
				default:
					late = append(late, waiting[i])
				}
			}
			slices.SortFunc(late, func(x, y *write) int { return cmp.Compare(x.seq, y.seq) })
			return late
		}
	}
	return nil
}

// resend returns what w, whose call's events are events, sends once it
// stopped waiting, giving up on the writes late, still in flight: first
// the events of events' runs that those writes send, then those of
// events that they do not send. A late write still waiting in its turn
// has yet to add the events of the writes it waits for to its own: they
// go first (else they would reach Redis after later events, and be
// refused as older than the stream's newest). In one pipeline, on one
// connection, Redis takes them in that order, so that whichever of the
// writes reaches Redis first, the stream gets the run's events in order,
// and the late writes' events that reach it after are refused as
// duplicates. A write that a late write waits for and that has ended
// failed stands for its stand-ins (write.standIns), which may still be
// in flight: their events go first too. An event of events that a late
// write sends too goes at its place among the late write's (sent after
// them, a seq 2 after a late 1 to 3 would be refused as older than the
// stream's newest). It records them as w's, for the writes that may give
// up on w in turn, and that w waits no more. gaveUp are the late writes
// and those they wait for, in the order of their calls.
func (s *Stream) resend(w *write, late []*write, events []progress.Event) (send []progress.Event, gaveUp []*write) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.after = nil
	if len(late) == 0 {
		return events, nil
	}
	// The late writes, and those they still wait for, in the order of
	// their calls.
	var all []*write
	var add func(l *write)
	add = func(l *write) {
		if slices.Contains(all, l) {
			return
		}
		select {
		case <-l.ended:
			// Its events are in Redis, or nowhere; those of its
			// stand-ins, if it failed, may be on their way.
			for _, b := range l.standIns {
				add(b)
			}
			return
		default:
		}
		all = append(all, l)
		for _, a := range l.after {
			add(a)
		}
	}
	for _, l := range late {
		add(l)
	}
	slices.SortFunc(all, func(x, y *write) int { return cmp.Compare(x.seq, y.seq) })
	type key struct {
		run string
		seq uint64
	}
	runs := make(map[string]bool, 1)
	for _, e := range events {
		runs[e.RunID] = true
	}
	seen := make(map[key]bool)
	for _, l := range all {
		for _, e := range l.sent {
			if k := (key{e.RunID, e.Seq}); runs[e.RunID] && !seen[k] {
				seen[k] = true
				send = append(send, e)
			}
		}
	}
	for _, e := range events {
		if !seen[key{e.RunID, e.Seq}] {
			send = append(send, e)
		}
	}
	w.sent = send
	return send, all
}

// spawnAfter runs f, w's write of events, in a goroutine of the Stream,
// as spawn does, with the writes left in flight by earlier calls with
// events of the same runs, for f to wait for before it writes.
func (s *Stream) spawnAfter(w *write, events []progress.Event, f func(after []*write)) bool {
	s.mu.Lock()
	s.writes++
	w.seq, w.wait = s.writes, s.leftWait
	var after []*write
	if len(s.inFlight) > 0 {
		for _, e := range events {
			if w, ok := s.inFlight[e.RunID]; ok && !slices.Contains(after, w) {
				after = append(after, w)
			}
		}
	}
	w.after = after
	s.mu.Unlock()
	return s.spawn(func() { f(after) })
}

// leftInFlight records that w's call returned before w ended: the next
// writes of its events' runs wait for it, unless it has ended meanwhile.
func (s *Stream) leftInFlight(w *write, events []progress.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !w.state.CompareAndSwap(writeRunning, writeLeft) {
		return // ended: nothing to wait for
	}
	if s.inFlight == nil {
		s.inFlight = make(map[string]*write, 1)
	}
	for _, e := range events {
		s.inFlight[e.RunID] = w // a later write waits for the ones before it
	}
}

// wrote records that w ended, so that the writes that wait for it go on.
// gaveUp are the writes still in flight that w gave up waiting for (see
// Stream.resend), whose events of events' runs it wrote first. Once w
// has written them, the runs' next writes no longer wait for those,
// which would otherwise each wait leftWait again, and write their events
// again, for as long as they are held. If w failed, the runs' next
// writes wait for the latest of them that is still in flight with
// events of the run, as they would have if w had not been: else they
// would go out at once, and reach Redis before the events of those
// writes, which Redis would then refuse as older than the stream's
// newest. And so do the writes already waiting for w as it failed,
// which took their wait lists before: it records those writes as its
// stand-ins (write.standIns).
func (s *Stream) wrote(w *write, events []progress.Event, gaveUp []*write, failed bool) {
	if !w.state.CompareAndSwap(writeRunning, writeEnded) || len(gaveUp) > 0 {
		// Left in flight: it is in inFlight, unless a later write took
		// its place there; and so may be the writes it gave up on.
		s.mu.Lock()
		if failed {
			w.standIns = inFlightOf(gaveUp, events)
		}
		for _, e := range events {
			l, ok := s.inFlight[e.RunID]
			if !ok || l != w && !slices.Contains(gaveUp, l) {
				continue
			}
			delete(s.inFlight, e.RunID)
			if failed {
				if p := latestInFlight(gaveUp, e.RunID); p != nil {
					s.inFlight[e.RunID] = p
				}
			}
		}
		s.mu.Unlock()
	}
	close(w.ended)
}

// inFlightOf returns the writes of writes that have not ended and send
// an event of one of events' runs, in the order of writes (under
// Stream.mu).
func inFlightOf(writes []*write, events []progress.Event) []*write {
	runs := make(map[string]bool, 1)
	for _, e := range events {
		runs[e.RunID] = true
	}
	var in []*write
	for _, l := range writes {
		select {
		case <-l.ended:
			continue
		default:
		}
		if slices.ContainsFunc(l.sent, func(e progress.Event) bool { return runs[e.RunID] }) {
			in = append(in, l)
		}
	}
	return in
}

// sendsOf reports whether w sends an event of one of events' runs
// (under Stream.mu).
func sendsOf(w *write, events []progress.Event) bool {
	return slices.ContainsFunc(w.sent, func(e progress.Event) bool {
		return slices.ContainsFunc(events, func(f progress.Event) bool { return f.RunID == e.RunID })
	})
}

// latestInFlight returns the last of writes, in the order of their
// calls, that has not ended and sends an event of runID, or nil.
func latestInFlight(writes []*write, runID string) *write {
	for _, l := range slices.Backward(writes) {
		select {
		case <-l.ended:
			continue
		default:
		}
		if slices.ContainsFunc(l.sent, func(e progress.Event) bool { return e.RunID == runID }) {
			return l
		}
	}
	return nil
}

// publish is Publish's write of valid events, at least one; it counts
// the events it did not write in Stats.Dropped, and Publish counts the
// call in Stats.PublishErrors.
func (s *Stream) publish(ctx context.Context, events []progress.Event) error {
	pipe := s.client.Pipeline()
	adds := make([]*redis.StringCmd, len(events))
	var expires []redis.Cmder
	// One expiry a stream a call, after its last event: the FinishedTTL
	// of a final event, or else IdleTTL. A call may interleave the events
	// of several runs (a Buffered sink shared by the runs under way).
	var runs map[string]runInCall
	// Without IdleTTL, an event that XADD would write to a stream that is
	// gone, the stream of a run that ended and expired (a late retry), or
	// one that Redis lost, would create it again with no expiry at all,
	// and nothing would ever set one: such events are written only to an
	// existing stream (XADD NOMKSTREAM), and those refused for that are
	// written again by recreate, with FinishedTTL. A call with the run's
	// first event creates its stream as a new run's, without an expiry.
	recreating := s.ttl > 0 && s.idleTTL == 0
	var values [][]any // the events' fields, for recreate
	if recreating {
		values = make([][]any, len(events))
	}
	if s.idleTTL > 0 || recreating {
		runs = make(map[string]runInCall, 1)
		for i, e := range events {
			r := runs[e.RunID]
			r.last, r.newest = i, max(r.newest, e.Seq)
			r.finished = r.finished || s.ttl > 0 && e.Type.Final()
			r.first = r.first || e.Seq == 1
			runs[e.RunID] = r
		}
	}
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		key := s.Key(e.RunID)
		fields := []any{eventField, data}
		if values != nil {
			values[i] = fields
		}
		adds[i] = pipe.XAdd(ctx, &redis.XAddArgs{
			Stream:     key,
			NoMkStream: recreating && !runs[e.RunID].first,
			MaxLen:     s.maxLen,
			Approx:     true,
			ID:         entryID(e.Seq),
			Values:     fields,
		})
		switch {
		case s.ttl > 0 && e.Type.Final():
			// Set once the XADD is known to have taken it (expireFinished).
		case s.idleTTL > 0 && runs[e.RunID].last == i && !runs[e.RunID].finished:
			// Only if no entry is above the call's newest event of the run:
			// events that Redis refused as older than the stream's newest
			// are no publish, and must not put IdleTTL over a final
			// event's FinishedTTL. The call's newest, not its last: a call
			// may hold a run's events in any order.
			expires = append(expires, pipe.Eval(ctx, idleExpireScript, []string{key},
				entryID(runs[e.RunID].newest), s.idleTTL.Milliseconds()))
		}
	}
	// Exec's error is the first failed command's; each is examined below,
	// because a duplicate's error must not hide the others' success.
	_, _ = pipe.Exec(ctx)
	if recreating {
		expires = append(expires, s.recreate(ctx, events, values, adds)...)
	}
	var failed, refused int
	var firstErr, firstRefusal error
	var tops map[string]streamTop // of the runs with a refused event, looked up once
	var interrupted []string      // the runs whose final event ends them interrupted
	var finished []string         // the keys of the runs whose final event the call wrote
	var took []string             // the keys that took an event of the call (or had it)
	for i, cmd := range adds {
		err := cmd.Err()
		duplicate := isDuplicate(err)
		if duplicate {
			if tops == nil {
				tops = make(map[string]streamTop, 1)
			}
			top, ok := tops[events[i].RunID]
			if !ok {
				top = s.streamTop(ctx, events[i].RunID)
				tops[events[i].RunID] = top
			}
			if top.foreign != "" && events[i].Seq > top.own {
				// Refused only because another writer's entry is above it.
				err = fmt.Errorf("%w: the stream's newest entry, %s, was not written by redisstream, and Redis refuses every event after it: %w",
					progress.ErrInvalidEvent, top.foreign, err)
				duplicate = false
			}
		}
		if redis.HasErrorPrefix(err, "WRONGTYPE") {
			err = fmt.Errorf("%w: key %q is not a stream: %w", progress.ErrInvalidEvent, s.Key(events[i].RunID), err)
		}
		err = permission(cmd, s.Key(events[i].RunID), err)
		switch {
		case err == nil:
			s.published.Add(1)
		case duplicate:
			s.duplicates.Add(1)
		default:
			failed++
			err = fmt.Errorf("seq %d of run %q: %w", events[i].Seq, events[i].RunID, err)
			if firstErr == nil {
				firstErr = err
			}
			if errors.Is(err, progress.ErrInvalidEvent) {
				refused++
				if firstRefusal == nil {
					firstRefusal = err
				}
			}
			continue
		}
		if key := s.Key(events[i].RunID); !slices.Contains(took, key) {
			took = append(took, key)
		}
		if e := events[i]; s.ttl > 0 && e.Type.Final() && !slices.Contains(finished, s.Key(e.RunID)) {
			finished = append(finished, s.Key(e.RunID))
		}
		if e := events[i]; s.history != nil && e.ResumedBy != "" && e.Type.Final() && !slices.Contains(interrupted, e.RunID) {
			interrupted = append(interrupted, e.RunID)
		}
	}
	// A stream created again has FinishedTTL from its transaction.
	finished = slices.DeleteFunc(finished, func(key string) bool {
		return slices.ContainsFunc(expires, func(cmd redis.Cmder) bool {
			return strings.EqualFold(cmd.Name(), "pexpire") && expiryKey(cmd) == key
		})
	})
	expires = append(expires, s.expireFinished(ctx, finished)...)
	s.renewIdle(ctx, expires, took)
	for _, runID := range interrupted {
		s.copyInterrupted(ctx, runID)
	}
	s.expiryFailures(ctx, expires, took, &firstErr)
	if firstErr != nil {
		s.dropped.Add(uint64(failed))
		if firstRefusal != nil && firstRefusal != firstErr {
			// A failure that may pass came first: the error still says
			// that some events are refused for good.
			return fmt.Errorf("redisstream: publish: %d of %d events not written (%d refused for good): %w; %w",
				failed, len(events), refused, firstErr, firstRefusal)
		}
		return fmt.Errorf("redisstream: publish: %d of %d events not written: %w", failed, len(events), firstErr)
	}
	return nil
}

// expiryFailures examines expires, the commands of a Publish call that
// set expiries on streams that took the call's events. One that the
// Redis user's ACL refuses (a *PermissionError) is no error of the call,
// whose events are written: a retry would not cure it, and a
// progress.Buffered would hand those written events to its fallback. It
// is counted in Stats.ExpiryErrors and logged, as a warning the first
// time for a Stream and at debug level after; one on a key that took
// none of the call's events (took holds those that did), whose events
// failed, is not counted (the IdleTTL script goes in the XADDs'
// pipeline whatever they do). Another failure may pass:
// it sets *firstErr, unless set already, so that the call fails and a
// retry, whose events are then duplicates, sets the expiry.
func (s *Stream) expiryFailures(ctx context.Context, expires []redis.Cmder, took []string, firstErr *error) {
	var refused uint64
	var refusal error
	for _, cmd := range expires {
		err := cmd.Err()
		if err == nil {
			continue
		}
		err = permission(cmd, expiryKey(cmd), err)
		if perm := (*PermissionError)(nil); errors.As(err, &perm) {
			if !slices.Contains(took, perm.Key) {
				continue // the call failed for its events
			}
			refused++
			if refusal == nil {
				refusal = err
			}
			continue
		}
		if *firstErr == nil {
			*firstErr = fmt.Errorf("set expiry: %w", err)
		}
	}
	if refused == 0 {
		return
	}
	s.expiryErrors.Add(refused)
	level := slog.LevelDebug
	if s.expiryRefused.CompareAndSwap(false, true) {
		level = slog.LevelWarn
	}
	s.logger.Log(ctx, level, "redisstream: the Redis user's ACL refuses the expiry of streams whose events were written; they have none until the sweep gives it, which needs PEXPIRE (counted in Stats.ExpiryErrors; warned of once)",
		"streams", refused, "error", refusal)
}

// PermissionError is a command of Publish that the Redis user's ACL
// refuses (a NOPERM reply, or, for a command or key inside a script, an
// ERR that says so in the words of the Redis version): a configuration error, which retrying the
// call does not cure until an operator grants the command. Publish
// returns it for an XADD; one that sets an expiry only goes to the log
// (see Stats.ExpiryErrors), as the events were written. It wraps
// progress.ErrInvalidEvent, so that a progress.Buffered hands the
// call's events to its fallback at once rather than retry them, and
// every newer event behind them, for good; and Redis's reply, Err.
type PermissionError struct {
	// Command is the command that Redis refused, in upper case: XADD,
	// PEXPIRE (FinishedTTL, or IdleTTL without a script), XRANGE
	// (IdleTTL without a script), or EVAL (the script that sets
	// IdleTTL; Err names the command of the script that the ACL
	// refuses, PEXPIRE say).
	Command string
	// Key is the key it was sent for.
	Key string
	// Err is Redis's reply.
	Err error
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%v (the Redis user's ACL refuses %s on %s: grant the command to the user)", e.Err, e.Command, e.Key)
}

// Unwrap returns progress.ErrInvalidEvent and Err.
func (e *PermissionError) Unwrap() []error { return []error{progress.ErrInvalidEvent, e.Err} }

// permission returns err, the error of cmd sent for key, as a
// *PermissionError if it is an ACL's refusal, and as it is otherwise: a
// NOPERM reply, or the ERR of a script whose command, or key, the ACL
// refuses: "The user executing the script can't ..." before Redis 7.2,
// "ACL failure in script: ..." since.
func permission(cmd redis.Cmder, key string, err error) error {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return err
	}
	msg := rerr.Error()
	if !strings.HasPrefix(msg, "NOPERM") && !strings.Contains(msg, "ACL failure in script") &&
		!strings.Contains(msg, "The user executing the script can't") {
		return err
	}
	return &PermissionError{Command: strings.ToUpper(cmd.Name()), Key: key, Err: err}
}

// expiryKey returns the key of cmd, an EVAL of one key, a PEXPIRE or
// an XRANGE.
func expiryKey(cmd redis.Cmder) string {
	i := 1 // PEXPIRE key ms
	if strings.EqualFold(cmd.Name(), "eval") {
		i = 3 // EVAL script 1 key ...
	}
	if args := cmd.Args(); len(args) > i {
		if key, ok := args[i].(string); ok {
			return key
		}
	}
	return ""
}

// copyInterrupted copies what runID's stream holds into the History, for
// the final event of the run, which Publish has just written: the run's
// process stopped without its final event (it was killed, say), and a
// Resume or RerunFailed that found it interrupted published that event
// (progress.Event.ResumedBy). Events that the process had handed to both
// the Stream and an Archive of the History, each behind a Buffered of its
// own, may have reached Redis and not the History, whose queue died with
// the process; once the stream expires or is trimmed, the History is all
// that readers have, and they would skip those events. The History
// ignores the events it holds already.
//
// It is bounded by Publish's ctx, and ended by Close, as its retries
// are (a History that hangs would otherwise hold Close for as long as
// Publish's ctx lasts, without end for a host that publishes without a
// Buffered). A failure is counted in Stats.CopyErrors and logged, never
// returned: the final event was written. The copy is then retried in the
// background (retryCopy), unless the Stream is closed or Redis refused
// its read with a reply that no retry cures (errCopyRefused).
func (s *Stream) copyInterrupted(ctx context.Context, runID string) {
	ctx, stop := s.untilClosed(ctx)
	defer stop()
	c, err := s.copyToHistory(ctx, runID)
	if err != nil && s.ctx.Err() != nil {
		s.copyErrors.Add(1)
		s.logger.Warn("redisstream: gave up copying the stream of an interrupted run to the history: the Stream was closed",
			"run", runID, "copied", c.copied, "error", err)
		return
	}
	switch {
	case err == nil && c.skipped() == 0:
		s.logger.Debug("redisstream: copied the stream of an interrupted run to the history", "run", runID, "events", c.copied)
		return
	case err == nil:
		s.logger.Warn("redisstream: copied the stream of an interrupted run to the history, but for its corrupt entries and the events the history refused",
			"run", runID, "events", c.copied, "corrupt", c.corrupt, "refused", c.refused)
		return
	}
	s.copyErrors.Add(1)
	if errors.Is(err, errCopyRefused) {
		s.logger.Warn("redisstream: could not copy the stream of an interrupted run to the history, and it is not retried: Redis refuses its read (grant XRANGE to the Redis user); once the stream expires, readers skip the events that only it holds",
			"run", runID, "copied", c.copied, "error", err)
		return
	}
	s.logger.Warn("redisstream: could not copy the stream of an interrupted run to the history; retrying in the background (until then, once the stream expires, readers skip the events that only it holds)",
		"run", runID, "copied", c.copied, "error", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.copying[runID]; ok || s.closed {
		return // retried already; or Publish raced with Close
	}
	s.copying[runID] = struct{}{}
	s.wg.Add(1)
	go s.retryCopy(runID)
}

// The retries of a failed copy (retryCopy): the pause before each
// doubles from RetryDelay up to maxCopyRetryDelay, each try is bounded by
// copyTryTimeout, and none starts copyRetryFor after the first retry.
const (
	maxCopyRetryDelay = 30 * time.Second
	copyTryTimeout    = 30 * time.Second
	copyRetryFor      = time.Hour
)

// retryCopy retries the copy of runID's stream into the History, which
// copyInterrupted could not make, until it succeeds, finds the stream
// gone (it expired: what it alone held is lost), the Stream is closed,
// Redis refuses its read with a reply that no retry cures (the ACL's
// NOPERM: errCopyRefused), or copyRetryFor has passed. Close ends it, and waits for it. It logs
// the outcome, and counts each failed try in Stats.CopyErrors.
func (s *Stream) retryCopy(runID string) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.copying, runID)
		s.mu.Unlock()
	}()
	giveUp := time.Now().Add(copyRetryFor)
	delay := min(s.retryDelay, maxCopyRetryDelay)
	for tries := 2; ; tries++ {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			s.logger.Warn("redisstream: gave up copying the stream of an interrupted run to the history: the Stream was closed",
				"run", runID, "tries", tries-1)
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, copyTryTimeout)
		c, err := s.copyToHistory(ctx, runID)
		cancel()
		switch {
		case err == nil && c.read == 0:
			s.logger.Warn("redisstream: gave up copying the stream of an interrupted run to the history: the run's stream is gone (expired or deleted); readers skip the events that only it held",
				"run", runID, "tries", tries)
			return
		case err == nil && c.skipped() == 0:
			s.logger.Info("redisstream: copied the stream of an interrupted run to the history", "run", runID, "events", c.copied, "tries", tries)
			return
		case err == nil:
			s.logger.Warn("redisstream: copied the stream of an interrupted run to the history, but for its corrupt entries and the events the history refused",
				"run", runID, "events", c.copied, "corrupt", c.corrupt, "refused", c.refused, "tries", tries)
			return
		case s.ctx.Err() != nil:
			s.logger.Warn("redisstream: gave up copying the stream of an interrupted run to the history: the Stream was closed",
				"run", runID, "tries", tries, "error", err)
			return
		}
		s.copyErrors.Add(1)
		if errors.Is(err, errCopyRefused) {
			s.logger.Warn("redisstream: gave up copying the stream of an interrupted run to the history, which is not retried further: Redis refuses its read (grant XRANGE to the Redis user); once the stream expires, readers skip the events that only it holds",
				"run", runID, "tries", tries, "error", err)
			return
		}
		if !time.Now().Before(giveUp) {
			s.logger.Warn("redisstream: gave up copying the stream of an interrupted run to the history after "+copyRetryFor.String()+"; once the stream expires, readers skip the events that only it holds",
				"run", runID, "tries", tries, "error", err)
			return
		}
		delay = min(2*delay, maxCopyRetryDelay)
	}
}

// errCopyRefused marks a copy whose read of the run's stream Redis
// refused with a reply that no retry cures (the Redis user's ACL refuses
// XRANGE, NOPERM, say): the copy is not retried.
var errCopyRefused = errors.New("Redis refuses the read of the stream, which no retry cures")

// copied is what a copy of a run's stream into the History did.
type copied struct {
	read    int // the entries read, corrupt and another writer's included
	copied  int // the events appended (some of which the History may have held)
	corrupt int // the entries passed over as not events of the run
	refused int // the events that the History refused as invalid
}

func (c copied) skipped() int { return c.corrupt + c.refused }

// copyToHistory appends to the History every event that runID's stream
// holds, in order, read with XRANGE in pages of PageSize, one Append a
// page. It stops at another writer's entry, as readers do, and passes
// over corrupt entries, which it counts in Stats.Corrupt and logs, as
// readers do: each entry that decodes is copied, whatever its
// neighbours. An Append that the History refuses with
// progress.ErrInvalidEvent (one event it cannot hold refuses the whole
// call) is split in halves, down to the events refused, which are
// counted in Stats.Corrupt too and passed over: so that one such event
// does not keep the page, and the retries, from copying anything until
// the stream is gone. Such a page costs about two Appends for each event
// refused and each halving. Other errors of the History end the copy.
func (s *Stream) copyToHistory(ctx context.Context, runID string) (copied, error) {
	key := s.Key(runID)
	var c copied
	var refusal error // the History's first refusal, logged once a copy
	defer func() {
		if refusal != nil {
			s.logger.Warn("redisstream: the history refused, as invalid, events of a run's stream copied to it; they are not copied",
				"run", runID, "refused", c.refused, "error", refusal)
		}
	}()
	for start := "-"; ; {
		msgs, err := s.client.XRangeN(ctx, key, start, "+", s.pageSize).Result()
		if err != nil {
			if !retryable(err) {
				return c, fmt.Errorf("xrange %s: %w: %w", key, errCopyRefused, err)
			}
			return c, fmt.Errorf("xrange %s: %w", key, err)
		}
		c.read += len(msgs)
		events := make([]progress.Event, 0, len(msgs)) // the History's to keep
		foreign := false
		for _, m := range msgs {
			foreign = foreignID(m.ID)
			e, _, err := s.parse(runID, m) // counted and logged if corrupt
			if err != nil {
				c.corrupt++
			} else {
				events = append(events, e)
			}
			if foreign {
				break
			}
		}
		if err := s.appendCopy(ctx, events, &c, &refusal); err != nil {
			return c, err
		}
		if foreign || int64(len(msgs)) < s.pageSize {
			return c, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// appendCopy appends events, in order, to the History for copyToHistory,
// halving a call that the History refuses with progress.ErrInvalidEvent
// down to the events it refuses, which it passes over, counting them in
// c and in Stats.Corrupt, and keeping the first refusal in refusal.
func (s *Stream) appendCopy(ctx context.Context, events []progress.Event, c *copied, refusal *error) error {
	if len(events) == 0 {
		return nil
	}
	err := s.history.Append(ctx, events...)
	switch {
	case err == nil:
		c.copied += len(events)
		return nil
	case !errors.Is(err, progress.ErrInvalidEvent) || ctx.Err() != nil:
		return fmt.Errorf("history: %w", err)
	case len(events) == 1:
		c.refused++
		s.corrupt.Add(1)
		if *refusal == nil {
			*refusal = err
		}
		return nil
	}
	half := len(events) / 2
	if err := s.appendCopy(ctx, events[:half], c, refusal); err != nil {
		return err
	}
	return s.appendCopy(ctx, events[half:], c, refusal)
}

// runInCall is what Publish needs to know of a run's events in a call.
type runInCall struct {
	last     int    // the index of its last event in the call
	newest   uint64 // the highest Seq among them
	finished bool   // one is final, and FinishedTTL is set
	first    bool   // one is the run's first event (Seq 1)
}

// recreate writes again the events of a call that XADD NOMKSTREAM did
// not write because their stream was gone (the nil reply), replacing
// their commands in adds, and returns the expiries it set. Each such
// stream is created again, in a transaction (MULTI/EXEC), so that it
// never exists without an expiry, with its events and FinishedTTL: the
// expiry of a run whose final event was published (a late retry after
// the stream expired), and a bound on the stream of a run that goes on
// after Redis lost it, whose final event sets FinishedTTL again. It costs
// a round trip, only in a call that found a stream gone. Where the Redis
// user's ACL refuses PEXPIRE, which makes Redis refuse the transaction
// (EXECABORT), it writes the events again in one more transaction,
// without the expiry, which Publish counts in Stats.ExpiryErrors.
func (s *Stream) recreate(ctx context.Context, events []progress.Event, values [][]any, adds []*redis.StringCmd) []redis.Cmder {
	var gone []int    // the events to write again
	var keys []string // in the order of their first event in the call
	for i, cmd := range adds {
		if !errors.Is(cmd.Err(), redis.Nil) {
			continue
		}
		gone = append(gone, i)
		if key := s.Key(events[i].RunID); !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	write := func(expire bool) []redis.Cmder {
		pipe := s.client.TxPipeline()
		for _, i := range gone {
			adds[i] = pipe.XAdd(ctx, &redis.XAddArgs{
				Stream: s.Key(events[i].RunID),
				MaxLen: s.maxLen,
				Approx: true,
				ID:     entryID(events[i].Seq),
				Values: values[i],
			})
		}
		var expires []redis.Cmder
		if expire {
			// A plain PEXPIRE, which needs no EVAL: the key was no other
			// type a round trip ago (XADD NOMKSTREAM found it missing),
			// and the transaction's XADD has just created it a stream.
			for _, key := range keys {
				expires = append(expires, pipe.PExpire(ctx, key, s.ttl))
			}
		}
		// As in Publish, each command's error is examined by the caller.
		_, _ = pipe.Exec(ctx)
		return expires
	}
	expires := write(true)
	for _, cmd := range expires {
		var perm *PermissionError
		if errors.As(permission(cmd, expiryKey(cmd), cmd.Err()), &perm) {
			// The ACL refuses PEXPIRE, and so Redis the whole
			// transaction (EXECABORT): the events are written without
			// it, and Publish counts the refusal (expiryFailures).
			write(false)
			break
		}
	}
	return expires
}

// expireFinished sets FinishedTTL on keys, the streams of runs whose
// final event the call wrote, or found written already (a retry), in one
// pipeline, with PEXPIRE, after the XADDs: only on a key that took the
// event, so a key of another type, which refuses it (WRONGTYPE), keeps
// its expiry, and so does a stream that refused it as another writer's;
// and without EVAL, which a writer with a negative IdleTTL needs not be
// allowed. It returns the commands, whose errors the caller examines.
func (s *Stream) expireFinished(ctx context.Context, keys []string) []redis.Cmder {
	if len(keys) == 0 {
		return nil
	}
	pipe := s.client.Pipeline()
	expires := make([]redis.Cmder, len(keys))
	for i, key := range keys {
		expires[i] = pipe.PExpire(ctx, key, s.ttl)
	}
	_, _ = pipe.Exec(ctx)
	return expires
}

// idleExpireScript sets the expiry of the stream KEYS[1] to ARGV[2]
// milliseconds unless it has an entry above ARGV[1], the call's newest
// event of the run: then the stream's newest is that event, written by
// this call or by one that it repeats, or else one of the call's earlier
// events if the newest failed. An entry above it means that the call's
// events were older than the stream's newest, and refused.
const idleExpireScript = `if #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', 1) == 0 then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`

// renewIdle sets IdleTTL without a script on the streams among took
// whose IdleTTL script (an EVAL of idleExpireScript in expires) the
// Redis user's ACL refused (no @scripting), and puts the commands it
// sent in the script's place in expires, for expiryFailures to examine.
// It sends the script's commands as two pipelines (one more round trip
// than the script, only for the refused ones): XRANGE, for an entry
// above the call's newest event of the run, then, on a stream without
// one, PEXPIRE. So, as with the script, a call whose events were older
// than the stream's newest (a late retry after the final event) puts no
// IdleTTL over the final event's FinishedTTL. What is weaker is that the
// two are not atomic: a final event that another call writes, with its
// FinishedTTL, between them gets IdleTTL in place of FinishedTTL. (The
// PEXPIRE options of Redis 7 do not close that gap: GT and LT compare
// with the TTL left, and NX would never renew IdleTTL.)
func (s *Stream) renewIdle(ctx context.Context, expires []redis.Cmder, took []string) {
	type renewal struct {
		i   int // in expires
		key string
		ttl time.Duration
		top *redis.XMessageSliceCmd
	}
	var renewals []renewal
	var pipe redis.Pipeliner
	for i, cmd := range expires {
		if !strings.EqualFold(cmd.Name(), "eval") {
			continue
		}
		var perm *PermissionError
		if !errors.As(permission(cmd, expiryKey(cmd), cmd.Err()), &perm) || !slices.Contains(took, perm.Key) {
			continue
		}
		args := cmd.Args() // EVAL script 1 key newest ms
		if len(args) != 6 {
			continue
		}
		newest, ok1 := args[4].(string)
		ms, ok2 := args[5].(int64)
		if !ok1 || !ok2 {
			continue
		}
		if pipe == nil {
			pipe = s.client.Pipeline()
		}
		renewals = append(renewals, renewal{i: i, key: perm.Key, ttl: time.Duration(ms) * time.Millisecond,
			top: pipe.XRangeN(ctx, perm.Key, "("+newest, "+", 1)})
	}
	if len(renewals) == 0 {
		return
	}
	_, _ = pipe.Exec(ctx) // each command's error is examined below
	pipe = s.client.Pipeline()
	renewing := false
	for _, r := range renewals {
		expires[r.i] = r.top // its error, if any, is the renewal's
		if msgs, err := r.top.Result(); err != nil || len(msgs) > 0 {
			continue // failed, or the call's events were refused as older
		}
		expires[r.i] = pipe.PExpire(ctx, r.key, r.ttl)
		renewing = true
	}
	if renewing {
		_, _ = pipe.Exec(ctx)
	}
}

// streamTop is what Publish needs to know of a stream that refused an
// event as a duplicate: the ID of its newest entry if another writer made
// it (see foreignID), and then the newest Seq written by Publish.
type streamTop struct {
	foreign string
	own     uint64
}

// streamTop looks up runID's stream's newest entry, and if another writer
// made it, the newest of Publish's: Redis refuses every 0-<seq> after
// another writer's entry with the error of a duplicate, which is one only
// for a Seq up to the newest of Publish's. It costs one XREVRANGE, and one
// more behind another writer's entry. A lookup that fails reports no
// foreign entry, and the refusals are taken for duplicates.
func (s *Stream) streamTop(ctx context.Context, runID string) streamTop {
	key := s.Key(runID)
	msgs, err := s.client.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil || len(msgs) == 0 || !foreignID(msgs[0].ID) {
		return streamTop{}
	}
	top := streamTop{foreign: msgs[0].ID}
	own, err := s.client.XRevRangeN(ctx, key, entryID(math.MaxUint64), "-", 1).Result()
	if err != nil {
		return streamTop{}
	}
	if len(own) > 0 {
		top.own, _ = parseID(own[0].ID)
	}
	return top
}

// isDuplicate reports Redis's refusal of an entry ID that is not above the
// stream's top item: the event is already there (or older than it).
func isDuplicate(err error) bool {
	return err != nil && strings.Contains(err.Error(), "equal or smaller than the target stream top item")
}

// Replay delivers the events of runID with Seq > after: from the stream
// with XRANGE, paged, and from the History for what the stream lacks.
// It reads what the two hold when it reads them, and waits for nothing:
// not for a gap in the live entries that the run's shared reader holds
// the entries after, waiting for a History a moment behind Redis (see
// [Options].HistoryPoll), as a Tail does. So the gap's events that the
// History lacks yet are skipped, as events that neither holds are
// (counted in [Stats].Skipped, and logged), though a Tail delivers them
// once the History has them.
// While Redis fails (down, or, once a read of it has failed, not
// answering within a second, as for a Tail; with a History only),
// Replay delivers from the History the events that directly follow its
// position, up to the first Seq that the History lacks (it never passes
// over one, which Redis may hold): with the run's final event among
// them, or at or below its position, it returns nil without Redis;
// otherwise it returns Redis's error, having delivered them, as Redis
// may hold newer events. Once a read of Redis has failed (the Stream's
// last to end), it reads the History so before it reads Redis.
// Redis errors are returned, wrapped, and so are the History's; fn's
// error is returned as it is, wherever its event came from; see
// progress.Source. Once its context ends, or the Stream is closed, it
// returns context.Cause(ctx), or ErrClosed, at once, also while the
// History does not answer.
func (s *Stream) Replay(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	if err := checkRunID(runID); err != nil {
		return err
	}
	if s.isClosed() {
		return ErrClosed
	}
	var fnErr error
	err := s.replay(ctx, runID, after, func(e progress.Event) error {
		fnErr = fn(e)
		return fnErr
	})
	if err != nil && (fnErr == nil || !errors.Is(err, fnErr)) {
		// Ended meanwhile: not the History's error, which its context
		// ended (its reads of it end with the Stream too).
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if s.ctx.Err() != nil {
			return ErrClosed
		}
	}
	return err
}

// replay is Replay.
func (s *Stream) replay(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	var hist progress.History
	if s.history != nil {
		hist = markedHistory{s.history, s} // its errors told from fn's
	}
	cur := progress.NewCursor(runID, after, hist, fn)
	cur.OnSkip(s.skipFunc(runID))
	pos := after
	// While Redis fails, the History first, as a Tail's early: a run that
	// it holds whole is replayed without Redis.
	served := s.history != nil && s.readsFailing.Load()
	if served {
		if done, err := s.serveHistory(ctx, runID, cur); err != nil || done {
			return err
		}
		pos = cur.Last() // the cursor drops the entries up to it
	}
	for {
		next, short, _, err := s.page(ctx, runID, nil, cur, pos)
		if err != nil {
			if de := (*deliverError)(nil); errors.As(err, &de) {
				return de.err
			}
			if !served && s.history != nil && redisDown(ctx, err) {
				if done, err := s.serveHistory(ctx, runID, cur); err != nil || done {
					return err
				}
			}
			return outward(err)
		}
		pos = next
		if short {
			break
		}
	}
	if s.history != nil && !cur.Final() {
		if err := cur.FillFromHistory(ctx); err != nil {
			if !isHistoryError(err) {
				return err // fn's, as it is
			}
			return outward(fmt.Errorf("redisstream: replay %q: %w", runID, err))
		}
	}
	return nil
}

// Tail delivers the events of runID with Seq > after, then live events
// until ctx ends; see progress.Source. It survives Redis outages: reads
// are retried with backoff, and on reconnecting the reader continues from
// the last Seq it delivered, filling any gap from the History. Meanwhile
// it delivers from the History the events that directly follow its last
// one, at the outage's first failed read (its own, or, for a reader that
// connects once a read of Redis has failed, before its first read) and
// then every HistoryPoll (once a read of Redis has failed, a read of its
// own that would wait for one of the few reads that do not block, all in
// flight, counts as failed if none of them ends within a second, or the
// one that ends failed, as does one that waited for them since before
// any failed, rather than wait one ReadTimeout after the other for its
// turn; and so does one that Redis has not answered within a second,
// or, made before any read failed, within a second of the first that
// does, which goes on and tells, when it ends, whether Redis is back), up
// to the first Seq that the History lacks, which it waits for Redis to
// deliver (it never passes over one while Redis fails): so a run that the
// History holds whole is read to its final event, and the reader ends
// there, without Redis (one at or past that event delivers nothing and
// ends too). It survives outages of the History too, which it waits out
// only for a gap that the History alone can fill (see Options.History).
// It returns
// promptly when ctx ends, even while Redis does not answer (paused, or
// cut off by a network fault): a read of its own left in flight ends by
// itself within the client's ReadTimeout (Close waits for it), as go-redis does not interrupt
// a command when its context is cancelled; a blocked XREAD left behind
// belongs to the run's shared reading goroutine, which exits within
// BlockTime once the run has no readers (while Redis answers). A reader that has delivered the run's final event,
// or that starts at or past it, or that waits ahead of its run when the
// run's final event comes at or below its position, reads nothing more:
// no event follows a final one, so it leaves the run's shared reader
// (which stops if no other reader follows it) and waits for ctx to end.
//
// A reader waits through any silence of its run while the run's stream
// is in Redis. Without a History, once the run's shared reader finds the
// stream gone (it expired, IdleTTL after the run's newest event by
// default, or was deleted, or Redis lost it), a reader that follows it
// delivers what the shared reader held for it, and returns an error
// wrapping ErrStreamGone: so a reader of a run whose final event never
// reached Redis (an outage at the run's end) or whose process died ends
// then, rather than wait for good. A Tail that starts on a stream that
// is not there waits for it, as for a run not started (progress/sse's
// EmptyRunTimeout bounds that). With a History, the run's shared reader
// reads the run's final event from the History, within HistoryPoll, where
// the outage kept it from Redis (see Options.History); and it checks
// that the stream is there only once the run has had no new event for
// IdleTTL (by the shared reader's clock), so that a stream that Redis
// lost while the run goes on is followed on as before (the History
// holds what Redis lost), while the readers of a run that IdleTTL takes
// for dead, its stream expired, return ErrStreamGone then. With a
// negative IdleTTL, a reader with a History waits for the run's final
// event, or for ctx.
func (s *Stream) Tail(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	if err := checkRunID(runID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	r := &reader{runID: runID}
	if err := s.addReader(r); err != nil {
		return err
	}
	defer s.removeReader(r)
	t := &tail{s: s, runID: runID, r: r, b: s.newBackoff(), pos: after}
	var hist progress.History
	if s.history != nil {
		hist = markedHistory{s.history, s}
	}
	t.cur = progress.NewCursor(runID, after, hist, func(e progress.Event) error {
		if err := fn(e); err != nil {
			return err
		}
		r.delivered.Store(e.Seq)
		return nil
	})
	r.delivered.Store(after)
	t.cur.OnSkip(s.skipFunc(runID))

	// A reader that the run's running shared reader can serve from its
	// position joins it without reading Redis itself: the shared
	// reader's window holds every entry after its base, and it knows
	// the run's end if it has seen it. So the readers of one run, many
	// browser tabs on a run not started yet say, cost one replay. With a
	// History each reader replays, as it must read what only the
	// History holds.
	if s.history == nil {
		if h := s.joinHub(runID, after); h != nil {
			if err := t.follow(ctx, h); err != nil {
				return err
			}
			return t.wait(ctx)
		}
	}

	// Replay what is stored.
	for {
		if done, err := t.early(ctx); err != nil {
			return err
		} else if done {
			return t.wait(ctx)
		}
		next, short, _, err := s.page(ctx, runID, r, t.cur, t.pos)
		if err != nil {
			// t.pos stays where Redis is: see redisPos below.
			if done, err := t.outage(ctx, err); err != nil {
				return err
			} else if done {
				return t.wait(ctx)
			}
			if err := t.b.wait(ctx, err); err != nil {
				return err
			}
			continue
		}
		t.answered()
		t.pos = next
		if short {
			break
		}
	}
	// The shared reader starts where Redis ended, not where the History
	// did: the History may be ahead of Redis (Publish is asynchronous
	// behind progress.Buffered), and entries that reach Redis later must
	// not be passed over for the readers that join below them.
	redisPos := t.pos
	if err := t.fill(ctx); err != nil {
		return err
	}

	// A reader that the stored events take no further may be at or past
	// the run's final event: then nothing more can come. Or it is ahead
	// of a run still going (a Last-Event-ID past its newest event): then
	// the shared reader starts at the stream's newest entry, not past it,
	// so that the run's end, which may come below the reader, is seen.
	ended := t.cur.Final()
	if !ended && t.cur.Last() == after && after > 0 {
		for {
			var (
				top uint64
				err error
			)
			if done, err := t.early(ctx); err != nil {
				return err
			} else if done {
				return t.wait(ctx)
			}
			if ended, top, err = s.endedBy(ctx, runID, after); err == nil {
				redisPos = min(redisPos, top)
				break
			}
			if done, err := t.outage(ctx, err); err != nil {
				return err
			} else if done {
				return t.wait(ctx)
			}
			if err := t.b.wait(ctx, err); err != nil {
				return err
			}
		}
		t.answered()
	}
	if !ended {
		h, err := s.acquireHub(runID, redisPos)
		if err != nil {
			return err
		}
		if err := t.follow(ctx, h); err != nil {
			return err
		}
	}
	return t.wait(ctx)
}

// wait is the rest of a Tail that has the run's final event, or is past
// it: it reads nothing more, and lasts until its context ends.
func (t *tail) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.s.ctx.Done():
		return ErrClosed
	}
}

// tail is one Tail call past its replay.
type tail struct {
	s     *Stream
	runID string
	r     *reader
	cur   *progress.Cursor
	b     *backoff
	pos   uint64 // the last entry ID (as a Seq) read from Redis, or past it
	// served is when the reader last read the History for a Redis outage
	// (see outage), and servedEarly that it did so before a read of Redis of
	// its own failed (see tail.early).
	served      time.Time
	servedEarly bool
	// gapAt is the reader's last Seq when it found a gap in the live
	// entries below the window of the run's shared reader, and gapSince
	// when: it waits for the History up to HistoryPoll (see waitGap).
	gapAt    uint64
	gapSince time.Time
}

// fill reads the History's events that follow the last delivered one, up
// to a gap only: Redis, behind a Buffered, may yet deliver what the
// History lacks, and the run's shared reader passes over a gap that lasts
// (see pollHistory).
//
// A History that fails here is passed over (counted in Stats.ReadErrors
// and logged): what it holds beyond the stream, the run's shared reader
// reads at its next poll, so that a reader follows the stream while the
// History is down, rather than end.
func (t *tail) fill(ctx context.Context) error {
	if _, err := t.fillContiguous(ctx); err != nil {
		return err
	}
	t.pos = max(t.pos, t.cur.Last())
	return nil
}

// fillContiguous delivers the History's events that directly follow the
// reader's last one, up to the first Seq that the History lacks. A
// History that fails is passed over, counted and logged (read false); the
// reader's own error is returned as it is, and context.Cause(ctx) or
// ErrClosed if its context ends or the Stream is closed meanwhile.
func (t *tail) fillContiguous(ctx context.Context) (read bool, _ error) {
	return t.s.fillContiguous(ctx, t.runID, t.cur)
}

// fillContiguous is tail.fillContiguous for a reader of runID whose
// Cursor, cur, reads the History through markedHistory.
func (s *Stream) fillContiguous(ctx context.Context, runID string, cur *progress.Cursor) (read bool, _ error) {
	if s.history == nil || cur.Final() {
		return false, nil
	}
	hctx, stop := s.untilClosed(ctx)
	defer stop()
	if err := cur.FillContiguous(hctx); err != nil {
		switch {
		case !isHistoryError(err):
			return false, err // fn's, as it is
		case ctx.Err() != nil:
			return false, context.Cause(ctx)
		case s.ctx.Err() != nil:
			return false, ErrClosed
		}
		s.historyFailed(runID, err)
		return false, nil
	}
	return true, nil
}

// untilClosed returns ctx, ended also when the Stream is closed, for a
// reader's read of the History, which honours its context alone: so that
// Close ends a Tail at once, as its doc says, also while the History
// does not answer (a database behind the network fault that cut Redis
// off, say). stop releases it.
func (s *Stream) untilClosed(ctx context.Context) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(s.ctx, func() { cancel(ErrClosed) })
	return ctx, func() {
		unhook()
		cancel(nil)
	}
}

// outage serves the reader from the History while Redis fails, err
// being the read that failed: it delivers the History's events that
// directly follow the reader's last one, and stops before the first Seq
// that the History lacks, which Redis may hold (it never passes over
// one), so that a reader of a run that the History holds whole gets it,
// its final event included, without Redis. It reads the History at the
// first failure of an outage, then once every HistoryPoll while Redis
// still fails (for the events that a live run publishes meanwhile), and
// not at all when err is no failure of Redis. It reports whether the
// reader is done: it has delivered the run's final event, or it
// delivered nothing and the History's final event is at or below its
// last (it resumed there or past it). It returns the reader's own error;
// a History that fails is passed over, as Redis's error is then waited
// out.
func (t *tail) outage(ctx context.Context, err error) (done bool, _ error) {
	s := t.s
	if s.history == nil || !redisDown(ctx, err) || (t.b.failing || t.servedEarly) && time.Since(t.served) < s.poll {
		return false, nil
	}
	return t.serve(ctx)
}

// early is outage before a read of Redis, while the Stream's last read
// of Redis to end failed (see Stream.readsFailing): the reader serves
// itself from the History as at its own first failed read of the
// outage, then once every HistoryPoll, without waiting for a read of its
// own to fail. While Redis hangs, each read fails only at the client's
// ReadTimeout, and holds one of the few tokens of reads that do not
// block until then (see Stream.reads): readers that connect during the
// outage would otherwise be served one ReadTimeout after the other.
func (t *tail) early(ctx context.Context) (done bool, _ error) {
	s := t.s
	if s.history == nil || !s.readsFailing.Load() || ctx.Err() != nil ||
		(t.b.failing || t.servedEarly) && time.Since(t.served) < s.poll {
		return false, nil
	}
	t.servedEarly = true
	return t.serve(ctx)
}

// answered records that Redis answered the reader's read.
func (t *tail) answered() {
	t.b.reset()
	t.servedEarly = false
}

// serve is the read of the History of outage and early.
func (t *tail) serve(ctx context.Context) (done bool, _ error) {
	t.served = time.Now()
	return t.s.serveHistory(ctx, t.runID, t.cur)
}

// serveHistory serves a reader of runID, whose Cursor cur reads the
// History through markedHistory, from the History while Redis fails: it
// delivers the History's events that directly follow the reader's last
// one, up to the first Seq that the History lacks, and reports whether
// the reader is done (see tail.outage). It returns the reader's own
// error; a History that fails is counted, logged and passed over.
func (s *Stream) serveHistory(ctx context.Context, runID string, cur *progress.Cursor) (done bool, _ error) {
	last := cur.Last()
	read, err := s.fillContiguous(ctx, runID, cur)
	if err != nil || !read {
		return false, err
	}
	if cur.Final() {
		return true, nil
	}
	if cur.Last() > last || last == 0 {
		return false, nil
	}
	hctx, stop := s.untilClosed(ctx)
	defer stop()
	e, ok, err := s.historyFinal(hctx, runID)
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case s.ctx.Err() != nil:
			return false, ErrClosed
		default:
			s.historyFailed(runID, &historyError{err})
		}
		return false, nil
	}
	return ok && e.Seq <= last, nil
}

// historyFinal returns the run's final event if the History holds it:
// then it is the run's newest event, whatever Redis holds. It costs one
// lookup if the History implements progress.LastEventReader, and
// otherwise a read of the whole run.
func (s *Stream) historyFinal(ctx context.Context, runID string) (progress.Event, bool, error) {
	e, ok, err := progress.LastArchived(ctx, s.history, runID, 0)
	if err != nil || !ok || !e.Type.Final() {
		return progress.Event{}, false, err
	}
	return e, true, nil
}

// redisDown reports whether err, from a reader's read, is a failure of
// Redis that the reader waits out (not its own error, nor the History's,
// nor the end of its context or of the Stream).
func redisDown(ctx context.Context, err error) bool {
	var de *deliverError
	return ctx.Err() == nil && !errors.As(err, &de) && !isHistoryError(err) &&
		!errors.Is(err, ErrClosed) && retryable(err)
}

// skipFunc returns the function that a reader's Cursor calls when it
// jumps over events that neither the stream nor the History holds: it
// counts them in Stats.Skipped at once, and logs the gap, which the
// reader's client sees only as a jump in Seq.
func (s *Stream) skipFunc(runID string) func(first, last uint64) {
	return func(first, last uint64) {
		s.skipped.Add(last - first + 1)
		s.logger.Warn("redisstream: a reader skipped events that neither the stream nor the history holds",
			"run", runID, "firstSeq", first, "lastSeq", last, "history", s.history != nil)
	}
}

// historyFailed counts and logs a failure of the History that a reader
// passes over.
func (s *Stream) historyFailed(runID string, err error) {
	s.readErrors.Add(1)
	s.logger.Warn("redisstream: the history failed; following the stream without it", "run", runID, "error", err)
}

// historyError is a failure of the History, which a reader waits out with
// backoff, as a failure of Redis, or passes over where the stream may
// have what it needs.
type historyError struct{ err error }

func (e *historyError) Error() string { return e.err.Error() }
func (e *historyError) Unwrap() error { return e.err }

func isHistoryError(err error) bool {
	var he *historyError
	return errors.As(err, &he)
}

// outward returns err, which the package returns to its caller, without
// the mark of a historyError: with err's message, wrapping the History's
// own error. Else a callback that returns it (it looks another run up
// with LastEvent, say) would have its error taken for the History's
// failure of its own reader: a Tail would wait it out and call the
// callback again with the same event, and Replay wrap it.
func outward(err error) error {
	var he *historyError
	if err == nil || !errors.As(err, &he) {
		return err
	}
	return &historyFailure{msg: err.Error(), err: he.err}
}

// historyFailure is a failure of the History as the package returns it
// (see outward).
type historyFailure struct {
	msg string
	err error
}

func (e *historyFailure) Error() string { return e.msg }
func (e *historyFailure) Unwrap() error { return e.err }

// markedHistory is the History as a reader's Cursor reads it: its errors
// are historyErrors, which the Cursor wraps with "history:"; and its
// reads end when the Stream s is closed (see untilClosed), so that Close
// ends a Tail, or a Replay, that fills a gap from a History that does
// not answer, as it ends one that reads it for a Redis outage.
type markedHistory struct {
	progress.History
	s *Stream
}

func (h markedHistory) Replay(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	ctx, stop := h.s.untilClosed(ctx)
	defer stop()
	var fnErr error
	err := h.History.Replay(ctx, runID, after, func(e progress.Event) error {
		fnErr = fn(e)
		return fnErr
	})
	if err != nil && (fnErr == nil || !errors.Is(err, fnErr)) {
		return &historyError{err}
	}
	return err
}

// follow delivers the run's events from its shared reader h, which the
// caller acquired and follow releases, reading Redis itself while it is
// behind the shared reader's window. It returns nil once the reader has
// delivered the run's final event, or the shared reader has seen that
// event at or below the reader's position, having let go of the shared
// reader; or the error that ends the Tail.
func (t *tail) follow(ctx context.Context, h *hub) error {
	s := t.s
	t.r.hub.Store(h)
	defer func() {
		t.r.hub.Store(nil)
		s.releaseHub(h)
	}()
	var buf []progress.Event
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if t.cur.Final() {
			// The shared reader, which other readers may still follow,
			// polls the History until its window reaches the final
			// event, which it could not tell by itself if it started
			// past it.
			h.setFinal(t.cur.Last())
			return nil
		}
		var (
			base, final uint64
			notify      <-chan struct{}
			gone        bool
			hubErr      error
		)
		buf, base, final, notify, gone, hubErr = h.since(t.cur.Last(), buf[:0])
		if hubErr != nil {
			return hubErr
		}
		if final != 0 && final <= t.cur.Last() {
			// The run ended at or below this reader, which was ahead of
			// it: nothing more can come, as for a reader that delivered
			// the final event.
			return nil
		}
		if gone && len(buf) == 0 {
			// The stream went from Redis (it expired, or was deleted)
			// without the run's final event, and the reader has what
			// the shared reader held for it: nothing more can come to
			// this Tail.
			return fmt.Errorf("%w: run %q, key %s, after seq %d", ErrStreamGone, t.runID, h.key, t.cur.Last())
		}
		if t.pos < base {
			// Behind the hub's window: read Redis directly up to it.
			last := t.cur.Last()
			if done, err := t.early(ctx); err != nil {
				return err
			} else if done {
				if t.cur.Final() {
					continue // as a reader that delivered it from the hub
				}
				return nil
			}
			if t.cur.Last() > last {
				t.pos = max(t.pos, t.cur.Last())
				continue // past the window, maybe
			}
			next, short, stopped, err := s.page(ctx, t.runID, t.r, t.cur, t.pos)
			if err != nil {
				if done, err := t.outage(ctx, err); err != nil {
					return err
				} else if done {
					if t.cur.Final() {
						continue // as a reader that delivered it from the hub
					}
					return nil
				}
				t.pos = max(t.pos, t.cur.Last())
				if err := t.b.wait(ctx, err); err != nil {
					return err
				}
				continue
			}
			t.answered()
			t.pos = next
			if stopped && t.cur.Last() < base {
				// At a gap in the live entries below the window, which
				// the shared reader, past it, does not hold: wait for
				// the History here. (At a gap in the window or after
				// it, the reader follows the shared reader, which holds
				// the gap.)
				if err := t.waitGap(ctx); err != nil {
					return err
				}
				continue
			}
			if short {
				// Redis has nothing more below the window: what it
				// lacks there is in the History, or nowhere.
				if err := t.fill(ctx); err != nil {
					return err
				}
				t.pos = max(t.pos, base)
			}
			continue
		}
		var failed error
		for _, e := range buf {
			if err := t.cur.Deliver(ctx, e); err != nil {
				if !isHistoryError(err) {
					return err
				}
				failed = err // filling a gap: wait for the History
				break
			}
		}
		if failed != nil {
			if err := t.b.wait(ctx, failed); err != nil {
				return err
			}
			continue
		}
		t.b.reset()
		n := len(buf) // at most followBatch: the window may hold more
		if cap(buf) > followBatch {
			buf = nil // an idle reader holds no large buffer
		}
		t.pos = max(t.pos, t.cur.Last())
		if n == 0 && h.beyondHold(t.cur.Last()) {
			// Past what the hub holds after a gap, and the stream has
			// more: read it directly, as the hub reads from the gap.
			last := t.cur.Last()
			next, _, _, err := s.page(ctx, t.runID, t.r, t.cur, t.pos)
			if err != nil {
				if done, err := t.outage(ctx, err); err != nil {
					return err
				} else if done {
					if t.cur.Final() {
						continue // as a reader that delivered it from the hub
					}
					return nil
				}
				t.pos = max(t.pos, t.cur.Last())
				if err := t.b.wait(ctx, err); err != nil {
					return err
				}
				continue
			}
			t.b.reset()
			t.pos = max(next, t.cur.Last())
			if t.cur.Last() > last {
				continue
			}
		}
		if n == 0 {
			select {
			case <-notify:
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-s.ctx.Done():
				// Closed: the shared reader may be blocked in an XREAD
				// for long yet, while Redis does not answer.
				return ErrClosed
			}
		}
	}
}

// waitGap waits for the History to fill the gap in the live entries
// right after the reader's last event, below the window of the run's
// shared reader, which is past the gap and so does not hold it: it
// returns after RetryDelay, so that the reader reads the page after its
// last event again (asking the History again), up to HistoryPoll from
// when the reader reached the gap (the wait starts again when the
// History fills a part of it). Then it returns at once, and the reader
// passes over the gap.
func (t *tail) waitGap(ctx context.Context) error {
	if last := t.cur.Last(); t.gapSince.IsZero() || t.gapAt != last {
		t.gapAt, t.gapSince = last, time.Now()
	}
	left := t.s.poll - time.Since(t.gapSince)
	if left <= 0 {
		t.r.pass = t.gapAt + 1
		return nil
	}
	timer := time.NewTimer(min(t.s.retryDelay, left))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.s.ctx.Done():
		return ErrClosed
	}
}

// endedBy reports whether the run's final event has a Seq of at most pos,
// so that a reader at pos has nothing more to receive, and the ID (as a
// Seq) of the stream's newest entry, 0 if it has none. It costs one
// lookup: see LastEvent.
//
// If the History fails, the stream's answer stands: the run's shared
// reader, which the reader then follows, polls the History for the end
// of a run that only the History holds. A lookup that the end of ctx, or
// Close, ended is no failure: its error is returned, uncounted.
func (s *Stream) endedBy(ctx context.Context, runID string, pos uint64) (ended bool, top uint64, err error) {
	e, top, ok, err := s.lastEvent(ctx, runID)
	switch {
	case isHistoryError(err) && ctx.Err() == nil && s.ctx.Err() == nil:
		s.historyFailed(runID, err)
	case err != nil:
		return false, 0, err
	}
	return ok && e.Type.Final() && e.Seq <= pos, top, nil
}

// LastEvent returns the newest event of runID that a reader would get: the
// newest entry of the run's stream (XREVRANGE COUNT 1), or a newer event
// of the History. It implements progress.LastEventReader. Without a
// History, while readers follow the run's shared reader, that reader
// answers without a command (unless its last read failed, or it holds
// no event yet and started after entries it does not hold): so many
// browser tabs that open one run cost one lookup in all (see
// progress/sse's Handler). That reader reads at most PageSize entries
// per XREAD, so its answer lags the stream: by the round trip of an
// XREAD, and while it catches up with more than PageSize new entries (a
// Publish of many events, a backlog after an outage) by the XREADs it
// has yet to make. So an event published a moment before, even by this
// Stream, may not be in the answer yet, which a reader's probe
// tolerates, as the Tail that follows delivers it. It reads the
// History with progress.LastArchived after the stream's newest entry: one
// lookup if the History implements progress.LastEventReader too, and
// otherwise a read of what the History has beyond the stream, nothing
// while the stream is intact, the whole run once it is gone. A final
// entry in the stream spares the History, as no event follows it. While
// Redis fails (not when its context ends), the History's final event of
// the run, if it holds one, is the answer, as no event follows it: one
// more lookup (see progress.LastArchived); so a reader that resumes at
// the end of a finished run learns it without Redis. Once a read of Redis
// has failed (the Stream's last to end), that lookup comes first, and
// Redis is not asked if it answers: while Redis hangs, a lookup there
// fails only at the client's ReadTimeout, and such reads are few at once
// (half MaxBlockingReads). If it does not (a run going on), and with
// or without a History, Redis is then asked only if such a read can
// start within a second, or a read in flight ends then and did not fail
// (Redis is busy, and LastEvent waits its turn), and otherwise LastEvent fails rather than wait for the reads in
// flight, one ReadTimeout after the other (while Redis answers, a read
// in flight ends within a round trip, and LastEvent waits for it, as
// when no read has failed); it fails too if Redis has not answered its
// own read within a second of its start (or, for a read made before any
// failed, of the first that does), a second after the one it may wait
// for a token, rather than wait for it to
// fail at the client's ReadTimeout (with go-redis's defaults, MaxRetries+1 of them;
// the read goes on, and tells, when it ends, whether Redis is back);
// a LastEvent that waited for such a read
// since before any failed fails with the first that does: so
// progress/sse's handler, which looks the run up before it opens a
// stream, opens the streams of clients that connect during the outage
// without that wait (their Tail serves them from the History, or waits
// for Redis), rather than hold their response's headers, until a
// browser's proxy, or a Client's HeaderTimeout, gives up. Its lookups
// in the History, as a Tail's reads of it, end as soon as its context
// ends or the Stream is closed, also while the History does not answer:
// it then returns context.Cause(ctx), or ErrClosed. On a client whose
// ReadTimeout does not bound its XREVRANGE (-1, none, or one above 10s:
// go-redis sets no read deadline, or a late one, on a command without a
// BLOCK), the lookup fails if Redis has not answered within 10s of its
// start (its wait for its turn included), whatever ctx's deadline, and
// counts as a failed read (as above): so a Redis that hangs does not
// hold LastEvent for as long as it hangs. Its command goes on until
// Redis answers (Close waits for it). Otherwise Redis's
// errors are returned, wrapped with "redisstream:", and the History's
// with "history:".
func (s *Stream) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	if err := checkRunID(runID); err != nil {
		return progress.Event{}, false, err
	}
	if s.isClosed() {
		return progress.Event{}, false, ErrClosed
	}
	// The run's final event is its newest, whatever Redis holds.
	asked := s.history != nil && s.readsFailing.Load()
	if asked {
		if f, ok, herr := s.historyFinalUntilClosed(ctx, runID); herr == nil && ok {
			return f, true, nil
		}
	}
	e, _, ok, err := s.lastEvent(ctx, runID)
	if err != nil {
		if s.history != nil && !asked && redisDown(ctx, err) {
			if f, ok, herr := s.historyFinalUntilClosed(ctx, runID); herr == nil && ok {
				return f, true, nil
			}
		}
		// Ended meanwhile: not Redis's error, nor the History's.
		if ctx.Err() != nil {
			return progress.Event{}, false, context.Cause(ctx)
		}
		if s.ctx.Err() != nil {
			return progress.Event{}, false, ErrClosed
		}
		return progress.Event{}, false, outward(err)
	}
	return e, ok, nil
}

// historyFinalUntilClosed is historyFinal, ended by Close too (see
// untilClosed).
func (s *Stream) historyFinalUntilClosed(ctx context.Context, runID string) (progress.Event, bool, error) {
	ctx, stop := s.untilClosed(ctx)
	defer stop()
	return s.historyFinal(ctx, runID)
}

// lastEvent is LastEvent, with the History's error in a historyError,
// returned with the stream's answer (see endedBy). It also
// returns the ID (as a Seq) of the stream's newest entry, corrupt or not,
// and 0 if the stream has none.
//
// It reads Redis with readNow: it fails with errReadsBusy rather than
// wait for reads that a hung Redis holds, and with errReadHung rather
// than wait for its own past readWait once a read has failed.
func (s *Stream) lastEvent(ctx context.Context, runID string) (last progress.Event, top uint64, ok bool, err error) {
	if s.history == nil {
		// The run's shared reader, if running, knows the stream's end.
		s.mu.Lock()
		h := s.hubs[runID]
		s.mu.Unlock()
		if h != nil {
			if e, top, ok, known := h.newest(); known {
				return e, top, ok, nil
			}
		}
	}
	key := s.Key(runID)
	for end := "+"; ; {
		msgs, err := lookupNow(ctx, s, func(ctx context.Context) ([]redis.XMessage, error) {
			return s.client.XRevRangeN(ctx, key, end, "-", 1).Result()
		})
		if err != nil {
			return progress.Event{}, 0, false, fmt.Errorf("redisstream: xrevrange %s: %w", key, err)
		}
		if len(msgs) == 0 {
			break
		}
		e, seq, err := s.parse(runID, msgs[0])
		top = max(top, seq)
		if err == nil {
			last = e
			break
		}
		end = "(" + msgs[0].ID // corrupt, and skipped as readers skip it
		if foreignID(msgs[0].ID) {
			end = entryID(math.MaxUint64) // past every other writer's entry at once
		}
	}
	if s.history == nil || last.Type.Final() {
		return last, top, last.Seq != 0, nil
	}
	hctx, stop := s.untilClosed(ctx) // as a Tail's reads of the History
	defer stop()
	h, ok, err := progress.LastArchived(hctx, s.history, runID, last.Seq)
	switch {
	case err != nil:
		// With the stream's answer, which endedBy keeps.
		return last, top, last.Seq != 0, &historyError{fmt.Errorf("redisstream: last event %q: history: %w", runID, err)}
	case ok:
		return h, top, true, nil
	}
	return last, top, last.Seq != 0, nil
}

// page reads one XRANGE page of entries after pos and delivers them. It
// returns the ID (as a Seq) of the last entry read, or pos, and whether
// the page was short: then the stream had nothing more when it was read,
// or it stopped at a gap that the reader waits for (see atHeldGap and
// atLiveGap); and whether it stopped at a gap in the live entries that
// the run's shared reader does not hold yet (see atLiveGap).
func (s *Stream) page(ctx context.Context, runID string, r *reader, cur *progress.Cursor, pos uint64) (_ uint64, short, stopped bool, err error) {
	key := s.Key(runID)
	msgs, err := s.readerRead(r != nil || s.history != nil)(ctx, s, func(ctx context.Context) ([]redis.XMessage, error) {
		return s.rangeAfter(ctx, key, pos)
	})
	if err != nil {
		cmd := "xrange"
		if s.blockAll {
			cmd = "xread"
		}
		return pos, false, false, fmt.Errorf("redisstream: %s %s: %w", cmd, key, err)
	}
	if r != nil && len(msgs) > 0 {
		// The whole page has been read, whatever its delivery will take:
		// count it now, so that a slow callback shows as lag.
		if seq, err := parseID(msgs[len(msgs)-1].ID); err == nil {
			r.seen(seq)
		}
	}
	// prev is the ID (as a Seq) of the entry before m in this page, 0 for
	// the first.
	var prev uint64
	for _, m := range msgs {
		if foreignID(m.ID) {
			// Another writer's entry: no event of the run follows it.
			s.parse(runID, m) // counted and logged as corrupt
			return pos, true, false, nil
		}
		e, seq, err := s.parse(runID, m)
		if err != nil {
			pos, prev = max(pos, seq), seq
			continue
		}
		if r != nil && e.Seq > cur.Last()+1 {
			held, err := s.atHeldGap(ctx, runID, cur, e.Seq)
			live := false
			if err == nil && !held && r.pass != cur.Last()+1 {
				held, err = s.atLiveGap(ctx, runID, cur, e, prev)
				live = held
			}
			if err != nil {
				if isHistoryError(err) || isRedisError(err) {
					return pos, false, false, err // a Tail waits for it
				}
				return pos, false, false, &deliverError{err}
			}
			if held {
				// Read no further: the reader follows the shared
				// reader from here.
				return pos, true, live, nil
			}
		}
		prev = seq
		pos = max(pos, seq)
		if err := cur.Deliver(ctx, e); err != nil {
			if isHistoryError(err) {
				// Filling a gap: a Tail waits for the History with
				// backoff, and reads the page again.
				return pos, false, false, err
			}
			return pos, false, false, &deliverError{err}
		}
	}
	return pos, int64(len(msgs)) < s.pageSize, false, nil
}

// rangeAfter reads the entries of key after pos, PageSize at most: with
// XRANGE, or, on a client whose ReadTimeout does not bound a command
// without a BLOCK (see Stream.blockAll), with an XREAD with a BLOCK of
// 1ms, which Redis answers as the XRANGE (but for the millisecond it
// waits when the stream has nothing after pos) and go-redis bounds at its
// block and 10s. So a page's read left in flight by a reader that
// returned, on a connection cut without a reset, ends then, and gives its
// token of reads that do not block back, rather than hold it, and with
// the tokens every reader behind it, until TCP gives the connection up
// (some 15 minutes), or until Redis answers when it hangs.
func (s *Stream) rangeAfter(ctx context.Context, key string, pos uint64) ([]redis.XMessage, error) {
	if !s.blockAll {
		return s.client.XRangeN(ctx, key, "("+entryID(pos), "+", s.pageSize).Result()
	}
	res, err := s.client.XRead(ctx, &redis.XReadArgs{
		Streams: []string{key, entryID(pos)},
		Count:   s.pageSize,
		Block:   time.Millisecond,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil // nothing after pos
	}
	if err != nil || len(res) == 0 {
		return nil, err
	}
	return res[0].Messages, nil
}

// readerRead returns how a read of page reads Redis: for a Tail, or a
// Replay with a History (now), with readNow, which fails rather than
// wait for the reads in flight that a hung Redis holds until the
// client's ReadTimeout, one after the other, or for its own past
// readWait, and the reader serves itself from the History as in any
// outage (see tail.outage and Replay). A Replay without a History waits
// for its turn.
func (s *Stream) readerRead(now bool) func(context.Context, *Stream, func(context.Context) ([]redis.XMessage, error)) ([]redis.XMessage, error) {
	if now {
		return readNow[[]redis.XMessage]
	}
	return readFor[[]redis.XMessage]
}

// atHeldGap reports whether a reader whose next entry in the stream is
// seq, after a gap, has reached the gap that the run's shared reader
// holds the live entries after, waiting for the History to fill it (see
// fillGaps), or is inside it (it resumed from an event of the gap that
// the History got after the shared reader last asked it): then the
// reader reads no further from Redis and follows the shared reader,
// which passes the gap's events on once the History has them, rather
// than skip them as a reader skips a gap that neither Redis nor the
// History holds. A reader that reaches any other gap (a trimmed run
// whose History lacks the old part, say) waits for nothing. It first
// delivers from the History the events that directly follow the reader's
// last one, and returns the History's error.
func (s *Stream) atHeldGap(ctx context.Context, runID string, cur *progress.Cursor, seq uint64) (bool, error) {
	s.mu.Lock()
	h := s.hubs[runID]
	s.mu.Unlock()
	if h == nil {
		return false, nil
	}
	at, next, held := h.heldGap()
	if !held || cur.Last() >= next || at+1 >= seq {
		return false, nil
	}
	if at != cur.Last() {
		if err := cur.FillContiguous(ctx); err != nil {
			return false, err
		}
	}
	return cur.Last() >= at && cur.Last()+1 < seq, nil
}

// atLiveGap reports whether a reader whose next entry in the stream is
// e, after a gap between two entries of the stream (prev, the entry
// before e in the reader's page, or one at or before the reader's last
// event that it looks up: a reader that resumed inside the gap, from an
// event of it that the History got, is in it too), has reached a gap in
// the live entries that the History does not fill yet: Redis refused a batch (which went to a progress.Buffered's
// fallback) and took the next, and the History, behind a Buffered of its
// own, may get the missing events a moment later. Then the reader reads
// no further from Redis and follows the run's shared reader, which holds
// the entries after the gap for it up to HistoryPoll (see fillGaps),
// whether it runs already or the reader starts it, rather than skip the
// gap's events at once. A gap below the stream's first entry is waited
// for too (the run's first events missed Redis, or Redis lost them with
// a restart), unless trimming left it (the stream has lost an entry, by
// XINFO STREAM's entries-added; Redis before 7 does not tell, and such a
// gap is not waited for),
// nor one whose next event e is older than HistoryPoll (by its Time): the
// History has had that long to fill it (a finished run whose History
// never got the gap's events), and each new reader would wait again.
// It first delivers from the History the events that directly follow the
// reader's last one, and returns the History's error, or Redis's. Its
// lookups (XREVRANGE, XINFO STREAM) are bounded as LastEvent's are (see
// lookupNow): one that fails so is waited out as any failed read.
func (s *Stream) atLiveGap(ctx context.Context, runID string, cur *progress.Cursor, e progress.Event, prev uint64) (bool, error) {
	last, seq := cur.Last(), e.Seq
	if s.history == nil || time.Since(e.Time) >= s.poll {
		return false, nil
	}
	if err := cur.FillContiguous(ctx); err != nil {
		return false, err
	}
	if cur.Last()+1 >= seq || last > 0 && prev == last {
		return cur.Last()+1 < seq, nil
	}
	// Has the stream an entry at or before the reader's last event (the
	// reader is at or inside a gap between two entries)?
	key := s.Key(runID)
	if cur.Last() > 0 {
		msgs, err := lookupNow(ctx, s, func(ctx context.Context) ([]redis.XMessage, error) {
			return s.client.XRevRangeN(ctx, key, entryID(cur.Last()), "-", 1).Result()
		})
		if err != nil {
			return false, &redisError{fmt.Errorf("redisstream: xrange %s: %w", key, err)}
		}
		if len(msgs) > 0 {
			return true, nil
		}
	}
	// The gap is below the stream's first entry: trimming left it if the
	// stream has lost an entry (XINFO STREAM's entries-added, Redis 7,
	// counts every entry ever added); if not, the run's first events
	// missed Redis, or Redis lost them with a restart.
	info, err := lookupNow(ctx, s, func(ctx context.Context) (*redis.XInfoStream, error) {
		return s.client.XInfoStream(ctx, key).Result()
	})
	if err != nil {
		if errors.As(err, new(redis.Error)) {
			return false, nil // gone, say: do not wait
		}
		return false, &redisError{fmt.Errorf("redisstream: xinfo stream %s: %w", key, err)}
	}
	return info.EntriesAdded > 0 && info.EntriesAdded == info.Length, nil
}

// redisError is a failure of Redis in a reader's page, which a Tail waits
// out with backoff.
type redisError struct{ err error }

func (e *redisError) Error() string { return e.err.Error() }
func (e *redisError) Unwrap() error { return e.err }

func isRedisError(err error) bool {
	var re *redisError
	return errors.As(err, &re)
}

// deliverError carries the reader's own error (its callback's) through
// the retry loops, which must not retry it.
type deliverError struct{ err error }

func (e *deliverError) Error() string { return e.err.Error() }
func (e *deliverError) Unwrap() error { return e.err }

// parse decodes an entry of runID's stream. It returns the entry's Seq
// even when the entry is corrupt, so that the reader can move past it. An
// entry that holds an event of another run is corrupt: a reader would
// refuse it at every try.
func (s *Stream) parse(runID string, m redis.XMessage) (progress.Event, uint64, error) {
	e, seq, err := decodeEntry(runID, m)
	if err != nil {
		s.corrupt.Add(1)
		s.logger.Warn("redisstream: skipping corrupt stream entry", "id", m.ID, "error", err)
	}
	return e, seq, err
}

// decodeEntry is parse without counting or logging a corrupt entry: for
// an entry read again, which was counted the first time.
func decodeEntry(runID string, m redis.XMessage) (progress.Event, uint64, error) {
	seq, err := parseID(m.ID)
	if err != nil {
		return corruptEntry(m.ID, err)
	}
	raw, ok := m.Values[eventField].(string)
	if !ok {
		return corruptEntry(m.ID, fmt.Errorf("no %q field", eventField))
	}
	var e progress.Event
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return corruptEntry(m.ID, err)
	}
	if e.Seq != seq {
		return corruptEntry(m.ID, fmt.Errorf("entry ID %s holds seq %d", m.ID, e.Seq))
	}
	if e.RunID != runID {
		return corruptEntry(m.ID, fmt.Errorf("the stream of run %q holds an event of run %q", runID, e.RunID))
	}
	return e, seq, nil
}

func corruptEntry(id string, err error) (progress.Event, uint64, error) {
	seq, _ := parseID(id)
	return progress.Event{}, seq, fmt.Errorf("%w %s: %w", ErrCorruptEntry, id, err)
}

// foreignID reports whether id, an entry ID that Redis returned, was not
// written by Publish: its milliseconds part is not 0, so it is above every
// 0-<seq>, and Redis refuses a 0-<seq> after it. So no event of the run
// follows such an entry in its stream (until the stream is gone).
func foreignID(id string) bool { return !strings.HasPrefix(id, "0-") }

// parseID parses an entry ID written by Publish, "0-<seq>".
func parseID(id string) (uint64, error) {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok || ms != "0" {
		return 0, fmt.Errorf("entry ID %q is not of the form 0-<seq>", id)
	}
	return strconv.ParseUint(seq, 10, 64)
}

func checkRunID(runID string) error {
	if runID == "" {
		return fmt.Errorf("%w: empty run ID", progress.ErrInvalidEvent)
	}
	return nil
}

// Close stops the runs' reading goroutines, the retries of copies to
// the History (see Publish) and the sweep for idle streams (see
// Options.IdleTTL), and waits for them, at most about BlockTime (and a
// try of a copy, if the History does not honour its context; while
// Redis does not answer, a run's shared reader's XREAD holds it for
// BlockTime and go-redis's margin of 10s on a blocking command, whatever
// the client's ReadTimeout (see Options.MaxBlockingReads), and so do,
// with a ReadTimeout of -1 or above 10s, a replay's page left in flight
// by a reader that returned and a run's shared reader's check that its
// stream is still there; and a write of Publish, a
// lookup left in flight by a reader that returned (LastEvent's, or a
// check of a gap in the live entries), or a command of the sweep or of
// a copy's retry, for the client's ReadTimeout: with -1, until Redis
// answers). Tail, Replay and LastEvent calls still in progress
// return [ErrClosed] at once, also while the History does not answer.
// It does not close the Redis client. Later calls of Publish, Replay,
// Tail and LastEvent return ErrClosed.
func (s *Stream) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// spawn runs f in a goroutine of the Stream, which Close waits for; it
// reports false, running nothing, once the Stream is closed.
func (s *Stream) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Stream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Stats returns a snapshot of the counters.
func (s *Stream) Stats() Stats {
	st := Stats{
		Published:     s.published.Load(),
		Duplicates:    s.duplicates.Load(),
		PublishErrors: s.publishErrors.Load(),
		Dropped:       s.dropped.Load(),
		ReadErrors:    s.readErrors.Load(),
		Skipped:       s.skipped.Load(),
		Corrupt:       s.corrupt.Load(),
		CopyErrors:    s.copyErrors.Load(),
		ExpiryErrors:  s.expiryErrors.Load(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Readers = len(s.readers)
	st.Runs = len(s.hubs)
	st.Copying = len(s.copying)
	for r := range s.readers {
		st.Lag = max(st.Lag, r.lag())
	}
	return st
}

// reader is one Tail call, for Stats.
type reader struct {
	runID     string
	delivered atomic.Uint64 // last Seq delivered
	head      atomic.Uint64 // highest Seq read from Redis directly
	hub       atomic.Pointer[hub]
	// pass is 1 + the reader's last Seq when it gave up waiting for the
	// gap in the live entries after it (see tail.waitGap), 0 before: its
	// page passes over that gap. Only its Tail's goroutine uses it.
	pass uint64
}

func (r *reader) seen(seq uint64) {
	for {
		old := r.head.Load()
		if seq <= old || r.head.CompareAndSwap(old, seq) {
			return
		}
	}
}

func (r *reader) lag() uint64 {
	head := r.head.Load()
	if h := r.hub.Load(); h != nil {
		head = max(head, h.readSeq())
	}
	if d := r.delivered.Load(); head > d {
		return head - d
	}
	return 0
}

func (s *Stream) addReader(r *reader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.readers[r] = struct{}{}
	return nil
}

func (s *Stream) removeReader(r *reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.readers, r)
}
