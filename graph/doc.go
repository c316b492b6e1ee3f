// Package graph builds the dependency graph of a set of generated assets
// from a template and a duration.
//
// # Templates
//
// A [Template] lists node kinds. Each [Kind] is global (one node) or per
// segment (one node per 10-second segment), depends on other kinds with a
// [Scope], and may carry a batch key with a concurrency limit that the
// planner uses to group nodes. [Lecture] is the built-in template of an AI
// video lecture:
//
//	script -> asset:narration, asset:image (per segment) -> asset:video (per segment)
//	script -> asset:music
//	asset:video, asset:narration (all segments), asset:music -> timeline
//
// Templates are Go values and load from JSON with [ParseTemplate], or
// with encoding/json as part of a host's own configuration
// ([Template.UnmarshalJSON]), as strictly and with the same errors.
//
// A host with other assets writes a template of its own (the executor
// package's Example_ownTemplate runs one end to end). Its segments need
// not be time: a podcast's chapters or a deck's slides are segments, and
// a graph of n of them is built with n·[SegmentSeconds]; beyond 8,640 of
// them, [Options].MaxSeconds raises the limit. A template of global kinds
// only has no segments: its nodes and edges are the same for every valid
// duration (only [Graph.Segments] differs), and [SegmentSeconds], one
// segment, builds it. Dependencies go from kind
// to kind (by [Scope]), so nodes that each depend on particular others,
// not by segment (a map tile on its four children), are each a global kind
// of their own, and such a graph has at most [MaxKinds] nodes. The order
// of its kinds matters beyond the plan: see [Template].
//
// # Graphs
//
// [Build] turns a template and a duration into an immutable [Graph]: a
// lecture of N seconds has N/10 segments and, with the lecture template,
// 3·N/10+3 nodes. Nodes are dense int32 indices ([Node]) laid out in a
// topological order, with adjacency in both directions stored once in
// compressed sparse rows. Node IDs ("script", "asset:image:segment[3]")
// are derived on demand by [Graph.ID] and parsed by [ParseID] and
// [Graph.Lookup]. Building is linear in nodes plus edges, once the
// template is checked (quadratic in its kinds, at most [MaxKinds]).
//
// # Export
//
// [Graph.WriteDOT], [Graph.WriteMermaid] and [Graph.MarshalJSON] write
// deterministic exports; [Graph.Dominik] hands a host the graph as a
// github.com/dominikbraun/graph value. When a template has a cycle among
// kinds, [Template.Validate] confirms the edge that closes it with that
// library's CreatesCycle, the check behind its PreventCycles option; hot
// paths never use it.
//
// # Timing
//
// Segments last [SegmentLength]; [CheckNarration] accepts a narration of
// 9.5 s to 10.5 s.
//
// # Errors
//
// Bad input is refused with a typed error that names the value and the
// rule ([*DurationError], [*TemplateError], [*CycleError], [*IDError],
// [*SizeError], [*NarrationError]), each wrapping a sentinel such as
// [ErrInvalidDuration]. Nothing in this package panics on input, does I/O,
// starts goroutines or reads a clock.
package graph
