package graph_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// depIDs returns the IDs of the dependencies of the node id.
func depIDs(t *testing.T, g *graph.Graph, id string) []string {
	t.Helper()
	n, err := g.Lookup(id)
	require.NoError(t, err)
	var out []string
	for _, d := range g.Deps(n) {
		out = append(out, g.NodeID(d))
	}
	return out
}

// TestReview4LayoutOrder pins the order of nodes that the Template doc
// describes. It said that among kinds that do not depend on each other,
// template order is the order of their nodes, so of a node's
// dependencies. No order can keep that promise: below, x comes before y
// and y before z in the template, neither pair depending on each other,
// but x depends on z. Kinds are laid out one at a time, each time the
// first in template order whose dependencies are laid out: y, z, x, w.
func TestReview4LayoutOrder(t *testing.T) {
	g, err := graph.Build(graph.Template{Kinds: []graph.Kind{
		{Name: "x", Deps: []graph.Dep{{Kind: "z", Scope: graph.ScopeGlobal}}},
		{Name: "y"},
		{Name: "z"},
		{Name: "w", Deps: []graph.Dep{{Kind: "x", Scope: graph.ScopeGlobal}, {Kind: "y", Scope: graph.ScopeGlobal}}},
	}}, 10)
	require.NoError(t, err)
	var order []string
	for n := range g.Len() {
		order = append(order, g.NodeID(graph.Node(n)))
	}
	require.Empty(t, cmp.Diff([]string{"y", "z", "x", "w"}, order))
	require.Empty(t, cmp.Diff([]string{"y", "x"}, depIDs(t, g, "w")))
}

// TestReview4ReorderingDependentKinds: the README said that reordering
// kinds that a node depends on regenerates it. Listing the lecture's
// video before its narration, which the video depends on, changes no
// node's dependencies, so no input hash: the timeline, which depends on
// both, keeps its inputs. Only kinds neither of which depends on the
// other can change places among the nodes.
func TestReview4ReorderingDependentKinds(t *testing.T) {
	lec := graph.Lecture()
	// script, video, narration, image, music, timeline.
	k := lec.Clone().Kinds
	swapped := graph.Template{Kinds: []graph.Kind{k[0], k[3], k[1], k[2], k[4], k[5]}}
	require.Equal(t, graph.KindVideo, swapped.Kinds[1].Name)
	require.Equal(t, graph.KindNarration, swapped.Kinds[2].Name)
	a, err := graph.Build(lec, 30)
	require.NoError(t, err)
	b, err := graph.Build(swapped, 30)
	require.NoError(t, err)
	for n := range a.Len() {
		id := a.NodeID(graph.Node(n))
		require.Empty(t, cmp.Diff(depIDs(t, a, id), depIDs(t, b, id)), id)
	}
}
