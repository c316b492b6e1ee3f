package planner_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

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
			assert.Equal(t, tc.want, p.LowerBound(tc.costs))
			// A plan assembled by hand gives the same bound.
			hand := &planner.Plan{Graph: g, Stages: p.Stages}
			assert.Equal(t, tc.want, hand.LowerBound(tc.costs))
		})
	}
	assert.Equal(t, time.Duration(0), (&planner.Plan{}).LowerBound(planner.Costs{Default: s}), "a plan without a graph")
}
