package planner

import (
	"math/rand/v2"
	"testing"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// TestKindIndexer: the indexer gives each node's kind whatever the order
// of the visits, ascending (its fast path), descending or random.
func TestKindIndexer(t *testing.T) {
	g, err := graph.Build(testgraph.Podcast(), 50)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	asc := make([]graph.Node, g.Len())
	for n := range asc {
		asc[n] = graph.Node(n)
	}
	desc := make([]graph.Node, len(asc))
	for i, n := range asc {
		desc[len(asc)-1-i] = n
	}
	random := make([]graph.Node, 3*len(asc))
	for i := range random {
		random[i] = graph.Node(r.IntN(g.Len()))
	}
	for name, order := range map[string][]graph.Node{"ascending": asc, "descending": desc, "random": random} {
		kindOf := kindIndexer(g)
		for _, n := range order {
			if got, want := kindOf(n), g.KindOf(n); got != want {
				t.Fatalf("%s: kind of %s = %d, want %d", name, g.NodeID(n), got, want)
			}
		}
	}
}
