package executor

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/regengraph/regen/graph"
)

// sortedIDs orders by kind name, then segment, each node once, on both of
// its paths (a bitmap walk for long lists, a sort for short ones), against
// a plain sort of the IDs.
func TestSortedIDs(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 3600)
	if err != nil {
		t.Fatal(err)
	}
	want := func(nodes []graph.Node) []string {
		type entry struct {
			kind string
			seg  int
			id   string
		}
		var es []entry
		for _, n := range nodes {
			es = append(es, entry{g.KindName(g.KindOf(n)), g.SegmentOf(n), g.NodeID(n)})
		}
		slices.SortFunc(es, func(a, b entry) int {
			return cmp.Or(strings.Compare(a.kind, b.kind), cmp.Compare(a.seg, b.seg))
		})
		es = slices.CompactFunc(es, func(a, b entry) bool { return a.id == b.id })
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.id
		}
		return out
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 3, 20, g.Len()/16 - 1, g.Len() / 16, 500, g.Len(), 2 * g.Len()} {
		r := &run{g: g, ids: make([]string, g.Len())}
		nodes := make([]graph.Node, size)
		for i := range nodes {
			nodes[i] = graph.Node(rng.IntN(g.Len())) // duplicates included
		}
		got := r.sortedIDs(nodes)
		if diff := gocmp.Diff(want(nodes), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("size %d (-want +got):\n%s", size, diff)
		}
		if got == nil {
			t.Errorf("size %d: nil, want an empty list", size)
		}
	}
}
