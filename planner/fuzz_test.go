package planner_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

func FuzzUnmarshalJSON(f *testing.F) {
	g, err := graph.Build(graph.Lecture(), 30)
	if err != nil {
		f.Fatal(err)
	}
	for _, marks := range [][]dirty.Mark{nil, {}, edits("asset:narration:segment[1]"), edits("asset:music", "asset:image:segment[2]")} {
		data, err := json.Marshal(planOf(f, g, marks))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{"stages":[]}`, `{}`, `null`, `{"stages":[{"index":0,"groups":[]}]}`,
		`{"stages":[{"index":` + strings.Repeat("9", 5000) + `}]}`, `{"stages":[{"index":0,"` + strings.Repeat("k", 5000) + `":1}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"batch","nodes":["timeline"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["timeline"]}]},{"index":1,"groups":[{"kind":"single","nodes":["asset:music"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["asset:music","asset:music"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["asset:music"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["asset:music"]},{"kind":"batch","batchKey":"asset:image","concurrency":5,"nodes":["asset:image:segment[0]"]}]},{"index":1,"groups":[{"kind":"batch","batchKey":"asset:video","concurrency":3,"nodes":["asset:video:segment[0]"]}]},{"index":2,"groups":[{"kind":"single","nodes":["timeline"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"batch","batchKey":"asset:image","concurrency":5,"nodes":["asset:image:segment[2]"]},{"kind":"batch","batchKey":"asset:image","concurrency":5,"nodes":["asset:image:segment[0]"]}]},{"index":1,"groups":[{"kind":"batch","batchKey":"asset:video","concurrency":3,"nodes":["asset:video:segment[0]","asset:video:segment[2]"]}]},{"index":2,"groups":[{"kind":"single","nodes":["timeline"]}]}]}`,
	} {
		f.Add([]byte(s))
	}
	orig := planOf(f, g, edits("asset:image:segment[0]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &planner.Plan{Graph: g, Stages: orig.Stages}
		before := render(p)
		if err := p.UnmarshalJSON(data); err != nil {
			var pe *planner.PlanError
			if !errors.Is(err, planner.ErrInvalidPlan) || !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *PlanError wrapping ErrInvalidPlan", err)
			}
			// A long literal of the input is cut: no message is mostly input.
			if n := len(err.Error()); n > 4096 {
				t.Fatalf("message of %d bytes: %.300s", n, err)
			}
			if diff := cmp.Diff(before, render(p)); diff != "" {
				t.Fatalf("p changed on error (-before +after):\n%s", diff)
			}
			return
		}
		// Every node appears once, after its planned dependencies.
		seen := map[graph.Node]int{}
		for si, st := range p.Stages {
			if st.Index != si || len(st.Groups) == 0 {
				t.Fatalf("stage %d: index %d, %d groups", si, st.Index, len(st.Groups))
			}
			for _, grp := range st.Groups {
				for _, n := range grp.Nodes {
					if _, dup := seen[n]; dup {
						t.Fatalf("%s twice", g.NodeID(n))
					}
					seen[n] = si
				}
			}
		}
		for n, s := range seen {
			for _, d := range g.Deps(n) {
				if ds, ok := seen[d]; ok && ds >= s {
					t.Fatalf("%s in stage %d depends on %s in stage %d", g.NodeID(n), s, g.NodeID(d), ds)
				}
			}
			if got, ok := p.StageOf(n); !ok || got != s {
				t.Fatalf("StageOf(%s) = %d, %v; want %d", g.NodeID(n), got, ok, s)
			}
		}
		if p.Len() != len(seen) || p.Remaining(nil).Total != len(seen) {
			t.Fatalf("Len %d, Remaining %d, want %d", p.Len(), p.Remaining(nil).Total, len(seen))
		}
		_ = p.String()
		_ = p.LowerBound(planner.Costs{Default: 1})
		// What was accepted is the plan New makes of its nodes, byte for
		// byte: every invariant of New's plans holds.
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := canonicalJSON(t, p); string(again) != string(want) {
			t.Fatalf("accepted %s\nwhich re-encodes as %s\nbut New plans its nodes as %s", data, again, want)
		}
		// And it re-decodes to itself.
		q := &planner.Plan{Graph: g}
		if err := json.Unmarshal(again, q); err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		if diff := cmp.Diff(p.Stages, q.Stages); diff != "" {
			t.Fatalf("re-decoded plan differs (-first +second):\n%s", diff)
		}
		third, err := json.Marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		if string(third) != string(again) {
			t.Fatalf("re-encoding is not a fixed point:\n%s\n%s", again, third)
		}
	})
}

// FuzzPlanMethods assembles plans by hand from the fuzzer's bytes, with
// whatever New would never make (empty groups and stages, nodes outside
// the graph or twice, unknown group kinds, any index, key and
// concurrency), and calls every method: none may panic, and MarshalJSON
// and UnmarshalJSON refuse what is not a plan New could make.
func FuzzPlanMethods(f *testing.F) {
	g, err := graph.Build(graph.Lecture(), 20)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{}, true)
	f.Add([]byte{0, 1, 0, 2, 3, 4, 1, 9, 8, 7, 255, 3}, true)
	f.Add([]byte{1, 0, 0, 0, 5, 2, 1, 1, 2, 3}, false)
	kinds := []planner.GroupKind{planner.Single, planner.Batch, "", "pair"}
	keys := []string{"", "asset:narration", "asset:video", "k"}
	f.Fuzz(func(t *testing.T, data []byte, withGraph bool) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		var stages []planner.Stage
		for len(data) > 0 {
			st := planner.Stage{Index: next() - 2}
			for range next() % 4 {
				grp := planner.Group{Kind: kinds[next()%4], BatchKey: keys[next()%4], Concurrency: next()%5 - 1}
				for range next() % 5 {
					grp.Nodes = append(grp.Nodes, graph.Node(next()%(g.Len()+4)-2))
				}
				st.Groups = append(st.Groups, grp)
			}
			stages = append(stages, st)
		}
		p := &planner.Plan{Stages: stages}
		if withGraph {
			p.Graph = g
		}
		_ = p.String()
		_ = p.Len()
		for _, n := range append(p.Nodes(), -1, 0, graph.Node(g.Len())) {
			p.StageOf(n)
			p.Index(n)
		}
		_ = p.Remaining(nil)
		_ = p.LowerBound(planner.Costs{Default: time.Second, Workers: 3})
		_ = p.LowerBound(planner.Costs{Default: time.Second, Staged: true, Limits: map[string]int{"asset:video": 1},
			Rates: map[string]planner.Rate{"asset:video": {Starts: 1, Per: time.Second}, "asset:narration": {Starts: 2, Per: time.Minute}}})
		_ = p.LowerBound(planner.Costs{Default: time.Second, Rates: map[string]planner.Rate{"asset:video": {Starts: 1, Per: time.Second}}})
		b := p.AppendStagesJSON(nil)
		var w bytes.Buffer
		if err := p.WriteStagesJSON(&w); err != nil || w.String() != string(b) {
			t.Fatalf("WriteStagesJSON %s (%v), AppendStagesJSON %s", w.Bytes(), err, b)
		}
		data, err := p.MarshalJSON()
		if err == nil && string(data) != `{"stages":`+string(b)+`}` {
			t.Fatalf("MarshalJSON %s, AppendStagesJSON %s", data, b)
		}
		q := &planner.Plan{Graph: g}
		if err := q.UnmarshalJSON([]byte(`{"stages":` + string(b) + `}`)); err == nil {
			if again, _ := q.MarshalJSON(); string(again) != string(canonicalJSON(t, q)) {
				t.Fatalf("accepted %s, which New does not make", b)
			}
		}
	})
}

// FuzzNew plans the random scenario of a seed (a template, states,
// marks and missing assets, as TestPropertyRandom draws them) twice from
// scratch: the two plans write the same JSON and text, byte for byte;
// the plan has every node of the set once; and its JSON reads back as
// the same plan.
func FuzzNew(f *testing.F) {
	for _, seed := range []uint64{0, 1, 7, 97, 114, 1 << 40} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		sc := randomScenario(seed)
		g, set, p := sc.run(t)
		_, _, p2 := sc.run(t)
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("MarshalJSON of New's plan: %v", err)
		}
		data2, err := json.Marshal(p2)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != string(data2) || p.String() != p2.String() {
			t.Fatalf("seed %d: two plans of one set differ:\n%s\n%s\n%s\n%s", seed, data, data2, p, p2)
		}
		if p.Len() != set.Len() {
			t.Fatalf("seed %d: %d nodes planned of %d", seed, p.Len(), set.Len())
		}
		for _, n := range set.Nodes() {
			if _, ok := p.StageOf(n); !ok {
				t.Fatalf("seed %d: %s is not planned", seed, g.NodeID(n))
			}
		}
		q := &planner.Plan{Graph: g}
		if err := json.Unmarshal(data, q); err != nil {
			t.Fatalf("seed %d: reading %s: %v", seed, data, err)
		}
		if diff := cmp.Diff(p.Stages, q.Stages); diff != "" {
			t.Fatalf("seed %d: the plan read back differs (-New +read):\n%s", seed, diff)
		}
	})
}
