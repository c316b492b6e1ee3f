package planner_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

func TestMarshalJSON(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	tests := []struct {
		name  string
		marks []dirty.Mark
		want  string
	}{
		{"one edit", edits("asset:narration:segment[1]"),
			`{"stages":[` +
				`{"index":0,"groups":[{"kind":"batch","batchKey":"asset:narration","concurrency":4,"nodes":["asset:narration:segment[1]"]}]},` +
				`{"index":1,"groups":[{"kind":"batch","batchKey":"asset:video","concurrency":3,"nodes":["asset:video:segment[1]"]}]},` +
				`{"index":2,"groups":[{"kind":"single","nodes":["timeline"]}]}]}`},
		{"music", edits("asset:music"),
			`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["asset:music"]}]},{"index":1,"groups":[{"kind":"single","nodes":["timeline"]}]}]}`},
		{"nothing", []dirty.Mark{}, `{"stages":[]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planOf(t, g, tc.marks)
			got, err := json.Marshal(p)
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
			direct, err := p.MarshalJSON()
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(direct))
			assert.Equal(t, "x"+tc.want[len(`{"stages":`):len(tc.want)-1], string(p.AppendStagesJSON([]byte("x"))))
		})
	}
	t.Run("no graph", func(t *testing.T) {
		_, err := json.Marshal(&planner.Plan{})
		require.ErrorIs(t, err, planner.ErrNoGraph)
	})
}

func TestJSONRoundTrip(t *testing.T) {
	shared := tmpl(batched(per("a", dep("a", graph.ScopePreviousSegment)), "k", 2),
		glob("x"), batched(per("b", dep("a", graph.ScopeSameSegment)), "k", 2))
	tests := []struct {
		name  string
		t     graph.Template
		secs  int
		marks []dirty.Mark
	}{
		{"new lecture", graph.Lecture(), 600, nil},
		{"one edit", graph.Lecture(), 600, edits("asset:narration:segment[3]")},
		{"several edits", graph.Lecture(), 600, edits("asset:image:segment[7]", "asset:video:segment[2]", "asset:music")},
		{"nothing", graph.Lecture(), 600, []dirty.Mark{}},
		{"shared key", shared, 50, nil},
		{"shared key edited", shared, 50, edits("a:segment[3]", "x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := build(t, tc.t, tc.secs)
			p := planOf(t, g, tc.marks)
			data, err := json.Marshal(p)
			require.NoError(t, err)

			back := &planner.Plan{Graph: g}
			require.NoError(t, json.Unmarshal(data, back))
			assert.Same(t, g, back.Graph)
			if diff := cmp.Diff(p.Stages, back.Stages); diff != "" {
				t.Fatalf("stages after a round trip (-want +got):\n%s", diff)
			}
			again, err := json.Marshal(back)
			require.NoError(t, err)
			assert.Equal(t, string(data), string(again))
			// The decoded plan answers as the original does.
			assert.Equal(t, p.Nodes(), back.Nodes())
			assert.Equal(t, p.Len(), back.Len())
			assert.Equal(t, p.String(), back.String())
			for _, n := range p.Nodes() {
				want, _ := p.StageOf(n)
				got, ok := back.StageOf(n)
				assert.True(t, ok)
				assert.Equal(t, want, got)
			}
			costs := planner.Costs{Default: time.Second, PerKind: map[string]time.Duration{"asset:video": 7 * time.Second}}
			assert.Equal(t, p.LowerBound(costs), back.LowerBound(costs))
			assert.Equal(t, p.Remaining(nil), back.Remaining(nil))
		})
	}
}

func TestUnmarshalJSONRefuses(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	grp := func(kind, key string, conc int, nodes ...string) string {
		b, _ := json.Marshal(map[string]any{"kind": kind, "batchKey": key, "concurrency": conc, "nodes": nodes})
		return string(b)
	}
	single := func(id string) string { return `{"kind":"single","nodes":["` + id + `"]}` }
	narr := func(id string) string { return grp("batch", "asset:narration", 4, id) }
	stages := func(groups ...string) string {
		var b strings.Builder
		b.WriteString(`{"stages":[`)
		for i, s := range groups {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"index":` + string(rune('0'+i)) + `,"groups":[` + s + `]}`)
		}
		b.WriteString(`]}`)
		return b.String()
	}
	tests := []struct {
		name string
		in   string
		msg  string
	}{
		{"not JSON", `stages`, "planner: invalid plan: invalid character"},
		{"empty", ``, "planner: invalid plan: no JSON value: want one JSON object"},
		// An unknown key is named with the object that holds it and the
		// keys that object allows.
		{"unknown top-level field", `{"stages":[],"graph":{}}`, `planner: invalid plan: unknown field "graph"; allowed fields: stages`},
		{"unknown group field", stages(`{"kind":"single","nodes":["timeline"],"weight":1}`), `unknown field "weight" in stages[0].groups[0]; allowed fields: batchKey, concurrency, kind, nodes`},
		{"a stage's key in a group", stages(`{"kind":"single","nodes":["timeline"],"index":0}`), `unknown field "index" in stages[0].groups[0]; allowed fields: batchKey, concurrency, kind, nodes`},
		{"a group's key in a stage", `{"stages":[{"index":0,"kind":"single","groups":[]}]}`, `unknown field "kind" in stages[0]; allowed fields: groups, index`},
		{"objects for nodes", stages(`{"kind":"single","nodes":[{"index":1,"index":2}]}`), "stage 0 group 0: nodes: json: cannot unmarshal object"},
		{"key in another case", `{"STAGES":[]}`, `key "STAGES" does not match "stages": names are case-sensitive`},
		{"group key in another case", stages(`{"KIND":"single","nodes":["timeline"]}`), `key "KIND" in stages[0].groups[0] does not match "kind"`},
		{"repeated key", `{"stages":[],"stages":[]}`, `key "stages" appears twice in one object`},
		{"repeated nodes", stages(`{"kind":"single","nodes":["timeline"],"nodes":["script"]}`), `key "nodes" appears twice`},
		{"unknown stage field", `{"stages":[{"index":0,"groups":[` + single("timeline") + `],"eta":1}]}`, `unknown field "eta" in stages[0]; allowed fields: groups, index`},
		{"trailing data", `{"stages":[]} {}`, "data after the plan object"},
		// encoding/json's scanner stops at 10,000 levels of nesting.
		{"nested too deep", `{"stages":` + strings.Repeat("[", 100_000), "planner: invalid plan: invalid character '[' exceeded max depth"},
		{"stage index out of order", `{"stages":[{"index":1,"groups":[` + single("timeline") + `]}]}`, "stage 0: index 1: stages are numbered 0, 1, 2, … in order, so this one is 0"},
		{"stage index repeated", `{"stages":[{"index":0,"groups":[` + single("asset:music") + `]},{"index":0,"groups":[` + single("timeline") + `]}]}`, "stage 1: index 0: stages are numbered"},
		{"negative index", `{"stages":[{"index":-1,"groups":[` + single("timeline") + `]}]}`, "stage 0: index -1:"},
		{"empty stage", stages(single("asset:music"), ``, single("timeline")), "stage 1: no groups: a stage holds at least one group"},
		{"unknown node", stages(narr("asset:narration:segment[3]")), `stage 0 group 0: node "asset:narration:segment[3]" is not in this graph of 12 nodes: the plan was likely made for another graph (another duration or template): graph: unknown node "asset:narration:segment[3]": segment 3 is out of range`},
		{"unknown kind", stages(single("asset:sound")), `graph: unknown node "asset:sound"`},
		{"malformed node", stages(narr("asset:narration:segment[01]")), `graph: malformed node ID "asset:narration:segment[01]"`},
		{"node twice in a group", stages(grp("batch", "asset:narration", 4, "asset:narration:segment[1]", "asset:narration:segment[1]")), `node "asset:narration:segment[1]" appears twice in the plan, first in stage 0 group 0: each node is in one group at most`},
		{"node in two stages", stages(single("asset:music"), single("asset:music")), `stage 1 group 0: node "asset:music" appears twice in the plan, first in stage 0 group 0`},
		{"wrong batch key", stages(grp("batch", "asset:image", 4, "asset:narration:segment[0]")), `node "asset:narration:segment[0]" has batch key "asset:narration" and concurrency 4, not "asset:image" and 4`},
		{"wrong concurrency", stages(grp("batch", "asset:narration", 5, "asset:narration:segment[0]")), `not "asset:narration" and 5`},
		{"batch mixing keys", stages(grp("batch", "asset:narration", 4, "asset:narration:segment[0]", "asset:image:segment[0]")), `node "asset:image:segment[0]" has batch key "asset:image"`},
		{"batch of a kind without a key", stages(`{"kind":"batch","nodes":["timeline"]}`), `stage 0 group 0: a batch group needs a batchKey and a concurrency of at least 1, not "" and 0`},
		{"batch with an empty key", stages(grp("batch", "", 1, "asset:music")), `a batch group needs a batchKey and a concurrency of at least 1, not "" and 1`},
		{"batch with concurrency 0", stages(grp("batch", "asset:narration", 0, "asset:narration:segment[0]")), `not "asset:narration" and 0`},
		{"batch with a negative concurrency", stages(grp("batch", "asset:narration", -4, "asset:narration:segment[0]")), `not "asset:narration" and -4`},
		{"batch with a key, of a kind without one", stages(grp("batch", "asset:music", 1, "asset:music")),
			`node "asset:music" is of kind "asset:music", which has no batch key: it belongs in a single group, not in a batch`},
		{"single with a batch key", stages(`{"kind":"single","batchKey":"asset:music","nodes":["asset:music"]}`), `stage 0 group 0: a single group has no batchKey or concurrency, not "asset:music" and 0`},
		{"single with concurrency", stages(`{"kind":"single","concurrency":1,"nodes":["asset:music"]}`), `a single group has no batchKey or concurrency, not "" and 1`},
		{"single with two nodes", stages(`{"kind":"single","nodes":["asset:music","script"]}`), "a single group holds one node, not 2: the nodes of a kind without a batch key are each a single"},
		{"single of a batched kind", stages(single("asset:narration:segment[0]")), `node "asset:narration:segment[0]" is of kind "asset:narration", which has batch key "asset:narration": it belongs in the stage's batch of that key, not in a single`},
		{"unknown group kind", stages(`{"kind":"pair","nodes":["timeline"]}`), `kind "pair": want single or batch`},
		{"missing group kind", stages(`{"nodes":["timeline"]}`), `kind "": want single or batch`},
		{"empty group", stages(`{"kind":"single","nodes":[]}`), "stage 0 group 0: no nodes"},
		{"null nodes", stages(`{"kind":"single","nodes":null}`), "no nodes"},
		// A key left out reads as empty, as the doc says.
		{"missing nodes", stages(`{"kind":"single"}`), "stage 0 group 0: no nodes: a group holds at least one node"},
		{"nodes not strings", stages(`{"kind":"single","nodes":[1]}`), "stage 0 group 0: nodes: json: cannot unmarshal number"},
		{"dependency in the same stage", stages(narr("asset:narration:segment[1]") + "," + grp("batch", "asset:video", 3, "asset:video:segment[1]")),
			`stage 0 group 1: node "asset:video:segment[1]" depends on "asset:narration:segment[1]", in stage 0: a dependency must come in an earlier stage`},
		{"dependency in a later stage", stages(single("timeline"), single("asset:music")),
			`stage 0 group 0: node "timeline" depends on "asset:music", in stage 1: a dependency must come in an earlier stage`},
		// What New could never make, though every node comes after its
		// dependencies.
		{"dependencies far apart", stages(single("script"), grp("batch", "asset:image", 5, "asset:image:segment[0]"), single("asset:music"), single("timeline")),
			`stage 2 group 0: node "asset:music" belongs in stage 1, the one after its latest planned dependency, "script" in stage 0: a node's stage is the length of the longest path of planned nodes to it`},
		{"a root not in stage 0", stages(narr("asset:narration:segment[1]"), grp("batch", "asset:video", 3, "asset:video:segment[1]")+","+single("asset:music"), single("timeline")),
			`stage 1 group 1: node "asset:music" depends on no node of the plan: it belongs in stage 0`},
		{"a dependent left out", stages(single("asset:music")),
			`stage 0 group 0: node "asset:music" is in the plan but "timeline", which depends on it, is not: a plan holds every node downstream of its nodes`},
		{"a key split over two batches", stages(grp("batch", "asset:image", 5, "asset:image:segment[0]")+","+grp("batch", "asset:image", 5, "asset:image:segment[2]"),
			grp("batch", "asset:video", 3, "asset:video:segment[0]", "asset:video:segment[2]"), single("timeline")),
			`stage 0 group 1: a second batch of key "asset:image", after group 0: a stage has one batch per key, with all its nodes of the key`},
		{"batch nodes out of order", stages(grp("batch", "asset:image", 5, "asset:image:segment[2]", "asset:image:segment[0]"),
			grp("batch", "asset:video", 3, "asset:video:segment[0]", "asset:video:segment[2]"), single("timeline")),
			`stage 0 group 0: node "asset:image:segment[0]" is listed after "asset:image:segment[2]": a group's nodes are in template-kind order, then by segment`},
		{"groups out of order", stages(single("asset:music")+","+grp("batch", "asset:image", 5, "asset:image:segment[0]"),
			grp("batch", "asset:video", 3, "asset:video:segment[0]"), single("timeline")),
			`stage 0 group 1: the group starts with "asset:image:segment[0]", which does not come after "asset:music", the first node of group 0: a stage's groups are in template-kind order of their first nodes, then by segment`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := planOf(t, g, edits("asset:image:segment[2]"))
			p := &planner.Plan{Graph: g, Stages: orig.Stages}
			before := render(p)
			beforeNodes := p.Nodes()
			// json.Unmarshal checks the syntax before it calls the method;
			// either way the input is refused.
			require.Error(t, json.Unmarshal([]byte(tc.in), p))
			assert.Equal(t, before, render(p), "p is unchanged")
			err := p.UnmarshalJSON([]byte(tc.in))
			require.ErrorIs(t, err, planner.ErrInvalidPlan)
			var pe *planner.PlanError
			require.ErrorAs(t, err, &pe)
			assert.Contains(t, err.Error(), tc.msg)
			assert.NotContains(t, err.Error(), "\n")
			assert.Equal(t, before, render(p), "p is unchanged")
			assert.Equal(t, beforeNodes, p.Nodes(), "p's index is unchanged")
			assert.Same(t, g, p.Graph)
		})
	}
	t.Run("no graph", func(t *testing.T) {
		var p planner.Plan
		err := json.Unmarshal([]byte(`{"stages":[]}`), &p)
		require.ErrorIs(t, err, planner.ErrNoGraph)
		assert.Equal(t, planner.Plan{}, p)
	})
}

func TestPlanError(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	decode := func(in string) *planner.PlanError {
		t.Helper()
		err := (&planner.Plan{Graph: g}).UnmarshalJSON([]byte(in))
		var pe *planner.PlanError
		require.ErrorAs(t, err, &pe)
		return pe
	}
	pe := decode(`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["asset:music"]},{"kind":"single","nodes":["asset:sound"]}]}]}`)
	assert.Equal(t, 0, pe.Stage)
	assert.Equal(t, 1, pe.Group)
	assert.Equal(t, "asset:sound", pe.Node)
	assert.Equal(t, `node "asset:sound" is not in this graph of 12 nodes: the plan was likely made for another graph (another duration or template)`, pe.Problem)
	require.ErrorIs(t, pe, graph.ErrUnknownNode)
	require.ErrorIs(t, pe, planner.ErrInvalidPlan)
	assert.Equal(t, `planner: invalid plan: stage 0 group 1: node "asset:sound" is not in this graph of 12 nodes: the plan was likely made for another graph (another duration or template): graph: unknown node "asset:sound": the template has no kind "asset:sound": its kinds are script, asset:narration, asset:image, asset:video, asset:music, timeline`, pe.Error())

	pe = decode(`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["asset:music"]}]}]}`)
	assert.Equal(t, planner.PlanError{Stage: 0, Group: 0, Node: "asset:music",
		Problem: `node "asset:music" is in the plan but "timeline", which depends on it, is not: a plan holds every node downstream of its nodes`}, *pe)

	pe = decode(`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["asset:music"]}]},{"index":0}]}`)
	assert.Equal(t, planner.PlanError{Stage: 1, Group: -1, Problem: "index 0: stages are numbered 0, 1, 2, … in order, so this one is 1"}, *pe)

	pe = decode(`{"stages":[}`)
	assert.Equal(t, -1, pe.Stage)
	assert.Equal(t, -1, pe.Group)
	var syntax *json.SyntaxError
	require.ErrorAs(t, pe, &syntax)
	assert.Equal(t, "planner: invalid plan: "+syntax.Error(), pe.Error())
}

func TestUnmarshalJSONAccepts(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"no stages", `{"stages":[]}`, nil},
		{"null stages", `{"stages":null}`, nil},
		{"no field", `{}`, nil},
		{"whitespace", " {\"stages\" : [ ] }\n\t", nil},
		{"New's plan, spaced and reordered", `{"stages":[{"groups":[{"nodes":["asset:image:segment[0]"],"concurrency":5,"batchKey":"asset:image","kind":"batch"},` +
			"\n" + `{"kind":"single","nodes":["asset:music"]}],"index":0},` +
			`{"index":1,"groups":[{"kind":"batch","batchKey":"asset:video","concurrency":3,"nodes":["asset:video:segment[0]"]}]},` +
			`{"index":2,"groups":[{"kind":"single","nodes":["tim\u0065line"]}]}]}`,
			[]string{"0 batch asset:image/5 [asset:image:segment[0]]", "0 single asset:music", "1 batch asset:video/3 [asset:video:segment[0]]", "2 single timeline"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &planner.Plan{Graph: g}
			require.NoError(t, json.Unmarshal([]byte(tc.in), p))
			assert.Equal(t, tc.want, render(p))
			if tc.want == nil {
				assert.Nil(t, p.Stages, "no stages decode as nil, as New makes them")
			}
		})
	}
}

