package readme_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
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

// Example_embed is the README's snippet of "The executor", line for line
// (TestSnippetsCompile checks it): keep them the same.
func Example_embed() {
	g, err := graph.Build(graph.Lecture(), 60) // 6 segments, 21 nodes
	if err != nil {
		log.Fatal(err)
	}
	// One generator per node kind: a real host calls its providers here.
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		a := executor.Asset{Data: fmt.Appendf(nil, "%s rev %d", req.NodeID, req.Rev)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second // a narration must fit its segment
		}
		return a, nil
	})
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	e, err := executor.New(executor.Options{Generators: reg}) // in-memory stores
	if err != nil {
		log.Fatal(err)
	}
	// At start-up: a kind without a generator, or a misspelt kind or batch key in
	// Options, fails here rather than at a run.
	if err := e.CheckTemplates(graph.Lecture()); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture-42", Graph: g})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Record.Status, len(rep.Generated), "generated")

	// A user edits segment 3's narration: save its new parameters where its
	// generator reads them, then Edit; the next run makes what depends on it.
	if _, err := e.Edit(ctx, g, "lecture-42", "asset:narration:segment[3]"); err != nil {
		log.Fatal(err)
	}
	rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture-42", Graph: g})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Record.Status, rep.Generated)

	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.Close(closeCtx); err != nil {
		log.Print(err)
	}
	// Output:
	// succeeded 21 generated
	// succeeded [asset:narration:segment[3] asset:video:segment[3] timeline]
}
