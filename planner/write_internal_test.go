package planner

import (
	"testing"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// TestAppendStagesStopsWhenFlushDoes: once flush returns nil, as
// WriteStagesJSON's does at the writer's first error, appendStages walks
// no further. It walked the whole plan, formatting every node's ID for
// nothing: for a plan at the graph's default limits, 20,000,000 of them
// after a writer (a closed connection, a full disk) had failed.
func TestAppendStagesStopsWhenFlushDoes(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 86_400)
	if err != nil {
		t.Fatal(err)
	}
	set, err := dirty.Compute(g, dirty.Input{})
	if err != nil {
		t.Fatal(err)
	}
	p := New(set)
	if n := len(p.AppendStagesJSON(nil)); n < 4*writeChunk {
		t.Fatalf("the plan's JSON has %d bytes: too few to flush several times", n)
	}
	calls := 0
	b := p.appendStages(make([]byte, 0, writeChunk+512), func([]byte) []byte {
		calls++
		return nil
	})
	if calls != 1 || b != nil {
		t.Fatalf("flush called %d times, appendStages returned %d bytes: want 1 call, then nil", calls, len(b))
	}
}
