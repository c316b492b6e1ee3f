// Package schedule is the deterministic scheduling core of a run: a state
// machine over a [planner.Plan] that decides which node starts next, what
// each completion unblocks, what a failure skips and which slot a batch
// key frees.
//
// # Driving the machine
//
// [New] builds a [Machine] from a plan and a [Config]. A driver then
// loops: [Machine.Next] returns a [Step], the node to start now with its
// kind, segment, batch key and stage (what a driver dispatches on), until it
// returns false; the driver runs the nodes it got and reports each
// outcome with [Machine.Succeed], [Machine.Fail], [Machine.Supersede] or
// [Machine.Cancel]; it stops when [Machine.Done] is true. Each of those
// returns a [Result], whose [Result.Ready] lists the nodes it made Ready:
// a driver learns from it that Next may have more to give, but Next
// still decides what starts, under the limits below.
// [Machine.RunningNodes] lists the nodes started and not settled, for a
// driver that rebuilds its own bookkeeping, as after a replay. A driver whose
// generator takes many nodes in one call asks [Machine.More] for further
// nodes of the same batch key and kind after each Next, which gives a
// call no more than [Config.MaxBatch] nodes; kinds that one generator
// serves may share calls ([Config.Shared]), so that More gives nodes of
// any of them. The executor's
// goroutine runner is one driver; a workflow engine that replays its code
// can be another, because the machine itself never decides anything from
// a goroutine, a clock or a map's order.
//
// # Modes
//
// In [Dataflow] mode, the default, a node is ready as soon as each of its
// dependencies in the plan has succeeded; dependencies outside the plan
// are clean and never hold it back. In [Staged] mode a node also waits
// until every node of the earlier stages has settled. Both modes give the
// same final states for the same outcomes, unless nodes are invalidated
// (what that skips depends on what has started); only the order differs. Ready
// nodes start first come, first served across batch keys: Next returns
// the node that became ready first among the keys with a free slot.
//
// # Limits
//
// Each batch key runs at most its concurrency (from the plan's groups) at
// once, [Config.Workers] caps all nodes together, and [Config.Rates]
// allows at most [Rate.Starts] starts of a key in any window of
// [Rate.Per]. The driver passes the time to Next and More; when only a
// rate holds a ready node back, [Machine.Wake] says when to ask again.
//
// # Batch windows
//
// In Dataflow mode the nodes of a kind become ready one by one, as their
// dependencies end, so a driver that starts them in bulk calls (Next,
// then More) would mostly call with one node. [Config.Windows] gives a
// kind a window: the head of its key's queue waits, up to the window
// since it became ready, while a call could take more of its kind than
// are ready and more of them are still pending; it starts at once when
// the call is full or when none of the kind that is pending can come
// (they were skipped after a failure, say, or each waits on a node of
// the kind that has not started, as in a chain of segments), and never in Staged mode, where a
// stage's nodes are ready at once. It holds back its own kind only: a
// node of another kind that shares the key starts meanwhile, as it may
// make the nodes the window waits for. Kinds that share calls
// ([Config.Shared]) count as one kind here, under the longest of their
// windows. The window counts from the time
// passed to [Machine.SucceedAt] (or, after [Machine.Succeed], to the next
// Next, More or SucceedAt), and [Machine.Wake] says when it ends. A halt
// ends every wait.
//
// # Failures, cancels and stages
//
// A failed or superseded node's planned dependents, direct or not, are
// skipped: the [Result] lists each once, in ascending order, across
// overlapping failures. [Machine.Invalidate] reports that a node's
// stored output went stale during the run (an edit after it succeeded, or
// of a node outside the plan): its dependents that have not started are
// skipped the same way, since they would run on stale inputs, while
// running ones go on. Invalidating a running node changes nothing, and
// the machine does not remember it: the driver settles that node with
// [Machine.Supersede] when it ends (a [Machine.Succeed] would release
// its dependents). A cancelled node's dependents stay pending;
// [Machine.Halt] stops all starts, and the run is done once nothing runs.
// [Result.StagesFinished] reports each stage once, in order, as soon as it
// and every earlier stage have settled; [Step.Stage] names each started
// node's stage.
//
// # Retries, edits and continuing as new
//
// The machine does not see retries: a driver that calls a node's
// generator again after a failed attempt keeps the node Running, its slot
// held through the backoff too, and reports only the node's last outcome.
// [Config.Rates] counts a node's first start (Next and More), and the
// calls a driver charges to it: a driver whose provider counts every
// call asks [Machine.ChargeAt] before each retry's call, which charges
// it to the node's batch key's rate if the rate allows a start then,
// and else charges nothing and leaves the driver to wait
// [Machine.RateWait]. A charge holds back the key's next starts as a
// start does, and a [Snapshot] keeps it, so that one machine spaces all
// of a provider's calls, deterministically. The executor's runner,
// whose rates count the calls of all its runs at once, counts the
// retries' calls in a quota of its own beside the machine instead.
//
// An edit during a run: [Machine.Invalidate] an edited node that has
// succeeded (or a node outside the plan whose output changed), so that
// its dependents not started yet are skipped; settle an edited node that
// is running with [Machine.Supersede] when it ends; and once the machine
// is Done, plan a new round of what is left (dirty.Compute, planner.New,
// New) from the states saved as the dirty package's "Driving the core
// from your own runner" section says: each node that [Machine.State]
// says Succeeded saved as dirty.StatusClean, each Failed one as
// dirty.StatusFailed, and the others (Skipped, Superseded, Cancelled, or
// never started) left dirty, as saved before the round ran, so that the
// next set takes them in. Halting the machine to plan anew while nodes still
// run loses what it knows: the nodes running (which dirty.Compute takes
// for interrupted), and the starts its rates counted, unless the new
// machine inherits them: [Machine.RateStarts] of the old one, at the
// driver's now, given to [Machine.Inherit] of the new one before its
// first Next, carries the providers' quotas over to the next plan, and
// through a plan that has no node of a key, to the plan after it, as
// long as the key keeps its rate in the Config.
//
// A [Snapshot] holds the nodes running. A driver that continues as new
// either lets them settle first (it asks Next for no more, and waits
// until [Machine.Running] is 0; [Machine.Halt] would end the run for
// good), or carries their calls over and settles each with the restored
// machine when its result comes; calling them again would pay their
// provider a second time. [Restore] needs the same plan as the machine
// that took the snapshot, not a new plan of what is left: a driver keeps
// it beside the Config's JSON ([Config.MarshalJSON]) and the Snapshot's,
// with [planner.Plan.MarshalJSON], and reads it back with
// [planner.Plan.UnmarshalJSON] on a Plan whose Graph is set first to
// the plan's graph, which resolves its node IDs.
//
// # Driving it from a workflow
//
// The machine's answers depend only on the plan, the Config and the
// calls made to it, in order, with their nodes and times. A workflow
// passes its own clock (workflow.Now in Temporal's SDK), or any clock
// that does not go back, but never the zero time, which SucceedAt and the
// batch windows take as no time; only the differences between the times
// matter. [New] ranges over the Config's maps, but only to sort their keys
// (a check such as Temporal's workflowcheck flags those loops all the
// same), and no decision depends on a map's order.
//
// The queries change nothing: [Machine.CanStart], [Machine.WakeAt],
// [Machine.Wake], [Machine.RateWait], [Machine.RateStarts], [Machine.State],
// [Machine.Unsettled], [Machine.RunningNodes], [Machine.Running],
// [Machine.Settled], [Machine.Len], [Machine.Done], [Machine.Halted]
// and [Machine.Snapshot] may be added to a driver's code, or left out of
// a replay, and every other call answers the same. Wake answers for the
// last Next.
//
// A Next that returns no node changes nothing but what Wake answers, and
// a More that returns none changes nothing, but for one thing: with batch
// windows, the first Next, More or SucceedAt after New, or after a Succeed
// (or a SucceedAt at the zero time), notes that time as when the nodes
// made Ready since became Ready (a More whose like is not in the plan
// takes no time: it changes nothing at all). A record of the calls may
// leave out every other Next or More that returned no node (all of them
// without windows, or in Staged mode); a driver that passes SucceedAt its
// clock keeps, of those, only the first Next after New. It may leave out
// every [Machine.ChargeAt] that charged nothing (false, or an error),
// which changes nothing. A machine rebuilt
// from such a record answers WakeAt, at the time of a Next left out, as
// that Next's Wake did; its Wake answers for the last Next the record
// kept.
//
// To rebuild a machine, after a workflow continues as new, say, or in
// another process of a job runner that keeps its state in a database
// (the Config too: [Config.MarshalJSON] writes it, and the same Config
// as the same bytes), either call New with the same plan and Config and make the recorded
// calls again, in order, with their times, or keep a [Snapshot] of the
// machine instead of its calls: [Machine.Snapshot] takes one in time
// linear in the plan, its JSON form is versioned and the same state always gives the same
// bytes, and [Restore] makes a machine of it for the same plan and
// Config (whose fingerprint the snapshot holds, so that another plan or
// Config is refused, with a [SnapshotError.Differs] that says which part
// differs), or for the same plan and a Config whose [Config.Rates] alone
// differ: a provider's new quota applies to a restored machine, which
// counts the starts the snapshot holds against it. Either way the new
// machine then answers each call as the old one did (but when the new
// rates let a node start, for a snapshot restored under them), and
// [Machine.RunningNodes] lists the nodes that still run; a restored
// machine's times are in UTC, the same instants,
// without a monotonic clock reading, so a driver that passes time.Now()
// gets the same answers from it unless the wall clock jumps. A
// machine made from a new plan of the nodes not settled, instead, knows
// neither the nodes that were running nor, unless it inherits them
// ([Machine.Inherit]), the starts its rates counted.
//
// # Stability
//
// A driver that records its calls, as a workflow's history does, makes
// the machine's decisions part of that record: a change of a tie-break,
// or of when a window or a rate lets a node start, would change what a
// workflow that is running sees when it replays. The package's
// TestGoldenTrace compares every decision of a fixed run of a lecture,
// in both modes, with a worker cap, a rate, a batch window, a failure, a
// retry and a cancel, with testdata/lecture.trace: a change of that file
// is a change of the machine's decisions, and must be called out as one.
// A snapshot kept across an upgrade must restore too: its JSON form is
// versioned, and TestSnapshotFingerprintIsStable pins the fingerprints
// of a few plans and Configs, and the digests of one's parts, which a
// change of their encoding would break.
//
// # Errors
//
// A bad configuration, or a plan assembled by hand that the machine
// cannot run, is refused by New with an error wrapping
// [ErrInvalidConfig]: for the configuration, a [*ConfigError] that names
// the field, as [Config.UnmarshalJSON] refuses a bad JSON form. New takes
// a rate, a cap, a window or a shared kind of a key or kind that its plan
// has not, as one Config serves many plans: [Config.Check], at a
// driver's start-up, refuses those that no kind of the driver's templates
// has (a misspelt key, which would limit nothing), with a [*ConfigError]
// that names them and what is allowed. Settling a node that is not running, or not in the
// plan, is an error that changes nothing; nothing panics on input.
// [Restore] refuses a snapshot of another plan or Config, of another
// version, or whose state disagrees with itself or the plan (or whose
// "parts" disagree with its fingerprint), with a [*SnapshotError] wrapping
// [ErrInvalidSnapshot] that says what is wrong; [Snapshot.UnmarshalJSON]
// reads the JSON form strictly, and refuses the same way, as
// [RateStarts.UnmarshalJSON] refuses a bad [RateStarts] with a
// [*RateStartsError] wrapping [ErrInvalidRateStarts].
//
// # Cost and concurrency
//
// New is O((D + E_D) log D + N) for D planned nodes with E_D edges among
// them in a graph of N nodes; a whole run costs about the same, for a
// plan made by planner.New or assembled by hand alike. Next, More and
// Succeed allocate nothing per call beyond what grows with D and N (see
// BenchmarkMachine); a Fail, Supersede or Invalidate allocates for the
// dependents it skips (its Result's list and a walk's queue), and an
// Invalidate a set of the nodes it visits. [Machine.Snapshot] costs
// O(D + R log R + K log K + S) for R nodes Ready, K kinds and S starts
// that the rates count, and allocates O(D + K + S); [Restore] costs
// about what New does. Neither adds to the cost of the other calls. A
// Machine is not safe for concurrent use: the driver serializes its
// calls.
package schedule
