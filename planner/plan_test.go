package planner_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

func TestNew(t *testing.T) {
	// Templates beyond the lecture.
	singles := tmpl(glob("g"), per("p", dep("g", graph.ScopeGlobal)), glob("q", dep("g", graph.ScopeGlobal)))
	// b is listed before a, which it depends on.
	outOfOrder := tmpl(batched(per("b", dep("a", graph.ScopeSameSegment)), "kb", 2), batched(per("a"), "ka", 1), glob("c"))
	// a, b and c share key k; x sits between them.
	shared := tmpl(batched(per("a"), "k", 2), glob("x"), batched(per("b"), "k", 2),
		batched(per("c", dep("a", graph.ScopeSameSegment)), "k", 2))
	// a is a chain of its own segments; b follows a segment by segment, on
	// the same key.
	sharedChain := tmpl(batched(per("a", dep("a", graph.ScopePreviousSegment)), "k", 2),
		batched(per("b", dep("a", graph.ScopeSameSegment)), "k", 2))
	chain := tmpl(per("p", dep("p", graph.ScopePreviousSegment)))

	tests := []struct {
		name  string
		t     graph.Template
		secs  int
		marks []dirty.Mark // nil: a new graph
		want  []string
	}{
		{
			name: "new lecture",
			t:    graph.Lecture(), secs: 30,
			want: []string{
				"0 single script",
				"1 batch asset:narration/4 [" + segs("asset:narration", 0, 1, 2) + "]",
				"1 batch asset:image/5 [" + segs("asset:image", 0, 1, 2) + "]",
				"1 single asset:music",
				"2 batch asset:video/3 [" + segs("asset:video", 0, 1, 2) + "]",
				"3 single timeline",
			},
		},
		{
			name: "one narration edited",
			t:    graph.Lecture(), secs: 3600,
			marks: edits("asset:narration:segment[3]"),
			want: []string{
				"0 batch asset:narration/4 [asset:narration:segment[3]]",
				"1 batch asset:video/3 [asset:video:segment[3]]",
				"2 single timeline",
			},
		},
		{
			name: "clean dependencies do not hold a node back",
			t:    graph.Lecture(), secs: 60,
			marks: edits("asset:video:segment[2]", "asset:image:segment[5]"),
			want: []string{
				"0 batch asset:image/5 [asset:image:segment[5]]",
				"0 batch asset:video/3 [asset:video:segment[2]]",
				"1 batch asset:video/3 [asset:video:segment[5]]",
				"2 single timeline",
			},
		},
		{
			name: "the longest path of dirty nodes sets the stage",
			t:    graph.Lecture(), secs: 60,
			marks: edits("asset:music", "asset:image:segment[1]", "asset:narration:segment[0]"),
			want: []string{
				"0 batch asset:narration/4 [asset:narration:segment[0]]",
				"0 batch asset:image/5 [asset:image:segment[1]]",
				"0 single asset:music",
				"1 batch asset:video/3 [" + segs("asset:video", 0, 1) + "]",
				"2 single timeline",
			},
		},
		{
			name: "the timeline alone",
			t:    graph.Lecture(), secs: 60,
			marks: edits("timeline"),
			want:  []string{"0 single timeline"},
		},
		{
			name: "singles, one per node",
			t:    singles, secs: 30,
			want: []string{
				"0 single g",
				"1 single p:segment[0]", "1 single p:segment[1]", "1 single p:segment[2]",
				"1 single q",
			},
		},
		{
			name: "groups in template order, not node order",
			t:    outOfOrder, secs: 20,
			want: []string{
				"0 batch ka/1 [" + segs("a", 0, 1) + "]",
				"0 single c",
				"1 batch kb/2 [" + segs("b", 0, 1) + "]",
			},
		},
		{
			name: "a later-listed kind's batch comes first in its stage",
			t:    outOfOrder, secs: 20,
			marks: edits("b:segment[0]", "a:segment[1]"),
			want: []string{
				"0 batch kb/2 [b:segment[0]]",
				"0 batch ka/1 [a:segment[1]]",
				"1 batch kb/2 [b:segment[1]]",
			},
		},
		{
			name: "kinds sharing a key make one batch at the first kind",
			t:    shared, secs: 20,
			want: []string{
				"0 batch k/2 [" + segs("a", 0, 1) + " " + segs("b", 0, 1) + "]",
				"0 single x",
				"1 batch k/2 [" + segs("c", 0, 1) + "]",
			},
		},
		{
			name: "a shared key's batch without its first kind",
			t:    shared, secs: 20,
			marks: edits("x", "b:segment[1]"),
			want: []string{
				"0 single x",
				"0 batch k/2 [b:segment[1]]",
			},
		},
		{
			name: "a shared key's batch with several kinds, one edited",
			t:    shared, secs: 30,
			marks: edits("b:segment[2]", "a:segment[1]"),
			want: []string{
				"0 batch k/2 [a:segment[1] b:segment[2]]",
				"1 batch k/2 [c:segment[1]]",
			},
		},
		{
			name: "a shared key over several stages",
			t:    sharedChain, secs: 30,
			want: []string{
				"0 batch k/2 [a:segment[0]]",
				"1 batch k/2 [a:segment[1] b:segment[0]]",
				"2 batch k/2 [a:segment[2] b:segment[1]]",
				"3 batch k/2 [b:segment[2]]",
			},
		},
		{
			name: "a previous-segment chain, new",
			t:    chain, secs: 40,
			want: []string{"0 single p:segment[0]", "1 single p:segment[1]", "2 single p:segment[2]", "3 single p:segment[3]"},
		},
		{
			name: "a previous-segment chain, edited in the middle",
			t:    chain, secs: 40,
			marks: edits("p:segment[2]"),
			want:  []string{"0 single p:segment[2]", "1 single p:segment[3]"},
		},
		{
			name: "nothing to do",
			t:    graph.Lecture(), secs: 30,
			marks: []dirty.Mark{},
			want:  nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := build(t, tc.t, tc.secs)
			p := planOf(t, g, tc.marks)
			if diff := cmp.Diff(tc.want, render(p)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			assert.Same(t, g, p.Graph)
			for i, st := range p.Stages {
				assert.Equal(t, i, st.Index)
			}
			// Every node of the plan has the stage StageOf reports.
			n := 0
			for _, st := range p.Stages {
				for _, grp := range st.Groups {
					for _, node := range grp.Nodes {
						s, ok := p.StageOf(node)
						assert.True(t, ok)
						assert.Equal(t, st.Index, s, g.NodeID(node))
						n++
					}
				}
			}
			assert.Equal(t, n, p.Len())
		})
	}
}

