package graph_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/graph"
)

// TestIDOfANodeNotInTheGraph: Graph.ID, NodeID and AppendID of a node
// that is not in the graph, such as graph.None (a dirty.Why's From for a
// node with a reason of its own), give no ID. They gave a real node's:
// None the first node's ("script"), Len() the last node's or a segment
// past the end, so a host that logged g.NodeID(why.From) wrote a wrong
// audit trail, silently.
func TestIDOfANodeNotInTheGraph(t *testing.T) {
	perSegment := graph.Template{Kinds: []graph.Kind{
		{Name: "transcript", PerSegment: true},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "transcript", Scope: graph.ScopeSameSegment}}},
	}}
	for _, tc := range []struct {
		name string
		tmpl graph.Template
	}{
		{"lecture: global first and last kinds", graph.Lecture()},
		{"per-segment first and last kinds", perSegment},
	} {
		g := mustBuild(t, tc.tmpl, 30)
		for _, n := range []graph.Node{graph.None, -5, graph.Node(g.Len()), graph.Node(g.Len() + 1), -1 << 31, 1<<31 - 1} {
			t.Run(fmt.Sprintf("%s/node %d", tc.name, n), func(t *testing.T) {
				assert.Equal(t, graph.ID{Segment: graph.NoSegment}, g.ID(n))
				assert.Equal(t, "", g.NodeID(n))
				assert.Equal(t, "x", string(g.AppendID([]byte("x"), n)))
			})
		}
		// The nodes of the graph keep their IDs.
		for _, n := range []graph.Node{0, graph.Node(g.Len() - 1)} {
			m, err := g.Lookup(g.NodeID(n))
			assert.NoError(t, err, tc.name)
			assert.Equal(t, n, m, tc.name)
		}
	}
}

// TestZeroGraph: a zero Graph, which no Build made, has no nodes and
// names none; Len panicked with an index out of range, and so did
// dirty.Compute given one.
func TestZeroGraph(t *testing.T) {
	var g graph.Graph
	assert.Equal(t, 0, g.Len())
	assert.False(t, g.Contains(0))
	assert.Equal(t, "", g.NodeID(0))
	_, err := graph.Build(graph.Template{}, 10)
	assert.ErrorIs(t, err, graph.ErrInvalidTemplate, "every graph Build makes has a node")
}

// TestKindAndSegmentOfANodeNotInTheGraph: KindOf and SegmentOf of a Node
// that is not in the graph, such as graph.None or Len(), give NoKind and
// NoSegment, as ID gives no ID. They gave a real kind's index (None the
// first kind's, Len() the last kind's) and a real or made-up segment, so a
// host that grouped nodes by g.KindOf(why.From) counted a kind it never
// had, silently.
func TestKindAndSegmentOfANodeNotInTheGraph(t *testing.T) {
	perSegment := graph.Template{Kinds: []graph.Kind{
		{Name: "transcript", PerSegment: true},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "transcript", Scope: graph.ScopeSameSegment}}},
	}}
	for _, tc := range []struct {
		name string
		tmpl graph.Template
	}{
		{"lecture: global first and last kinds", graph.Lecture()},
		{"per-segment first and last kinds", perSegment},
	} {
		g := mustBuild(t, tc.tmpl, 30)
		for _, n := range []graph.Node{graph.None, -5, graph.Node(g.Len()), graph.Node(g.Len() + 1), -1 << 31, 1<<31 - 1} {
			t.Run(fmt.Sprintf("%s/node %d", tc.name, n), func(t *testing.T) {
				assert.Equal(t, graph.NoKind, g.KindOf(n))
				assert.Equal(t, graph.NoSegment, g.SegmentOf(n))
			})
		}
		// The nodes of the graph keep their kinds and segments.
		for n := range graph.Node(g.Len()) {
			id := g.ID(n)
			ki, ok := g.KindIndex(id.Kind)
			assert.True(t, ok, tc.name)
			assert.Equal(t, ki, g.KindOf(n), "%s: %s", tc.name, id)
			assert.Equal(t, id.Segment, g.SegmentOf(n), "%s: %s", tc.name, id)
		}
	}
	var zero graph.Graph
	assert.Equal(t, graph.NoKind, zero.KindOf(0), "zero Graph")
	assert.Equal(t, graph.NoSegment, zero.SegmentOf(0), "zero Graph")
}

// TestZeroGraphHasNoKinds: a zero Graph, which no Build made, has no kinds,
// an empty Template, and finds no node; Lookup, Node, Kinds, KindIndex and
// Template panicked with a nil dereference.
func TestZeroGraphHasNoKinds(t *testing.T) {
	var g graph.Graph
	assert.NotPanics(t, func() {
		assert.Equal(t, 0, g.Kinds())
		assert.Equal(t, graph.Template{}, g.Template())
		_, ok := g.KindIndex("script")
		assert.False(t, ok)
		for _, s := range []string{"script", "asset:image:segment[0]"} {
			n, err := g.Lookup(s)
			assert.Equal(t, graph.None, n, s)
			assert.ErrorIs(t, err, graph.ErrUnknownNode, s)
			var idErr *graph.IDError
			if assert.ErrorAs(t, err, &idErr, s) {
				assert.Equal(t, s, idErr.ID)
				assert.Contains(t, idErr.Problem, "no kinds", s)
			}
		}
		_, err := g.Lookup("not an id!")
		assert.ErrorIs(t, err, graph.ErrMalformedID)
		_, err = g.Node(graph.ID{Kind: "script", Segment: graph.NoSegment})
		assert.ErrorIs(t, err, graph.ErrUnknownNode)
	})
}
