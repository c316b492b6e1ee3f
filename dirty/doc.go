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
// [ErrInvalidMark], and nothing is computed; so is a nil or zero graph,
// with an error wrapping [ErrNoGraph]. Nothing in this package panics on
// input: [NewStates] of a negative count gives the states of no node.
//
// # Why
//
// Every node of the set carries a [Why]: its own [Reason], the strongest
// when several apply, or [ReasonUpstream] with the dependency it came from
// (the lowest-indexed one in the set) and the root cause. [Set.Explain]
// says it in words ("upstream asset:narration:segment[3] edited") and
// [Set.Chain] follows it back to the root.
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
// and [Set.Index] are O(1).
package dirty
