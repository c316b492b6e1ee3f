package dirty

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/quote"
)

// Reason says why a node must be regenerated.
type Reason uint8

// The reasons, from the strongest: when several apply to a node, it
// carries the first. Only Edited, Forced, AssetMissing and InputsChanged
// can be marked; the others come from recorded states and from
// propagation.
const (
	// ReasonEdited: its parameters changed. A mark of it does not bump
	// the node's State.Rev: Compute changes no state. Whoever runs the
	// set bumps and saves Rev before the node runs, as the executor does;
	// else the node's input hash is unchanged and the early cutoff keeps
	// its old result (see the package doc).
	ReasonEdited Reason = iota + 1
	// ReasonForced: regenerate even though nothing changed. Whoever runs
	// the set clears the node's State.InputHash first, as the executor
	// does, so that no early cutoff by input hash keeps its result.
	ReasonForced
	// ReasonAssetMissing: recorded clean, but its asset is gone. As for
	// ReasonForced, no early cutoff may keep its result.
	ReasonAssetMissing
	// ReasonInputsChanged: recorded clean, but made from other inputs
	// than its dependencies' outputs now: its dependencies changed (a
	// lecture made longer or shorter, a new template).
	ReasonInputsChanged
	// ReasonFailed: its last attempt failed.
	ReasonFailed
	// ReasonInterrupted: recorded running when no run was (a crash).
	// Compute takes every node recorded StatusRunning so: it assumes that
	// no run of the graph is going on.
	ReasonInterrupted
	// ReasonCancelled: a cancelled run interrupted it.
	ReasonCancelled
	// ReasonStale: recorded dirty, for example by a superseded result.
	ReasonStale
	// ReasonNeverGenerated: it has never been generated.
	ReasonNeverGenerated
	// ReasonUpstream: a node it depends on is regenerated.
	ReasonUpstream
	numReason
)

var reasonText = [...]string{"", "edited", "forced", "asset missing", "inputs changed",
	"last attempt failed", "interrupted", "cancelled", "marked dirty", "never generated", "upstream"}

