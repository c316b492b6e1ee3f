package progress

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Type names what an [Event] reports. Its string form is part of the
// stable JSON contract that browsers parse.
type Type string

// The event types. run.* and stage.* events describe the run as a whole,
// node.* events one node, and message carries free text from a generator.
const (
	RunStarted   Type = "run.started"
	RunFinished  Type = "run.finished"
	RunFailed    Type = "run.failed"
	RunCancelled Type = "run.cancelled"

	StageStarted  Type = "stage.started"
	StageFinished Type = "stage.finished"

	NodeStarted    Type = "node.started"
	NodeRetrying   Type = "node.retrying"
	NodeSucceeded  Type = "node.succeeded"
	NodeUnchanged  Type = "node.unchanged"
	NodeFailed     Type = "node.failed"
	NodeSkipped    Type = "node.skipped"
	NodeSuperseded Type = "node.superseded"
	NodeCancelled  Type = "node.cancelled"

	Message Type = "message"
)

// Final reports whether t ends a run: [RunFinished], [RunFailed] or
// [RunCancelled]. No event of the run follows a final one.
func (t Type) Final() bool {
	return t == RunFinished || t == RunFailed || t == RunCancelled
}

// NoStage is the Stage of an event that is not about a stage.
const NoStage = -1

// Event is one step of a run. Seq is the event's identity: per run it
// starts at 1, is strictly increasing and has no gaps, and it is the ID
// used in Redis, in the archive and in Server-Sent Events.
type Event struct {
	// RunID identifies the run; one stream holds one run's events.
	RunID string
	// GraphKey identifies the graph (for example the lecture) the run works on.
	GraphKey string
	// Seq is the per-run sequence number, from 1, gap-free.
	Seq uint64
	// Time is when the event happened.
	Time time.Time
	// Type says what happened.
	Type Type
	// Node is the node ID for node.* and message events, else "".
	Node string
	// Kind is the node's kind, its template's kind name
	// ("asset:narration"), on the events that have a Node, else "": a
	// view groups nodes by kind (a progress bar per kind) without parsing
	// their IDs.
	Kind string
	// BatchKey is the node's batch key, on the events that have a Node
	// whose plan group is a batch (its kind has a batch key, as
	// "asset:video" in "Stage 2: Generating 360 asset:video nodes in
	// batches of 3"), else "": a view groups nodes by batch key (a
	// progress bar per key) without parsing the stage's summary. Stage
	// events have none: a stage may hold several batches and singles, and
	// the events of its nodes name each one's.
	BatchKey string
	// Round is the run's round, from 1, on the events that have a Stage
	// (stage.* and node events, and the message events of a node's
	// generator, which have its stage) and on the message event that starts a
	// later round (see the executor's Options.Converge), else 0. Each
	// round has a plan of its own, whose stage indexes start at 0 again:
	// a view keys its per-stage bars by Round and Stage.
	Round int
	// Stage is the plan stage index, or NoStage.
	Stage int
	// StageDone and StageTotal count the settled and the planned nodes of
	// the stage in the round's plan, on the events that have a Stage,
	// else 0: a view draws a per-stage bar from them, as it draws the
	// run's from Done and Total, without parsing the stage's summary.
	// StageTotal is the stage's nodes in the round's plan (a later
	// round's plan, or a resumed run's, holds only what it remakes);
	// StageDone counts those whose settling event (node.succeeded,
	// node.unchanged, node.failed, node.skipped, node.superseded or
	// node.cancelled) is this event or came before it. Like Done, it
	// never goes back within a round, and it stays below StageTotal when
	// a cancel lets nodes go unstarted.
	StageDone, StageTotal int
	// BatchDone and BatchTotal count the settled and the planned nodes of
	// the node's batch in its stage (its plan group: the stage's nodes
	// with its BatchKey) in the round's plan, on the events that have a
	// BatchKey, else 0: a view draws a bar per batch key from them, as per
	// stage from StageDone and StageTotal (a key's nodes may span several
	// stages: its bar over the run sums those of its stages). BatchDone
	// counts settling events as StageDone does.
	BatchDone, BatchTotal int
	// Attempt is the 1-based attempt number for node events, else 0: on
	// node.started 1, on node.retrying the attempt about to be made, on
	// the settling events the attempts made (a node cancelled during a
	// retry's backoff made one fewer than its node.retrying named), and
	// on a generator's message the attempt that sent it.
	Attempt int
	// Message is human-readable text: a generator's message, a stage's
	// summary line, the reason a node was skipped or superseded.
	Message string
	// PreviewURL is an optional preview of a node's output.
	PreviewURL string
	// Reasoning is optional reasoning text from a generator.
	Reasoning string
	// Error is the error text of a failed or retried attempt.
	Error string
	// Done and Total count the run's finished and planned nodes. Done
	// counts the failed, skipped, superseded and cancelled ones too:
	// Counts, on the final event, tells them apart.
	Done, Total int
	// Counts tallies the run's nodes by outcome, on the final event
	// (run.finished, run.failed or run.cancelled) of a run that the
	// executor ran, else nil: a view draws the run's final status from
	// it, and a page that reconnects after the end reads it, without
	// parsing Message. Its counts are those of the executor's Report of
	// the run (the lengths of its lists, as in its Record.Counts): with
	// Options.Converge the run's, not its last round's, each node once,
	// under its last outcome, where Done counts a node in each round
	// that it settled in; nodes that a cancel kept from starting are in
	// none but Dirty (the length of the Report's Dirty, which the
	// record's counts have not). The final event that the executor publishes for a run found
	// interrupted (see ResumedBy) has none: no Report lists its nodes,
	// and its record's counts are what the states show. Counts is shared
	// by the copies of the event: the executor gives each final event one
	// of its own and never changes it once published, and neither may a
	// sink or reader, which may keep the pointer as it keeps the event.
	Counts *Counts
	// Plan outlines the round's plan, on the run.started event of a run
	// that the executor runs and on the message event that starts a
	// later round (see Round), else nil: a view draws a bar per stage,
	// and per batch key or kind within each, before any of them starts,
	// without parsing Message. Its stages are the round's plan's, in
	// order (Plan.Stages[i] is Stage i), and they and their groups agree
	// with what follows: a stage's Nodes is the StageTotal of the stage's
	// events, a batch group's Nodes the BatchTotal of its key's events
	// in the stage, and the groups are the entries of the stage's
	// summary line, the Message of its stage.started, in its order. It
	// is nil, too, when the outline would be too large (see the
	// executor's MaxOutline): a view then learns each stage's totals
	// from its events, as it does without one. Plan is shared by the
	// copies of the event, as Counts is: neither the executor nor a sink
	// or reader changes it once published.
	Plan *Outline
	// ETA is the estimated time left in the run, 0 when unknown.
	ETA time.Duration
	// ResumedBy is the ID of the run that resumed this one, on the final
	// event (of type RunCancelled) that the executor publishes for a run
	// that a Resume or RerunFailed found interrupted (its process stopped
	// without recording its outcome), or of the run that took over its
	// work, for a run left running beside a newer run of its key that was
	// resumed in its place (the executor's AbandonTo); else "". A view
	// that followed this run can follow that one next.
	ResumedBy string
	// CancelledBy is what cancelled the run, as a cancel code, on the
	// run.cancelled event of a run that the executor ran, else "": the
	// code that the run's record keeps (the executor's Record.CancelledBy),
	// one of the executor's ("cancel", "context", "deadline",
	// "graph-replaced", "graph-deleted", "host", "drain") or a host's,
	// given with the executor's CancelCode ("shutdown", say). A view
	// tells a shutdown's drain from a user's cancel by it, without
	// parsing Error. The run.cancelled event of a run found interrupted
	// (see ResumedBy) has none: nothing cancelled it, its process
	// stopped.
	CancelledBy string
}

