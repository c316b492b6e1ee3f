package dirty_test

import (
	"fmt"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// A runner of its own crashed after it saved a narration's new output,
// before the narration's video ran: both are recorded clean. StaleInputs
// finds the nodes made from the old narration, and Compute takes them.
func ExampleStaleInputs() {
	g, err := graph.Build(graph.Lecture(), 30)
	if err != nil {
		panic(err)
	}
	// The states a run that made every node leaves: each with its output
	// hash and the input hash it was made from.
	states := dirty.NewStates(g.Len())
	for n := range graph.Node(g.Len()) {
		var deps []string
		for _, d := range g.Deps(n) {
			deps = append(deps, states.Get(d).OutputHash)
		}
		states.Set(n, dirty.State{Status: dirty.StatusClean, InputHash: dirty.InputHash(0, deps), OutputHash: "out:" + g.NodeID(n)})
	}
	// The narration's new output, saved just before the crash.
	narration, _ := g.Lookup("asset:narration:segment[1]")
	st := states.Get(narration)
	st.OutputHash = "out:new"
	states.Set(narration, st)

	marks, err := dirty.StaleInputs(g, states)
	if err != nil {
		panic(err)
	}
	fmt.Println(marks)
	set, err := dirty.Compute(g, dirty.Input{States: states, Marks: marks})
	if err != nil {
		panic(err)
	}
	for _, n := range set.Nodes() {
		fmt.Printf("%s: %s\n", g.NodeID(n), set.Explain(n))
	}
	// Output:
	// [{asset:video:segment[1] inputs changed} {timeline inputs changed}]
	// asset:video:segment[1]: inputs changed
	// timeline: inputs changed
}
