package dirty_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// madeStates returns the states of g as a run that generated every node
// leaves them: clean, each with an output hash of its own and the input
// hash of its revision and its dependencies' outputs.
func madeStates(g *graph.Graph) *dirty.States {
	st := dirty.NewStates(g.Len())
	for n := range graph.Node(g.Len()) {
		var deps []string
		for _, d := range g.Deps(n) {
			deps = append(deps, st.Get(d).OutputHash)
		}
		st.Set(n, dirty.State{Status: dirty.StatusClean, Rev: 1, InputHash: dirty.InputHash(1, deps),
			OutputHash: "out:" + g.NodeID(n), AssetRef: "ref:" + g.NodeID(n)})
	}
	return st
}

// carried returns the states of to, each taken by ID from the states of
// from, as a host that stores states under node IDs loads them for a
// graph of another shape; nodes that from has not are missing.
func carried(from *graph.Graph, st *dirty.States, to *graph.Graph) *dirty.States {
	out := dirty.NewStates(to.Len())
	for n := range graph.Node(to.Len()) {
		if m, err := from.Lookup(to.NodeID(n)); err == nil {
			out.Set(n, st.Get(m))
		}
	}
	return out
}

// TestStaleInputs: StaleInputs marks inputs changed each clean node, with
// clean dependencies, whose recorded input hash is not InputHash of its
// revision and its dependencies' output hashes, as the executor does at
// a run's start. Compute trusts a clean status: without it a runner of
// its own (PodForge's) shipped results made from old inputs.
func TestStaleInputs(t *testing.T) {
	g := lecture(t, 30) // 3 segments, 12 nodes
	set := func(st *dirty.States, id string, f func(*dirty.State)) {
		n := node(t, g, id)
		s := st.Get(n)
		f(&s)
		st.Set(n, s)
	}
	for _, tc := range []struct {
		name   string
		g      *graph.Graph // default g
		states func() *dirty.States
		want   []string
	}{
		{"every node made from its inputs", nil, func() *dirty.States { return madeStates(g) }, nil},
		{"a crash after a dependency's new output was saved, before its dependents ran", nil, func() *dirty.States {
			st := madeStates(g)
			set(st, "asset:narration:segment[1]", func(s *dirty.State) { s.OutputHash = "out:new" })
			return st
		}, []string{"asset:video:segment[1]", "timeline"}},
		{"a revision bumped after the result was made", nil, func() *dirty.States {
			st := madeStates(g)
			set(st, "asset:image:segment[2]", func(s *dirty.State) { s.Rev = 2 })
			return st
		}, []string{"asset:image:segment[2]"}},
		{"a clean node with no input hash recorded", nil, func() *dirty.States {
			st := madeStates(g)
			set(st, "script", func(s *dirty.State) { s.InputHash = "" })
			return st
		}, []string{"script"}},
		{"a dependency not clean: dirty through it anyway", nil, func() *dirty.States {
			st := madeStates(g)
			set(st, "asset:narration:segment[1]", func(s *dirty.State) { s.OutputHash, s.Status = "out:new", dirty.StatusRunning })
			return st
		}, nil},
		{"nodes never run, and not clean", nil, func() *dirty.States {
			st := madeStates(g)
			for _, id := range []string{"asset:music", "asset:image:segment[0]", "asset:video:segment[0]"} {
				set(st, id, func(s *dirty.State) { *s = dirty.State{Status: dirty.StatusMissing} })
			}
			set(st, "asset:video:segment[1]", func(s *dirty.State) { s.Status = dirty.StatusFailed; s.InputHash = "" })
			return st
		}, nil},
		{"states of a longer lecture, carried by ID", nil, func() *dirty.States {
			long := lecture(t, 50)
			return carried(long, madeStates(long), g)
		}, []string{"timeline"}},
		{"states of a shorter lecture, carried by ID: new nodes missing", lecture(t, 50), func() *dirty.States {
			return carried(g, madeStates(g), lecture(t, 50))
		}, nil},
		{"nil states: a new graph", nil, func() *dirty.States { return nil }, nil},
		{"no node clean", nil, func() *dirty.States { return dirty.NewStates(g.Len()) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gg := g
			if tc.g != nil {
				gg = tc.g
			}
			st := tc.states()
			marks, err := dirty.StaleInputs(gg, st)
			require.NoError(t, err)
			var want []dirty.Mark
			for _, id := range tc.want {
				want = append(want, dirty.Mark{ID: id, Reason: dirty.ReasonInputsChanged})
			}
			assert.Empty(t, cmp.Diff(want, marks), "marks (-want +got)")
			// Compute takes them as they are: each marked node and what
			// depends on it is in the set.
			set, err := dirty.Compute(gg, dirty.Input{States: st, Marks: marks})
			require.NoError(t, err)
			for _, m := range marks {
				n := node(t, gg, m.ID)
				why, ok := set.Why(n)
				require.True(t, ok, m.ID)
				assert.Equal(t, dirty.ReasonInputsChanged, why.Reason, m.ID)
			}
		})
	}
}

// TestStaleInputsRefuses: StaleInputs refuses what Compute refuses: no
// graph, and states that do not match it, with the same errors.
func TestStaleInputsRefuses(t *testing.T) {
	g := lecture(t, 30)
	for _, tc := range []struct {
		name   string
		g      *graph.Graph
		states *dirty.States
		is     error
		msg    string
	}{
		{"nil graph", nil, dirty.NewStates(12), dirty.ErrNoGraph, "dirty: no graph: StaleInputs needs a graph made by graph.Build, not nil or a zero graph.Graph"},
		{"zero graph", &graph.Graph{}, nil, dirty.ErrNoGraph, "dirty: no graph: StaleInputs needs"},
		{"states of another graph", g, dirty.NewStates(21), dirty.ErrStatesMismatch,
			"dirty: states do not match the graph: 21 states for 12 nodes; make them with NewStates(g.Len()), one per node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var marks []dirty.Mark
			var err error
			require.NotPanics(t, func() { marks, err = dirty.StaleInputs(tc.g, tc.states) })
			assert.Nil(t, marks)
			require.ErrorIs(t, err, tc.is)
			assert.Contains(t, err.Error(), tc.msg)
			_, cerr := dirty.Compute(tc.g, dirty.Input{States: tc.states})
			assert.ErrorIs(t, cerr, tc.is, "Compute refuses it too")
		})
	}
}