// JSON null leaves a plan as it is, as encoding/json does for a null
// value, whether the decoder is called directly or through a field.
func TestUnmarshalJSONNullLeavesThePlan(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	set, err := dirty.Compute(g, dirty.Input{})
	require.NoError(t, err)
	p := planner.New(set)
	before, err := json.Marshal(p)
	require.NoError(t, err)
	require.NoError(t, p.UnmarshalJSON([]byte(" null ")))
	after, err := json.Marshal(p)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after))
	var unset planner.Plan // no graph: null is still no error
	require.NoError(t, unset.UnmarshalJSON([]byte("null")))
}

// A null with space around it that JSON does not allow (U+00A0, U+0085,
// \v, \f) is refused, as an object with it is.
func TestUnmarshalJSONNullWithNonJSONSpace(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	set, err := dirty.Compute(g, dirty.Input{})
	require.NoError(t, err)
	for _, in := range []string{"\u00a0null", "\vnull", "null\f", "\u0085null"} {
		p := planner.New(set)
		assert.Error(t, p.UnmarshalJSON([]byte(in)), "%q", in)
	}
	p := planner.New(set)
	assert.Error(t, p.UnmarshalJSON([]byte("\u00a0{\"stages\":[]}")), "an object with the same space is refused")
}

// TestPlanValueEncodesAsItsPointer: a Plan held by value, as in a host's
// struct, encodes in the plan's JSON form and prints its summary, as a
// *Plan does, so that it decodes again; not as a plain struct of its
// fields (the whole graph, then stages with node numbers).
func TestPlanValueEncodesAsItsPointer(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	p := planOf(t, g, edits("asset:narration:segment[1]"))
	want, err := json.Marshal(p)
	require.NoError(t, err)

	byValue, err := json.Marshal(*p)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(byValue), "json.Marshal(*p)")

	type record struct {
		Plan planner.Plan `json:"plan"`
	}
	held, err := json.Marshal(record{Plan: *p})
	require.NoError(t, err)
	require.Equal(t, `{"plan":`+string(want)+`}`, string(held), "a Plan field of a struct marshalled by value")
	back := record{Plan: planner.Plan{Graph: g}}
	require.NoError(t, json.Unmarshal(held, &back))
	if diff := cmp.Diff(p.Stages, back.Plan.Stages); diff != "" {
		t.Errorf("round trip through a struct (-want +got):\n%s", diff)
	}

	assert.Equal(t, p.String(), fmt.Sprint(*p), "fmt of a Plan value")
	assert.Equal(t, "<nil>", fmt.Sprint((*planner.Plan)(nil)), "fmt of a nil *Plan")
}

