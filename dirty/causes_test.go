package dirty_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// reachedCauses is the brute-force model of Set.Causes: for each node of
// the set with a reason of its own, every node reached from it through
// dependents in the set (itself included) has it as a cause. It returns
// each member's causes in ascending order, and nil for other nodes.
func reachedCauses(s *dirty.Set) [][]graph.Node {
	g := s.Graph()
	causes := make([][]graph.Node, g.Len())
	seenBy := make([]graph.Node, g.Len()) // the last root that reached each node, plus 1
	for _, root := range s.Nodes() {
		if w, _ := s.Why(root); w.Reason == dirty.ReasonUpstream {
			continue
		}
		seenBy[root] = root + 1
		stack := []graph.Node{root}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			causes[n] = append(causes[n], root) // roots in ascending order
			for _, c := range g.Dependents(n) {
				if s.Has(c) && seenBy[c] != root+1 {
					seenBy[c] = root + 1
					stack = append(stack, c)
				}
			}
		}
	}
	return causes
}

// checkCauses checks Causes and AppendCauses of every node of s's graph,
// and of nodes outside it, against reachedCauses, with a buffer reused
// from one query to the next.
func checkCauses(t testing.TB, s *dirty.Set) {
	t.Helper()
	g := s.Graph()
	want := reachedCauses(s)
	prefix := []graph.Node{graph.None, 7}
	buf := slices.Clone(prefix)
	for i := range g.Len() {
		n := graph.Node(i)
		got := s.Causes(n)
		if diff := cmp.Diff(want[n], got); diff != "" {
			t.Fatalf("Causes(%s) (-want +got):\n%s", g.NodeID(n), diff)
		}
		buf = s.AppendCauses(buf[:len(prefix)], n)
		if diff := cmp.Diff(append(slices.Clone(prefix), want[n]...), buf); diff != "" {
			t.Fatalf("AppendCauses(%v, %s) (-want +got):\n%s", prefix, g.NodeID(n), diff)
		}
		if w, ok := s.Why(n); ok && !slices.Contains(got, w.Root) {
			t.Fatalf("Causes(%s) = %v lacks its Why's root %s", g.NodeID(n), got, g.NodeID(w.Root))
		}
	}
	for _, n := range []graph.Node{graph.None, -64, graph.Node(g.Len()), graph.Node(g.Len() + 64)} {
		if got := s.Causes(n); got != nil {
			t.Fatalf("Causes(%d) of a node not in the graph = %v, want nil", n, got)
		}
		if got := s.AppendCauses(prefix, n); !slices.Equal(got, prefix) {
			t.Fatalf("AppendCauses(%v, %d) of a node not in the graph = %v", prefix, n, got)
		}
	}
}

// nodes returns the nodes of ids in ascending order, nil for none.
func nodes(t testing.TB, g *graph.Graph, ids ...string) []graph.Node {
	t.Helper()
	var ns []graph.Node
	for _, id := range ids {
		ns = append(ns, node(t, g, id))
	}
	slices.Sort(ns)
	return ns
}

