package graph

import (
	"fmt"
	"math"
	"slices"
)

// Node is a node's dense index in one [Graph], from 0 to [Graph.Len]-1.
// Indices are a topological order: every dependency of a node has a lower
// index than the node. A Node is meaningful only with the graph that made it.
type Node int32

// None is the Node of no node. [Graph.ID], [Graph.NodeID] and
// [Graph.AppendID] give it no ID (an empty one), [Graph.KindOf] gives
// [NoKind], [Graph.SegmentOf] gives [NoSegment], and [Graph.Contains]
// reports false; the methods whose doc says "n must be a node of g", such
// as [Graph.Deps], must not be given it.
const None Node = -1

// NoKind is the kind index that [Graph.KindOf] gives for a Node that is not
// a node of the graph, such as [None]: no template index is negative.
const NoKind = -1

// Limits of [Options].
const (
	// DefaultMaxSeconds is the default longest duration: 24 hours.
	DefaultMaxSeconds = 24 * 60 * 60
	// MaxSecondsLimit is the largest MaxSeconds allowed: 10,000,000 segments.
	MaxSecondsLimit = 10_000_000 * SegmentSeconds
	// DefaultMaxEdges is the default most edges a graph may have.
	DefaultMaxEdges = 50_000_000
	// DefaultMaxNodes is the default most nodes a graph may have.
	DefaultMaxNodes = 20_000_000
	// maxIndex is the largest node or edge count that int32 indices hold.
	maxIndex = math.MaxInt32 - 1
)

// Options tunes [Options.Build]. The zero value gives the defaults.
type Options struct {
	// MaxSeconds is the longest duration accepted, in seconds. Pipelines
	// larger than a day raise it, up to MaxSecondsLimit (10,000,000
	// segments). Unlike MaxEdges and MaxNodes, a value below 0 is not the
	// default: any value but 0 and 10 to MaxSecondsLimit makes Build
	// return a [*DurationError] whose Option is "MaxSeconds". Default:
	// DefaultMaxSeconds (86,400 s, 8,640 segments).
	MaxSeconds int
	// MaxEdges is the most dependency edges the graph may have; a template
	// with all-segments dependencies between per-segment kinds grows with
	// the square of the segments. Zero or less means the default; values
	// above 2,147,483,646 are capped there. Default: DefaultMaxEdges
	// (50,000,000).
	MaxEdges int
	// MaxNodes is the most nodes the graph may have, so that a wide
	// template on a long duration is refused instead of exhausting memory
	// (a graph holds about 30 bytes a node). Zero or less means the
	// default; values above 2,147,483,646 are capped there. Default:
	// DefaultMaxNodes (20,000,000).
	MaxNodes int
}

// Graph is the immutable dependency graph of one lecture (or other host
// asset set): the nodes a template gives for a number of segments, with
// their dependencies. It is safe for concurrent use.
//
// Nodes are laid out kind by kind, in a topological order of kinds, and
// within a kind by segment. Adjacency is stored in both directions in
// compressed sparse rows, about 30 bytes a node for the lecture template.
// IDs are derived on demand; none is stored.
type Graph struct {
	tmpl     *compiled
	segments int
	// starts[p] is the first node of the kind at layout position p;
	// starts[K] is the node count.
	starts []Node
	// Dependencies of n: deps[depOff[n]:depOff[n+1]], ascending.
	depOff, deps []Node
	// Dependents of n: dependents[outOff[n]:outOff[n+1]], ascending.
	outOff, dependents []Node
}

// Build builds the graph of a template for a duration, with default
// [Options]. See [Options.Build].
func Build(t Template, totalSeconds int) (*Graph, error) {
	return Options{}.Build(t, totalSeconds)
}

// BuildSegments builds the graph of a template with a number of
// segments, with default [Options]. See [Options.BuildSegments].
func BuildSegments(t Template, segments int) (*Graph, error) {
	return Options{}.BuildSegments(t, segments)
}