// TestUnmarshalJSONDeepNestingIsCheap: a plan nested a million levels
// deep is refused at encoding/json's limit of 10,000 levels, in memory
// about its size. Checking its keys first walked it all, holding a frame
// for each level: 338 MB allocated for these 1 MB.
func TestUnmarshalJSONDeepNestingIsCheap(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	data := []byte(`{"stages":` + strings.Repeat("[", 1<<20))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := (&planner.Plan{Graph: g}).UnmarshalJSON(data)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, planner.ErrInvalidPlan)
	assert.Contains(t, err.Error(), "exceeded max depth")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16*len(data)), "bytes allocated")
}

// TestUnmarshalJSONManyElementsIsCheap: a plan of more stages, groups or
// node entries than its graph has nodes, which no plan has (a stage
// holds a group, a group a node, and a node is in one group), is refused
// before it is decoded, in memory about its size. Decoding it first held
// 64 bytes a group for each "{}," of the input: 818 MB for 8 MB.
func TestUnmarshalJSONManyElementsIsCheap(t *testing.T) {
	g := build(t, graph.Lecture(), 30) // 12 nodes
	many := func(unit string) string { return strings.Repeat(unit+",", 1<<18) + unit }
	for _, tc := range []struct {
		name, data, msg string
	}{
		{"stages", `{"stages":[` + many(`{}`) + `]}`,
			"planner: invalid plan: stage 12: more than 12 stages: a stage holds a node of its own, and the graph has 12 nodes"},
		{"groups", `{"stages":[{"index":0,"groups":[` + many(`{}`) + `]}]}`,
			"planner: invalid plan: stage 0 group 12: more than 12 groups: a group holds a node of its own, and the graph has 12 nodes"},
		{"groups over stages", `{"stages":[` + strings.Repeat(`{"groups":[{},{}]},`, 6) + `{"groups":[{},{}]}]}`,
			"planner: invalid plan: stage 6 group 0: more than 12 groups"},
		{"nodes", `{"stages":[{"index":0,"groups":[{"kind":"single","nodes":[` + many(`""`) + `]}]}]}`,
			"planner: invalid plan: stage 0 group 0: more than 12 nodes: a node is in one group at most, and the graph has 12 nodes"},
		{"stages of a graph of one node", `{"stages":[{},{}]}`,
			"planner: invalid plan: stage 1: more than 1 stage: a stage holds a node of its own, and the graph has 1 node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := g
			if strings.Contains(tc.name, "one node") {
				g = build(t, graph.Template{Kinds: []graph.Kind{{Name: "a"}}}, 10)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := (&planner.Plan{Graph: g}).UnmarshalJSON([]byte(tc.data))
			runtime.ReadMemStats(&after)
			var pe *planner.PlanError
			require.ErrorAs(t, err, &pe)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16*len(tc.data)+1<<16), "bytes allocated")
		})
	}
}

