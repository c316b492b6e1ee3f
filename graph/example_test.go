package graph_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/regengraph/regen/graph"
)

// Build the graph of a 30-second lecture, look a node up by ID and list
// its dependencies.
func Example() {
	g, err := graph.Build(graph.Lecture(), 30)
	if err != nil {
		panic(err)
	}
	fmt.Println(g.Segments(), "segments,", g.Len(), "nodes,", g.Edges(), "edges")

	video, err := g.Lookup("asset:video:segment[1]")
	if err != nil {
		panic(err)
	}
	for _, d := range g.Deps(video) {
		fmt.Println("asset:video:segment[1] depends on", g.NodeID(d))
	}

	_, err = g.Lookup("asset:video:segment[3]")
	fmt.Println(errors.Is(err, graph.ErrUnknownNode), err)

	_, err = graph.Build(graph.Lecture(), 125)
	fmt.Println(err)
	// Output:
	// 3 segments, 12 nodes, 20 edges
	// asset:video:segment[1] depends on asset:narration:segment[1]
	// asset:video:segment[1] depends on asset:image:segment[1]
	// true graph: unknown node "asset:video:segment[3]": segment 3 is out of range: the graph has 3 segments (0 to 2)
	// graph: invalid duration: 125s is not a multiple of 10s
}

// A template loaded from JSON, with a kind that depends on its own
// previous segment.
func ExampleParseTemplate() {
	t, err := graph.ParseTemplate([]byte(`{"kinds": [
		{"name": "script"},
		{"name": "scene", "perSegment": true, "deps": [
			{"kind": "script", "scope": "global"},
			{"kind": "scene", "scope": "previous-segment"}],
		 "batchKey": "scene", "concurrency": 2}]}`))
	if err != nil {
		panic(err)
	}
	g, err := graph.Build(t, 30)
	if err != nil {
		panic(err)
	}
	if err := g.WriteMermaid(os.Stdout, nil); err != nil {
		panic(err)
	}
	// Output:
	// flowchart LR
	// 	n0["script"]
	// 	n1["scene:segment[0]"]
	// 	n2["scene:segment[1]"]
	// 	n3["scene:segment[2]"]
	// 	n0 --> n1
	// 	n0 --> n2
	// 	n0 --> n3
	// 	n1 --> n2
	// 	n2 --> n3
}

func ExampleTemplate_Validate() {
	t := graph.Template{Kinds: []graph.Kind{
		{Name: "a", Deps: []graph.Dep{{Kind: "b", Scope: graph.ScopeGlobal}}},
		{Name: "b", Deps: []graph.Dep{{Kind: "a", Scope: graph.ScopeGlobal}}},
	}}
	err := t.Validate()
	var ce *graph.CycleError
	fmt.Println(errors.As(err, &ce), ce.Kinds)
	fmt.Println(err)
	// Output:
	// true [a b]
	// graph: cycle among kinds: a -> b -> a (each kind depends on the next)
}

func ExampleParseID() {
	id, err := graph.ParseID("asset:image:segment[3]")
	fmt.Println(id.Kind, id.Segment, err)
	_, err = graph.ParseID("asset:image:segment[03]")
	fmt.Println(err)
	// Output:
	// asset:image 3 <nil>
	// graph: malformed node ID "asset:image:segment[03]": segment index "03" has a leading zero
}

func ExampleCheckNarration() {
	fmt.Println(graph.CheckNarration(10.4))
	fmt.Println(graph.CheckNarration(10.6))
	// Output:
	// <nil>
	// graph: narration length out of tolerance: 10.6s is outside 9.5s to 10.5s (10s ± 5%)
}

// A graph that follows a count (a deck's slides) rather than a duration:
// BuildSegments(t, 4) is Build(t, 40).
func ExampleBuildSegments() {
	g, err := graph.BuildSegments(graph.Lecture(), 4)
	if err != nil {
		panic(err)
	}
	fmt.Println(g.Segments(), "segments,", g.Len(), "nodes")
	_, err = graph.BuildSegments(graph.Lecture(), 0)
	fmt.Println(err)
	// Output:
	// 4 segments, 15 nodes
	// graph: invalid duration: 0 segments is not a valid count: from 1 to 8640 segments
}
