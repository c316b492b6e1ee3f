package dirty_test

import (
	"fmt"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// One narration of a generated 60-second lecture is edited: its video and
// the timeline follow it, and each says why.
func Example() {
	g, err := graph.Build(graph.Lecture(), 60)
	if err != nil {
		panic(err)
	}
	states := dirty.NewStates(g.Len())
	for n := range g.Len() {
		states.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean})
	}
	set, err := dirty.Compute(g, dirty.Input{
		States: states,
		Marks:  []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(set.Len(), "of", g.Len(), "nodes to regenerate")
	for _, n := range set.Nodes() {
		fmt.Printf("%s: %s\n", g.NodeID(n), set.Explain(n))
	}
	// Output:
	// 3 of 21 nodes to regenerate
	// asset:narration:segment[3]: edited
	// asset:video:segment[3]: upstream asset:narration:segment[3] edited
	// timeline: upstream asset:narration:segment[3] edited
}

// A chain followed back to its root cause: an image whose asset is gone.
func ExampleSet_Chain() {
	g, err := graph.Build(graph.Lecture(), 30)
	if err != nil {
		panic(err)
	}
	states := dirty.NewStates(g.Len())
	for n := range g.Len() {
		states.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean, AssetRef: fmt.Sprint("blob/", n)})
	}
	image1, _ := g.Lookup("asset:image:segment[1]")
	set, err := dirty.Compute(g, dirty.Input{
		States:      states,
		AssetExists: func(n graph.Node, s dirty.State) bool { return n != image1 },
	})
	if err != nil {
		panic(err)
	}
	timeline, _ := g.Lookup("timeline")
	fmt.Println(set.Explain(timeline))
	for _, n := range set.Chain(timeline) {
		fmt.Println(" ", g.NodeID(n))
	}
	// Output:
	// upstream asset:video:segment[1], from asset:image:segment[1] asset missing
	//   timeline
	//   asset:video:segment[1]
	//   asset:image:segment[1]
}

func ExampleCompute_error() {
	g, _ := graph.Build(graph.Lecture(), 30)
	_, err := dirty.Compute(g, dirty.Input{Marks: []dirty.Mark{{ID: "asset:image:segment[7]", Reason: dirty.ReasonEdited}}})
	fmt.Println(err)
	// Output:
	// dirty: invalid mark 0 (edited "asset:image:segment[7]"): graph: unknown node "asset:image:segment[7]": segment 7 is out of range: the graph has 3 segments (0 to 2)
}

// Two voices of a podcast are edited. The mix's explanation follows one
// of them; its causes are both, each with its own reason.
func ExampleSet_Causes() {
	g, err := graph.Build(graph.Template{Kinds: []graph.Kind{
		{Name: "voice", PerSegment: true},
		{Name: "mix", Deps: []graph.Dep{{Kind: "voice", Scope: graph.ScopeAllSegments}}},
	}}, 4*graph.SegmentSeconds) // 4 chapters
	if err != nil {
		panic(err)
	}
	states := dirty.NewStates(g.Len())
	for n := range g.Len() {
		states.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean})
	}
	set, err := dirty.Compute(g, dirty.Input{
		States: states,
		Marks: []dirty.Mark{
			{ID: "voice:segment[3]", Reason: dirty.ReasonEdited},
			{ID: "voice:segment[0]", Reason: dirty.ReasonEdited},
		},
	})
	if err != nil {
		panic(err)
	}
	mix, _ := g.Lookup("mix")
	fmt.Println("mix:", set.Explain(mix))
	for _, c := range set.Causes(mix) {
		fmt.Printf("  %s: %s\n", g.NodeID(c), set.Explain(c))
	}
	// Output:
	// mix: upstream voice:segment[0] edited
	//   voice:segment[0]: edited
	//   voice:segment[3]: edited
}