func TestSetCauses(t *testing.T) {
	podcast, err := graph.Build(testgraph.Podcast(), 4*graph.SegmentSeconds) // 4 chapters
	require.NoError(t, err)
	lec := lecture(t, 60)
	type query struct {
		node string
		want []string // in any order; nil: no causes
	}
	tests := []struct {
		name    string
		g       *graph.Graph
		states  func(t testing.TB, g *graph.Graph) *dirty.States // nil: a new graph
		missing string                                           // a clean node whose asset is gone
		marks   []dirty.Mark
		queries []query
	}{{
		name:   "two edited voices: the mix has both",
		g:      podcast,
		states: func(_ testing.TB, g *graph.Graph) *dirty.States { return cleanStates(g) },
		marks: []dirty.Mark{{ID: "ch:voice:segment[3]", Reason: dirty.ReasonEdited},
			{ID: "ch:voice:segment[0]", Reason: dirty.ReasonEdited}},
		queries: []query{
			{"final-mix", []string{"ch:voice:segment[0]", "ch:voice:segment[3]"}},
			{"publish", []string{"ch:voice:segment[0]", "ch:voice:segment[3]"}},
			{"ch_bed:segment[3]", []string{"ch:voice:segment[3]"}},
			{"ch:voice:segment[0]", []string{"ch:voice:segment[0]"}},
			{"ch_bed:segment[1]", nil},
			{"show-notes", nil},
		},
	}, {
		name:   "a chain: one transcript through summaries, notes and beds",
		g:      podcast,
		states: func(_ testing.TB, g *graph.Graph) *dirty.States { return cleanStates(g) },
		marks:  []dirty.Mark{{ID: "ch/transcript:segment[1]", Reason: dirty.ReasonEdited}},
		queries: []query{
			{"ch.summary:segment[3]", []string{"ch/transcript:segment[1]"}},
			{"ch_bed:segment[0]", []string{"ch/transcript:segment[1]"}},
			{"publish", []string{"ch/transcript:segment[1]"}},
			{"ch.summary:segment[0]", nil},
		},
	}, {
		name:   "a chain in the lecture",
		g:      lec,
		states: func(_ testing.TB, g *graph.Graph) *dirty.States { return cleanStates(g) },
		marks:  []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}},
		queries: []query{
			{"timeline", []string{"asset:narration:segment[3]"}},
			{"asset:video:segment[3]", []string{"asset:narration:segment[3]"}},
			{"asset:narration:segment[3]", []string{"asset:narration:segment[3]"}},
		},
	}, {
		name:   "a node with its own reason lists itself",
		g:      podcast,
		states: func(_ testing.TB, g *graph.Graph) *dirty.States { return cleanStates(g) },
		marks:  []dirty.Mark{{ID: "final-mix", Reason: dirty.ReasonForced}},
		queries: []query{
			{"final-mix", []string{"final-mix"}},
			{"publish", []string{"final-mix"}},
		},
	}, {
		name:   "its own reason does not hide the causes upstream of it",
		g:      podcast,
		states: func(_ testing.TB, g *graph.Graph) *dirty.States { return cleanStates(g) },
		marks: []dirty.Mark{{ID: "final-mix", Reason: dirty.ReasonForced},
			{ID: "ch:voice:segment[2]", Reason: dirty.ReasonEdited}},
		queries: []query{
			{"final-mix", []string{"ch:voice:segment[2]", "final-mix"}},
			{"publish", []string{"ch:voice:segment[2]", "final-mix"}},
		},
	}, {
		name: "reasons from states and the asset check",
		g:    lec,
		states: func(t testing.TB, g *graph.Graph) *dirty.States {
			st := cleanStates(g)
			st.Set(node(t, g, "asset:narration:segment[1]"), dirty.State{Status: dirty.StatusFailed})
			st.Set(node(t, g, "asset:video:segment[4]"), dirty.State{Status: dirty.StatusRunning})
			st.Set(node(t, g, "asset:music"), dirty.State{Status: dirty.StatusDirty})
			return st
		},
		missing: "asset:image:segment[4]",
		marks:   []dirty.Mark{{ID: "asset:image:segment[2]", Reason: dirty.ReasonInputsChanged}},
		queries: []query{
			{"timeline", []string{"asset:narration:segment[1]", "asset:image:segment[2]",
				"asset:image:segment[4]", "asset:video:segment[4]", "asset:music"}},
			{"asset:video:segment[4]", []string{"asset:image:segment[4]", "asset:video:segment[4]"}},
			{"asset:video:segment[1]", []string{"asset:narration:segment[1]"}},
			{"asset:video:segment[0]", nil},
		},
	}, {
		name:  "a new graph: every node up to it",
		g:     lec,
		marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}},
		queries: []query{
			{"asset:video:segment[2]", []string{"script", "asset:narration:segment[2]",
				"asset:image:segment[2]", "asset:video:segment[2]"}},
			{"script", []string{"script"}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := dirty.Input{Marks: tt.marks}
			if tt.states != nil {
				in.States = tt.states(t, tt.g)
			}
			if tt.missing != "" {
				gone := node(t, tt.g, tt.missing)
				in.AssetExists = func(n graph.Node, _ dirty.State) bool { return n != gone }
			}
			s, err := dirty.Compute(tt.g, in)
			require.NoError(t, err)
			checkSet(t, s)
			for _, q := range tt.queries {
				assert.Equal(t, nodes(t, tt.g, q.want...), s.Causes(node(t, tt.g, q.node)), "Causes(%s)", q.node)
			}
			checkCauses(t, s)
		})
	}
}