// TestUnmarshalJSONLongValues: a group's kind or batch key too long to
// be valid is named by its first bytes and its length, not whole: a
// batch key of a megabyte was refused with a message of a megabyte.
func TestUnmarshalJSONLongValues(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	long := strings.Repeat("k", 1<<20)
	digits := strings.Repeat("9", 1<<20)
	for _, data := range []string{
		`{"stages":[{"index":0,"groups":[{"kind":"single","batchKey":"` + long + `","nodes":["timeline"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"batch","batchKey":"` + long + `","nodes":["timeline"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"batch","batchKey":"` + long + `","concurrency":1,"nodes":["asset:narration:segment[0]"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"` + long + `","nodes":["timeline"]}]}]}`,
		// Literals that encoding/json's type error, or a refused key's
		// error, quoted whole.
		`{"stages":[{"index":` + digits + `}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"batch","batchKey":"k","concurrency":-` + digits + `,"nodes":["timeline"]}]}]}`,
		`{"stages":[{"index":0,"` + long + `":1}]}`,
		`{"Stages` + long + `":[]}`,
	} {
		err := (&planner.Plan{Graph: g}).UnmarshalJSON([]byte(data))
		require.ErrorIs(t, err, planner.ErrInvalidPlan)
		if !assert.Less(t, len(err.Error()), 1000, "%.300s", err) {
			continue
		}
		assert.Regexp(t, `… \(\d+ bytes\)`, err.Error())
	}
}

