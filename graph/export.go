package graph

import (
	"bufio"
	"encoding/json"
	"io"
	"strconv"

	dgraph "github.com/dominikbraun/graph"
)

// WriteDOT writes g in Graphviz DOT: nodes in index order, then edges from
// each dependency to its dependent, ordered by dependency then dependent.
// Nodes for which highlight returns true are filled; highlight may be nil.
// The output is deterministic. (dominikbraun/graph's draw.DOT ranges over
// Go maps, so its statement order changes from run to run; hosts that
// want it can call it on [Graph.Dominik].) WriteDOT stops at the first
// error of w and returns it, calling highlight for no node after it.
func (g *Graph) WriteDOT(w io.Writer, highlight func(Node) bool) error {
	bw := bufio.NewWriter(w)
	b := make([]byte, 0, 128)
	b = append(b, "digraph regen {\n\trankdir=LR;\n"...)
	for n := Node(0); int(n) < g.Len(); n++ {
		id := g.ID(n)
		b = append(b, "\t\""...)
		b = id.Append(b)
		b = append(b, "\" [kind=\""...)
		b = append(b, id.Kind...)
		b = append(b, '"')
		if id.Segment != NoSegment {
			b = append(b, ", segment="...)
			b = strconv.AppendInt(b, int64(id.Segment), 10)
		}
		if highlight != nil && highlight(n) {
			b = append(b, `, style=filled, fillcolor="#ffd7a8"`...)
		}
		b = append(b, "];\n"...)
		if _, err := bw.Write(b); err != nil {
			return err // the writer's first error: the rest would go nowhere
		}
		b = b[:0]
	}
	for n := Node(0); int(n) < g.Len(); n++ {
		for _, m := range g.Dependents(n) {
			b = append(b, "\t\""...)
			b = g.AppendID(b, n)
			b = append(b, "\" -> \""...)
			b = g.AppendID(b, m)
			b = append(b, "\";\n"...)
			if _, err := bw.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// WriteMermaid writes g as a Mermaid flowchart. Node n is named "n<index>"
// and labelled with its ID; edges run from dependency to dependent, in the
// same order as [Graph.WriteDOT]. Nodes for which highlight returns true
// get the class "hl"; highlight may be nil. The output is deterministic.
// WriteMermaid stops at the first error of w and returns it, calling
// highlight for no node after it.
func (g *Graph) WriteMermaid(w io.Writer, highlight func(Node) bool) error {
	bw := bufio.NewWriter(w)
	b := make([]byte, 0, 128)
	bw.WriteString("flowchart LR\n")
	for n := Node(0); int(n) < g.Len(); n++ {
		b = append(b, "\tn"...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, "[\""...)
		b = g.AppendID(b, n)
		b = append(b, "\"]"...)
		if highlight != nil && highlight(n) {
			b = append(b, ":::hl"...)
		}
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err // the writer's first error: the rest would go nowhere
		}
		b = b[:0]
	}
	for n := Node(0); int(n) < g.Len(); n++ {
		for _, m := range g.Dependents(n) {
			b = append(b, "\tn"...)
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, " --> n"...)
			b = strconv.AppendInt(b, int64(m), 10)
			b = append(b, '\n')
			if _, err := bw.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	if highlight != nil {
		bw.WriteString("\tclassDef hl fill:#ffd7a8,stroke:#c66\n")
	}
	return bw.Flush()
}

type jsonGraph struct {
	Segments int        `json:"segments"`
	Template Template   `json:"template"`
	Nodes    []jsonNode `json:"nodes"`
}

type jsonNode struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Segment *int     `json:"segment,omitempty"`
	Deps    []string `json:"deps"`
}

// MarshalJSON writes g as
//
//	{"segments": S, "template": {...}, "nodes": [{"id": "...", "kind": "...",
//	 "segment": i, "deps": ["<id>", ...]}, ...]}
//
// with nodes in index order (segment omitted for global nodes) and deps
// ascending. The output is deterministic. Its receiver is a value, so
// that a Graph held by value, as in a struct field, is written in this
// form too, not as {} (its fields are unexported). A zero Graph, which no
// [Build] made, is [ErrZeroGraph].
func (g Graph) MarshalJSON() ([]byte, error) {
	if g.tmpl == nil {
		return nil, ErrZeroGraph
	}
	out := jsonGraph{Segments: g.segments, Template: g.Template(), Nodes: make([]jsonNode, g.Len())}
	for i := range out.Nodes {
		n := Node(i)
		id := g.ID(n)
		jn := jsonNode{ID: id.String(), Kind: id.Kind, Deps: make([]string, 0, len(g.Deps(n)))}
		if id.Segment != NoSegment {
			seg := id.Segment
			jn.Segment = &seg
		}
		for _, d := range g.Deps(n) {
			jn.Deps = append(jn.Deps, g.NodeID(d))
		}
		out.Nodes[i] = jn
	}
	return json.Marshal(out)
}

// Dominik returns g as a github.com/dominikbraun/graph directed acyclic
// graph, for hosts that want its algorithms or its draw package. Vertices
// are node IDs, with the attributes "kind" and, for per-segment nodes,
// "segment"; edges run from each dependency to its dependent. It costs
// O(V+E) map insertions; regen's own hot paths never use it.
func (g *Graph) Dominik() (dgraph.Graph[string, string], error) {
	dg := dgraph.New(dgraph.StringHash, dgraph.Directed(), dgraph.Acyclic())
	ids := make([]string, g.Len())
	for i := range ids {
		id := g.ID(Node(i))
		ids[i] = id.String()
		attrs := []func(*dgraph.VertexProperties){dgraph.VertexAttribute("kind", id.Kind)}
		if id.Segment != NoSegment {
			attrs = append(attrs, dgraph.VertexAttribute("segment", strconv.Itoa(id.Segment)))
		}
		if err := dg.AddVertex(ids[i], attrs...); err != nil {
			return nil, err
		}
	}
	for n := range ids {
		for _, m := range g.Dependents(Node(n)) {
			if err := dg.AddEdge(ids[n], ids[m]); err != nil {
				return nil, err
			}
		}
	}
	return dg, nil
}