// Causes leaves Why, Explain and Chain as they were: they follow one
// cause, the lowest-indexed dependency's.
func TestSetCausesLeaveWhyAlone(t *testing.T) {
	g, err := graph.Build(testgraph.Podcast(), 4*graph.SegmentSeconds)
	require.NoError(t, err)
	s, err := dirty.Compute(g, dirty.Input{States: cleanStates(g), Marks: []dirty.Mark{
		{ID: "ch:voice:segment[0]", Reason: dirty.ReasonEdited}, {ID: "ch:voice:segment[3]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	mix, voice0, voice3 := node(t, g, "final-mix"), node(t, g, "ch:voice:segment[0]"), node(t, g, "ch:voice:segment[3]")
	assert.Equal(t, []graph.Node{voice0, voice3}, s.Causes(mix))
	assert.Equal(t, "upstream ch:voice:segment[0] edited", s.Explain(mix))
	assert.Equal(t, []graph.Node{mix, voice0}, s.Chain(mix))
	w, _ := s.Why(mix)
	assert.Equal(t, dirty.Why{Reason: dirty.ReasonUpstream, From: voice0, Root: voice0}, w)
}

// A set that Compute found empty, and a zero Set, give no causes.
func TestSetCausesOfAnEmptySet(t *testing.T) {
	g := lecture(t, 30)
	s, err := dirty.Compute(g, dirty.Input{States: cleanStates(g)})
	require.NoError(t, err)
	require.Zero(t, s.Len())
	checkCauses(t, s)
	var zero dirty.Set
	for _, n := range []graph.Node{graph.None, 0, 5, 1 << 20} {
		assert.Nil(t, zero.Causes(n))
		assert.Equal(t, []graph.Node{3}, zero.AppendCauses([]graph.Node{3}, n))
	}
}

// Causes on the longest lecture the default options allow (8,640
// segments): the timeline of two edited narrations far apart has both,
// and every node of a new graph has all its ancestors.
func TestSetCausesOfTheLongestLecture(t *testing.T) {
	g := lecture(t, graph.DefaultMaxSeconds)
	timeline := node(t, g, "timeline")
	s, err := dirty.Compute(g, dirty.Input{States: cleanStates(g), Marks: []dirty.Mark{
		{ID: "asset:narration:segment[8639]", Reason: dirty.ReasonEdited},
		{ID: "asset:narration:segment[2]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	assert.Equal(t, nodes(t, g, "asset:narration:segment[2]", "asset:narration:segment[8639]"), s.Causes(timeline))

	s, err = dirty.Compute(g, dirty.Input{})
	require.NoError(t, err)
	all := make([]graph.Node, g.Len())
	for i := range all {
		all[i] = graph.Node(i)
	}
	assert.Equal(t, all, s.Causes(timeline), "the timeline depends on every node")
	assert.Equal(t, nodes(t, g, "script", "asset:narration:segment[5000]", "asset:image:segment[5000]", "asset:video:segment[5000]"),
		s.Causes(node(t, g, "asset:video:segment[5000]")))
}

// TestSetCausesMatchReachability checks Causes against reachedCauses on
// random templates of 1 to 80 segments (sets of more than 256 nodes
// among them) with random states, marks and missing assets.
func TestSetCausesMatchReachability(t *testing.T) {
	big := 0
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		tm := testgraph.RandomTemplate(r)
		segs := 1 + r.IntN(12)
		if seed%10 == 0 {
			segs = 40 + r.IntN(41)
		}
		g, err := graph.Build(tm, segs*graph.SegmentSeconds)
		require.NoError(t, err)
		v := g.Len()
		in := dirty.Input{}
		if seed%7 != 0 && seed%20 != 0 { // else a new graph
			in.States = dirty.NewStates(v)
			for n := range v {
				st := dirty.StatusClean
				if r.IntN(20) == 0 {
					st = dirty.Status(r.IntN(6))
				}
				in.States.Set(graph.Node(n), dirty.State{Status: st})
			}
			gone := map[graph.Node]bool{}
			for range r.IntN(3) {
				gone[graph.Node(r.IntN(v))] = true
			}
			in.AssetExists = func(n graph.Node, _ dirty.State) bool { return !gone[n] }
		}
		marked := []dirty.Reason{dirty.ReasonEdited, dirty.ReasonForced, dirty.ReasonAssetMissing, dirty.ReasonInputsChanged}
		for range r.IntN(6) {
			in.Marks = append(in.Marks, dirty.Mark{ID: g.NodeID(graph.Node(r.IntN(v))), Reason: marked[r.IntN(len(marked))]})
		}
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			s, err := dirty.Compute(g, in)
			require.NoError(t, err)
			if s.Len() > 256 {
				big++
			}
			checkCauses(t, s)
		})
	}
	assert.Positive(t, big, "no set of over 256 nodes: the heap-allocated bits went untested")
}

// AppendCauses into a slice long enough allocates nothing for a set of
// up to 256 nodes up to the node asked about.
func TestAppendCausesIntoAReusedSlice(t *testing.T) {
	g, err := graph.Build(testgraph.Podcast(), 12*graph.SegmentSeconds)
	require.NoError(t, err)
	s, err := dirty.Compute(g, dirty.Input{}) // every node
	require.NoError(t, err)
	publish := node(t, g, "publish")
	p, _ := s.Index(publish)
	require.Less(t, p, 256)
	buf := s.AppendCauses(nil, publish)
	require.Len(t, buf, p+1, "publish depends on every node")
	allocs := testing.AllocsPerRun(20, func() { buf = s.AppendCauses(buf[:0], publish) })
	assert.Zero(t, allocs)
}
