package graph_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// randomTemplate returns a random valid template: 1 to 7 kinds, each
// global or per segment, depending on kinds created before it (so the
// kinds form a DAG) with a random scope that fits, sometimes on its own
// previous segment, with no batch key, a key of its own or a shared one.
// The kinds are then listed in a shuffled order, so template order is not
// a topological order.
func randomTemplate(r *rand.Rand) graph.Template {
	kinds := make([]graph.Kind, 1+r.IntN(7))
	sharedConc := map[string]int{}
	for i := range kinds {
		kd := graph.Kind{Name: fmt.Sprintf("k%d", i), PerSegment: r.IntN(3) > 0}
		if r.IntN(4) == 0 {
			kd.Name = "asset:" + kd.Name
		}
		for j := range i {
			if r.IntN(3) != 0 {
				continue
			}
			other := kinds[j]
			var scopes []graph.Scope
			switch {
			case !other.PerSegment:
				scopes = []graph.Scope{graph.ScopeGlobal}
			case kd.PerSegment:
				scopes = []graph.Scope{graph.ScopeSameSegment, graph.ScopePreviousSegment, graph.ScopeAllSegments}
			default:
				scopes = []graph.Scope{graph.ScopeAllSegments}
			}
			s := scopes[r.IntN(len(scopes))]
			kd.Deps = append(kd.Deps, graph.Dep{Kind: other.Name, Scope: s})
			if s == graph.ScopeSameSegment && r.IntN(3) == 0 {
				kd.Deps = append(kd.Deps, graph.Dep{Kind: other.Name, Scope: graph.ScopePreviousSegment})
			}
		}
		if kd.PerSegment && r.IntN(4) == 0 {
			kd.Deps = append(kd.Deps, graph.Dep{Kind: kd.Name, Scope: graph.ScopePreviousSegment})
		}
		r.Shuffle(len(kd.Deps), func(a, b int) { kd.Deps[a], kd.Deps[b] = kd.Deps[b], kd.Deps[a] })
		switch r.IntN(3) {
		case 1:
			kd.BatchKey, kd.Concurrency = "own:"+kd.Name, 1+r.IntN(5)
		case 2:
			key := fmt.Sprintf("shared%d", r.IntN(2))
			if _, ok := sharedConc[key]; !ok {
				sharedConc[key] = 1 + r.IntN(5)
			}
			kd.BatchKey, kd.Concurrency = key, sharedConc[key]
		}
		kinds[i] = kd
	}
	r.Shuffle(len(kinds), func(a, b int) { kinds[a], kinds[b] = kinds[b], kinds[a] })
	return graph.Template{Kinds: kinds}
}

func TestPropertyRandomTemplates(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 2))
		tm := randomTemplate(r)
		secs := 10 * (1 + r.IntN(12))
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			g, err := graph.Build(tm, secs)
			require.NoError(t, err, "template %+v", tm)
			require.NoError(t, checkGraph(g))
			if diff := cmp.Diff(naiveDeps(tm, secs/10), graphDeps(g)); diff != "" {
				t.Fatalf("graph differs from the naive expansion of %+v (-want +got):\n%s", tm, diff)
			}
			if diff := cmp.Diff(tm, g.Template(), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("Template() (-want +got):\n%s", diff)
			}
			// The same input gives byte-identical exports.
			g2, err := graph.Build(tm.Clone(), secs)
			require.NoError(t, err)
			j1, err := json.Marshal(g)
			require.NoError(t, err)
			j2, err := json.Marshal(g2)
			require.NoError(t, err)
			require.Equal(t, string(j1), string(j2))
			// The template survives a JSON round trip.
			data, err := json.Marshal(tm)
			require.NoError(t, err)
			back, err := graph.ParseTemplate(data)
			require.NoError(t, err)
			if diff := cmp.Diff(tm, back, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("ParseTemplate(Marshal) (-want +got):\n%s", diff)
			}
		})
	}
}