func TestNewLectureShape(t *testing.T) {
	g := build(t, graph.Lecture(), 3600)
	p := planOf(t, g, nil)
	type group struct {
		Kind        planner.GroupKind
		BatchKey    string
		Concurrency int
		Len         int
	}
	var got [][]group
	for _, st := range p.Stages {
		var gs []group
		for _, grp := range st.Groups {
			gs = append(gs, group{grp.Kind, grp.BatchKey, grp.Concurrency, len(grp.Nodes)})
		}
		got = append(got, gs)
	}
	want := [][]group{
		{{planner.Single, "", 0, 1}},
		{{planner.Batch, "asset:narration", 4, 360}, {planner.Batch, "asset:image", 5, 360}, {planner.Single, "", 0, 1}},
		{{planner.Batch, "asset:video", 3, 360}},
		{{planner.Single, "", 0, 1}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	assert.Equal(t, 1083, p.Len())
	video := p.Stages[2].Groups[0].Nodes
	for i, n := range video {
		assert.Equal(t, graph.ID{Kind: "asset:video", Segment: i}, g.ID(n))
	}
	assert.Equal(t, "Stage 0: Generating 1 script node\n"+
		"Stage 1: Generating 360 asset:narration nodes in batches of 4, 360 asset:image nodes in batches of 5, 1 asset:music node\n"+
		"Stage 2: Generating 360 asset:video nodes in batches of 3\n"+
		"Stage 3: Generating 1 timeline node\n", p.String())
	assert.Equal(t, "Stage 2: Generating 360 asset:video nodes in batches of 3", p.Summary(2))
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name  string
		t     graph.Template
		secs  int
		marks []dirty.Mark
		want  string
	}{
		{"one edit", graph.Lecture(), 3600, edits("asset:narration:segment[3]"),
			"Stage 0: Generating 1 asset:narration node in batches of 4\n" +
				"Stage 1: Generating 1 asset:video node in batches of 3\n" +
				"Stage 2: Generating 1 timeline node\n"},
		{"singles of one kind counted together", tmpl(glob("g"), per("p", dep("g", graph.ScopeGlobal)), glob("q", dep("g", graph.ScopeGlobal))), 30, nil,
			"Stage 0: Generating 1 g node\n" +
				"Stage 1: Generating 3 p nodes, 1 q node\n"},
		{"a shared key named by its key", tmpl(batched(per("a"), "gpu", 2), batched(per("b"), "gpu", 2)), 20, nil,
			"Stage 0: Generating 4 gpu nodes in batches of 2\n"},
		{"a batch of one kind named by its kind", tmpl(batched(per("voice"), "tts", 2)), 30, nil,
			"Stage 0: Generating 3 voice nodes in batches of 2\n"},
		{"nothing to do", graph.Lecture(), 30, []dirty.Mark{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planOf(t, build(t, tc.t, tc.secs), tc.marks)
			assert.Equal(t, tc.want, p.String())
		})
	}
}

func TestNodesStageOfLen(t *testing.T) {
	g := build(t, graph.Lecture(), 60)
	narr3, _ := g.Lookup("asset:narration:segment[3]")
	video3, _ := g.Lookup("asset:video:segment[3]")
	timeline, _ := g.Lookup("timeline")
	p := planOf(t, g, edits("asset:narration:segment[3]"))
	// A plan assembled by hand from the same stages answers the same.
	hand := &planner.Plan{Graph: g, Stages: p.Stages}
	for name, p := range map[string]*planner.Plan{"new": p, "by hand": hand} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, []graph.Node{narr3, video3, timeline}, p.Nodes())
			assert.Equal(t, 3, p.Len())
			for want, n := range []graph.Node{narr3, video3, timeline} {
				s, ok := p.StageOf(n)
				assert.True(t, ok)
				assert.Equal(t, want, s)
			}
			for _, n := range []graph.Node{0, narr3 - 1, video3 + 1, graph.Node(g.Len()), -1} {
				s, ok := p.StageOf(n)
				assert.False(t, ok, "StageOf(%d)", n)
				assert.Equal(t, 0, s)
			}
		})
	}
	empty := planOf(t, g, []dirty.Mark{})
	assert.Empty(t, empty.Nodes())
	assert.Equal(t, 0, empty.Len())
	_, ok := empty.StageOf(0)
	assert.False(t, ok)
	assert.Empty(t, empty.Stages)

	zero := &planner.Plan{Graph: g}
	assert.Equal(t, 0, zero.Len())
	_, ok = zero.StageOf(0)
	assert.False(t, ok)
}

