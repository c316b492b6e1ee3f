package graph_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	dgraph "github.com/dominikbraun/graph"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// randomKindGraph returns a template of 1 to 8 kinds whose dependencies
// go in any direction, with scopes that fit, so that many have cycles.
func randomKindGraph(r *rand.Rand) graph.Template {
	kinds := make([]graph.Kind, 1+r.IntN(8))
	for i := range kinds {
		kinds[i] = graph.Kind{Name: fmt.Sprintf("k%d", i), PerSegment: r.IntN(2) == 0}
	}
	for i := range kinds {
		for _, j := range r.Perm(len(kinds)) {
			if r.IntN(4) != 0 {
				continue
			}
			var s graph.Scope
			switch {
			case !kinds[j].PerSegment:
				s = graph.ScopeGlobal
			case kinds[i].PerSegment:
				s = []graph.Scope{graph.ScopeSameSegment, graph.ScopePreviousSegment, graph.ScopeAllSegments}[r.IntN(3)]
			default:
				s = graph.ScopeAllSegments
			}
			kinds[i].Deps = append(kinds[i].Deps, graph.Dep{Kind: kinds[j].Name, Scope: s})
		}
	}
	return graph.Template{Kinds: kinds}
}

// firstRefusedEdge adds the template's kind edges, dependents in template
// order and dependencies as listed, to a dominikbraun graph with
// PreventCycles, and returns the first edge it refuses: (dependency,
// dependent), or ok false when it refuses none.
func firstRefusedEdge(t *testing.T, tm graph.Template) (from, to string, ok bool) {
	g := dgraph.New(dgraph.StringHash, dgraph.Directed(), dgraph.PreventCycles())
	for _, k := range tm.Kinds {
		require.NoError(t, g.AddVertex(k.Name))
	}
	for _, k := range tm.Kinds {
		for _, d := range k.Deps {
			if d.Kind == k.Name && d.Scope == graph.ScopePreviousSegment {
				continue // a chain of a kind's own segments, not a cycle
			}
			err := g.AddEdge(d.Kind, k.Name)
			switch {
			case err == nil, errors.Is(err, dgraph.ErrEdgeAlreadyExists):
			case errors.Is(err, dgraph.ErrEdgeCreatesCycle):
				return d.Kind, k.Name, true
			default:
				t.Fatal(err)
			}
		}
	}
	return "", "", false
}

// TestCycleMatchesPreventCycles checks the cycle Validate names against
// dominikbraun's PreventCycles adding the edges one by one: the cycle
// goes through the first edge it refuses, and is a real cycle.
func TestCycleMatchesPreventCycles(t *testing.T) {
	cyclic := 0
	for seed := range uint64(500) {
		tm := randomKindGraph(rand.New(rand.NewPCG(seed, 3)))
		err := tm.Validate()
		from, to, refused := firstRefusedEdge(t, tm)
		var ce *graph.CycleError
		if !errors.As(err, &ce) {
			// Some random templates break another rule first (a dependency
			// listed twice); those cannot be compared.
			var te *graph.TemplateError
			if errors.As(err, &te) {
				continue
			}
			require.False(t, refused, "seed %d: Validate found no cycle, PreventCycles refused %s -> %s", seed, from, to)
			continue
		}
		cyclic++
		require.True(t, refused, "seed %d: Validate found cycle %v, PreventCycles none", seed, ce.Kinds)
		// "to" depends on "from": in the cycle, "to" is followed by "from".
		i := slices.Index(ce.Kinds, to)
		require.GreaterOrEqual(t, i, 0, "seed %d: cycle %v misses %s", seed, ce.Kinds, to)
		require.Equal(t, from, ce.Kinds[(i+1)%len(ce.Kinds)], "seed %d: cycle %v does not go %s -> %s", seed, ce.Kinds, to, from)
		deps := map[string][]string{}
		for _, k := range tm.Kinds {
			for _, d := range k.Deps {
				if d.Kind != k.Name || d.Scope != graph.ScopePreviousSegment {
					deps[k.Name] = append(deps[k.Name], d.Kind)
				}
			}
		}
		for i, k := range ce.Kinds {
			require.Contains(t, deps[k], ce.Kinds[(i+1)%len(ce.Kinds)], "seed %d: %v", seed, ce.Kinds)
			if i > 0 {
				require.NotEqual(t, ce.Kinds[0], k, "a kind twice in %v", ce.Kinds)
			}
		}
		// Canonical rotation: starts at the kind first in the template.
		idx := func(name string) int {
			return slices.IndexFunc(tm.Kinds, func(k graph.Kind) bool { return k.Name == name })
		}
		for _, k := range ce.Kinds[1:] {
			require.Less(t, idx(ce.Kinds[0]), idx(k))
		}
	}
	require.Greater(t, cyclic, 100, "too few cyclic templates to mean anything")
}

