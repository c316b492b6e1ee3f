package graph_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// mustBuild builds t for secs seconds with default options, failing the
// test on error, and checks the graph's invariants.
func mustBuild(tb testing.TB, t graph.Template, secs int) *graph.Graph {
	tb.Helper()
	g, err := graph.Build(t, secs)
	require.NoError(tb, err)
	require.NoError(tb, checkGraph(g))
	return g
}

// idsOf returns the IDs of nodes, in order.
func idsOf(g *graph.Graph, nodes []graph.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = g.NodeID(n)
	}
	return out
}

// byID returns the node with the given ID, panicking on a test typo.
func byID(g *graph.Graph, id string) graph.Node {
	n, err := g.Lookup(id)
	if err != nil {
		panic(err)
	}
	return n
}

// checkGraph checks the invariants every built graph has, in O(V+E):
//   - the kinds' node ranges tile [0, Len) in layout order, each with one
//     node (global) or Segments nodes (per segment);
//   - every node's ID parses and looks up to the node itself, and KindOf
//     and SegmentOf agree with it;
//   - Deps and Dependents are strictly ascending, every dependency has a
//     lower index than its dependent (the indices are a topological
//     order), and the two directions mirror each other exactly;
//   - Edges is the number of dependency edges.
//
// It returns the first violation found, naming the node.
func checkGraph(g *graph.Graph) error {
	v := g.Len()
	covered := make([]int, v)
	for ki := range g.Kinds() {
		first, count := g.KindNodes(ki)
		want := 1
		if g.Kind(ki).PerSegment {
			want = g.Segments()
		}
		if count != want {
			return fmt.Errorf("kind %q has %d nodes, want %d", g.KindName(ki), count, want)
		}
		if first < 0 || int(first)+count > v {
			return fmt.Errorf("kind %q: nodes %d..%d outside [0, %d)", g.KindName(ki), first, int(first)+count, v)
		}
		if i, ok := g.KindIndex(g.KindName(ki)); !ok || i != ki {
			return fmt.Errorf("KindIndex(%q) = %d, %v; want %d", g.KindName(ki), i, ok, ki)
		}
		for n := first; n < first+graph.Node(count); n++ {
			covered[n]++
		}
	}
	for n, c := range covered {
		if c != 1 {
			return fmt.Errorf("node %d belongs to %d kinds", n, c)
		}
	}
	edges := 0
	// cursor[d] walks Dependents(d) as nodes depending on d are visited in
	// ascending order: each must be the next one listed.
	cursor := make([]int, v)
	for i := range v {
		n := graph.Node(i)
		if !g.Contains(n) {
			return fmt.Errorf("Contains(%d) = false", n)
		}
		id := g.NodeID(n)
		got, err := g.Lookup(id)
		if err != nil || got != n {
			return fmt.Errorf("Lookup(%q) = %d, %v; want %d", id, got, err, n)
		}
		pid := g.ID(n)
		if ki := g.KindOf(n); g.KindName(ki) != pid.Kind {
			return fmt.Errorf("node %s: KindOf = %q", id, g.KindName(ki))
		}
		if s := g.SegmentOf(n); s != pid.Segment {
			return fmt.Errorf("node %s: SegmentOf = %d", id, s)
		}
		if b := g.AppendID([]byte("x"), n); string(b) != "x"+id {
			return fmt.Errorf("node %s: AppendID = %q", id, b)
		}
		deps := g.Deps(n)
		edges += len(deps)
		for j, d := range deps {
			if d < 0 || d >= n {
				return fmt.Errorf("node %s (%d) depends on %d: dependencies must have lower indices", id, n, d)
			}
			if j > 0 && deps[j-1] >= d {
				return fmt.Errorf("node %s: Deps not strictly ascending: %v", id, deps)
			}
			out := g.Dependents(d)
			if cursor[d] >= len(out) || out[cursor[d]] != n {
				return fmt.Errorf("node %s depends on %s, but Dependents(%s) = %v does not list it next",
					id, g.NodeID(d), g.NodeID(d), idsOf(g, out))
			}
			cursor[d]++
		}
		out := g.Dependents(n)
		for j, m := range out {
			if m <= n || int(m) >= v {
				return fmt.Errorf("node %s: dependent %d out of order", id, m)
			}
			if j > 0 && out[j-1] >= m {
				return fmt.Errorf("node %s: Dependents not strictly ascending: %v", id, out)
			}
		}
	}
	for i, c := range cursor {
		if out := g.Dependents(graph.Node(i)); c != len(out) {
			return fmt.Errorf("node %s lists dependents %v that do not depend on it",
				g.NodeID(graph.Node(i)), idsOf(g, out[c:]))
		}
	}
	if edges != g.Edges() {
		return fmt.Errorf("Edges() = %d, but the nodes have %d dependencies", g.Edges(), edges)
	}
	return nil
}

// naiveDeps expands template t for segs segments by its rules, by ID, with
// no cleverness: for every node, the sorted IDs of its dependencies.
func naiveDeps(t graph.Template, segs int) map[string][]string {
	per := map[string]bool{}
	for _, k := range t.Kinds {
		per[k.Name] = k.PerSegment
	}
	segID := func(kind string, s int) string { return fmt.Sprintf("%s:segment[%d]", kind, s) }
	out := map[string][]string{}
	for _, k := range t.Kinds {
		nodes := []int{-1}
		if k.PerSegment {
			nodes = nodes[:0]
			for s := range segs {
				nodes = append(nodes, s)
			}
		}
		for _, s := range nodes {
			id := k.Name
			if s >= 0 {
				id = segID(k.Name, s)
			}
			deps := []string{}
			for _, d := range k.Deps {
				switch d.Scope {
				case graph.ScopeGlobal:
					deps = append(deps, d.Kind)
				case graph.ScopeSameSegment:
					deps = append(deps, segID(d.Kind, s))
				case graph.ScopePreviousSegment:
					if s > 0 {
						deps = append(deps, segID(d.Kind, s-1))
					}
				case graph.ScopeAllSegments:
					for j := range segs {
						deps = append(deps, segID(d.Kind, j))
					}
				}
			}
			slices.Sort(deps)
			out[id] = deps
		}
	}
	return out
}

// graphDeps is naiveDeps read from a built graph.
func graphDeps(g *graph.Graph) map[string][]string {
	out := map[string][]string{}
	for i := range g.Len() {
		deps := idsOf(g, g.Deps(graph.Node(i)))
		slices.Sort(deps)
		out[g.NodeID(graph.Node(i))] = deps
	}
	return out
}

// requireErrorContains checks that err's message contains each part.
func requireErrorContains(tb testing.TB, err error, parts ...string) {
	tb.Helper()
	require.Error(tb, err)
	for _, p := range parts {
		require.True(tb, strings.Contains(err.Error(), p), "error %q does not contain %q", err.Error(), p)
	}
}
