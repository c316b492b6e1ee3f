package readme_test

import (
	"fmt"
	"log"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// Example_tour is the README's "A 30-second tour" snippet, line for line
// (TestSnippetsCompile checks it): keep them the same.
func Example_tour() {
	g, err := graph.Build(graph.Lecture(), 120) // 12 segments, 39 nodes
	if err != nil {
		log.Fatal(err)
	}
	// The recorded node states: all clean here (nil for a new lecture: every node is dirty).
	states := dirty.NewStates(g.Len())
	for n := range graph.Node(g.Len()) {
		states.Set(n, dirty.State{Status: dirty.StatusClean})
	}
	set, err := dirty.Compute(g, dirty.Input{
		States: states,
		Marks:  []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range set.Nodes() {
		fmt.Printf("%s: %s\n", g.NodeID(n), set.Explain(n))
	}
	plan := planner.New(set)
	fmt.Print(plan)
	// Output:
	// asset:narration:segment[3]: edited
	// asset:video:segment[3]: upstream asset:narration:segment[3] edited
	// timeline: upstream asset:narration:segment[3] edited
	// Stage 0: Generating 1 asset:narration node in batches of 4
	// Stage 1: Generating 1 asset:video node in batches of 3
	// Stage 2: Generating 1 timeline node
}
