package planner_test

import (
	"encoding/json"
	"errors"
	"testing"

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
		`{"stages":[{"index":0,"groups":[{"kind":"batch","nodes":["timeline"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["timeline"]}]},{"index":1,"groups":[{"kind":"single","nodes":["asset:music"]}]}]}`,
		`{"stages":[{"index":0,"groups":[{"kind":"single","nodes":["asset:music","asset:music"]}]}]}`,
	} {
		f.Add([]byte(s))
	}
	orig := planOf(f, g, edits("asset:image:segment[0]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &planner.Plan{Graph: g, Stages: orig.Stages}
		before := render(p)
		if err := p.UnmarshalJSON(data); err != nil {
			if !errors.Is(err, planner.ErrInvalidPlan) {
				t.Fatalf("error %v does not wrap ErrInvalidPlan", err)
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
		// What was accepted re-encodes to a fixed point.
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q := &planner.Plan{Graph: g}
		if err := json.Unmarshal(again, q); err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		if diff := cmp.Diff(p.Stages, q.Stages); diff != "" {
			t.Fatalf("re-decoded plan differs (-first +second):\n%s", diff)
		}
	})
}
