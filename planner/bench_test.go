package planner_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	dgraph "github.com/dominikbraun/graph"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// benchSizes are the sizes: a 1-hour lecture and 100,000 segments.
var benchSizes = []int{360, 100_000}

func buildOpts() graph.Options { return graph.Options{MaxSeconds: graph.MaxSecondsLimit} }

func mustBuild(b *testing.B, segs int) *graph.Graph {
	g, err := buildOpts().Build(graph.Lecture(), segs*graph.SegmentSeconds)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func cleanStates(g *graph.Graph) *dirty.States {
	st := dirty.NewStates(g.Len())
	for n := range g.Len() {
		st.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean})
	}
	return st
}

var editMarks = []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}

func perNode(b *testing.B, nodes int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nodes), "ns/node")
}

func BenchmarkBuild(b *testing.B) {
	for _, segs := range benchSizes {
		b.Run(fmt.Sprintf("segments=%d", segs), func(b *testing.B) {
			var g *graph.Graph
			for b.Loop() {
				g, _ = buildOpts().Build(graph.Lecture(), segs*graph.SegmentSeconds)
			}
			perNode(b, g.Len())
		})
	}
}

func BenchmarkMark(b *testing.B) {
	for _, segs := range benchSizes {
		g := mustBuild(b, segs)
		b.Run(fmt.Sprintf("segments=%d/all", segs), func(b *testing.B) {
			for b.Loop() {
				if _, err := dirty.Compute(g, dirty.Input{}); err != nil {
					b.Fatal(err)
				}
			}
			perNode(b, g.Len())
		})
		st := cleanStates(g)
		b.Run(fmt.Sprintf("segments=%d/edit", segs), func(b *testing.B) {
			for b.Loop() {
				if _, err := dirty.Compute(g, dirty.Input{States: st, Marks: editMarks}); err != nil {
					b.Fatal(err)
				}
			}
			perNode(b, g.Len())
		})
	}
}

func BenchmarkPlan(b *testing.B) {
	for _, segs := range benchSizes {
		g := mustBuild(b, segs)
		all, _ := dirty.Compute(g, dirty.Input{})
		b.Run(fmt.Sprintf("segments=%d/all", segs), func(b *testing.B) {
			for b.Loop() {
				planner.New(all)
			}
			perNode(b, g.Len())
		})
		edit, _ := dirty.Compute(g, dirty.Input{States: cleanStates(g), Marks: editMarks})
		b.Run(fmt.Sprintf("segments=%d/edit", segs), func(b *testing.B) {
			for b.Loop() {
				planner.New(edit)
			}
			perNode(b, g.Len())
		})
	}
}

// BenchmarkMarkPlan is planning on a built graph: Compute then New.
func BenchmarkMarkPlan(b *testing.B) {
	for _, segs := range benchSizes {
		g := mustBuild(b, segs)
		b.Run(fmt.Sprintf("segments=%d/all", segs), func(b *testing.B) {
			for b.Loop() {
				s, _ := dirty.Compute(g, dirty.Input{})
				planner.New(s)
			}
			perNode(b, g.Len())
		})
		st := cleanStates(g)
		b.Run(fmt.Sprintf("segments=%d/edit", segs), func(b *testing.B) {
			for b.Loop() {
				s, _ := dirty.Compute(g, dirty.Input{States: st, Marks: editMarks})
				planner.New(s)
			}
			perNode(b, g.Len())
		})
	}
}

// BenchmarkBuildMarkPlan is the whole pipeline from a duration.
func BenchmarkBuildMarkPlan(b *testing.B) {
	for _, segs := range benchSizes {
		b.Run(fmt.Sprintf("segments=%d/all", segs), func(b *testing.B) {
			var n int
			for b.Loop() {
				g, _ := buildOpts().Build(graph.Lecture(), segs*graph.SegmentSeconds)
				s, _ := dirty.Compute(g, dirty.Input{})
				planner.New(s)
				n = g.Len()
			}
			perNode(b, n)
		})
		st := cleanStates(mustBuild(b, segs))
		b.Run(fmt.Sprintf("segments=%d/edit", segs), func(b *testing.B) {
			var n int
			for b.Loop() {
				g, _ := buildOpts().Build(graph.Lecture(), segs*graph.SegmentSeconds)
				s, _ := dirty.Compute(g, dirty.Input{States: st, Marks: editMarks})
				planner.New(s)
				n = g.Len()
			}
			perNode(b, n)
		})
	}
}