// BuildSegments builds the graph of template t with the given number of
// segments, for a host whose graph follows a count (slides, chapters)
// rather than a duration: it is [Options.Build] of segments ×
// SegmentSeconds seconds, the same graph, with the same fingerprint. A
// count below 1 or above the limit (MaxSeconds / SegmentSeconds segments)
// is a [*DurationError] whose Segments is set, and whose Rule says what
// is allowed in segments; an invalid MaxSeconds, template or size is
// refused as by Build.
func (o Options) BuildSegments(t Template, segments int) (*Graph, error) {
	if o.MaxSeconds < 0 || o.MaxSeconds > MaxSecondsLimit || o.MaxSeconds > 0 && o.MaxSeconds < SegmentSeconds {
		return o.Build(t, SegmentSeconds) // Build says what is wrong with MaxSeconds
	}
	maxSec := o.MaxSeconds
	if maxSec == 0 {
		maxSec = DefaultMaxSeconds
	}
	most := maxSec / SegmentSeconds
	switch {
	case segments < 1:
		return nil, &DurationError{Seconds: segments, Segments: true, Rule: fmt.Sprintf("is not a valid count: from 1 to %d segments", most)}
	case segments > MaxSecondsLimit/SegmentSeconds:
		return nil, &DurationError{Seconds: segments, Segments: true, Rule: fmt.Sprintf("exceeds the largest limit, MaxSecondsLimit: %s", segmentCount(MaxSecondsLimit/SegmentSeconds))}
	case segments > most:
		return nil, &DurationError{Seconds: segments, Segments: true, Rule: fmt.Sprintf("exceeds the limit of %s; Options.MaxSeconds raises it", segmentCount(most))}
	}
	return o.Build(t, segments*SegmentSeconds)
}

// Build builds the graph of template t for a duration of totalSeconds:
// totalSeconds/10 segments, one node per global kind, and one node per
// segment for each per-segment kind. The lecture template gives 3S+3 nodes
// for S segments.
//
// A duration that is not positive, not a multiple of 10 or above
// MaxSeconds is a [*DurationError], as is a MaxSeconds out of range (its
// Option says so); an invalid template is a
// [*TemplateError] or a [*CycleError]; a graph over the size limits is a
// [*SizeError], as is, on a 32-bit platform, one under them whose
// arrays (4 bytes a node and an edge, twice) a slice there cannot hold.
// Build is O(V + E) for V nodes and E edges, plus the
// template's validation ([Template.Validate]: O(K² + D·log D) for K
// kinds with D dependencies), and deterministic.
func (o Options) Build(t Template, totalSeconds int) (*Graph, error) {
	maxSec := o.MaxSeconds
	if maxSec == 0 {
		maxSec = DefaultMaxSeconds
	}
	if maxSec < SegmentSeconds || maxSec > MaxSecondsLimit {
		// Below one segment, no duration could pass.
		return nil, &DurationError{Seconds: maxSec, Option: "MaxSeconds", Rule: fmt.Sprintf("is not a valid Options.MaxSeconds: allowed are %d to %d (1 to %d segments), or 0 for the default", SegmentSeconds, MaxSecondsLimit, MaxSecondsLimit/SegmentSeconds)}
	}
	// The longest duration allowed: the limit, or the multiple of the
	// segment length below it.
	longest := maxSec - maxSec%SegmentSeconds
	switch {
	case totalSeconds <= 0:
		return nil, &DurationError{Seconds: totalSeconds, Rule: fmt.Sprintf("must be positive: a multiple of %ds from %ds to %ds", SegmentSeconds, SegmentSeconds, longest)}
	case totalSeconds%SegmentSeconds != 0:
		return nil, &DurationError{Seconds: totalSeconds, Rule: fmt.Sprintf("is not a multiple of %ds", SegmentSeconds)}
	case totalSeconds > MaxSecondsLimit:
		return nil, &DurationError{Seconds: totalSeconds, Rule: fmt.Sprintf("exceeds the largest limit, MaxSecondsLimit: %ds (%d segments)", MaxSecondsLimit, MaxSecondsLimit/SegmentSeconds)}
	case totalSeconds > maxSec && longest != maxSec:
		return nil, &DurationError{Seconds: totalSeconds, Rule: fmt.Sprintf("exceeds the limit of %ds: at most %ds (%s); Options.MaxSeconds raises it", maxSec, longest, segmentCount(longest/SegmentSeconds))}
	case totalSeconds > maxSec:
		return nil, &DurationError{Seconds: totalSeconds, Rule: fmt.Sprintf("exceeds the limit of %ds (%s); Options.MaxSeconds raises it", maxSec, segmentCount(maxSec/SegmentSeconds))}
	}
	maxEdges := int64(DefaultMaxEdges)
	if o.MaxEdges > 0 {
		maxEdges = min(int64(o.MaxEdges), maxIndex)
	}
	maxNodes := int64(DefaultMaxNodes)
	if o.MaxNodes > 0 {
		maxNodes = min(int64(o.MaxNodes), maxIndex)
	}
	c, err := compile(t)
	if err != nil {
		return nil, err
	}
	return build(c, totalSeconds/SegmentSeconds, maxNodes, maxEdges)
}

