package executor

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// sortedIDs orders by kind name, then segment, each node once, on both of
// its paths (a bitmap walk for long lists, a sort for short ones), against
// a plain sort of the IDs.
func TestSortedIDs(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 3600)
	if err != nil {
		t.Fatal(err)
	}
	want := func(nodes []graph.Node) []string {
		type entry struct {
			kind string
			seg  int
			id   string
		}
		var es []entry
		for _, n := range nodes {
			es = append(es, entry{g.KindName(g.KindOf(n)), g.SegmentOf(n), g.NodeID(n)})
		}
		slices.SortFunc(es, func(a, b entry) int {
			return cmp.Or(strings.Compare(a.kind, b.kind), cmp.Compare(a.seg, b.seg))
		})
		es = slices.CompactFunc(es, func(a, b entry) bool { return a.id == b.id })
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.id
		}
		return out
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 3, 20, g.Len()/16 - 1, g.Len() / 16, 500, g.Len(), 2 * g.Len()} {
		r := &run{g: g, ids: make([]string, g.Len())}
		nodes := make([]graph.Node, size)
		for i := range nodes {
			nodes[i] = graph.Node(rng.IntN(g.Len())) // duplicates included
		}
		got := r.sortedIDs(nodes)
		if diff := gocmp.Diff(want(nodes), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("size %d (-want +got):\n%s", size, diff)
		}
		if got == nil {
			t.Errorf("size %d: nil, want an empty list", size)
		}
	}
}

// statesOf finds the same states whether it parses the stored IDs (a
// snapshot that covers little of the graph) or formats the graph's (one
// that covers much of it), and ignores IDs the graph does not have.
func TestStatesOf(t *testing.T) {
	small, err := graph.Build(graph.Lecture(), 60)
	if err != nil {
		t.Fatal(err)
	}
	big, err := graph.Build(graph.Lecture(), 120)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]dirty.State{}
	for n := range graph.Node(big.Len()) {
		all[big.NodeID(n)] = dirty.State{Status: dirty.StatusClean, Rev: int64(n) + 1}
	}
	all["asset:image:segment[03]"] = dirty.State{Rev: -1} // not canonical: no node
	all["unknown"] = dirty.State{Rev: -2}
	for _, size := range []int{0, 1, 2, len(all)} {
		states := map[string]dirty.State{}
		for id, s := range all {
			if len(states) == size {
				break
			}
			states[id] = s
		}
		got := statesOf(small, Snapshot{States: states})
		for n := range graph.Node(small.Len()) {
			want, ok := states[small.NodeID(n)]
			if !ok {
				want = dirty.State{}
			}
			if g := got.Get(n); g != want {
				t.Errorf("%d states: node %s: got %+v, want %+v", size, small.NodeID(n), g, want)
			}
		}
	}
}

// A run's announced graph size sizes the graph's index at its first
// commit, and is then forgotten; an announcement for a graph that has an
// index already is ignored, and announcements of runs that never commit
// are bounded.
func TestMemoryStatesReserve(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryStore()
	m.reserve("g", 1000, m)
	require.Equal(t, map[string]int{"g": 1000}, m.states.sizes)
	v, err := m.Commit(ctx, "g", 0, []Change{{ID: "a", State: dirty.State{Status: dirty.StatusClean}}})
	require.NoError(t, err)
	require.Equal(t, int64(1), v)
	require.Empty(t, m.states.sizes, "forgotten at the first commit")
	m.reserve("g", 5, m) // the graph has an index: nothing to do
	require.Empty(t, m.states.sizes)
	snap, err := m.Load(ctx, "g")
	require.NoError(t, err)
	require.Equal(t, Snapshot{Version: 1, States: map[string]dirty.State{"a": {Status: dirty.StatusClean}}}, snap)

	// A deleted graph has no index again: it may be announced.
	_, err = m.DeleteGraph(ctx, "g")
	require.NoError(t, err)
	m.reserve("g", 7, m)
	require.Equal(t, map[string]int{"g": 7}, m.states.sizes)
	for i := range maxSizes + 1 {
		m.reserve(fmt.Sprint("never", i), 3, m)
	}
	require.LessOrEqual(t, len(m.states.sizes), maxSizes)
	// An announcement changes nothing a caller sees: the graph is still
	// unknown, at version 0.
	snap, err = m.Load(ctx, "never0")
	require.NoError(t, err)
	require.Equal(t, Snapshot{States: map[string]dirty.State{}}, snap)
}
