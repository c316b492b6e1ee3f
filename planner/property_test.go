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
			again, err := json.Marshal(back)
			require.NoError(t, err)
			require.Equal(t, string(j1), string(again), "the decoded plan re-encodes byte for byte")
			require.Equal(t, string(j1), string(canonicalJSON(t, p)), "New's plan is the plan of its own nodes")
		})
	}
}

// TestPropertyMutations changes New's plans of random scenarios in
// random ways and checks that UnmarshalJSON accepts a changed plan
// exactly when New could have made it: when it is New's plan of its
// nodes, byte for byte. Anything else is a *PlanError.
func TestPropertyMutations(t *testing.T) {
	refused := map[string]int{}
	for seed := range uint64(400) {
		sc := randomScenario(seed)
		g, _, p := sc.run(t)
		r := rand.New(rand.NewPCG(seed, 2))
		for try := range 8 {
			stages, what := mutate(r, g, p.Stages)
			if what == "" {
				continue
			}
			hand := &planner.Plan{Graph: g, Stages: stages}
			data, err := hand.MarshalJSON()
			require.NoError(t, err)
			want := canonicalJSON(t, hand)
			back := &planner.Plan{Graph: g}
			err = back.UnmarshalJSON(data)
			if string(data) == string(want) {
				require.NoError(t, err, "seed %d try %d (%s): New makes %s", seed, try, what, data)
				again, err := back.MarshalJSON()
				require.NoError(t, err)
				require.Equal(t, string(data), string(again))
				continue
			}
			var pe *planner.PlanError
			require.ErrorAs(t, err, &pe, "seed %d try %d (%s): accepted %s\nbut New plans its nodes as %s", seed, try, what, data, want)
			require.ErrorIs(t, err, planner.ErrInvalidPlan)
			require.Empty(t, back.Stages, "a refused plan leaves p unchanged")
			refused[what]++
		}
	}
	// Every kind of change was refused some of the time.
	for _, what := range mutations {
		require.NotZero(t, refused[what], "no %q change was refused", what)
	}
}

// mutations name the changes mutate makes.
var mutations = []string{
	"swap groups", "swap nodes", "move node", "split batch", "drop node", "add node",
	"renumber stage", "change batch", "single as batch", "duplicate node", "merge stages",
}

