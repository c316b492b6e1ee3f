package planner_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/planner"
)

// scenario is one random input: a template, a duration, states (nil for
// a new graph), marks and the assets the integrity check reports gone.
type scenario struct {
	t       graph.Template
	secs    int
	status  []dirty.Status // nil: no states
	marks   []dirty.Mark
	missing []bool // by node; nil: no integrity check
	costs   map[string]time.Duration
}

func randomScenario(seed uint64) scenario {
	r := rand.New(rand.NewPCG(seed, 1))
	sc := scenario{t: testgraph.RandomTemplate(r), secs: 10 * (1 + r.IntN(12))}
	g, err := graph.Build(sc.t, sc.secs)
	if err != nil {
		panic(err)
	}
	v := g.Len()
	if r.IntN(6) > 0 {
		sc.status = make([]dirty.Status, v)
		for n := range sc.status {
			sc.status[n] = dirty.StatusClean
			if r.IntN(10) == 0 {
				sc.status[n] = dirty.Status(r.IntN(6))
			}
		}
	}
	if r.IntN(3) > 0 {
		sc.missing = make([]bool, v)
		for n := range sc.missing {
			sc.missing[n] = r.IntN(15) == 0
		}
	}
	markable := []dirty.Reason{dirty.ReasonEdited, dirty.ReasonForced, dirty.ReasonAssetMissing}
	for range r.IntN(4) {
		sc.marks = append(sc.marks, dirty.Mark{ID: g.NodeID(graph.Node(r.IntN(v))), Reason: markable[r.IntN(3)]})
	}
	sc.costs = map[string]time.Duration{}
	for _, k := range sc.t.Kinds {
		sc.costs[k.Name] = time.Duration(r.IntN(100)) * time.Millisecond
	}
	return sc
}

// run builds the graph, the set and the plan of a scenario from scratch.
func (sc scenario) run(t testing.TB) (*graph.Graph, *dirty.Set, *planner.Plan) {
	t.Helper()
	g, err := graph.Build(sc.t.Clone(), sc.secs)
	require.NoError(t, err)
	in := dirty.Input{Marks: slices.Clone(sc.marks)}
	if sc.status != nil {
		in.States = dirty.NewStates(g.Len())
		for n, s := range sc.status {
			in.States.Set(graph.Node(n), dirty.State{Status: s})
		}
	}
	if sc.missing != nil {
		in.AssetExists = func(n graph.Node, _ dirty.State) bool { return !sc.missing[n] }
	}
	set, err := dirty.Compute(g, in)
	require.NoError(t, err)
	return g, set, planner.New(set)
}

// naiveWhys computes, without cleverness, which nodes are dirty and why:
// the roots' own reasons (the strongest mark, else the status, else a
// missing asset), then reachability over Deps until nothing changes.
func (sc scenario) naiveWhys(g *graph.Graph) map[graph.Node]dirty.Why {
	v := g.Len()
	own := make([]dirty.Reason, v)
	for _, m := range sc.marks {
		n, _ := g.Lookup(m.ID)
		if own[n] == 0 || m.Reason < own[n] {
			own[n] = m.Reason
		}
	}
	statusReason := map[dirty.Status]dirty.Reason{
		dirty.StatusMissing: dirty.ReasonNeverGenerated, dirty.StatusDirty: dirty.ReasonStale,
		dirty.StatusRunning: dirty.ReasonInterrupted, dirty.StatusFailed: dirty.ReasonFailed,
		dirty.StatusCancelled: dirty.ReasonCancelled,
	}
	for n := range v {
		if own[n] != 0 {
			continue
		}
		switch {
		case sc.status == nil:
			own[n] = dirty.ReasonNeverGenerated
		case sc.status[n] != dirty.StatusClean:
			own[n] = statusReason[sc.status[n]]
		case sc.missing != nil && sc.missing[n]:
			own[n] = dirty.ReasonAssetMissing
		}
	}
	// Reachability, to a fixpoint: a node is dirty if it has a reason of
	// its own or any dependency is dirty.
	isDirty := make([]bool, v)
	for changed := true; changed; {
		changed = false
		for n := range v {
			if isDirty[n] {
				continue
			}
			isDirty[n] = own[n] != 0
			for _, d := range g.Deps(graph.Node(n)) {
				isDirty[n] = isDirty[n] || isDirty[d]
			}
			changed = changed || isDirty[n]
		}
	}
	// A node without a reason of its own comes from its lowest-indexed
	// dirty dependency; its root is where following From ends.
	from := func(n graph.Node) graph.Node {
		lowest := graph.None
		for _, d := range g.Deps(n) {
			if isDirty[d] && (lowest == graph.None || d < lowest) {
				lowest = d
			}
		}
		return lowest
	}
	whys := map[graph.Node]dirty.Why{}
	for n := range v {
		node := graph.Node(n)
		switch {
		case !isDirty[n]:
		case own[n] != 0:
			whys[node] = dirty.Why{Reason: own[n], From: graph.None, Root: node}
		default:
			root := from(node)
			for own[root] == 0 {
				root = from(root)
			}
			whys[node] = dirty.Why{Reason: dirty.ReasonUpstream, From: from(node), Root: root}
		}
	}
	return whys
}

