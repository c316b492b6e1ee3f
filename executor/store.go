package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/regengraph/regen/dirty"
)

// Errors of the stores. Implementations return them (wrapped or not) so
// that the executor can branch with errors.Is.
var (
	// ErrConflict: a commit's expected version is not the stored one. A
	// [*ConflictError] wraps it.
	ErrConflict = errors.New("executor: version conflict")
	// ErrNotFound: no asset or run record under that reference or ID.
	ErrNotFound = errors.New("executor: not found")
)

// ConflictError reports a compare-and-swap commit that lost: someone else
// committed to the graph since the caller loaded it.
type ConflictError struct {
	GraphKey         string
	Expected, Actual int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%v: graph %s is at version %d, not %d", ErrConflict, quote(e.GraphKey), e.Actual, e.Expected)
}

// Unwrap returns [ErrConflict].
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Snapshot is a graph's node states at one version.
type Snapshot struct {
	// Version is the graph's version; 0 for a graph never committed.
	Version int64
	// States maps node IDs to their states. Nodes without an entry are
	// missing. The caller owns the map, which may be nil for a graph never
	// committed. Once a run has started on the graph, it also holds the
	// executor's own state under [GraphStateID], which is no node's: a
	// host that counts or lists the nodes' states skips it.
	States map[string]dirty.State
}

// Change sets one node's state in a commit.
type Change struct {
	ID    string
	State dirty.State
}

// StateStore keeps node states, the light metadata of a graph, with one
// version number per graph. Every commit is a compare-and-swap on that
// version: a SQL implementation runs it as one transaction that checks
// and bumps the version row and upserts the changed states. It must be
// safe for concurrent use.
//
// A store keeps every ID the executor commits, not only the graph's node
// IDs: also [GraphStateID], the executor's own state, which no node has.
// A store that dropped it would stop every run that reloads with
// [ErrGraphDeleted].
//
// Graph keys and node IDs are compared exactly (no case folding, no
// trimming, no Unicode normalisation). Times keep at least microseconds;
// a store that keeps less than nanoseconds truncates the rest, as
// time.Time.Truncate(time.Microsecond) does (toward the past), and never
// rounds: the executor compares stored times truncated to the microsecond.
// A zero time comes back as the zero time. Strings may hold any valid
// UTF-8 except NUL; the executor cleans error texts before it records
// them.
//
// The keys the executor gives: a graph key is the host's
// RunRequest.GraphKey, any non-empty valid UTF-8 without NUL, of any
// length; a node ID is a kind name (1 to 128 bytes of A-Z a-z 0-9 and
// _ . : / -) or "<kind>:segment[<i>]" with i of at most 9 digits, so at
// most 147 bytes, or [GraphStateID].
//
// A store may document a maximum length for graph keys and node IDs, as
// a database's index limits it (pgstore's is 1,200 bytes). It must refuse a Commit with a longer one
// with an error, and apply nothing: never truncate, hash or otherwise
// change the key to fit. A Load of a longer graph key finds a graph never
// committed, since it cannot have been.
//
// A Commit that fails with an error other than a conflict (a lost
// connection, say) may or may not have been applied; the executor then
// reloads and compares before it tries again. A store wraps an error that
// no retry can fix (a key longer than it allows) in [Permanent], and
// applies nothing: the executor then does not call again, here and for
// the other stores' calls.
//
// A store that outlives its process keeps a Commit that returned nil
// through a crash and a restart, its states and its version: the
// executor has then told its host the nodes are done, and a later run,
// in another process perhaps, loads them. A graph's version never goes
// back, nor is a number used twice, even
// when the graph is deleted: keep its version (a tombstone), as the
// DeleteGraph of MemoryStore and of pgstore's Store do. A run that loaded
// the graph before could otherwise commit stale states once the
// re-created graph reached the version it loaded. The executor/storetest
// package checks an implementation against this contract.
type StateStore interface {
	// Load returns the graph's states and version, as of one instant:
	// the states are exactly those of that version, even while others
	// commit. A graph never committed has version 0 and no states; that
	// is not an error.
	Load(ctx context.Context, graphKey string) (Snapshot, error)
	// Commit applies changes atomically if the graph is at version
	// expect, and returns the new version, expect+1. Otherwise it applies
	// nothing and returns a [*ConflictError]. Later changes to the same
	// node win. An empty change list still bumps the version. On error the
	// returned version is 0.
	//
	// Commit must not modify changes, even temporarily, nor reorder them
	// (a store that sorts them by ID, for a stable lock order, sorts a
	// copy), on success or error. Implementations must not retain
	// changes: the executor reads the slice after Commit returns, the
	// change at i for its node at i, and reuses it for its next commit.
	Commit(ctx context.Context, graphKey string, expect int64, changes []Change) (int64, error)
}