// Counts tallies a run's nodes by outcome: see [Event.Counts]. Each node
// is in one of the outcomes' counts at most; Dirty, which is no outcome,
// counts nodes that are in one of them too.
type Counts struct {
	// Generated nodes were made and committed clean.
	Generated int
	// Unchanged nodes kept their results: their inputs had not changed
	// (early cutoff).
	Unchanged int
	// Failed nodes ran out of attempts, or could not read their inputs.
	Failed int
	// Skipped nodes did not run: a dependency failed or was superseded,
	// or they were edited (or made stale, or deleted) during the run.
	Skipped int
	// Superseded nodes were edited while they ran, or their inputs were:
	// their results were not kept.
	Superseded int
	// Cancelled nodes were running when the run was cancelled, or its
	// graph replaced or deleted.
	Cancelled int
	// Dirty counts the nodes of the graph that the run left not clean,
	// as the executor's Report.Dirty lists them: those it planned and
	// did not make (failed, skipped, superseded, cancelled, or kept from
	// starting by a cancel) and those that an edit made dirty while it
	// ran. A run can succeed (run.finished) and leave nodes dirty, when
	// an edit during it superseded a node and its dependents were
	// skipped: a host that ships on run.finished checks that Dirty is 0,
	// or makes what is left with another run. It is [DirtyUnknown] (-1)
	// in an event read from JSON without it: one that a release before
	// it wrote (or wrote again, in a deploy where both releases run),
	// which says nothing of what was left; such an event is written
	// without it again. UnmarshalJSON refuses a dirty below 0, which
	// would not read the same once written again.
	Dirty int
}