func TestNewDoesNotAliasTheSet(t *testing.T) {
	// Merging a shared key's runs must not write into the set's nodes.
	g := build(t, tmpl(batched(per("a"), "k", 2), glob("x"), batched(per("b"), "k", 2)), 30)
	set, err := dirty.Compute(g, dirty.Input{})
	require.NoError(t, err)
	before := append([]graph.Node(nil), set.Nodes()...)
	p := planner.New(set)
	require.Equal(t, before, set.Nodes())
	assert.Equal(t, []string{
		"0 batch k/2 [" + segs("a", 0, 1, 2) + " " + segs("b", 0, 1, 2) + "]",
		"0 single x",
	}, render(p))
}

func TestRemaining(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	p := planOf(t, g, nil)
	assert.Equal(t, planner.Remaining{Stages: []int{1, 7, 3, 1}, Total: 12}, p.Remaining(nil))
	none := func(graph.Node) bool { return false }
	assert.Equal(t, planner.Remaining{Stages: []int{1, 7, 3, 1}, Total: 12}, p.Remaining(none))
	done := map[string]bool{"script": true, "asset:narration:segment[0]": true, "asset:image:segment[2]": true, "asset:music": true}
	finished := func(n graph.Node) bool { return done[g.NodeID(n)] }
	assert.Equal(t, planner.Remaining{Stages: []int{0, 4, 3, 1}, Total: 8}, p.Remaining(finished))
	all := func(graph.Node) bool { return true }
	assert.Equal(t, planner.Remaining{Stages: []int{0, 0, 0, 0}, Total: 0}, p.Remaining(all))

	empty := planOf(t, g, []dirty.Mark{})
	assert.Equal(t, planner.Remaining{Stages: []int{}, Total: 0}, empty.Remaining(nil))
}