// Asset is one generated result, as an asset store keeps it: the bytes,
// or a reference to where the host keeps them.
type Asset struct {
	// Data is the asset's content, when the store holds it.
	Data []byte
	// URL is where the host keeps the content, when it holds it itself.
	URL string
	// Hash is the content hash.
	Hash string
	// Length is the measured length of a timed asset, such as a
	// narration, or 0.
	Length time.Duration
	// Meta is free-form metadata from the generator.
	Meta map[string]string
}

// AssetStore keeps heavy asset data apart from graph metadata. Keys are
// chosen by the executor and are unique per graph, node and content hash;
// Put returns the reference that state records carry. A Put under a key
// already used must succeed, and replaces the asset stored there,
// whatever it was: every reference to that key then gives the new asset.
// (The executor puts again after a crash between Put and Commit.) A key
// is the graph key + "/" + the node ID + "/" + the asset's Hash: the
// generator's, any valid UTF-8 without NUL, or, when it gives none, a
// SHA-256 in hex (64 bytes); so, with the executor's hash, the graph key
// and at most 213 bytes more.
//
// Put's reference is stored in node states (dirty.State.AssetRef) and
// given back to Get and Exists by later runs, in other processes too: it
// stays valid, across restarts of the store and of the process, while
// the asset is kept, as the asset does once Put returned nil. It may be
// opaque (an ID, a hash of the key): the executor never parses one. The
// executor puts only assets whose URL, Hash and Meta are valid UTF-8
// without NUL; Data may hold any bytes. Keys and refs are compared
// exactly. A store may document a maximum key
// length; it must refuse a Put with a longer key with an error, never
// truncate or otherwise change the key, and Get and Exists of a reference
// to such a key find nothing. It must be safe for concurrent use.
//
// Get and Exists answer as of the call, as do the optional [AssetChecker]
// and [AssetBatchGetter]: an asset that the store deleted (a prune of the
// assets no state refers to, say) is not found, though a call found it
// before. A store that caches their answers drops an asset's from the
// cache when it deletes the asset, as when a Put replaces it.
//
// A store that also deletes the assets no node state refers to (as the
// PruneAssets of MemoryStore and of pgstore's Store do, given an age)
// counts an asset's age from its last Put (one of the same asset as the
// one under the key too, as a node that makes the same output again
// puts: a store that skips such a Put still restarts the age), or from
// the last commit that stopped referring to it (a release), whichever is
// later: a run that
// started before that commit may still read the asset, so a prune with
// an age longer than the longest run is safe while runs go on. Such a
// prune runs while runs Put and Commit: an asset that a Put renews or a
// commit refers to after the prune found it old and unreferenced must
// stay. A deletion of a graph's states (DeleteGraph) releases their
// assets too, but need not restart their age, and MemoryStore's and
// pgstore's do not: a run of the deleted graph still going stops at its
// next commit. A store may restart it there as well, keeping those assets
// up to the age longer.
type AssetStore interface {
	// Put stores an asset under key, replacing any asset already there,
	// and returns its reference.
	Put(ctx context.Context, key string, a Asset) (ref string, err error)
	// Get returns the asset a reference points to, or an error wrapping
	// [ErrNotFound]. Its Data may be shared with the store: callers must
	// not modify it. Its Meta is the caller's, who may write into it: a
	// store that keeps the map returns a copy of it.
	Get(ctx context.Context, ref string) (Asset, error)
	// Exists reports whether the reference still points to an asset. It
	// returns false and no error for any ref it does not hold, including
	// "" and malformed ones: the integrity check relies on it.
	Exists(ctx context.Context, ref string) (bool, error)
}

