package planner_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// Plan a new one-hour lecture, then one edited narration of it.
func Example() {
	g, err := graph.Build(graph.Lecture(), 3600)
	if err != nil {
		panic(err)
	}
	all, err := dirty.Compute(g, dirty.Input{}) // no states: a new lecture
	if err != nil {
		panic(err)
	}
	p := planner.New(all)
	fmt.Print(p)
	fmt.Println("lower bound:", p.LowerBound(planner.Costs{PerKind: map[string]time.Duration{
		"script": 30 * time.Second, "asset:narration": 8 * time.Second, "asset:image": 12 * time.Second,
		"asset:video": 40 * time.Second, "asset:music": time.Minute, "timeline": 20 * time.Second,
	}}))

	states := dirty.NewStates(g.Len())
	for n := range g.Len() {
		states.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean})
	}
	one, err := dirty.Compute(g, dirty.Input{States: states, Marks: []dirty.Mark{
		{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited},
	}})
	if err != nil {
		panic(err)
	}
	p = planner.New(one)
	fmt.Print(p)
	data, _ := json.Marshal(p)
	fmt.Println(string(data))
	// Output:
	// Stage 0: Generating 1 script node
	// Stage 1: Generating 360 asset:narration nodes in batches of 4, 360 asset:image nodes in batches of 5, 1 asset:music node
	// Stage 2: Generating 360 asset:video nodes in batches of 3
	// Stage 3: Generating 1 timeline node
	// lower bound: 1h20m0s
	// Stage 0: Generating 1 asset:narration node in batches of 4
	// Stage 1: Generating 1 asset:video node in batches of 3
	// Stage 2: Generating 1 timeline node
	// {"stages":[{"index":0,"groups":[{"kind":"batch","batchKey":"asset:narration","concurrency":4,"nodes":["asset:narration:segment[3]"]}]},{"index":1,"groups":[{"kind":"batch","batchKey":"asset:video","concurrency":3,"nodes":["asset:video:segment[3]"]}]},{"index":2,"groups":[{"kind":"single","nodes":["timeline"]}]}]}
}

// Count the work left once some nodes are done.
func ExamplePlan_Remaining() {
	g, _ := graph.Build(graph.Lecture(), 30)
	set, _ := dirty.Compute(g, dirty.Input{})
	p := planner.New(set)
	done := func(n graph.Node) bool { return g.SegmentOf(n) == 0 || g.NodeID(n) == "script" }
	r := p.Remaining(done)
	fmt.Println(r.Stages, r.Total)
	// Output:
	// [0 5 2 1] 8
}