// chunks records the writes it is given, and fails from the write after
// failAfter when failAfter is positive.
type chunks struct {
	writes    [][]byte
	failAfter int
}

func (c *chunks) Write(b []byte) (int, error) {
	if c.failAfter > 0 && len(c.writes) >= c.failAfter {
		c.writes = append(c.writes, nil)
		return 0, errors.New("disk full")
	}
	c.writes = append(c.writes, slices.Clone(b))
	return len(b), nil
}

// TestWriteStagesJSON: WriteStagesJSON writes what AppendStagesJSON
// appends, in pieces of about 32 KiB, so that a command that prints a
// plan of millions of nodes need not hold its JSON whole; a failed write
// ends it with the writer's error.
func TestWriteStagesJSON(t *testing.T) {
	for _, secs := range []int{30, 86_400} {
		g := build(t, graph.Lecture(), secs)
		for _, marks := range [][]dirty.Mark{nil, edits("asset:narration:segment[1]")} {
			p := planOf(t, g, marks)
			var c chunks
			require.NoError(t, p.WriteStagesJSON(&c))
			want := p.AppendStagesJSON(nil)
			assert.Equal(t, string(want), string(bytes.Join(c.writes, nil)), "%d s", secs)
			for i, w := range c.writes {
				assert.LessOrEqual(t, len(w), 33<<10, "write %d of %d", i, len(c.writes))
			}
			if secs > 30 && marks == nil {
				assert.Greater(t, len(c.writes), 20, "writes of %d bytes", len(want))
			}
		}
	}
	g := build(t, graph.Lecture(), 86_400)
	c := chunks{failAfter: 2}
	err := planOf(t, g, nil).WriteStagesJSON(&c)
	assert.EqualError(t, err, "disk full")
	assert.Len(t, c.writes, 3, "no write after the failed one")
}