// AssetChecker is an optional interface of an [AssetStore] that checks
// many references at once. At the start of every run the executor checks
// the asset of each clean node: with an AssetChecker that is one call,
// rather than one Exists a node (one round trip each, for a database).
type AssetChecker interface {
	// Missing returns the references among refs that point to no asset
	// (those for which Exists would report false), each once, in any
	// order. refs may repeat, and may hold "" and malformed references.
	// Missing must not modify refs, even temporarily, nor reorder them (a
	// store that sorts them for its query sorts a copy), and must not
	// retain them.
	Missing(ctx context.Context, refs []string) ([]string, error)
}

// AssetBatchGetter is an optional interface of an [AssetStore] that reads
// many assets at once. Before it runs a node the executor reads its
// dependencies' assets: with an AssetBatchGetter that is one call for a
// node with two dependencies or more, rather than one Get each (a
// timeline over every segment's video and narration has hundreds of them:
// one round trip each, for a database). The in-memory stores, to which a
// call costs no round trip, get it for four or more.
//
// A type that wraps an asset store by embedding it inherits its optional
// methods, this one and [AssetChecker]'s: a wrapper that changes what Get
// or Exists answers (it decrypts, caches or counts) must define GetMany
// and Missing too, or embed only the [AssetStore] interface, or the
// executor reads around it.
type AssetBatchGetter interface {
	// GetMany returns the assets refs point to, one for each ref and in
	// the order of refs, as Get would return them; refs may repeat. If a
	// ref points to no asset (Get would fail with [ErrNotFound]), it
	// returns an error wrapping ErrNotFound that names that ref. Data may
	// be shared with the store, as Get's: callers must not modify it.
	// Meta is the caller's, as Get's: each asset's a map of its own, also
	// for a ref that repeats. GetMany must not modify refs, even
	// temporarily, nor reorder them, and must not retain them, as
	// Missing.
	GetMany(ctx context.Context, refs []string) ([]Asset, error)
}

// RunStatus is the state of a run.
type RunStatus string

// The run statuses.
const (
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
	// RunInterrupted: the run ended without recording its outcome (its
	// process crashed, or its stores stalled past Options.StoreTimeout),
	// as [Executor.Resume] or [Executor.RerunFailed] found when it
	// resumed it, or as [Executor.Abandon] recorded it. Its record's
	// Error names the run that resumed it, or, for [Executor.AbandonTo],
	// the run that took over its work (or, for a Resume refused because
	// the run's graph is no longer the key's, and for Abandon, says that
	// no run resumed it, and why), as does the final event that
	// its stream then gets, if the Sink can
	// number it (progress.Event.ResumedBy); if the Sink failed then, a
	// later Resume or RerunFailed of the run publishes that event (or an
	// Abandon, for a run not resumed; a Resume or RerunFailed of a run
	// that Abandon recorded is refused, and publishes it all the same). Its
	// Counts and Failed are what the key's states show it did (see
	// Record.Counts), as Abandon records them too.
	RunInterrupted RunStatus = "interrupted"
)

// Counts tallies what a run did with its nodes.
type Counts struct {
	// Planned is the number of nodes in the plans of all rounds: with
	// Options.Converge a node planned in two rounds counts twice, as it
	// does in the events' Done and Total, while the Report's lists, and
	// the counts below, name each node once, under its last outcome;
	// Attempts counts those of every round.
	Planned int `json:"planned"`
	// Generated nodes were regenerated and committed clean.
	Generated int `json:"generated"`
	// Unchanged nodes were skipped by early cutoff: their inputs had not
	// changed.
	Unchanged int `json:"unchanged"`
	// Failed nodes ran out of attempts.
	Failed int `json:"failed"`
	// Skipped nodes did not run because a dependency failed or was
	// superseded, or was edited (or made stale or deleted) during the run;
	// they stay dirty.
	Skipped int `json:"skipped"`
	// Superseded nodes were edited while they ran, or their inputs were
	// (or another run committed them or their inputs): their results were
	// not kept, and they stay dirty. A node edited while it ran whose
	// attempts failed is superseded too, not failed: its new parameters
	// were never tried.
	Superseded int `json:"superseded"`
	// Cancelled nodes were running when the run was cancelled.
	Cancelled int `json:"cancelled"`
	// Attempts is the number of the nodes' attempts: generator calls, the
	// attempts that only put again an output that the asset store failed
	// to keep, or commit again one that the state store failed to record
	// (see RetryPolicy.MaxAttempts), and those whose read of their
	// node's inputs failed (see RetryPolicy).
	Attempts int `json:"attempts"`
}

