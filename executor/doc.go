// Package executor runs regeneration plans through the generators,
// storage and progress sink that a host supplies.
//
// # Running
//
// An [Executor] is made once with [New] and [Options]: a [Registry] of
// [Generator]s, one per node kind, and optionally a [StateStore], an
// [AssetStore], a [RunStore] (in-memory ones by default) and a
// progress.Sink. [Executor.Run] (or [Executor.Start], which returns a
// [Run] handle) takes a graph and the marks of what changed; it loads the
// node states, computes the dirty set (dirty.Compute), plans it
// (planner.New), checks that every kind in the plan has a generator, and
// regenerates exactly the plan:
//
//   - Dataflow mode (the default) starts a node as soon as its own
//     dependencies are done; Staged mode runs the plan's stages in order.
//     Both honour each batch key's concurrency, an optional cap on one
//     run's nodes at once (Options.Workers, not a cap across the
//     executor: 50 runs with Workers 4 may have 200 calls in flight) and
//     optional starts-per-period rates (Options.Rates). Concurrency and
//     the cap are per run; the rates,
//     being provider quotas, are shared by all the runs of an executor,
//     and so are the optional caps on calls in flight per batch key
//     (Options.Limits), which a call abandoned at its timeout gives back
//     at once.
//   - A [BatchGenerator] gets many ready nodes of one batch key in one
//     call, up to the key's free slots (within Options.MaxBatch and
//     Options.Limits): the nodes of its kind, and of every other kind of
//     that key registered with the same BatchGenerator (an equal,
//     comparable value, such as one pointer), which share its calls, each
//     request naming its node's kind. A host whose GenerateBatch must see
//     one kind a call registers a value of its own for each kind. In
//     Dataflow mode nodes become ready one by one, as their dependencies
//     end, so a call gets those ready when a worker is free, often one;
//     the kind's [KindOptions].BatchWindow (the longest of the kinds that
//     share calls) lets a call wait up to the window for more. It never
//     waits once the call is full, nor when no more nodes of the kinds
//     that share the call can come, nor in Staged mode, where a stage's
//     nodes are ready at once; a cancel ends the wait at once.
//   - Each kind has a retry policy, a per-attempt timeout and an optional
//     output [Validator] ([KindOptions]); the lecture's narrations must
//     fit their segment ([ValidateNarration]).
//   - A failing node never stops its batch or the unrelated branches: its
//     dependents are skipped, each reported once, and the run ends with a
//     [*RunError] that joins the [*NodeError]s. A generator's panic is a
//     [*PanicError] for that node alone, with its stack. A bulk call's
//     panic is a *PanicError too (In "bulk call"), logged once, with its
//     stack, through Options.Logger; each node of the call is then
//     retried alone, and one whose attempts end with it keeps it.
//   - The asset is stored before the state says clean, so a node is never
//     clean without its asset.
//   - An asset store's Get, Put or Exists that fails (a lost connection)
//     is called again, with backoff, within Options.StoreRetry (by
//     default 5 calls in all, 1.5 s of waits at most), unless the
//     asset is not found or the store wrapped the error in [Permanent]
//     (no retry can fix it: pgstore's key too long): a failed Put never
//     calls the generator again, since its output is paid for (once its
//     calls are used up, the node's next attempt, after its backoff,
//     puts the output again, and the node fails when its attempts are; a
//     cancel of the run meanwhile puts it once more, as that attempt,
//     rather than drop it, so that a resume does not pay for it again,
//     unless the run stopped because its graph was replaced or deleted:
//     no resume could use it then);
//     early cutoff's Exists is called again before the node is
//     regenerated for want of an answer. So are the PutRun that records
//     the run at its start, and the one of its outcome (that one until
//     Options.StoreTimeout ends: one that still fails is the Report's
//     RecordErr), the Load of the states and
//     the check of the clean nodes' assets at its start (and in
//     [Executor.Plan]), the read of the run's record by [Executor.Resume]
//     and [Executor.RerunFailed], and so is a commit of states (a run's,
//     or [Executor.Edit]'s, with its Load), which reloads first.
//
// The scheduling decisions live in the pure state machine of the
// executor/schedule package; the runner here drives it with a pool of
// workers and group commits.
//
// # Early cutoff and changed inputs
//
// Just before a node runs, its input hash (dirty.InputHash: its
// parameters revision and its dependencies' output hashes) is compared
// with the one its stored result was made from; if they match and the
// asset is there, the node keeps its result (early cutoff), so an
// unchanged output stops the regeneration downstream. The comparison
// needs only the dependencies' output hashes, from their states: a node
// that keeps its result reads none of its dependencies' assets. At the
// start of a run the same comparison ([dirty.StaleInputs], which a host
// with a runner of its own calls too) finds the clean nodes whose
// dependencies changed since they were made (a lecture made longer or shorter changes
// the timeline's; a new template may change any kind's): they are forced,
// so a graph rebuilt on the same key never keeps results made from other
// inputs. [Executor.Plan] shows them before anything runs.
//
// # Edits and concurrent runs
//
// Every commit is a compare-and-swap on the graph's version. A user may
// edit nodes while a run goes on ([Executor.Edit]), and the edit is never
// lost. A result made from parameters that changed meanwhile is not kept,
// nor is a failure of them, which is no failure of the node's new
// parameters: a node.superseded event says so, and the node's dependents
// are skipped. Edit takes the key's graph, that of its newest run: another
// graph is refused, as its nodes are not the key's. A new graph becomes
// the key's when a run of it starts (a Start that fails leaves the key's
// graph as it was, unless its error says that its commit may have gone
// through).
//
// On a conflict the runner reloads and re-applies only its own results:
// at once after the first, and after a short pause (jittered, growing
// from about 1 ms to 16 ms) after each later one in a row, so that a key
// that other runs and edits commit to often delays its results rather
// than fail them; after 64 lost races (about 1 s of pauses at most) they
// are not recorded, and their nodes fail.
// Once another run has committed during this one, it re-applies only
// those made from the outputs that the store now holds for their
// dependencies, all clean: so several runs on one graph never leave a
// node clean but made from stale inputs. A node that another run
// committed clean meanwhile keeps that result when it is current (the run
// counts it as unchanged, as with early cutoff, even if its own attempt
// failed). A current result of the run replaces a stale one, and a new
// output makes dirty the dependents that another run made clean from the
// old one.
//
// An edit or a force learnt of on a reload, of a node that already
// succeeded in the run or is not in its plan, makes the inputs of that
// node's dependents stale. Those that have not started are skipped
// ("upstream ... was edited during the run", or "was made stale" or "was
// deleted" for another run's force and a deleted graph) rather than made
// from stale inputs, and stay dirty. Options.Converge re-plans at the end
// of a run until nothing is dirty, so each such node is made once.
//
// # One run per graph key
//
// Concurrent runs of one graph on one key are safe, as above, but not
// free: each pays its provider for the nodes it makes, and a result that
// the other run committed first is thrown away; a host that lets users
// start runs should run one at a time per graph key (a lock of its own,
// such as pgstore.Store's LockGraph, a Postgres advisory lock that ends
// with its holder's process). A run of another graph on the key (a
// lecture made longer or shorter, another template) that starts later
// wins: the key's graph is then its graph, and the older run stops,
// cancelled with [ErrGraphReplaced], without writing its results over the
// newer run's. A run whose graph is deleted meanwhile stops too, with
// [ErrGraphDeleted], and does not make the graph again; one whose graph
// newer runs made again meanwhile (deleted, as a host that resets a
// lecture does, or replaced, and then run again) stops with
// ErrGraphReplaced, its results not committed into theirs. A Resume or
// RerunFailed of a run is refused while its graph is not the key's (a
// run of another graph started since, or the graph was deleted), and so
// is one of a run that [Executor.Abandon] recorded as not resumed.
// The executor keeps the fingerprint of the key's graph for this in one
// state beside the nodes' own, under [GraphStateID].
//
// # Cancel and resume
//
// The run's context is the one given to Start (or Run, Resume,
// RerunFailed): it bounds the start and is the run's lifetime, so that a
// host that starts a run from a request passes a context of its own, not
// the request's, which ends with its handler (see [Executor.Start]).
// Cancelling the run's context, or [Run.Cancel], starts nothing new,
// cancels the generators that run, frees every slot and records the
// interrupted nodes as cancelled. A generator that ignores its context
// does not hold the run: at its deadline, or a short grace after
// cancellation, the call is abandoned and its late result thrown away.
// (At a cancel, a call has that grace, a tenth of its timeout, at most a
// second (a single node's call no later than its deadline), to return
// what it has made: an output the provider made, and
// billed, is kept, stored and committed, so that a resume does not pay
// for it again. A bulk call has it at its timeout too: its outputs are
// kept, only the nodes it cut short are cancelled, and its slots are
// freed once it returns or is abandoned; see [BatchGenerator]. A run
// stopped because its graph was replaced or deleted gives no grace.)
// Nor does a store that
// stalls: a cancelled run's store calls are bounded by
// Options.StoreTimeout. (A sink that may stall goes behind
// progress.Buffered.)
//
// [Run.Drain] is the gentler stop: from then on no node starts, nor is a
// failed node retried (each would be a new paid call), while the calls
// under way end as they would have, their outputs stored and committed;
// the run then ends as cancelled, with the drain's cause and code
// ([CancelledByDrain], or the host's own given with [CancelCode]), so
// that a Resume later makes what is left, and only that (a run whose
// calls under way were its last ends as it would have without the
// drain). A cancel during
// a drain cuts it short, as it cuts a run. [Executor.Drain] drains every
// run of the executor and waits, within its ctx, for them to end.
//
// [Executor.Resume] regenerates what a run left undone, and
// [Executor.RerunFailed] forces again its failed nodes that are still
// not clean (one made clean since, by an earlier rerun or another run,
// keeps its result). Both refuse a run
// still going on in the executor ([ErrBusy]). A run whose record says
// that it ended may still wait, up to Options.Grace, for generator calls
// that ignore their context before its [Run.Done] closes: both wait for
// it then, rather than refuse it. Both refuse a run of a graph key while
// another of them, of any run of the key (the same run, one of its chain
// of resumes, or another), is under way (its call, or the run it
// started): each makes the key's nodes that are not clean.
//
// Both take the run's graph, built again from its template and
// Record.Seconds. The run's [Record] keeps its graph's fingerprint
// (Record.Graph, which [Fingerprint] computes): another graph, of another
// template or duration, is refused with [ErrInvalidRequest] alone, and
// [ErrGraphReplaced] then means only that the key's graph is another
// run's. A record written before Record.Graph existed is checked by its
// duration.
//
// Every run leaves a [Record] in the [RunStore]: who started it and why
// (TriggeredBy and Reason, as the host says). The record of a run that
// Resume or RerunFailed started names the run it finishes
// (Record.Resumes, empty for a run that Start or Run started), and the
// resumed run's record stays as that run ended. So a host finds whether a
// run was resumed by listing its key's records (ListRuns) for one whose
// Resumes names it.
//
// A cancelled run's record says what cancelled it as a code
// (Record.CancelledBy): [CancelledByCancel] for [Run.Cancel],
// [CancelledByContext] or [CancelledByDeadline] for its context,
// [CancelledByGraphReplaced] or [CancelledByGraphDeleted],
// [CancelledByDrain] for a drain whose cause has no code, and
// [CancelledByHost] for a cause of the host's without a code. A host
// names its own cancels with [CancelCode] (pgstore records its own for a
// lost graph lock), so that it tells, at its next start, the runs that it
// cancelled (to resume) from those that a user cancelled, without reading
// Record.Error. The run's run.cancelled event has the same code
// (progress.Event.CancelledBy, JSON cancelledBy), so that a view tells a
// shutdown's drain from a user's cancel too.
//
// # Shutdown
//
// On shutdown a host may first drain its runs for a bounded time
// ([Executor.Drain] with a context.WithTimeout, and a code of its own:
// executor.CancelCode("shutdown", nil)), so that the paid calls under
// way are kept rather than thrown away; it then cancels what is left
// (or all its runs at once, without a drain), with a code of its own
// (run.CancelCause(executor.CancelCode("shutdown", nil)), or the same
// cause given to the cancel of the runs' context), then calls
// [Executor.Close]. A run that the drain ended, and one that the cancel
// did, record the same code, for the host to resume at its next start.
// Close
// starts no run any more. It waits for the runs in flight to record their
// outcome, for the Resume, RerunFailed, Edit, Plan, Abandon, AbandonTo,
// Forget and Output calls under way to return (later ones, and the reads
// of an Outputs loop, return [ErrClosed]), and for
// every generator call it started. Once it has returned nil, the executor
// calls its stores no more, and the host may close them. Give it a
// bounded context (context.WithTimeout): a generator that ignores its
// context would hold a Close without a deadline forever.
//
// # Progress
//
// Every transition is an event on Options.Sink: run, stage and node
// events, generator notes (through [Request].Progress), with the counts
// and an ETA. The ETA is the planner's lower bound on what is left of the
// round (planner.Plan.LowerBound), a node of each kind costing the mean
// duration of those generated so far, or before any its
// [KindOptions].Estimate, or else the mean of the kinds known, so that
// the kinds not seen yet count too. It counts what is left of the nodes
// under way (of one that retries, its backoff and its next attempt), the
// stages one after another in Staged mode and the batch keys'
// Options.Rates and Options.Limits (the other runs' starts under a rate,
// and their nodes not settled under a limit, too: a share of the
// limit that assumes the runs take turns, an estimate rather than a
// bound, which may come out somewhat above the time left), and counts
// down between two nodes' ends; when nodes take their estimates, it is the time left. It is 0
// (unknown) until some kind's cost is known, and on the final event;
// while nodes are left it is never less than a second, even when one
// runs late. It is the current round's: a Converge round starts with a
// bound of its own. It is recomputed when a kind's first duration is
// seen, at each node.retrying event (so that it counts the backoff
// ahead), and at most once a second otherwise. A sink that fails never
// fails the run. An event's free text (a note's Message and Reasoning,
// an error's text) is cut to [MaxEventText] bytes, and a longer
// PreviewURL, which a cut would break, is left out (the Message says so),
// so that a generator that reports a provider's whole response cannot
// make an event too large for a stream or a client.
//
// Events carry what a view needs to draw a bar per kind, per batch key or
// per stage without parsing node IDs or a stage's summary line ("Stage 2:
// Generating 360 asset:video nodes in batches of 3"). Every event about a
// node names its kind (Event.Kind) and, when its plan group is a batch,
// its batch key (Event.BatchKey). Every event with a stage (stage.* and
// node events) says its round (Event.Round, from 1), the number of the
// stage's nodes in the round's plan (StageTotal) and how many of them
// settled by this event (StageDone: their node.succeeded, node.unchanged,
// node.failed, node.skipped, node.superseded and node.cancelled); one
// that names a batch key says the same of the node's batch in its stage
// (BatchTotal, BatchDone). Stage events name no batch key: a stage may
// hold several batches and singles ("Stage 1: Generating 3
// asset:narration nodes in batches of 4, 3 asset:image nodes in batches
// of 5, 1 asset:music node"), which the events of its nodes name; a key
// whose nodes span several stages has a batch in each. A Converge round
// has a plan of its own, whose stage indexes start at 0 again and whose
// StageTotals count only what it remakes: its events say Round 2 from the
// message event that starts it (which says it too), so that a view keys
// its per-stage bars by round and stage. A Resume or RerunFailed is a run
// of its own, from round 1, whose stages and batches hold only what its
// plan remakes. In Dataflow mode, where the stages' events interleave,
// each stage's counts are its own: a later stage's StageDone may reach
// its StageTotal before an earlier stage finished, and so before its own
// stage.finished, as stages finish in order; and skips counted before a
// stage starts make the StageDone of its stage.started more than 0.
//
// So that a view draws these bars before the stages start, run.started,
// and the message event that starts a later round, carry an outline of
// the round's plan (Event.Plan): its stages in order, each with its
// number of nodes, the StageTotal of its events, and its groups, the
// entries of its summary line in order: each batch, with its key, its
// concurrency, its number of nodes (the BatchTotal of its events) and
// its kind ("" when its nodes are of several kinds, which share the key;
// the batch of a shared key whose nodes in the stage are of one kind
// names it), and the single nodes of each kind, counted together. A
// Resume's or a RerunFailed's outline is of its own plan. An outline has at most [MaxOutline] stages and groups
// together: a plan of more (a chain of thousands of nodes, each a stage
// of its own) gets none.
//
// A progress display may rely on the order of a run's events:
//   - run.started comes first, and one final event (run.finished,
//     run.failed or run.cancelled) last: none follows it. The final
//     event's Counts are the [Report]'s: the lengths of its lists, with
//     Options.Converge the run's whole, each node once, under its last
//     outcome (Done counts each round's settlements), and Dirty, the
//     length of Report.Dirty: a run.finished with Dirty above 0 (an
//     edit during the run superseded a node) succeeded with work left,
//     which its Message says too ("; 2 left dirty").
//   - A node that is called gets node.started once, with Attempt 1 (and
//     "in a batch of N" when a bulk generator takes it), as its first
//     call is about to start: once its inputs are read and the call has
//     room under Options.Limits and a start under Options.Rates (a node
//     that waits for them has not started), if the run is not cancelled
//     by then. (A cancel that comes as node.started goes out, before the
//     call, settles the node as node.cancelled with Attempt 0 and no
//     call: it is in Report.Cancelled, as its event said it started.)
//     A node whose first attempt fails to read its inputs with an error
//     that may pass (a lost connection to the asset store, after the
//     read's own retries) starts then, with node.started, Attempt 1 and no
//     call: that attempt failed, and is retried under the kind's
//     RetryPolicy as a failed call is, each later attempt reading the
//     inputs first, until a read succeeds (the node's first call then
//     gets the attempt's number in Request.Attempt, 2 or more).
//     Before each further attempt a node.retrying, whose Attempt is that
//     next attempt and whose Error is the failed one's (also for an
//     attempt that only commits again an output made, whose commit
//     failed: see RetryPolicy.MaxAttempts); meanwhile its generator's
//     message events; and then one settling event: node.succeeded,
//     node.failed, node.superseded or node.cancelled. Any other node that
//     makes no call gets only its settling event: node.unchanged when early
//     cutoff keeps it (node.superseded, with Attempt 0, when an edit of
//     it, or another run's commit of it, comes before the result it kept
//     is committed: the result is not kept, and the node stays dirty),
//     node.skipped (naming the upstream node) when a dependency failed or
//     was superseded, node.failed (with Attempt 0) when a dependency's
//     output cannot be read with an error that no retry can fix (the
//     asset is lost: [ErrNotFound]; an error wrapped in [Permanent]). In
//     a cancelled run, the nodes that had not started get no event, and
//     are in no list of the
//     [Report]: those never taken, and those that were reading their
//     inputs or waiting for room or a start when the cancel came. A run
//     that stops because its graph was replaced or deleted is such a
//     run: a node whose result it made is superseded, and nothing after
//     it is skipped; one whose result early cutoff kept gets no event.
//   - A stage's stage.started comes just before the first event of one
//     of its nodes that is not a skip (a node.started, or the settling
//     event of a node that made no call), and its stage.finished after
//     its last node settled; each comes at most once a round, and stages
//     finish in order. Skips may report a stage's nodes before the stage
//     starts (a stage whose nodes are all skipped starts and finishes
//     after them). In Dataflow mode a stage starts as soon as one of its
//     nodes does, so a stage may start before the one before it
//     finished, and the stages' events interleave. A cancelled run ends
//     without the stage.finished of the stages it had not finished, and
//     a stage none of whose nodes started or settled before the cancel
//     gets no event at all.
//   - Each planned node settles once a round. With Options.Converge, a
//     later round starts with a message event ("Round 2: 3 nodes to
//     remake after changes during the run": the nodes of its plan, those
//     changed and what depends on them), and its nodes settle again;
//     Total grows by the round's nodes.
//   - Done never goes back, nor do a stage's StageDone and a batch's
//     BatchDone within a round. A cancelled run's counts may stay below
//     Total, StageTotal and BatchTotal: the nodes that had not started
//     get no event.
//
// # Crashed runs
//
// A run whose process stopped (it crashed, or was killed) publishes no
// final event: its stream ends where the process stopped, and its record
// still says running. A Resume or RerunFailed of it records the run as
// [RunInterrupted], with the counts that the key's states show for it
// and its stream's last Total as Planned, or the nodes counted when more
// (see Record.Counts), and then
// ends the stream for the run's viewers, which would otherwise wait
// forever: it publishes one final event of the old run, a run.cancelled (the run was cut short and is being finished, as
// after a cancel; no node of it failed, as run.failed would say) at the
// Seq after the run's newest event (Seq 1 when the Sink holds none: its
// process stopped before any reached the Sink, and its viewers wait for
// the first), with the run's Done and Total (and no Counts: no Report
// lists its nodes), the record's text as Message, an Error as a cancelled run's, `executor: run
// cancelled: run "<id>": interrupted`, and ResumedBy, the ID of the
// resuming run, which a view may follow next. The executor has only a
// Sink: it learns the newest event by asking the Sink, if it implements
// progress.LastEventReader (as progress.Memory does, progress.Buffered
// and Fanout do over sinks that do, and progress.Archive does over a
// History that does). It
// publishes nothing when the Sink does not implement it, cannot say
// (progress.ErrUnsupported) or fails, or when the run's newest event is
// final already (its process stopped after it, or another Resume
// published it): so a stream gets at most one final event, and one that
// replays sees it once (sinks ignore a Seq they hold). (A stream that the
// Sink no longer holds, expired or evicted, gets a final event again,
// alone, at Seq 1, if a later Resume, RerunFailed or Abandon asks again.) The Sink's calls
// get Options.StoreTimeout, and their failures are logged: the Resume
// goes on regardless, and a later Resume or RerunFailed of the run, which
// finds it recorded as interrupted, asks again, and publishes the same
// final event (the record's text, ResumedBy naming the run that found it
// interrupted) if the stream's newest event is still not final. A host
// that runs a run's process while another resumes it breaks the rule of
// one run at a time per graph key: the two then publish the same Seq,
// and the sinks keep the first.
//
// # Errors
//
// A call refused for its input wraps [ErrInvalidRequest]: the same call
// is refused again, and a host answers it as bad input (HTTP 400). A
// call refused for what is under way in the executor wraps [ErrBusy]
// instead: a Resume, RerunFailed, Abandon or AbandonTo of a run still going on, a
// Resume or RerunFailed while another of the key is under way, a call
// about a run that an Abandon, or a Resume, holds. The request was good,
// and the same call may be taken once that has ended: a host answers it
// as a conflict, to retry later (HTTP 409, with Retry-After).
//
// # Stores
//
// Graph metadata ([StateStore]) is kept apart from heavy asset data
// ([AssetStore]). A [MemoryStore] is the embedded default; [MemoryStates],
// [MemoryAssets] and [MemoryRuns] are the defaults of the fields a host
// leaves unset when it gives some of the stores. The executor/storetest
// package is the conformance kit that any other implementation must
// pass. Two optional interfaces save round trips to a database: an
// [AssetChecker] checks the clean nodes' assets at the start of a run in
// one call, and an [AssetBatchGetter] reads the assets of a node's many
// dependencies in one. A third, [RunStatusLister], is for the host: it
// lists the runs recorded as running on every graph key, which a host
// resumes at start-up when the process that ran them stopped.
//
// A host reads a key's results back with [Executor.Output] (one node's
// stored asset, if the node is clean) or [Executor.Outputs] (every clean
// node's, in node-ID order), rather than through States().Load and
// Assets().Get: they skip [GraphStateID] and the nodes that are not
// clean, retry as the runs do, and give Data the caller owns.
//
// # Retention
//
// The executor deletes nothing: regenerating a node puts its new asset
// under a new key (it ends with the content hash) and leaves the old one,
// and deleted graphs and old run records stay. An executor given no
// stores runs on one [MemoryStore] (Executor.States().(*MemoryStore)), as
// its States, Assets and Runs: one value that deletes what runs leave
// behind, with the methods and meanings of pgstore.Store.
//
//   - [MemoryStore.DeleteGraph] deletes a graph's states and run records.
//     Its version stays, as a tombstone, so that no version number is used
//     twice: a run that loaded the graph before cannot commit over the
//     graph re-created after.
//   - [MemoryStore.PruneAssets] deletes the assets that no node state
//     refers to and that were put, or released by a commit that replaced
//     their reference, more than a given age ago. With an age longer than
//     the longest run, it is safe while runs go on.
//   - [MemoryStore.PruneRuns] deletes the run records that ended, or never
//     ended but started, more than a given age ago; never one that says
//     running, whose run may go on or wait for a recovery.
//
// [MemoryStates.DeleteGraph] and [MemoryRuns.PruneRuns] serve the separate
// defaults; a [MemoryAssets] of its own does not know what states refer
// to, and prunes nothing.
package executor
