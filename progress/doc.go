// Package progress is the event model of a run and the plumbing that
// carries it to a progress view: the [Event], the [Sink] the executor
// publishes to, the [Source] a view reads back from, and the in-process
// implementations of both.
//
// # Events and their identity
//
// An [Event] reports one step of a run: run.*, stage.* and node.* events
// (see [Type]) and free-text messages from generators. Its Seq is its
// identity everywhere: per run it starts at 1, strictly increases and has
// no gaps. Sinks deduplicate on it, so that a retried publish never shows
// twice, and readers resume after it, so a reconnecting browser sends the
// last Seq it saw and receives exactly the events after it.
//
// # JSON form
//
// Browsers parse the JSON form, so it is a stable contract; fields may be
// added, never renamed or removed. [Event.MarshalJSON] writes one object
// with these keys, in this order:
//
//	runId       string  always; the run's ID
//	graphKey    string  omitted when empty; the graph the run works on
//	seq         number  always; 1, 2, 3, ... per run
//	time        string  always; RFC 3339 with nanoseconds, in UTC
//	                    ("2025-01-02T03:04:05.123456789Z"; the fraction's
//	                    trailing zeros are dropped: "2025-01-02T03:04:05Z")
//	type        string  always; "run.started", "node.failed", "message", ...
//	node        string  omitted when empty; the node ID
//	kind        string  omitted when empty; the node's kind (its
//	                    template's kind name), on events with a node
//	batchKey    string  omitted when empty; the node's batch key, on
//	                    events with a node of a batch (none on stage.*)
//	round       number  omitted when 0; the run's round, from 1, on
//	                    events with a stage and on the message that
//	                    starts a later round
//	stage       number  omitted when the event is not about a stage
//	                    (Stage is NoStage); stage indexes start at 0,
//	                    in each round
//	stageDone   number  omitted when 0; settled nodes of the stage in
//	                    the round so far, on events with a stage
//	stageTotal  number  omitted when 0; planned nodes of the stage in
//	                    the round, on events with a stage
//	batchDone   number  omitted when 0; settled nodes of the node's
//	                    batch in its stage so far, on events with a
//	                    batchKey
//	batchTotal  number  omitted when 0; planned nodes of the node's
//	                    batch in its stage, on events with a batchKey
//	attempt     number  omitted when 0; 1-based attempt of a node event
//	message     string  omitted when empty; human-readable text
//	previewUrl  string  omitted when empty
//	reasoning   string  omitted when empty
//	error       string  omitted when empty; the failed attempt's error
//	done        number  always; finished nodes of the run so far
//	total       number  always; planned nodes of the run
//	counts      object  omitted when none; on the final event of a run
//	                    (run.finished, run.failed, run.cancelled), its
//	                    nodes by outcome, each key always written:
//	                    {"generated":9,"unchanged":0,"failed":1,
//	                    "skipped":2,"superseded":0,"cancelled":0,
//	                    "dirty":3}; dirty, the nodes the run left not
//	                    clean, counts nodes of the other counts too, and
//	                    is above 0 on a run.finished whose run an edit
//	                    interrupted (see Event.Counts and Counts.Dirty;
//	                    none on the run.cancelled of a run found
//	                    interrupted; a count that an event of an earlier
//	                    release lacks reads as 0, but for dirty, which
//	                    it lacks then: unknown, not 0, Counts.Dirty -1,
//	                    and left out when written again; a dirty below
//	                    0 is refused)
//	plan        object  omitted when none; on run.started, and on the
//	                    message that starts a later round, the outline
//	                    of the round's plan: its stages in order (the
//	                    events' stage 0, 1, ...), each with its nodes
//	                    (the stageTotal of its events) and its groups,
//	                    the entries of its summary line in order: a
//	                    batch (batchKey and concurrency set, kind "" if
//	                    its nodes are of several kinds; its nodes are
//	                    the batchTotal of its events), or the single
//	                    nodes of one kind (batchKey "", concurrency 0).
//	                    Each key always written, a list as [] when empty:
//	                    {"stages":[{"nodes":1,"groups":[{"kind":"script",
//	                    "batchKey":"","nodes":1,"concurrency":0}]},
//	                    {"nodes":3,"groups":[{"kind":"asset:image",
//	                    "batchKey":"asset:image","nodes":3,
//	                    "concurrency":5}]}]}
//	                    (see Event.Plan; none on a plan too large for
//	                    it, see the executor's MaxOutline)
//	etaMs       number  omitted when unknown; time left, in milliseconds
//	resumedBy   string  omitted when empty; on the run.cancelled event of
//	                    a run found interrupted (its process stopped), the
//	                    ID of the run that resumed it, or that took over
//	                    its work (see Event.ResumedBy)
//	cancelledBy string  omitted when empty; on the run.cancelled event of
//	                    a run that the executor ran, the cancel code of
//	                    its record: "cancel" (a user's Run.Cancel),
//	                    "drain" (a shutdown's drain without a code of the
//	                    host's), "context", "deadline", "graph-replaced",
//	                    "graph-deleted", "host", or a host's own code,
//	                    such as "shutdown" (see Event.CancelledBy)
//
// For example:
//
//	{"runId":"r1","graphKey":"lecture-42","seq":7,"time":"2025-01-02T03:04:05Z","type":"node.retrying","node":"asset:narration:segment[3]","kind":"asset:narration","batchKey":"asset:narration","round":1,"stage":1,"stageDone":2,"stageTotal":7,"batchDone":1,"batchTotal":3,"attempt":2,"error":"tts: 503","done":5,"total":20,"etaMs":61000}
//
// Readers must ignore keys they do not know. [Event.UnmarshalJSON] reads
// the same form back; the round trip keeps every field, except that Time
// comes back in UTC, ETA is rounded to the millisecond, a negative Stage
// comes back as NoStage, invalid UTF-8 in a string comes back with
// U+FFFD in its place, and an empty (not nil) list of a Plan's stages or
// of a stage's groups comes back nil.
//
// # Sinks
//
// A [Sink] receives events; the executor publishes each event once, in Seq
// order, and never fails a run because a sink failed. This package has:
//
//   - [Memory], a bounded ring per run that is also a [Source]: the
//     choice for a single process (the executor has no sink unless
//     Options.Sink names one). It keeps [MemoryOptions].MaxRuns runs,
//     which must be at least the runs going on at once: beyond it, it
//     evicts finished runs first, then live ones, whose views lose
//     events; [Memory.Replay] of an evicted run, and [Memory.Tail] of
//     an evicted finished run without a History (or with one, after
//     HistoryWait), end with [ErrEvicted] after the run's newest event,
//     which it keeps, when they lack events that no History holds;
//   - [Slog], which writes each event through a *slog.Logger;
//   - [Fanout], which feeds several sinks;
//   - [Buffered], which batches writes for a slow or remote sink, never
//     blocks the run, retries through an outage while its queue holds
//     (losing nothing, in order), falls back (to slog by default) for
//     what it must let go, and keeps its memory bounded, counting what it
//     drops;
//   - [Archive], which appends every event to a [History].
//
// Remote backends live in subpackages, so that this package imports no
// driver: progress/redisstream keeps one Redis stream per run,
// progress/pghistory is a [History] in PostgreSQL, to keep runs after
// their streams are trimmed or expired, and progress/sse serves a
// [Source] to browsers as Server-Sent Events.
//
// A typical wiring for Redis keeps an archive beside the live stream and
// shields the run from Redis outages:
//
//	hist, _ := pghistory.New(pool, pghistory.Options{}) // or progress.NewMemoryHistory()
//	_ = hist.Migrate(ctx)
//	stream, _ := redisstream.New(client, redisstream.Options{History: hist})
//	sink := progress.NewFanout(
//		progress.NewArchive(hist),
//		progress.NewBuffered(stream, progress.BufferedOptions{Logger: logger}),
//	)
//
// The executor waits for each Publish of a sink that is not buffered. So
// the README's production wiring, and examples/service, put the archive
// of a database History behind a Buffered of its own too.
//
// # Sources, replay and resume
//
// A [Source] reads a run back: [Source.Replay] delivers what is stored
// after a Seq, and [Source.Tail] continues with live events until its
// context ends, with no gap and no duplicate at the seam. When a source's
// own copy was trimmed or lost, it fills the gap from a [History]; the
// [Cursor] type implements that logic for any backend. [MemoryHistory]
// keeps everything in memory, for tests and small hosts;
// progress/pghistory keeps runs in PostgreSQL, with retention, and a
// host's own History checks itself with progress/sinktest's History. A source or
// History that can find a run's newest event in one lookup implements
// [LastEventReader], so that a reader resuming at or past the run's final
// event learns cheaply that nothing more will come. [Buffered], [Fanout]
// and [Archive] implement it too, passing on the answer of what they wrap
// (a Buffered's own queue first, a Fanout's highest Seq), or
// [ErrUnsupported] when nothing they wrap can say: so the executor, which
// has only a Sink, can number the final event it publishes for a run
// that it finds interrupted. The conformance kit
// in progress/sinktest checks a Sink/Source pair against this contract.
package progress