// Record is the audit record of one run.
type Record struct {
	ID       string `json:"id"`
	GraphKey string `json:"graphKey"`
	// Seconds is the graph's duration, so the run can be resumed.
	Seconds int `json:"seconds"`
	// Graph is the fingerprint of the run's graph, [Fingerprint] of it:
	// its number of segments, and its template's kinds with their
	// dependencies (batch keys and concurrency do not count), as
	// [GraphStateID] records it. [Executor.Resume] and
	// [Executor.RerunFailed] refuse a graph with another fingerprint; a
	// host compares it with Fingerprint of the graphs it can build, for
	// equality only, to find the one to resume with. It is
	// empty in records written before this field existed, which are
	// checked by Seconds alone.
	Graph string `json:"graph,omitempty"`
	// TriggeredBy is who started the run, as the host says.
	TriggeredBy string `json:"triggeredBy,omitempty"`
	// Reason is why, as the host says.
	Reason string `json:"reason,omitempty"`
	// Resumes is the ID of the run that this run finishes: the run
	// resumed by the [Executor.Resume] that started this one, or the run
	// whose failed nodes it reruns ([Executor.RerunFailed]). It is empty for a run started with
	// [Executor.Start] or [Executor.Run], and in records written before
	// this field existed. A resume of a resume names the run it resumed,
	// not the first of the chain. Marks tell the two apart: a
	// RerunFailed's record's Marks name the failed nodes of the run it
	// finishes (dirty.ReasonForced; it forces those still not clean as it
	// starts), and a Resume's are empty, as it
	// makes only what is not clean (as does a RerunFailed of a run that
	// failed no node). The record of the run it names is left as that
	// run ended, unless it still said running: it then says
	// [RunInterrupted]. To find whether run X was resumed, list its graph
	// key's records (ListRuns) and look for one whose Resumes is X: the
	// resuming run's records say so from the first, stored as it starts.
	Resumes string `json:"resumes,omitempty"`
	// Marks are the marks applied at the start.
	Marks []dirty.Mark `json:"marks,omitempty"`
	// Status is where the run stands.
	Status    RunStatus `json:"status"`
	StartedAt time.Time `json:"startedAt"`
	// EndedAt is zero while the run is running.
	EndedAt time.Time `json:"endedAt"`
	// Counts tallies what the run did, once it has ended; they are zero
	// while it runs. A run found interrupted ([RunInterrupted]) never
	// counted its nodes: the Resume or RerunFailed that found it (or the
	// [Executor.Abandon] that recorded it) counts
	// what the key's states still show that the run did, from its start
	// to the start of the key's next run (passing over the ended runs
	// that committed no node, such as a Start whose plan commit failed).
	// Its Generated then counts the
	// nodes it committed clean (those whose result it kept unchanged among
	// them), Failed and Cancelled those it committed so; Planned is the
	// Total of its stream's last event, when the Sink can say it
	// (progress.LastEventReader), or the nodes counted when more (or the
	// Sink cannot say it): the run planned those, though the Sink may
	// hold none of its events; and Unchanged, Skipped,
	// Superseded and Attempts are 0, as the states do not say them. A
	// node committed again since (by a run started in between, or made
	// dirty by an Edit) is not counted, and a commit of another run within
	// that window is (an older run of the key still going when the run
	// started, or one whose commit has the run's start, to the
	// microsecond): the counts are what the states show, not a tally.
	Counts Counts `json:"counts"`
	// Failed lists the IDs of the nodes that failed, in the order of
	// [Report]: by kind name, then segment number. For a run found
	// interrupted, those that Counts.Failed counts.
	Failed []string `json:"failed,omitempty"`
	// Error is the run's error text, if it ended with one, cut to
	// [MaxEventText] bytes.
	Error string `json:"error,omitempty"`
	// CancelledBy is what cancelled the run, as a cancel code, when its
	// Status is [RunCancelled]: one of the executor's
	// ([CancelledByCancel], [CancelledByContext], [CancelledByDeadline],
	// [CancelledByGraphReplaced], [CancelledByGraphDeleted],
	// [CancelledByHost]) or a host's, given with [CancelCode] (such as
	// pgstore's for a lost graph lock), for a program to branch on where
	// Error says it for a person: a host resumes, at its next start, the
	// runs that its own shutdown cancelled, and not those that a user did.
	// The run's run.cancelled event has it too (progress.Event.CancelledBy).
	// It is empty for a run of any other status (a run found
	// [RunInterrupted] was not cancelled: its process stopped), and in
	// records written before this field existed.
	CancelledBy string `json:"cancelledBy,omitempty"`
}

