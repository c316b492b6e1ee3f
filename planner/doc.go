// Package planner turns a dirty set into a staged plan: which nodes run
// in which stage, grouped into batches that share a concurrency limit.
//
// # Stages
//
// [New] builds a [Plan] from a [dirty.Set]. A node's stage is the length
// of the longest path to it from the set's roots, counting only nodes of
// the set: a node whose dependencies are all clean is in stage 0, however
// deep it sits in the graph. Every node of a [Stage] depends only on
// nodes of earlier stages or on nodes that are not regenerated.
//
// # Groups
//
// Within a stage, each [Group] is a [Batch] or a [Single]. Every node of
// a kind with a batch key joins that key's batch in its stage, even a
// batch of one; kinds that share a key share one batch per stage, placed
// at the first of them with nodes in that stage. Nodes of a kind without
// a key are singles. Groups come in template-kind order and nodes by
// segment index, so the same input gives the same plan, byte for byte.
//
// # Text and JSON
//
// [Plan.String] writes one line per stage ("Stage 2: Generating 360
// asset:video nodes in batches of 3"). [Plan.MarshalJSON] and
// [Plan.UnmarshalJSON] round-trip a plan against its [graph.Graph] with
// no loss, byte for byte. Decoding accepts only a plan New could have
// made, and refuses anything else with a [*PlanError] wrapping
// [ErrInvalidPlan] that says where and what is wrong: an unknown or
// repeated node, a mislabelled group, groups or nodes out of order, a
// node in any stage but the one after its latest dependency, or a plan
// that leaves out a node downstream of its own.
//
// # Progress and estimates
//
// [Plan.Remaining] counts the unfinished nodes per stage and overall.
// [Plan.LowerBound] estimates, before or during a run, a lower bound on
// its makespan from a duration per kind ([Costs]): the largest of the
// critical path, each batch key's total work over its concurrency (or
// its limit, when lower), the total work over the workers, and the time
// a batch key's rate ([Rate]) takes to start its nodes; during a
// run it counts only what is left of the nodes under way, and for a
// plan run stage after stage it adds up the stages' bounds.
//
// # Cost
//
// The package is pure: no I/O, no goroutines, no clock. New costs
// O(D + E_D + S·K) for D planned nodes with E_D edges among them, S
// stages and K kinds, and never looks at nodes outside the set, so
// planning one edit of a large graph is cheap.
package planner
