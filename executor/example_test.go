package executor_test

import (
	"context"
	"fmt"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

func Example() {
	g, _ := graph.Build(graph.Lecture(), 60) // 6 segments, 21 nodes

	// One fake generator for every kind: a real host calls its providers.
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		a := executor.Asset{Data: fmt.Appendf(nil, "%s rev %d", req.NodeID, req.Rev)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second // within the segment's ±5%
		}
		return a, nil
	})
	reg := executor.Registry{}
	for i := range g.Kinds() {
		reg[g.KindName(i)] = gen
	}
	e, _ := executor.New(executor.Options{Generators: reg})
	ctx := context.Background()

	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture-1", Graph: g, TriggeredBy: "example"})
	fmt.Println(rep.Record.Status, len(rep.Generated), err)

	// The user edits segment 3's narration: only what depends on it runs.
	rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture-1", Graph: g,
		Marks: []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}})
	fmt.Println(rep.Record.Status, rep.Generated, err)
	// Output:
	// succeeded 21 <nil>
	// succeeded [asset:narration:segment[3] asset:video:segment[3] timeline] <nil>
}