// mutate returns a deep copy of stages with one random change, and the
// change's name; "" when the plan has nothing the change applies to.
// Groups and stages left empty are removed, and stages renumbered, most
// of the time, so that most changes test more than emptiness.
func mutate(r *rand.Rand, g *graph.Graph, in []planner.Stage) ([]planner.Stage, string) {
	stages := make([]planner.Stage, len(in))
	for si, st := range in {
		stages[si] = planner.Stage{Index: st.Index, Groups: make([]planner.Group, len(st.Groups))}
		for gi, grp := range st.Groups {
			grp.Nodes = slices.Clone(grp.Nodes)
			stages[si].Groups[gi] = grp
		}
	}
	type at struct{ s, g, n int }
	var all []at
	for si, st := range stages {
		for gi, grp := range st.Groups {
			for ni := range grp.Nodes {
				all = append(all, at{si, gi, ni})
			}
		}
	}
	groupOf := func(n graph.Node) planner.Group {
		if key, conc := g.BatchKey(g.KindOf(n)); key != "" {
			return planner.Group{Kind: planner.Batch, BatchKey: key, Concurrency: conc, Nodes: []graph.Node{n}}
		}
		return planner.Group{Kind: planner.Single, Nodes: []graph.Node{n}}
	}
	// put adds n to stage si: to the batch of its key if there is one,
	// else as a new group at a random place.
	put := func(si int, n graph.Node) {
		if si == len(stages) {
			stages = append(stages, planner.Stage{Index: si})
		}
		st := &stages[si]
		grp := groupOf(n)
		if grp.Kind == planner.Batch {
			for gi := range st.Groups {
				if st.Groups[gi].Kind == planner.Batch && st.Groups[gi].BatchKey == grp.BatchKey {
					st.Groups[gi].Nodes = slices.Insert(st.Groups[gi].Nodes, r.IntN(len(st.Groups[gi].Nodes)+1), n)
					return
				}
			}
		}
		st.Groups = slices.Insert(st.Groups, r.IntN(len(st.Groups)+1), grp)
	}
	what := mutations[r.IntN(len(mutations))]
	switch what {
	case "swap groups":
		si := r.IntN(len(stages) + 1)
		if si == len(stages) || len(stages[si].Groups) < 2 {
			return nil, ""
		}
		gs := stages[si].Groups
		a, b := r.IntN(len(gs)), r.IntN(len(gs))
		gs[a], gs[b] = gs[b], gs[a]
	case "swap nodes":
		if len(all) == 0 {
			return nil, ""
		}
		x := all[r.IntN(len(all))]
		ns := stages[x.s].Groups[x.g].Nodes
		b := r.IntN(len(ns))
		ns[x.n], ns[b] = ns[b], ns[x.n]
	case "move node", "drop node", "duplicate node":
		if len(all) == 0 {
			return nil, ""
		}
		x := all[r.IntN(len(all))]
		grp := &stages[x.s].Groups[x.g]
		n := grp.Nodes[x.n]
		if what != "duplicate node" {
			grp.Nodes = slices.Delete(grp.Nodes, x.n, x.n+1)
		}
		if what != "drop node" {
			put(r.IntN(len(stages)+1), n)
		}
	case "split batch":
		var batches []at
		for si, st := range stages {
			for gi, grp := range st.Groups {
				if grp.Kind == planner.Batch && len(grp.Nodes) > 1 {
					batches = append(batches, at{si, gi, 1 + r.IntN(len(grp.Nodes)-1)})
				}
			}
		}
		if len(batches) == 0 {
			return nil, ""
		}
		x := batches[r.IntN(len(batches))]
		grp := stages[x.s].Groups[x.g]
		tail := grp
		grp.Nodes, tail.Nodes = grp.Nodes[:x.n:x.n], grp.Nodes[x.n:]
		stages[x.s].Groups[x.g] = grp
		stages[x.s].Groups = slices.Insert(stages[x.s].Groups, x.g+1+r.IntN(len(stages[x.s].Groups)-x.g), tail)
	case "add node":
		n := graph.Node(r.IntN(g.Len()))
		put(r.IntN(len(stages)+1), n)
	case "renumber stage":
		if len(stages) == 0 {
			return nil, ""
		}
		stages[r.IntN(len(stages))].Index += 1 + r.IntN(2)
	case "change batch", "single as batch":
		if len(all) == 0 {
			return nil, ""
		}
		x := all[r.IntN(len(all))]
		grp := &stages[x.s].Groups[x.g]
		switch {
		case what == "single as batch":
			grp.Kind, grp.BatchKey, grp.Concurrency = planner.Batch, "", 0
			if r.IntN(2) == 0 {
				grp.BatchKey, grp.Concurrency = "k", 1
			}
		case grp.Kind == planner.Batch && r.IntN(2) == 0:
			grp.Concurrency = r.IntN(3)
		case grp.Kind == planner.Batch:
			grp.Kind, grp.BatchKey, grp.Concurrency = planner.Single, "", 0
		default:
			grp.Concurrency = 1
		}
	case "merge stages":
		if len(stages) < 2 {
			return nil, ""
		}
		si := r.IntN(len(stages) - 1)
		stages[si].Groups = append(stages[si].Groups, stages[si+1].Groups...)
		stages = slices.Delete(stages, si+1, si+2)
	}
	if r.IntN(4) > 0 {
		// Tidy: drop empty groups and stages, and renumber.
		var kept []planner.Stage
		for _, st := range stages {
			st.Groups = slices.DeleteFunc(st.Groups, func(grp planner.Group) bool { return len(grp.Nodes) == 0 })
			if len(st.Groups) > 0 {
				st.Index = len(kept)
				kept = append(kept, st)
			}
		}
		if what != "renumber stage" {
			stages = kept
		}
	}
	return stages, what
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
