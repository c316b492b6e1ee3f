package planner_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

func TestLowerBound(t *testing.T) {
	s := time.Second
	lectureCosts := map[string]time.Duration{
		"script": 10 * s, "asset:narration": 20 * s, "asset:image": 30 * s,
		"asset:video": 60 * s, "asset:music": 5 * s, "timeline": 15 * s,
	}
	shared := tmpl(batched(per("a"), "k", 2), batched(per("b"), "k", 2))
	tests := []struct {
		name     string
		t        graph.Template
		secs     int
		marks    []dirty.Mark
		costs    planner.Costs
		finished []string
		running  map[string]time.Duration // spent, by kind or node ID
		want     time.Duration
	}{
		{
			// script 10 + image 30 + video 60 + timeline 15 = 115 s beats
			// the batches: narration 3·20/4 = 15, image 90/5 = 18, video 180/3 = 60.
			name: "critical path dominates", t: graph.Lecture(), secs: 30,
			costs: planner.Costs{PerKind: lectureCosts},
			want:  115 * s,
		},
		{
			// 30 videos of 60 s on 3 at a time: 600 s, over the 115 s path.
			name: "a batch key dominates", t: graph.Lecture(), secs: 300,
			costs: planner.Costs{PerKind: lectureCosts},
			want:  600 * s,
		},
		{
			// Total 10 + 30·(20+30+60) + 5 + 15 = 3330 s on 2 workers: 1665 s.
			name: "workers dominate", t: graph.Lecture(), secs: 300,
			costs: planner.Costs{PerKind: lectureCosts, Workers: 2},
			want:  1665 * s,
		},
		{
			// Negative durations count as 0, so the videos take no time:
			// script 10 + image 30 + video 0 + timeline 15 = 55 s (taken
			// as negative, the video would leave the narration's 45 s path).
			name: "negative durations count as zero", t: graph.Lecture(), secs: 30,
			costs: planner.Costs{PerKind: map[string]time.Duration{
				"script": 10 * s, "asset:narration": 20 * s, "asset:image": 30 * s,
				"asset:video": -600 * s, "asset:music": 5 * s, "timeline": 15 * s,
			}, Default: -s},
			want: 55 * s,
		},
		{
			name: "many workers do not", t: graph.Lecture(), secs: 300,
			costs: planner.Costs{PerKind: lectureCosts, Workers: 10},
			want:  600 * s,
		},
		{
			// Videos done: path 10+30+0+15 = 55 s; images 900/5 = 180 s;
			// narrations 600/4 = 150 s.
			name: "finished nodes cost nothing", t: graph.Lecture(), secs: 300,
			costs:    planner.Costs{PerKind: lectureCosts},
			finished: []string{"asset:video"},
			want:     180 * s,
		},
		{
			name: "everything finished", t: graph.Lecture(), secs: 30,
			costs:    planner.Costs{PerKind: lectureCosts, Workers: 1},
			finished: []string{"script", "asset:narration", "asset:image", "asset:video", "asset:music", "timeline"},
			want:     0,
		},
		{
			// Path script, image, video, timeline: 4 s; videos 30/3 = 10 s.
			name: "default cost", t: graph.Lecture(), secs: 300,
			costs: planner.Costs{Default: s},
			want:  10 * s,
		},
		{
			name: "listed kinds override the default", t: graph.Lecture(), secs: 30,
			costs: planner.Costs{Default: s, PerKind: map[string]time.Duration{"asset:music": 100 * s}},
			want:  100*s + 2*s,
		},
		{
			// Only the edited narration, its video and the timeline:
			// 20 + 60 + 15; script is clean and costs nothing.
			name: "one edit", t: graph.Lecture(), secs: 3600,
			marks: edits("asset:narration:segment[3]"),
			costs: planner.Costs{PerKind: lectureCosts},
			want:  95 * s,
		},
		{
			// Six nodes of one key, two at a time: 3 s, not 1.5 s per kind.
			name: "kinds sharing a key share its concurrency", t: shared, secs: 30,
			costs: planner.Costs{Default: s},
			want:  3 * s,
		},
		{
			// Under way for 25 s: the narrations have had their 20 s (they
			// count as 0, not less), the images have 5 s left. Path
			// image 5 + video 60 + timeline 15.
			name: "running nodes cost what is left", t: graph.Lecture(), secs: 30,
			costs:    planner.Costs{PerKind: lectureCosts},
			finished: []string{"script"},
			running:  map[string]time.Duration{"asset:narration": 25 * s, "asset:image": 25 * s},
			want:     80 * s,
		},
		{
			// A video to try again in 20 s: 20 + 60, then the timeline.
			name: "a retry's backoff adds its wait", t: graph.Lecture(), secs: 30,
			costs:    planner.Costs{PerKind: lectureCosts},
			finished: []string{"script", "asset:narration", "asset:image", "asset:music"},
			running:  map[string]time.Duration{"asset:video:segment[0]": -20 * s, "asset:video": 0},
			want:     95 * s,
		},
		{
			// 30 videos of 60 s, 2 at a time, not 3: 900 s.
			name: "a limit below the concurrency", t: graph.Lecture(), secs: 300,
			costs: planner.Costs{PerKind: lectureCosts, Limits: map[string]int{"asset:video": 2, "asset:image": 0, "asset:narration": 10}},
			want:  900 * s,
		},
		{
			// Stage by stage: script 10; images 900/5 = 180 (over the
			// narrations' 150 and the music's 5); videos 600; timeline 15.
			name: "staged: the sum of the stages", t: graph.Lecture(), secs: 300,
			costs: planner.Costs{PerKind: lectureCosts, Staged: true},
			want:  805 * s,
		},
		{
			// Each stage on 2 workers: the script's 10 s, (600+900+5)/2,
			// 1800/2, the timeline's 15 s.
			name: "staged with workers", t: graph.Lecture(), secs: 300,
			costs: planner.Costs{PerKind: lectureCosts, Staged: true, Workers: 2},
			want:  10*s + 752500*time.Millisecond + 900*s + 15*s,
		},
		{
			// The first video may start at 40 s (script 10, image 30), the
			// third 2 windows of 100 s later, then 60 s, then the
			// timeline's 15.
			name: "a rate spaces the starts", t: graph.Lecture(), secs: 30,
			costs: planner.Costs{PerKind: lectureCosts, Rates: map[string]planner.Rate{"asset:video": {Starts: 1, Per: 100 * s}}},
			want:  315 * s,
		},
		{
			name: "a rate's wait delays the first start", t: graph.Lecture(), secs: 30,
			costs: planner.Costs{PerKind: lectureCosts, Rates: map[string]planner.Rate{"asset:video": {Starts: 1, Per: 100 * s, Wait: 50 * s}}},
			want:  325 * s,
		},
		{
			// Three starts at once: the critical path's 115 s.
			name: "a rate with room for all", t: graph.Lecture(), secs: 30,
			costs: planner.Costs{PerKind: lectureCosts, Rates: map[string]planner.Rate{"asset:video": {Starts: 3, Per: 100 * s}}},
			want:  115 * s,
		},
		{
			// One video started: the two others 100 s apart, from 0 s.
			name: "a started node has taken its start", t: graph.Lecture(), secs: 30,
			costs:    planner.Costs{PerKind: lectureCosts, Rates: map[string]planner.Rate{"asset:video": {Starts: 1, Per: 100 * s}}},
			finished: []string{"script", "asset:narration", "asset:image", "asset:music"},
			running:  map[string]time.Duration{"asset:video:segment[0]": 0},
			want:     100*s + 60*s + 15*s,
		},
		{
			// Staged: script 10, images 30, so the videos' stage starts at
			// 40 s; the wait counts from now, so they start from 50 s, 2
			// windows apart, 60 s, timeline 15.
			name: "staged with a rate", t: graph.Lecture(), secs: 30,
			costs: planner.Costs{PerKind: lectureCosts, Staged: true, Rates: map[string]planner.Rate{"asset:video": {Starts: 1, Per: 100 * s, Wait: 50 * s}}},
			want:  50*s + 200*s + 60*s + 15*s,
		},
		{
			name: "a rate of no starts limits nothing", t: graph.Lecture(), secs: 30,
			costs: planner.Costs{PerKind: lectureCosts, Rates: map[string]planner.Rate{"asset:video": {Per: 100 * s}, "asset:image": {Starts: 1}}},
			want:  115 * s,
		},
		{
			name: "nothing to do", t: graph.Lecture(), secs: 30,
			marks: []dirty.Mark{},
			costs: planner.Costs{Default: s, Workers: 1},
			want:  0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := build(t, tc.t, tc.secs)
			p := planOf(t, g, tc.marks)
			if tc.finished != nil {
				done := map[string]bool{}
				for _, k := range tc.finished {
					done[k] = true
				}
				tc.costs.Finished = func(n graph.Node) bool { return done[g.KindName(g.KindOf(n))] }
			}
			if tc.running != nil {
				tc.costs.Running = func(n graph.Node) (time.Duration, bool) {
					if spent, ok := tc.running[g.NodeID(n)]; ok {
						return spent, true
					}
					spent, ok := tc.running[g.KindName(g.KindOf(n))]
					return spent, ok
				}
			}
			assert.Equal(t, tc.want, p.LowerBound(tc.costs))
			// A plan assembled by hand gives the same bound.
			hand := &planner.Plan{Graph: g, Stages: p.Stages}
			assert.Equal(t, tc.want, hand.LowerBound(tc.costs))
		})
	}
	assert.Equal(t, time.Duration(0), (&planner.Plan{}).LowerBound(planner.Costs{Default: s}), "a plan without a graph")
}