// DirtyUnknown is Counts.Dirty of an event whose writer did not count
// the nodes left dirty: a release before the count.
const DirtyUnknown = -1

// Outline is the shape of a run's plan, or of a round's, as a view
// draws it: its stages, in order, and the groups of each. See
// [Event.Plan]. The same plan gives the same outline, and the same JSON,
// byte for byte: an event's "plan", which json.Marshal of an Outline
// writes too (see [Outline.MarshalJSON]).
type Outline struct {
	// Stages are the plan's stages in order: Stages[i] is the events'
	// Stage i of the round.
	Stages []OutlineStage
}

// OutlineStage is a stage of an [Outline].
type OutlineStage struct {
	// Nodes is the number of the stage's nodes: the sum of its groups',
	// and the StageTotal of the stage's events in the round.
	Nodes int
	// Groups are the stage's groups, in the order of the stage's summary
	// line ("Stage 1: Generating 30 asset:narration nodes in batches of
	// 4, 30 asset:image nodes in batches of 5, 1 asset:music node"), one
	// for each of its entries: a batch, or the single nodes of one kind
	// (each single node is a plan group of its own; here they are
	// counted together). A stage has one group at most of each batch key,
	// and of each kind's single nodes.
	Groups []OutlineGroup
}

// OutlineGroup is a batch of a stage, or the single nodes of one kind in
// it: see [OutlineStage.Groups].
type OutlineGroup struct {
	// Kind is the kind of the group's nodes, the Kind of their events; ""
	// for a batch of nodes of several kinds, which share its key.
	Kind string
	// BatchKey is the batch's key, the BatchKey of its nodes' events; ""
	// for single nodes.
	BatchKey string
	// Nodes is the number of the group's nodes: a batch's is the
	// BatchTotal of its key's events in the stage.
	Nodes int
	// Concurrency is the batch's limit ("in batches of 3"); 0 for single
	// nodes.
	Concurrency int
}

// Validate reports whether e can be stored: it needs a RunID, valid
// UTF-8 without NUL (its JSON form would change another, and Postgres
// holds no NUL), a Seq of at least 1, and a Time within the years 0000
// to 9999 in UTC, which its JSON form can write (see
// [Event.MarshalJSON]). The error wraps [ErrInvalidEvent].
func (e Event) Validate() error {
	switch {
	case e.RunID == "":
		return fmt.Errorf("%w: seq %d has an empty run ID", ErrInvalidEvent, e.Seq)
	case !utf8.ValidString(e.RunID) || strings.IndexByte(e.RunID, 0) >= 0:
		return fmt.Errorf("%w: run ID %q: want valid UTF-8 without NUL", ErrInvalidEvent, e.RunID)
	case e.Seq == 0:
		return fmt.Errorf("%w: run %q: seq is 0, sequence numbers start at 1", ErrInvalidEvent, e.RunID)
	case !inRFC3339(e.Time):
		return fmt.Errorf("%w: run %q seq %d: time %v is outside the years 0000 to 9999 in UTC, which RFC 3339 cannot write", ErrInvalidEvent, e.RunID, e.Seq, e.Time)
	}
	return nil
}

// Sink receives events. Publish is called with events in Seq order; an
// implementation must be safe for concurrent use. The events slice is the
// caller's: a sink copies what it keeps and neither changes nor reads
// the slice once Publish has returned ([Buffered] reuses it for its next
// batch, [Fanout] hands it to the next sink). A sink that fails must
// never fail the run: the executor logs and counts its errors.
type Sink interface {
	Publish(ctx context.Context, events ...Event) error
}

// SinkFunc adapts a function to a [Sink].
type SinkFunc func(ctx context.Context, events ...Event) error

// Publish calls f.
func (f SinkFunc) Publish(ctx context.Context, events ...Event) error { return f(ctx, events...) }

// publishRecover publishes events to s and turns a panic of s into an
// error: a sink's panic must no more end the process (Buffered calls s
// from its own goroutine, where no caller can recover it) or stop other
// sinks (Fanout) than its error does.
func publishRecover(ctx context.Context, s Sink, events []Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errSinkPanicked, p)
		}
	}()
	return s.Publish(ctx, events...)
}