// errFull is the error of a full writer.
var errFull = errors.New("disk full")

// budget takes left bytes, then writes what it can of the next write
// and fails, as a full disk or a closed connection does. With short set,
// it takes what it can and returns no error, breaking io.Writer's
// contract.
type budget struct {
	got        []byte
	left       int
	short      bool
	writes     int // calls to Write
	afterError int // calls to Write after one failed
}

func (w *budget) Write(b []byte) (int, error) {
	w.writes++
	if w.left < 0 {
		w.afterError++
		return 0, errFull
	}
	if len(b) <= w.left {
		w.got = append(w.got, b...)
		w.left -= len(b)
		return len(b), nil
	}
	n := w.left
	w.got = append(w.got, b[:n]...)
	w.left = -1
	if w.short {
		return n, nil
	}
	return n, errFull
}

// TestWriteStagesJSONStopsAtTheFirstError: WriteStagesJSON stops at the
// writer's first error, after the bytes that the writer took, and returns
// that error; a writer that takes fewer bytes than it is given without an
// error is io.ErrShortWrite. Such a short write was taken as whole, and
// WriteStagesJSON went on, returning nil for JSON with a hole in it.
func TestWriteStagesJSONStopsAtTheFirstError(t *testing.T) {
	g := build(t, graph.Lecture(), 86_400)
	p := planOf(t, g, nil)
	want := p.AppendStagesJSON(nil)
	for _, n := range []int{0, 1, 100, writeChunkForTest - 1, writeChunkForTest + 7, 5 * writeChunkForTest, len(want) - 1} {
		for _, short := range []bool{false, true} {
			w := budget{left: n, short: short}
			err := p.WriteStagesJSON(&w)
			if short {
				assert.ErrorIs(t, err, io.ErrShortWrite, "after %d bytes", n)
			} else {
				assert.ErrorIs(t, err, errFull, "after %d bytes", n)
			}
			assert.Equal(t, string(want[:n]), string(w.got), "after %d bytes, short %v", n, short)
			assert.Zero(t, w.afterError, "writes after the failed one (%d bytes, short %v)", n, short)
		}
	}
	w := budget{left: len(want)}
	require.NoError(t, p.WriteStagesJSON(&w))
	assert.Equal(t, string(want), string(w.got))
}

// writeChunkForTest is about the size of WriteStagesJSON's writes.
const writeChunkForTest = 32 << 10