// TestStagedLowerBoundGrowsWithThePlan: with Staged, LowerBound kept a
// tally for every stage and every batch key, nodes or not: a chain of
// 8,640 stages beside 1,023 kinds of a key each (9,663 nodes) allocated
// 405 MB, and with the duration raised to the graph's limit (10,000,000
// segments) it would have needed 570 GB, and on a 32-bit platform the
// count of tallies overflowed int. It now keeps one for each stage and
// key that have nodes, as many as the nodes at most; the bound is the
// same. Counted in bytes allocated, no timing.
func TestStagedLowerBoundGrowsWithThePlan(t *testing.T) {
	kinds := []graph.Kind{{Name: "chain", PerSegment: true, BatchKey: "chain", Concurrency: 2,
		Deps: []graph.Dep{{Kind: "chain", Scope: graph.ScopePreviousSegment}}}}
	for i := range graph.MaxKinds - 1 {
		kinds = append(kinds, graph.Kind{Name: fmt.Sprintf("g%d", i), BatchKey: fmt.Sprintf("k%d", i%500), Concurrency: 1})
	}
	g := build(t, graph.Template{Kinds: kinds}, 86_400)
	p := planOf(t, g, nil)
	require.Len(t, p.Stages, 8640)
	for _, tc := range []struct {
		name  string
		costs planner.Costs
		want  time.Duration
	}{
		// Stage 0: the first segment of the chain, and the 1,023 global
		// kinds, two or three of each of 500 keys of concurrency 1.
		{"staged", planner.Costs{Default: time.Second, Staged: true}, 8639*time.Second + 3*time.Second},
		{"staged, rates", planner.Costs{Default: time.Second, Staged: true,
			Rates: map[string]planner.Rate{"chain": {Starts: 1, Per: time.Minute}, "k7": {Starts: 1, Per: time.Hour}}},
			8639*time.Second + 2*time.Hour + time.Second},
		{"not staged", planner.Costs{Default: time.Second}, 8640 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			lb := p.LowerBound(tc.costs)
			runtime.ReadMemStats(&after)
			assert.Equal(t, tc.want, lb)
			perNode := (after.TotalAlloc - before.TotalAlloc) / uint64(g.Len())
			assert.Less(t, perNode, uint64(1000), "bytes allocated a node")
		})
	}
}