// String returns the reason in words: "edited", "forced", "asset missing",
// "inputs changed", "last attempt failed", "interrupted", "cancelled",
// "marked dirty", "never generated" or "upstream".
func (r Reason) String() string {
	if r > 0 && r < numReason {
		return reasonText[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// MarshalText returns the reason in words, as String does, so that
// stored marks keep their meaning whatever the constants' order.
func (r Reason) MarshalText() ([]byte, error) {
	if r == 0 || r >= numReason {
		return nil, fmt.Errorf("dirty: invalid reason %d", uint8(r))
	}
	return []byte(reasonText[r]), nil
}

// UnmarshalText parses a reason in the words MarshalText gives. Any
// other text is a [*NameError] that names the reasons, and leaves r
// unchanged.
func (r *Reason) UnmarshalText(b []byte) error {
	for i := Reason(1); i < numReason; i++ {
		if string(b) == reasonText[i] {
			*r = i
			return nil
		}
	}
	return &NameError{Of: "reason", Name: string(b)}
}

// statusReason is the reason a recorded status gives, or 0 for clean.
var statusReason = [numStatus]Reason{
	StatusMissing:   ReasonNeverGenerated,
	StatusClean:     0,
	StatusDirty:     ReasonStale,
	StatusRunning:   ReasonInterrupted,
	StatusFailed:    ReasonFailed,
	StatusCancelled: ReasonCancelled,
}

// Mark says that a node changed. ID is a node ID such as
// "asset:narration:segment[3]"; Reason is ReasonEdited, ReasonForced,
// ReasonAssetMissing or ReasonInputsChanged. It marshals to JSON with
// lower camel case names, as a [State] does, the reason in words:
// {"id": "script", "reason": "edited"}.
type Mark struct {
	ID     string `json:"id"`
	Reason Reason `json:"reason"`
}

// Input is what [Compute] works from.
type Input struct {
	// States are the nodes' recorded states. Nil means a new graph: every
	// node is missing, so every node is regenerated.
	States *States
	// Marks name the nodes that changed.
	Marks []Mark
	// AssetExists is the integrity check: it reports whether a clean node's
	// asset is still stored. It is called once for every clean node that
	// no mark of a stronger reason (edited, forced, asset missing) already
	// covers, in node order: a node marked inputs changed is asked, as a
	// missing asset is the stronger reason. Nil trusts the states.
	AssetExists func(n graph.Node, s State) bool
}

// Why explains one node of a [Set].
type Why struct {
	// Reason is why the node is in the set.
	Reason Reason
	// From is, for ReasonUpstream, the dependency the change came from: the
	// lowest-indexed dependency in the set. Otherwise graph.None.
	From graph.Node
	// Root is the node whose own reason started the chain; for a node
	// with a reason of its own, the node itself.
	Root graph.Node
}

// Errors of [Compute].
var (
	// ErrInvalidMark: a mark names a malformed or unknown node, or has a
	// reason that cannot be marked. A [*MarkError] wraps it.
	ErrInvalidMark = errors.New("dirty: invalid mark")
	// ErrStatesMismatch: the states do not have one entry per node.
	ErrStatesMismatch = errors.New("dirty: states do not match the graph")
	// ErrNoGraph: the graph is nil, or a zero graph.Graph that no
	// graph.Build made.
	ErrNoGraph = errors.New("dirty: no graph")
)

// MarkError reports a mark that [Compute] refused.
type MarkError struct {
	// Index is the mark's position in Input.Marks.
	Index int
	// Mark is the mark as given.
	Mark Mark
	// Err says what is wrong: a graph error wrapping graph.ErrMalformedID
	// or graph.ErrUnknownNode, or a description of a bad reason.
	Err error
}

func (e *MarkError) Error() string {
	return fmt.Sprintf("%v %d (%s %s): %v", ErrInvalidMark, e.Index, e.Mark.Reason, quoteID(e.Mark.ID), e.Err)
}

// maxIDLen is the length of the longest valid node ID: a kind name of
// 128 bytes, ":segment[", 9 digits and "]".
const maxIDLen = 128 + len(":segment[") + 9 + 1

// quoteID quotes a mark's ID, as %q does. One longer than any valid node
// ID is cut, with a note of its length (internal/quote), so that a
// message names it without being mostly it.
func quoteID(s string) string {
	if len(s) <= maxIDLen {
		return strconv.Quote(s)
	}
	return quote.Key(s)
}

// Unwrap returns ErrInvalidMark and the underlying error.
func (e *MarkError) Unwrap() []error { return []error{ErrInvalidMark, e.Err} }

// Set is the set of nodes to regenerate, each with the reason why. It is
// immutable and safe for concurrent use. Its nodes are in ascending index
// order, which is a topological order. It has no JSON form
// ([Set.MarshalJSON]).
type Set struct {
	g     *graph.Graph
	bits  []uint64
	lo    int     // first word covered by rank
	rank  []int32 // rank[w-lo]: members in words before w
	nodes []graph.Node
	whys  []Why
}

type rootMark struct {
	n graph.Node
	r Reason
}

// Compute returns the minimal set of nodes to regenerate: the nodes that
// are marked, not clean, or clean with a missing asset, and every node
// that depends on one of them, directly or not. Nothing else is in it.
//
// A nil graph, or a zero graph.Graph that no graph.Build made, is an
// error wrapping [ErrNoGraph]. Marks are checked first; a bad one is a
// [*MarkError] and nothing is computed. Compute is pure. It reads every node's status when some node
// is not clean or Input.AssetExists is set (which it then calls for every
// clean node that no edited, forced or asset missing mark covers: O(V)
// calls). Otherwise it costs
// O(D + E_D + V/64) for D nodes in the set with E_D edges leaving them.
// It never allocates per node outside the set, except one bit.
func Compute(g *graph.Graph, in Input) (*Set, error) {
	if err := checkGraph(g, "Compute"); err != nil {
		return nil, err
	}
	if err := checkStates(g, in.States); err != nil {
		return nil, err
	}
	v := g.Len()
	marks := make([]rootMark, 0, len(in.Marks))
	for i, m := range in.Marks {
		if m.Reason != ReasonEdited && m.Reason != ReasonForced && m.Reason != ReasonAssetMissing && m.Reason != ReasonInputsChanged {
			return nil, &MarkError{Index: i, Mark: m, Err: fmt.Errorf("reason %s cannot be marked: use edited, forced, asset missing or inputs changed", m.Reason)}
		}
		n, err := g.Lookup(m.ID)
		if err != nil {
			return nil, &MarkError{Index: i, Mark: m, Err: err}
		}
		marks = append(marks, rootMark{n, m.Reason})
	}
	// Sort marks by node, the strongest reason first, and keep one each.
	slices.SortFunc(marks, func(a, b rootMark) int {
		if a.n != b.n {
			return int(a.n - b.n)
		}
		return int(a.r) - int(b.r)
	})
	marks = slices.CompactFunc(marks, func(a, b rootMark) bool { return a.n == b.n })

	s := &Set{g: g, bits: make([]uint64, (v+63)/64)}
	if in.States == nil {
		s.fill(marks)
		return s, nil
	}
	lo, hi := len(s.bits), -1
	add := func(n graph.Node) {
		w := int(n) >> 6
		s.bits[w] |= 1 << (uint(n) & 63)
		lo, hi = min(lo, w), max(hi, w)
	}
	for _, m := range marks {
		add(m.n)
	}
	var missing []graph.Node // clean, asset gone, not marked with a stronger reason
	st := in.States
	if st.Count(StatusClean) < v || in.AssetExists != nil {
		mi := 0
		for n := range v {
			node := graph.Node(n)
			for mi < len(marks) && marks[mi].n < node {
				mi++
			}
			if st.status[n] != StatusClean {
				add(node)
			} else if in.AssetExists != nil && (mi == len(marks) || marks[mi].n != node || marks[mi].r > ReasonAssetMissing) && !in.AssetExists(node, st.Get(node)) {
				add(node)
				missing = append(missing, node)
			}
		}
	}
	if hi < 0 {
		return s, nil
	}
	// Close over dependents in one ascending sweep: dependents have higher
	// indices, so each is reached before the sweep passes it.
	for w := lo; w <= hi; w++ {
		var done uint64
		for {
			rem := s.bits[w] &^ done
			if rem == 0 {
				break
			}
			b := bits.TrailingZeros64(rem)
			done |= 1 << uint(b)
			n := graph.Node(w<<6 | b)
			s.nodes = append(s.nodes, n)
			for _, c := range g.Dependents(n) {
				add(c)
			}
		}
	}
	s.index(lo, hi)
	// Reasons: each node's own reason, strongest first; then, in
	// ascending order, each node without one takes its lowest dirty
	// dependency as From.
	s.whys = make([]Why, len(s.nodes))
	mi, ai, roots := 0, 0, 0
	for i, n := range s.nodes {
		var r Reason
		if mi < len(marks) && marks[mi].n == n {
			r = marks[mi].r
			mi++
		}
		if r == 0 {
			r = statusReason[st.status[n]]
		}
		if ai < len(missing) && missing[ai] == n {
			ai++
			if r == 0 || r > ReasonAssetMissing { // a weaker mark: inputs changed
				r = ReasonAssetMissing
			}
		}
		if r != 0 {
			s.whys[i] = Why{Reason: r, From: graph.None, Root: n}
			roots++
		}
	}
	for i := 0; i < len(s.nodes) && roots < len(s.nodes); i++ {
		root := s.whys[i].Root
		for _, c := range g.Dependents(s.nodes[i]) {
			j := s.pos(c)
			if s.whys[j].Reason == 0 {
				s.whys[j] = Why{Reason: ReasonUpstream, From: s.nodes[i], Root: root}
				roots++
			}
		}
	}
	return s, nil
}

// checkGraph returns an error wrapping ErrNoGraph, for the function
// named fn, when g is nil or a zero Graph, which has no nodes: every
// graph that graph.Build makes has one at least.
func checkGraph(g *graph.Graph, fn string) error {
	if g == nil || g.Len() == 0 {
		return fmt.Errorf("%w: %s needs a graph made by graph.Build, not nil or a zero graph.Graph", ErrNoGraph, fn)
	}
	return nil
}

// count returns n and a noun, plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// fill makes s the set of every node of a new graph: each never
// generated, unless marked.
func (s *Set) fill(marks []rootMark) {
	v := s.g.Len()
	for w := range s.bits {
		s.bits[w] = ^uint64(0)
	}
	if r := v & 63; r != 0 {
		s.bits[len(s.bits)-1] = 1<<uint(r) - 1
	}
	s.nodes = make([]graph.Node, v)
	s.whys = make([]Why, v)
	for i := range s.nodes {
		n := graph.Node(i)
		s.nodes[i] = n
		s.whys[i] = Why{Reason: ReasonNeverGenerated, From: graph.None, Root: n}
	}
	for _, m := range marks {
		s.whys[m.n].Reason = m.r
	}
	if v > 0 {
		s.index(0, len(s.bits)-1)
	}
}

// index builds the rank table over words lo to hi.
func (s *Set) index(lo, hi int) {
	s.lo = lo
	s.rank = make([]int32, hi-lo+1)
	var total int32
	for w := lo; w <= hi; w++ {
		s.rank[w-lo] = total
		total += int32(bits.OnesCount64(s.bits[w]))
	}
}

// pos returns the position of member n in s.nodes. n must be a member.
func (s *Set) pos(n graph.Node) int {
	w := int(n) >> 6
	mask := uint64(1)<<(uint(n)&63) - 1
	return int(s.rank[w-s.lo]) + bits.OnesCount64(s.bits[w]&mask)
}

// MarshalJSON refuses to encode s, with an error wrapping
// [ErrNoJSONForm]: a Set has no JSON form. Encode its plan
// (planner.Plan.MarshalJSON), or its nodes' IDs with [Set.Explain]. Its
// receiver is a value, so that a Set held by value is refused too.
func (s Set) MarshalJSON() ([]byte, error) {
	return nil, fmt.Errorf("%w: a Set has none; encode its plan (planner.Plan.MarshalJSON), or its nodes' IDs (graph.Graph.NodeID) with Set.Explain", ErrNoJSONForm)
}

// Graph returns the graph the set belongs to.
func (s *Set) Graph() *graph.Graph { return s.g }

// Len returns the number of nodes in the set.
func (s *Set) Len() int { return len(s.nodes) }

// Nodes returns the set's nodes in ascending order. The slice is shared:
// the caller must not modify it. It has no capacity beyond its length, so
// appending to it copies it.
func (s *Set) Nodes() []graph.Node { return slices.Clip(s.nodes) }

// Whys returns the reasons of the set's nodes, in the order of
// [Set.Nodes]. The slice is shared: the caller must not modify it. It has
// no capacity beyond its length, so appending to it copies it.
func (s *Set) Whys() []Why { return slices.Clip(s.whys) }

// Has reports whether n is in the set. O(1).
func (s *Set) Has(n graph.Node) bool {
	if n < 0 || int(n)>>6 >= len(s.bits) {
		return false
	}
	return s.bits[int(n)>>6]&(1<<(uint(n)&63)) != 0
}

// Index returns n's position in [Set.Nodes], and whether n is in the set.
// O(1).
func (s *Set) Index(n graph.Node) (int, bool) {
	if !s.Has(n) {
		return 0, false
	}
	return s.pos(n), true
}

// Why returns why n is in the set, and whether it is.
func (s *Set) Why(n graph.Node) (Why, bool) {
	i, ok := s.Index(n)
	if !ok {
		return Why{}, false
	}
	return s.whys[i], true
}

// Explain returns why n is in the set, in words: its own reason ("edited"),
// or the upstream node it came from and the root cause
// ("upstream asset:narration:segment[3] edited", or
// "upstream asset:video:segment[3], from asset:narration:segment[3] edited").
// It returns "" when n is not in the set. It allocates;
// [Set.AppendExplain] does not.
func (s *Set) Explain(n graph.Node) string {
	w, ok := s.Why(n)
	if !ok {
		return ""
	}
	if w.Reason != ReasonUpstream {
		return w.Reason.String()
	}
	return string(s.AppendExplain(nil, n))
}

// AppendExplain appends [Set.Explain] of n to b, and returns the
// extended slice: nothing when n is not in the set.
func (s *Set) AppendExplain(b []byte, n graph.Node) []byte {
	w, ok := s.Why(n)
	if !ok {
		return b
	}
	if w.Reason != ReasonUpstream {
		return append(b, w.Reason.String()...)
	}
	root, _ := s.Why(w.Root)
	b = append(b, "upstream "...)
	b = s.g.AppendID(b, w.From)
	if w.From != w.Root {
		b = append(b, ", from "...)
		b = s.g.AppendID(b, w.Root)
	}
	b = append(b, ' ')
	return append(b, root.Reason.String()...)
}

// Chain returns the path from n back to its root cause: n, the node it
// came from, that node's source, and so on to the root. It returns nil
// when n is not in the set.
func (s *Set) Chain(n graph.Node) []graph.Node {
	w, ok := s.Why(n)
	if !ok {
		return nil
	}
	chain := []graph.Node{n}
	for w.Reason == ReasonUpstream {
		chain = append(chain, w.From)
		w, _ = s.Why(w.From)
	}
	return chain
}

// Causes returns every root cause of n: the nodes of the set with a
// reason of their own (any but [ReasonUpstream]) from which n is reached
// through nodes of the set, in ascending order. A node with a reason of
// its own is among its causes, and so is every such node upstream of it:
// its reason hides no edit upstream. Where [Why].Root, [Set.Explain]
// and [Set.Chain] follow one cause, through lowest-indexed dependencies,
// Causes gives them all: with voice:segment[0] and voice:segment[3]
// edited, the mix's Explain names segment[0], and its causes are both
// voices. [Set.Why] of each cause gives its reason. Causes returns nil
// when n is not in the set (a clean node, graph.None, a node of no
// graph), and at least n's Why.Root when it is. It is deterministic, and
// safe for concurrent use, as the set is.
//
// Causes is computed on demand: [Compute] does no work for it. Each call
// walks the set upward from n through graph.Graph.Deps, in O(A + E +
// P/64) for the A nodes of the set that it reaches, the E dependencies
// of those nodes, and the P nodes of the set up to n (P ≤ [Set.Len]). It
// allocates the slice it returns, and one bit for each of the P nodes
// when P is over 256; [Set.AppendCauses] appends to a slice of the
// caller's.
func (s *Set) Causes(n graph.Node) []graph.Node { return s.AppendCauses(nil, n) }

// AppendCauses appends [Set.Causes] of n to dst, in ascending order, and
// returns the extended slice: nothing when n is not in the set. A caller
// that asks about many nodes can pass the slice it got back, emptied
// (buf[:0]), to allocate nothing more once it is long enough, except the
// bits of Set.Causes for a set of over 256 nodes up to n.
func (s *Set) AppendCauses(dst []graph.Node, n graph.Node) []graph.Node {
	p, ok := s.Index(n)
	if !ok {
		return dst
	}
	// reach has a bit for each position in s.nodes up to n's: set for the
	// nodes found to reach n, cleared once taken. Dependencies have lower
	// positions than their dependents, so taking the highest set bit
	// first takes each node once, after every node of the set that
	// depends on it and reaches n: no bit is set again once cleared.
	var small [4]uint64
	reach := small[:]
	if words := p>>6 + 1; words > len(small) {
		reach = make([]uint64, words)
	}
	reach[p>>6] = 1 << (uint(p) & 63)
	base := len(dst)
	for w := p >> 6; w >= 0; w-- {
		for reach[w] != 0 {
			b := 63 - bits.LeadingZeros64(reach[w])
			reach[w] &^= 1 << uint(b)
			i := w<<6 | b
			node := s.nodes[i]
			if s.whys[i].Reason != ReasonUpstream {
				dst = append(dst, node)
			}
			for _, d := range s.g.Deps(node) {
				if s.Has(d) {
					j := s.pos(d)
					reach[j>>6] |= 1 << (uint(j) & 63)
				}
			}
		}
	}
	slices.Reverse(dst[base:])
	return dst
}