// TestValidateLargeTemplate validates templates of many kinds that each
// depend on all before them, with and without a cycle. Naming the cycle
// by adding edges one by one to a PreventCycles graph took a minute at
// 512 kinds; it is now linear-logarithmic.
func TestValidateLargeTemplate(t *testing.T) {
	const k = 512
	kinds := make([]graph.Kind, k)
	for i := range kinds {
		kinds[i] = glob(fmt.Sprintf("k%d", i))
		for j := range i {
			kinds[i].Deps = append(kinds[i].Deps, dep(fmt.Sprintf("k%d", j), graph.ScopeGlobal))
		}
	}
	require.NoError(t, graph.Template{Kinds: kinds}.Validate())
	kinds[0].Deps = []graph.Dep{dep(fmt.Sprintf("k%d", k-1), graph.ScopeGlobal)}
	err := graph.Template{Kinds: kinds}.Validate()
	var ce *graph.CycleError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{"k0", "k511"}, ce.Kinds)
}

// TestCycleErrorWithoutKinds: a CycleError a host makes itself, as in a
// test's want value, has no Kinds; its message says what it can rather
// than panic on the missing first kind.
func TestCycleErrorWithoutKinds(t *testing.T) {
	for _, e := range []*graph.CycleError{{}, {Kinds: []string{}}} {
		require.NotPanics(t, func() { _ = e.Error() })
		require.Equal(t, "graph: cycle among kinds", e.Error())
		require.ErrorIs(t, e, graph.ErrCycle)
	}
}

// TestNamingACycleCostsAboutAValidation: naming the cycle of a template
// of MaxKinds kinds, each depending on all before it (523,776
// dependencies), costs about what validating the same template without
// the cycle does, counted in allocations and bytes, not time. It
// confirmed the cycle with dominikbraun's CreatesCycle on a graph of
// every edge before the closing one: a map entry an edge, twice, which
// took 1.1 million allocations and 700 MB where validation takes 23,000
// and 90 MB (1.4 s on a host's template of 1,024 kinds).
func TestNamingACycleCostsAboutAValidation(t *testing.T) {
	const k = graph.MaxKinds
	kinds := make([]graph.Kind, k)
	for i := range kinds {
		kinds[i] = glob(fmt.Sprintf("k%d", i))
		for j := range i {
			kinds[i].Deps = append(kinds[i].Deps, dep(fmt.Sprintf("k%d", j), graph.ScopeGlobal))
		}
	}
	cost := func(tm graph.Template) (allocs, bytes uint64, err error) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = tm.Validate()
		runtime.ReadMemStats(&after)
		return after.Mallocs - before.Mallocs, after.TotalAlloc - before.TotalAlloc, err
	}
	allocs, bytes, err := cost(graph.Template{Kinds: kinds})
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		from int // kind from depends on kind k-1, closing a cycle
		want []string
	}{
		{"first kind", 0, []string{"k0", "k1023"}},
		{"a middle kind", 500, []string{"k500", "k1023"}},
		{"last kind, on itself", k - 1, []string{"k1023"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cyclic := graph.Template{Kinds: slices.Clone(kinds)}.Clone()
			cyclic.Kinds[tc.from].Deps = append(cyclic.Kinds[tc.from].Deps, dep("k1023", graph.ScopeGlobal))
			a, b, err := cost(cyclic)
			var ce *graph.CycleError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.want, ce.Kinds)
			assert.Less(t, a, 2*allocs+1000, "allocations: validating without the cycle made %d", allocs)
			assert.Less(t, b, 3*bytes, "bytes allocated: validating without the cycle allocated %d", bytes)
		})
	}
}