func build(c *compiled, segs int, maxNodes, maxEdges int64) (*Graph, error) {
	k := len(c.kinds)
	s64 := int64(segs)
	// Count nodes and edges first, in int64, so nothing overflows.
	var nodes, edges int64
	for _, ki := range c.layout {
		kd := &c.kinds[ki]
		count := int64(1)
		if kd.PerSegment {
			count = s64
		}
		nodes += count
		for _, d := range c.deps[ki] {
			switch d.sc {
			case scGlobal, scSame:
				edges += count
			case scPrev:
				edges += s64 - 1
			case scAll:
				edges += count * s64
			}
		}
	}
	if nodes > maxNodes {
		return nil, &SizeError{What: "nodes", Count: nodes, Limit: maxNodes}
	}
	if edges > maxEdges {
		return nil, &SizeError{What: "edges", Count: edges, Limit: maxEdges}
	}
	// The graph's four arrays of 4-byte nodes are one allocation, whose
	// length in bytes must be an int: on a 32-bit platform a graph under
	// the caps may need more, and the length overflowed.
	if bytes := 4 * (2*(nodes+1) + 2*edges); bytes > math.MaxInt {
		return nil, &SizeError{What: "bytes", Count: bytes, Limit: math.MaxInt}
	}
	g := &Graph{tmpl: c, segments: segs}
	g.starts = make([]Node, k+1)
	n := Node(0)
	for p, ki := range c.layout {
		g.starts[p] = n
		if c.kinds[ki].PerSegment {
			n += Node(segs)
		} else {
			n++
		}
	}
	g.starts[k] = n
	v := int(nodes)
	// One allocation holds both offset arrays and both edge arrays.
	buf := make([]Node, 2*(v+1)+2*int(edges))
	g.depOff, buf = buf[:v+1:v+1], buf[v+1:]
	g.outOff, buf = buf[:v+1:v+1], buf[v+1:]
	g.deps, g.dependents = buf[:edges:edges], buf[edges:]

	// Both directions are generated from the template's rules, node by
	// node in index order, so each array is written sequentially and every
	// list comes out ascending.
	segN := Node(segs)
	var rules []rule
	e := 0
	for p, ki := range c.layout {
		first, last := g.starts[p], g.starts[p+1]
		rules = g.rules(rules[:0], c.deps[ki])
		for node := first; node < last; node++ {
			seg := node - first
			g.depOff[node] = Node(e)
			for _, r := range rules {
				switch r.sc {
				case scGlobal:
					g.deps[e] = r.base
					e++
				case scSame:
					g.deps[e] = r.base + seg
					e++
				case scPrev:
					if seg > 0 {
						g.deps[e] = r.base + seg - 1
						e++
					}
				case scAll:
					for j := range segN {
						g.deps[e+int(j)] = r.base + j
					}
					e += segs
				}
			}
		}
	}
	g.depOff[v] = Node(e)
	e = 0
	for p, ki := range c.layout {
		first, last := g.starts[p], g.starts[p+1]
		rules = g.rules(rules[:0], c.rdeps[ki])
		for node := first; node < last; node++ {
			seg := node - first
			g.outOff[node] = Node(e)
			for _, r := range rules {
				switch r.sc {
				case scGlobal, scAll:
					// Every node of the dependent kind.
					for m := r.base; m < r.end; m++ {
						g.dependents[e] = m
						e++
					}
				case scSame:
					g.dependents[e] = r.base + seg
					e++
				case scPrev:
					if seg+1 < segN {
						g.dependents[e] = r.base + seg + 1
						e++
					}
				}
			}
		}
	}
	g.outOff[v] = Node(e)
	return g, nil
}