// BenchmarkGraphHeap reports the heap a built graph retains, per node.
func BenchmarkGraphHeap(b *testing.B) {
	for _, segs := range benchSizes {
		b.Run(fmt.Sprintf("segments=%d", segs), func(b *testing.B) {
			var keep *graph.Graph
			var per float64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				keep = mustBuild(b, segs)
				runtime.GC()
				runtime.ReadMemStats(&after)
				per = float64(after.HeapAlloc-before.HeapAlloc) / float64(keep.Len())
			}
			runtime.KeepAlive(keep)
			b.ReportMetric(per, "heapB/node")
		})
	}
}

// BenchmarkBaselineDominikTopoSort is the baseline: dominikbraun/graph's
// TopologicalSort on the same lecture graph.
func BenchmarkBaselineDominikTopoSort(b *testing.B) {
	g := mustBuild(b, 360)
	dg, err := g.Dominik()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := dgraph.TopologicalSort(dg); err != nil {
			b.Fatal(err)
		}
	}
	perNode(b, g.Len())
}

// BenchmarkLowerBound is the bound of the 360-segment lecture's full
// plan, which the executor's ETA computes during a run: plain, with
// nodes under way, and with a rate.
func BenchmarkLowerBound(b *testing.B) {
	g := mustBuild(b, 360)
	all, _ := dirty.Compute(g, dirty.Input{})
	p := planner.New(all)
	per := map[string]time.Duration{"script": 20 * time.Second, "asset:narration": 3 * time.Second,
		"asset:image": 8 * time.Second, "asset:video": 30 * time.Second, "asset:music": 20 * time.Second,
		"timeline": 10 * time.Second}
	for _, c := range []struct {
		name  string
		costs planner.Costs
	}{
		{"plain", planner.Costs{PerKind: per}},
		{"running", planner.Costs{PerKind: per, Finished: func(n graph.Node) bool { return n < 500 },
			Running: func(n graph.Node) (time.Duration, bool) { return time.Second, n >= 500 && n < 510 }}},
		{"rate", planner.Costs{PerKind: per, Rates: map[string]planner.Rate{"asset:video": {Starts: 10, Per: time.Minute}}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.LowerBound(c.costs)
			}
		})
	}
}

// BenchmarkWideTemplate plans one edit of a template of graph.MaxKinds
// kinds, each with a batch key of its own, a chain through all of them,
// and bounds the plan: the plan of one node, and the bound of the whole
// graph. Both cost what their docs say, linear in kinds, not quadratic.
func BenchmarkWideTemplate(b *testing.B) {
	var t graph.Template
	for i := range graph.MaxKinds {
		kd := graph.Kind{Name: fmt.Sprintf("k%d", i), PerSegment: true, BatchKey: fmt.Sprintf("key%d", i), Concurrency: 2}
		if i > 0 {
			kd.Deps = []graph.Dep{{Kind: fmt.Sprintf("k%d", i-1), Scope: graph.ScopeSameSegment}}
		}
		t.Kinds = append(t.Kinds, kd)
	}
	g, err := graph.Build(t, 10)
	if err != nil {
		b.Fatal(err)
	}
	last := fmt.Sprintf("k%d:segment[0]", graph.MaxKinds-1)
	one, err := dirty.Compute(g, dirty.Input{States: cleanStates(g), Marks: []dirty.Mark{{ID: last, Reason: dirty.ReasonEdited}}})
	if err != nil {
		b.Fatal(err)
	}
	all, _ := dirty.Compute(g, dirty.Input{})
	b.Run("New", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = planner.New(one)
		}
	})
	p := planner.New(all)
	costs := planner.Costs{Default: time.Second}
	b.Run("LowerBound", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = p.LowerBound(costs)
		}
	})
}
