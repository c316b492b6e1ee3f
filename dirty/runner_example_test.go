package dirty_test

import (
	"fmt"
	"strconv"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// runOwn is one round of a runner of its own, as the package doc's
// "Driving the core from your own runner" lists it, over states held in
// memory (a real runner loads and saves them). Its fake generator makes
// an output of the node's ID and Rev alone, so that a node regenerated
// because of a dependency makes the output it made before, which stops
// the regeneration downstream. It prints the nodes it generated and the
// ones the early cutoff kept.
func runOwn(g *graph.Graph, states *dirty.States, marks []dirty.Mark) {
	stale, err := dirty.StaleInputs(g, states)
	if err != nil {
		panic(err)
	}
	set, err := dirty.Compute(g, dirty.Input{States: states, Marks: append(marks, stale...)})
	if err != nil {
		panic(err)
	}
	// Before anything runs: dirty, an edit's Rev bumped, and no cutoff
	// for what must run.
	for i, n := range set.Nodes() {
		st := states.Get(n)
		switch set.Whys()[i].Reason {
		case dirty.ReasonEdited:
			st.Rev++
		case dirty.ReasonForced, dirty.ReasonAssetMissing, dirty.ReasonInputsChanged:
			st.InputHash = ""
		}
		st.Status = dirty.StatusDirty
		states.Set(n, st)
	}
	var generated, kept []string
	for _, stage := range planner.New(set).Stages {
		for _, grp := range stage.Groups {
			for _, n := range grp.Nodes { // a real runner runs them at once
				st := states.Get(n)
				var deps []string
				for _, d := range g.Deps(n) {
					deps = append(deps, states.Get(d).OutputHash)
				}
				in := dirty.InputHash(st.Rev, deps)
				if in == st.InputHash { // and its asset is still there
					kept = append(kept, g.NodeID(n))
				} else {
					generated = append(generated, g.NodeID(n))
					st.OutputHash = g.NodeID(n) + "@" + strconv.FormatInt(st.Rev, 10)
				}
				st.Status, st.InputHash = dirty.StatusClean, in
				states.Set(n, st)
			}
		}
	}
	fmt.Printf("generated %d %v, kept %v\n", len(generated), generated, kept)
}

// A runner of its own drives graph, dirty and planner: a new lecture,
// an edit of an image, a forced music, and a round after a crash that
// saved a narration's new output but ran nothing downstream of it.
func Example_ownRunner() {
	g, err := graph.Build(graph.Lecture(), 30)
	if err != nil {
		panic(err)
	}
	states := dirty.NewStates(g.Len())
	runOwn(g, states, nil)
	// The image's new output changes its video's inputs; the video's
	// output is the same, so the timeline keeps its result.
	runOwn(g, states, []dirty.Mark{{ID: "asset:image:segment[1]", Reason: dirty.ReasonEdited}})
	runOwn(g, states, []dirty.Mark{{ID: "asset:music", Reason: dirty.ReasonForced}})
	// The crash: the narration's edit ran and was saved, then nothing.
	narration, _ := g.Lookup("asset:narration:segment[2]")
	st := states.Get(narration)
	script, _ := g.Lookup("script")
	st.Rev++
	st.InputHash = dirty.InputHash(st.Rev, []string{states.Get(script).OutputHash})
	st.OutputHash = "asset:narration:segment[2]@" + strconv.FormatInt(st.Rev, 10)
	states.Set(narration, st)
	runOwn(g, states, nil)
	runOwn(g, states, nil)
	// Output:
	// generated 12 [script asset:narration:segment[0] asset:narration:segment[1] asset:narration:segment[2] asset:image:segment[0] asset:image:segment[1] asset:image:segment[2] asset:music asset:video:segment[0] asset:video:segment[1] asset:video:segment[2] timeline], kept []
	// generated 2 [asset:image:segment[1] asset:video:segment[1]], kept [timeline]
	// generated 1 [asset:music], kept [timeline]
	// generated 2 [asset:video:segment[2] timeline], kept []
	// generated 0 [], kept []
}