// segmentCount returns n and "segment", plural unless n is 1.
func segmentCount(n int) string {
	if n == 1 {
		return "1 segment"
	}
	return fmt.Sprintf("%d segments", n)
}

// rule is a dependency rule resolved to the other kind's node range.
type rule struct {
	base, end Node
	sc        scopeCode
}

func (g *Graph) rules(dst []rule, ds []rdep) []rule {
	for _, d := range ds {
		p := g.tmpl.pos[d.kind]
		dst = append(dst, rule{base: g.starts[p], end: g.starts[p+1], sc: d.sc})
	}
	return dst
}

// Segments returns the number of segments.
func (g *Graph) Segments() int { return g.segments }

// Len returns the number of nodes: 0 for a zero Graph, which no [Build]
// made (every graph Build makes has one node at least).
func (g *Graph) Len() int {
	if len(g.starts) == 0 {
		return 0
	}
	return int(g.starts[len(g.starts)-1])
}

// Edges returns the number of dependency edges.
func (g *Graph) Edges() int { return len(g.deps) }

// Template returns a deep copy of the template the graph was built from:
// the zero Template for a zero Graph, which no [Build] made.
func (g *Graph) Template() Template {
	if g.tmpl == nil {
		return Template{}
	}
	return Template{Kinds: g.tmpl.kinds}.Clone()
}

// Kinds returns the number of kinds: 0 for a zero Graph.
func (g *Graph) Kinds() int {
	if g.tmpl == nil {
		return 0
	}
	return len(g.tmpl.kinds)
}

// Kind returns the kind at template index i (0 ≤ i < Kinds()). The
// returned Deps slice is a copy.
func (g *Graph) Kind(i int) Kind {
	kd := g.tmpl.kinds[i]
	kd.Deps = slices.Clone(kd.Deps)
	return kd
}

// KindName returns the name of the kind at template index i
// (0 ≤ i < Kinds()).
func (g *Graph) KindName(i int) string { return g.tmpl.kinds[i].Name }

// BatchKey returns the batch key and concurrency of the kind at template
// index i (0 ≤ i < Kinds()); the key is "" when the kind has none.
func (g *Graph) BatchKey(i int) (key string, concurrency int) {
	kd := &g.tmpl.kinds[i]
	return kd.BatchKey, kd.Concurrency
}

// KindIndex returns the template index of the kind named name. A zero
// Graph has no kinds.
func (g *Graph) KindIndex(name string) (int, bool) {
	if g.tmpl == nil {
		return 0, false
	}
	return g.tmpl.index(name)
}

// KindNodes returns the nodes of the kind at template index i
// (0 ≤ i < Kinds()): count consecutive nodes from first, in segment
// order.
func (g *Graph) KindNodes(i int) (first Node, count int) {
	p := g.tmpl.pos[i]
	return g.starts[p], int(g.starts[p+1] - g.starts[p])
}