// naiveStages returns each dirty node's longest path from the dirty
// roots, counting dirty nodes only, by memoised recursion over Deps.
func naiveStages(g *graph.Graph, dirtySet map[graph.Node]dirty.Why) map[graph.Node]int {
	stage := map[graph.Node]int{}
	var visit func(n graph.Node) int
	visit = func(n graph.Node) int {
		if s, ok := stage[n]; ok {
			return s
		}
		s := 0
		for _, d := range g.Deps(n) {
			if _, ok := dirtySet[d]; ok {
				s = max(s, visit(d)+1)
			}
		}
		stage[n] = s
		return s
	}
	for n := range dirtySet {
		visit(n)
	}
	return stage
}

func TestPropertyRandom(t *testing.T) {
	for seed := range uint64(400) {
		sc := randomScenario(seed)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			g, set, p := sc.run(t)
			whys := sc.naiveWhys(g)

			// The dirty set is exactly brute-force reachability from the
			// roots, and every Why is the naive one.
			got := map[graph.Node]dirty.Why{}
			for i, n := range set.Nodes() {
				got[n] = set.Whys()[i]
			}
			if diff := cmp.Diff(whys, got); diff != "" {
				t.Fatalf("dirty set of %+v (-naive +Compute):\n%s", sc, diff)
			}
			for n := range g.Len() {
				node := graph.Node(n)
				_, want := whys[node]
				require.Equal(t, want, set.Has(node), "Has(%s)", g.NodeID(node))
			}
			// Chains follow From to the root.
			for _, n := range set.Nodes() {
				chain := set.Chain(n)
				require.Equal(t, n, chain[0])
				require.Equal(t, got[n].Root, chain[len(chain)-1])
				for i := 1; i < len(chain); i++ {
					require.Equal(t, got[chain[i-1]].From, chain[i])
					require.Contains(t, g.Deps(chain[i-1]), chain[i])
				}
			}

			// Every dirty node is in exactly one group, and nothing else is.
			count := map[graph.Node]int{}
			stageOf := map[graph.Node]int{}
			for si, st := range p.Stages {
				require.Equal(t, si, st.Index)
				require.NotEmpty(t, st.Groups, "stage %d is empty", si)
				prevKind := -1
				keys := map[string]bool{}
				for _, grp := range st.Groups {
					require.NotEmpty(t, grp.Nodes)
					// Groups in template-kind order: a group's place is its
					// first node's kind.
					first := g.KindOf(grp.Nodes[0])
					require.GreaterOrEqual(t, first, prevKind, "stage %d groups out of template order: %v", si, render(p))
					prevKind = first
					for i, n := range grp.Nodes {
						count[n]++
						stageOf[n] = si
						key, conc := g.BatchKey(g.KindOf(n))
						if grp.Kind == planner.Single {
							require.Empty(t, key, "%s is a single but has a batch key", g.NodeID(n))
							require.Len(t, grp.Nodes, 1)
							require.Empty(t, grp.BatchKey)
							require.Zero(t, grp.Concurrency)
						} else {
							require.Equal(t, planner.Batch, grp.Kind)
							require.Equal(t, key, grp.BatchKey, "%s in the wrong batch", g.NodeID(n))
							require.Equal(t, conc, grp.Concurrency)
						}
						if i > 0 {
							// By kind in template order, then by segment.
							a, b := grp.Nodes[i-1], n
							ka, kb := g.KindOf(a), g.KindOf(b)
							require.True(t, ka < kb || ka == kb && g.SegmentOf(a) < g.SegmentOf(b),
								"group nodes out of order: %s before %s", g.NodeID(a), g.NodeID(b))
						}
					}
					if grp.Kind == planner.Batch {
						require.False(t, keys[grp.BatchKey], "stage %d has two batches of key %q", si, grp.BatchKey)
						keys[grp.BatchKey] = true
					}
				}
			}
			require.Len(t, count, len(whys))
			for n := range whys {
				require.Equal(t, 1, count[n], "%s is in %d groups", g.NodeID(n), count[n])
			}

			// A node's stage is its longest path from the roots, and
			// greater than its dirty dependencies' stages.
			stages := naiveStages(g, whys)
			for n, s := range stages {
				require.Equal(t, s, stageOf[n], "stage of %s", g.NodeID(n))
				got, ok := p.StageOf(n)
				require.True(t, ok)
				require.Equal(t, s, got)
				for _, d := range g.Deps(n) {
					if _, ok := whys[d]; ok {
						require.Greater(t, s, stages[d], "%s is not after its dirty dependency %s", g.NodeID(n), g.NodeID(d))
					}
				}
			}
			require.Equal(t, len(whys), p.Len())

			// The lower bound is the larger of the critical path and each
			// key's work over its concurrency.
			require.Equal(t, naiveBound(g, stages, sc.costs), p.LowerBound(planner.Costs{PerKind: sc.costs}))

			// The same input gives byte-identical JSON, marshalled twice
			// and built again from scratch.
			j1, err := json.Marshal(p)
			require.NoError(t, err)
			j2, err := json.Marshal(p)
			require.NoError(t, err)
			require.Equal(t, string(j1), string(j2))
			g2, set2, p2 := sc.run(t)
			j3, err := json.Marshal(p2)
			require.NoError(t, err)
			require.Equal(t, string(j1), string(j3))
			gj1, err := json.Marshal(g)
			require.NoError(t, err)
			gj2, err := json.Marshal(g2)
			require.NoError(t, err)
			require.Equal(t, string(gj1), string(gj2))
			for _, n := range set.Nodes() {
				require.Equal(t, set.Explain(n), set2.Explain(n))
			}

			// And it decodes to the same plan.
			back := &planner.Plan{Graph: g}
			require.NoError(t, json.Unmarshal(j1, back))
			if diff := cmp.Diff(p.Stages, back.Stages); diff != "" {
				t.Fatalf("JSON round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// naiveBound is LowerBound by its definition: the longest chain of
// planned nodes weighted by cost, against each batch key's total cost
// over its concurrency.
func naiveBound(g *graph.Graph, planned map[graph.Node]int, costs map[string]time.Duration) time.Duration {
	cost := func(n graph.Node) time.Duration { return costs[g.KindName(g.KindOf(n))] }
	finish := map[graph.Node]time.Duration{}
	var visit func(n graph.Node) time.Duration
	visit = func(n graph.Node) time.Duration {
		if f, ok := finish[n]; ok {
			return f
		}
		var ready time.Duration
		for _, d := range g.Deps(n) {
			if _, ok := planned[d]; ok {
				ready = max(ready, visit(d))
			}
		}
		finish[n] = ready + cost(n)
		return finish[n]
	}
	var bound time.Duration
	work := map[string]time.Duration{}
	conc := map[string]int{}
	for n := range planned {
		bound = max(bound, visit(n))
		if key, c := g.BatchKey(g.KindOf(n)); key != "" {
			work[key] += cost(n)
			conc[key] = c
		}
	}
	for key, w := range work {
		bound = max(bound, w/time.Duration(conc[key]))
	}
	return bound
}
