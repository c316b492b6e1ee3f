// Package dirty decides which nodes of a [graph.Graph] must be
// regenerated, and why.
//
// # States
//
// [States] records a [State] for every node: its [Status] (missing, clean,
// dirty, running, failed or cancelled), the output hash and asset
// reference of its last good result, the [InputHash] that result was made
// from, its attempts, last error and update time. The executor and the
// state stores keep them; this package only reads them.
//
// # Computing the dirty set
//
// [Compute] takes the graph, the states and a list of [Mark] values (a
// node ID with [ReasonEdited], [ReasonForced], [ReasonAssetMissing] or
// [ReasonInputsChanged]) and
// returns the minimal [Set] to regenerate:
//   - every marked node, and every node that is not clean (never
//     generated, failed, interrupted, cancelled or recorded dirty);
//   - every clean node whose asset the caller's integrity check,
//     [Input.AssetExists], reports missing;
//   - every node that depends on one of them, directly or not.
//
// Compute trusts a clean status. [StaleInputs] gives a mark of
// [ReasonInputsChanged] for each clean node whose recorded input hash is
// not that of its inputs now (a dependency regenerated after it was
// made, or a graph of another shape), as the executor does at a run's
// start.
//
// Nothing else is in the set. Nil states mean a new graph: every node is
// never generated. A mark that names a malformed or unknown node, or has
// a reason that cannot be marked, is a [*MarkError] wrapping
// [ErrInvalidMark], and nothing is computed; a nil or zero graph is an
// error wrapping [ErrNoGraph], and nothing is computed either. Nothing in
// this package panics on input: [NewStates] of a negative count gives the
// states of no node, and [States.Get] of a node out of range gives the
// state of a node never recorded (missing), while [States.Set] of one
// records nothing and returns an error wrapping [ErrNodeOutOfRange].
//
// Compute is pure: it returns a set and changes no state. A mark of
// [ReasonEdited] does not bump the node's [State].Rev, nor does any mark
// clear an InputHash; that is for whoever runs the set (see below). A
// node recorded [StatusRunning] is taken as interrupted by a crash
// ([ReasonInterrupted]): Compute assumes that no run of the graph is
// going on, so a runner does not compute a graph that it is running.
//
// # Why
//
// Every node of the set carries a [Why]: its own [Reason], the strongest
// when several apply, or [ReasonUpstream] with the dependency it came from
// (the lowest-indexed one in the set) and the root cause. A node with a
// reason of its own has a From of graph.None, which has no ID:
// graph.Graph.NodeID gives "" for it, and graph.Graph.KindOf
// graph.NoKind. [Set.Explain]
// says it in words ("upstream asset:narration:segment[3] edited") and
// [Set.Chain] follows it back to the root. That is one root cause; a node
// downstream of several edits has more. [Set.Causes] gives them all: the
// nodes of the set with a reason of their own from which the node is
// reached, in ascending order (with voice:segment[0] and voice:segment[3]
// edited, the mix's causes are both voices).
//
// # Driving the core from your own runner
//
// The executor package runs plans with retries, stores and progress. A
// host with a job runner of its own drives graph, dirty and planner
// itself; ExampleStaleInputs and Example_ownRunner show it. Each round:
//
//  1. Build the graph ([graph.Build]) and load the states: [NewStates]
//     of g.Len(), then [States.Set] of each stored state under its node
//     ID ([graph.Graph.Lookup]). A stored ID the graph has not is left
//     out; a node with no stored state stays missing.
//  2. Call [StaleInputs], and add its marks to the host's own (edited,
//     forced, asset missing).
//  3. Call [Compute], with [Input.AssetExists] if the host checks its
//     assets, then planner.New of the set.
//  4. Before anything runs, save each node of the set as
//     [StatusDirty], so that a crash leaves it dirty rather than clean,
//     and with it, by its own [Why].Reason: for [ReasonEdited], Rev
//     bumped (Compute does not bump it: without the bump, the node's
//     input hash is the one its old result was made from, and the early
//     cutoff of step 5 keeps that result); for [ReasonForced],
//     [ReasonAssetMissing] and [ReasonInputsChanged], InputHash cleared
//     (""), so that the cutoff cannot keep a result that must not be
//     kept (a forced node's, a missing asset's, one made from other
//     inputs). The executor does both at a run's start, in one commit.
//     Save them in one write if the host's store allows it, and forget
//     the host's own marks only once it is saved: Compute and StaleInputs
//     find a missing asset and changed inputs again, but an edited or
//     forced mark lost in a crash during the saves, before its node was
//     saved dirty, is lost for good, and the node's old result ships.
//     A mark given again after the saves bumps Rev again, which is
//     harmless: the node is dirty anyway.
//  5. Run the plan's stages in order, each stage's groups at once (a
//     batch's nodes at most its Concurrency at a time), a stage once the
//     one before it is done. Just before a node runs, compute
//     [InputHash] of its Rev and its dependencies' OutputHash, in
//     graph.Graph.Deps order, from the states as saved so far: if it
//     equals the node's InputHash and its asset is still there, keep
//     the result (early cutoff: an unchanged output then stops the
//     regeneration downstream); otherwise generate it. Either way, save
//     it [StatusClean] with that InputHash and the OutputHash and
//     AssetRef of its result. A node that fails is saved
//     [StatusFailed], and the nodes that depend on it are not run. (A
//     runner that starts each node as soon as its own dependencies are
//     done, within the batch keys' concurrency, rates and batch windows,
//     drives the executor/schedule package's Machine instead of walking
//     the stages: what it hands out next is the node to hash and run,
//     and its package doc says how retries and edits fit.)
//  6. Repeat from step 1 at the next edit, or after a crash: what a
//     crash left running or dirty, and what was made from outputs saved
//     since, is in the next round's set.
//
// # JSON
//
// A [Mark] and a [State] read and write JSON with lower camel case keys,
// statuses and reasons in words. Reading is strict, as for the plans of
// package planner: unknown fields, keys in another case (but a Mark's
// older {"ID", "Reason"}), repeated keys, trailing data and unknown
// statuses or reasons are a [*JSONError] wrapping [ErrInvalidJSON].
// [States] and [Set] have no JSON form: encoding one is an error
// wrapping [ErrNoJSONForm].
//
// # Cost
//
// Compute is pure and deterministic: no I/O, no goroutines, no clock. On
// a graph whose nodes are all clean, without [Input.AssetExists], it
// touches only the nodes of the set and their edges, plus one bit a node;
// with it, it also reads every node's status and asks about every clean
// node that no edited, forced or asset missing mark covers. [Set.Has]
// and [Set.Index] are O(1). [Set.Causes] costs Compute nothing: each call
// walks the set upward from its node, over the nodes that reach it.
package dirty