// TestInconsistentPlans gives the methods of Plan plans assembled by hand
// that New could never make: none panics, and each answers from what the
// plan holds.
func TestInconsistentPlans(t *testing.T) {
	g := build(t, graph.Lecture(), 20)
	n := func(id string) graph.Node {
		node, err := g.Lookup(id)
		require.NoError(t, err)
		return node
	}
	script, music, timeline := n("script"), n("asset:music"), n("timeline")
	narr0, video0 := n("asset:narration:segment[0]"), n("asset:video:segment[0]")
	single := func(ns ...graph.Node) planner.Group { return planner.Group{Kind: planner.Single, Nodes: ns} }
	batch := func(key string, c int, ns ...graph.Node) planner.Group {
		return planner.Group{Kind: planner.Batch, BatchKey: key, Concurrency: c, Nodes: ns}
	}
	stage := func(i int, gs ...planner.Group) planner.Stage { return planner.Stage{Index: i, Groups: gs} }
	fromNew := planOf(t, g, edits("asset:narration:segment[0]"))
	stale := *fromNew // New's index, other stages
	stale.Stages = []planner.Stage{stage(0, single(music))}
	tests := []struct {
		name    string
		p       *planner.Plan
		summary []string // by stage
		bound   time.Duration
	}{
		{"no graph", &planner.Plan{Stages: []planner.Stage{stage(0, single(script), batch("asset:narration", 4, narr0))}},
			[]string{"Stage 0: Generating 1 unknown node, 1 asset:narration node in batches of 4"}, 0},
		{"empty groups and stage", &planner.Plan{Graph: g, Stages: []planner.Stage{stage(0, single(), batch("k", 2)), stage(1)}},
			[]string{"Stage 0: Generating 0 k nodes in batches of 2", "Stage 1: Generating nothing"}, 0},
		{"nodes outside the graph", &planner.Plan{Graph: g, Stages: []planner.Stage{stage(0, single(99, graph.None), batch("asset:video", 3, video0, graph.Node(g.Len())))}},
			[]string{"Stage 0: Generating 2 unknown nodes, 2 asset:video nodes in batches of 3"}, time.Second},
		{"a node twice, out of order, in the wrong stage", &planner.Plan{Graph: g, Stages: []planner.Stage{
			stage(5, single(timeline), single(timeline), batch("asset:narration", 0, narr0, narr0, script))}},
			[]string{"Stage 5: Generating 2 timeline nodes, 3 asset:narration nodes in batches of 0"}, 3 * time.Second},
		{"unknown group kinds", &planner.Plan{Graph: g, Stages: []planner.Stage{stage(0, planner.Group{Kind: "pair", Nodes: []graph.Node{script, music}}, planner.Group{Nodes: []graph.Node{music}})}},
			[]string{"Stage 0: Generating 1 script node, 2 asset:music nodes"}, 2 * time.Second},
		// A copy of New's plan with other stages answers from its stages,
		// not from the index New built for the original's.
		{"stages replaced", &stale, []string{"Stage 0: Generating 1 asset:music node"}, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			require.NotPanics(t, func() {
				var got []string
				for i := range p.Stages {
					got = append(got, p.Summary(i))
				}
				assert.Equal(t, tc.summary, got)
				_ = p.String()
				_ = p.Len()
				for _, node := range append(p.Nodes(), -1, 0, 99) {
					p.StageOf(node)
					p.Index(node)
				}
				p.Remaining(nil)
				p.Remaining(func(graph.Node) bool { return false })
				assert.Equal(t, tc.bound, p.LowerBound(planner.Costs{Default: time.Second, Workers: 2}))
				if tc.p == &stale {
					assert.Equal(t, []graph.Node{music}, p.Nodes())
					s, ok := p.StageOf(music)
					assert.True(t, ok)
					assert.Zero(t, s)
					_, ok = p.StageOf(narr0)
					assert.False(t, ok)
				}
				b := p.AppendStagesJSON(nil)
				if data, err := p.MarshalJSON(); err == nil {
					assert.Equal(t, `{"stages":`+string(b)+`}`, string(data))
				}
				if p.Graph != nil {
					assert.Error(t, (&planner.Plan{Graph: g}).UnmarshalJSON([]byte(`{"stages":`+string(b)+`}`)))
				}
			})
		})
	}
	assert.Equal(t, "Stage 1: no such stage (the plan has 1 stage)", stale.Summary(1))
	assert.Equal(t, "Stage -1: no such stage (the plan has 1 stage)", stale.Summary(-1))
}

func TestMarshalJSONNodeOutsideTheGraph(t *testing.T) {
	g := build(t, graph.Lecture(), 20)
	p := &planner.Plan{Graph: g, Stages: []planner.Stage{{Groups: []planner.Group{
		{Kind: planner.Single, Nodes: []graph.Node{0}},
		{Kind: planner.Single, Nodes: []graph.Node{99}},
	}}}}
	_, err := p.MarshalJSON()
	var pe *planner.PlanError
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, err, planner.ErrInvalidPlan)
	assert.Equal(t, "planner: invalid plan: stage 0 group 1: node 99 is not in the graph, which has nodes 0 to 8", err.Error())
	assert.Equal(t, `[{"index":0,"groups":[{"kind":"single","nodes":["script"]},{"kind":"single","nodes":["#99"]}]}]`, string(p.AppendStagesJSON(nil)))
	none := &planner.Plan{Stages: p.Stages}
	assert.Equal(t, `[{"index":0,"groups":[{"kind":"single","nodes":["#0"]},{"kind":"single","nodes":["#99"]}]}]`, string(none.AppendStagesJSON(nil)))
}