// position returns the layout position of n's kind. O(log K).
func (g *Graph) position(n Node) int {
	lo, hi := 0, len(g.starts)-2
	for lo < hi {
		mid := int(uint(lo+hi+1) >> 1)
		if g.starts[mid] <= n {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// Contains reports whether n is a node of g.
func (g *Graph) Contains(n Node) bool { return n >= 0 && int(n) < g.Len() }

// KindOf returns the template index of n's kind, or [NoKind] for a Node
// that is not a node of g, such as [None]. It never returns another
// node's kind.
func (g *Graph) KindOf(n Node) int {
	if !g.Contains(n) {
		return NoKind
	}
	return g.tmpl.layout[g.position(n)]
}

// SegmentOf returns n's segment index, or NoSegment for a global node and
// for a Node that is not a node of g, such as [None]. It never returns
// another node's segment.
func (g *Graph) SegmentOf(n Node) int {
	if !g.Contains(n) {
		return NoSegment
	}
	p := g.position(n)
	if !g.tmpl.kinds[g.tmpl.layout[p]].PerSegment {
		return NoSegment
	}
	return int(n - g.starts[p])
}

// ID returns n's ID. For a Node that is not a node of g, such as [None]
// (the From of a node's own reason in package dirty) or one of another
// graph past g's end, it returns ID{Segment: NoSegment}: an empty Kind,
// whose String is "". It never returns another node's ID.
func (g *Graph) ID(n Node) ID {
	if !g.Contains(n) {
		return ID{Segment: NoSegment}
	}
	p := g.position(n)
	kd := &g.tmpl.kinds[g.tmpl.layout[p]]
	if !kd.PerSegment {
		return ID{Kind: kd.Name, Segment: NoSegment}
	}
	return ID{Kind: kd.Name, Segment: int(n - g.starts[p])}
}

// NodeID returns n's ID in text form, or "" for a Node that is not a node
// of g, such as [None]. It allocates; [Graph.AppendID] does not.
func (g *Graph) NodeID(n Node) string { return g.ID(n).String() }

// AppendID appends n's ID in text form to b: nothing for a Node that is
// not a node of g, such as [None].
func (g *Graph) AppendID(b []byte, n Node) []byte { return g.ID(n).Append(b) }

// Node returns the node with the given ID, or an [*IDError] wrapping
// [ErrUnknownNode] that says why there is none (for every ID of a zero
// Graph, which has no kinds).
func (g *Graph) Node(id ID) (Node, error) {
	unknown := func(format string, args ...any) (Node, error) {
		return None, &IDError{ID: id.String(), Problem: fmt.Sprintf(format, args...), Err: ErrUnknownNode}
	}
	if g.tmpl == nil {
		return unknown("the graph has no kinds: it is a zero Graph, which no Build made")
	}
	ki, ok := g.tmpl.index(id.Kind)
	if !ok {
		return unknown("the template has no kind %s: its kinds are %s", quoteValue(id.Kind), g.tmpl.kindList())
	}
	first, count := g.KindNodes(ki)
	per := g.tmpl.kinds[ki].PerSegment
	switch {
	case !per && id.Segment != NoSegment:
		return unknown("kind %q is global: its node's ID is %q", id.Kind, id.Kind)
	case per && id.Segment == NoSegment && count == 1:
		return unknown("kind %q is per segment: the graph has 1 segment, so its node's ID is %q", id.Kind, ID{Kind: id.Kind, Segment: 0})
	case per && id.Segment == NoSegment:
		return unknown("kind %q is per segment: use %s:segment[<i>] with i from 0 to %d", id.Kind, id.Kind, count-1)
	case per && (id.Segment < 0 || id.Segment >= count) && count == 1:
		return unknown("segment %d is out of range: the graph has 1 segment, segment 0", id.Segment)
	case per && (id.Segment < 0 || id.Segment >= count):
		return unknown("segment %d is out of range: the graph has %d segments (0 to %d)", id.Segment, count, count-1)
	case !per:
		return first, nil
	}
	return first + Node(id.Segment), nil
}

// Lookup parses a node ID and returns its node. A malformed ID is an
// [*IDError] wrapping [ErrMalformedID]; one that names no node wraps
// [ErrUnknownNode].
func (g *Graph) Lookup(s string) (Node, error) {
	id, err := ParseID(s)
	if err != nil {
		return None, err
	}
	return g.Node(id)
}

// Deps returns the nodes n depends on, in ascending order. The slice is
// shared: the caller must not modify it. n must be a node of g.
func (g *Graph) Deps(n Node) []Node {
	a, b := g.depOff[n], g.depOff[n+1]
	return g.deps[a:b:b]
}

// Dependents returns the nodes that depend on n, in ascending order. The
// slice is shared: the caller must not modify it. n must be a node of g.
func (g *Graph) Dependents(n Node) []Node {
	a, b := g.outOff[n], g.outOff[n+1]
	return g.dependents[a:b:b]
}