// RunStore keeps run records. It must be safe for concurrent use. It
// keeps every field of a [Record]: a store that dropped Record.Graph
// would leave Resume and RerunFailed to check a run's graph by its
// duration only, and resume a run on a graph of another template; one
// that dropped Record.Resumes would leave a host unable to tell which
// runs were resumed, and so resume a run again at every start; one that
// dropped Record.CancelledBy would leave it unable to tell the runs
// that its shutdown cancelled from those that a user did. IDs
// and graph keys are compared exactly. StartedAt and EndedAt keep at
// least microseconds, any finer part truncated and never rounded, as for
// a [StateStore]; a zero time comes back as the zero time. A record's ID
// (and its Resumes, which is one) is the host's RunRequest.RunID, any
// valid UTF-8 without NUL, of any length, or by default 16 hex digits;
// its GraphKey is as a StateStore gets it. A store that outlives its
// process keeps a record once PutRun returned nil, through a crash: a
// host finds the runs a crash left running by their records. A store may
// document a maximum length for IDs and graph keys (pgstore's is 1,200
// bytes); it must refuse a
// PutRun with a longer one with an error, never truncate or otherwise
// change it, and GetRun and ListRuns of one find nothing.
type RunStore interface {
	// PutRun creates or replaces the record with r.ID. A replacement is
	// one step for readers: a GetRun or ListRuns meanwhile finds the old
	// record or the new one, whole, never neither (a DELETE and then an
	// INSERT outside a transaction) nor one half written (a file written
	// in place).
	PutRun(ctx context.Context, r Record) error
	// GetRun returns the record with that ID, or an error wrapping
	// [ErrNotFound].
	GetRun(ctx context.Context, id string) (Record, error)
	// ListRuns returns the graph's records, oldest first: by StartedAt,
	// then by ID. It returns an empty list for an unknown graph.
	ListRuns(ctx context.Context, graphKey string) ([]Record, error)
}

// RunStatusLister is an optional interface of a [RunStore] that lists the
// records of one status across every graph key, where ListRuns takes one
// key. A host calls it at start-up with [RunRunning] to find the runs
// that a process which stopped (it crashed, or was killed) left recorded
// as running, on whatever key: each is then resumed ([Executor.Resume])
// by one process, under a lock on its graph key that the process which
// ran it no longer holds (pgstore.Store's LockGraph is such a lock). A
// record says running while its run goes on, too, in this process or
// another: the lock tells the two apart. The executor itself never calls
// it. MemoryRuns, MemoryStore and pgstore's Store implement it, and the
// executor/storetest kit checks it when a RunStore has it.
type RunStatusLister interface {
	// RunsByStatus returns the records whose Status is exactly status,
	// of every graph key, oldest first: by StartedAt (a zero one first),
	// then by ID, as ListRuns orders one graph's. It returns an empty
	// list, and no error, when there are none, also for a status that no
	// record has. The records are the caller's.
	RunsByStatus(ctx context.Context, status RunStatus) ([]Record, error)
}
