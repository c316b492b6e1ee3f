package dirty_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// TestComputeWithoutAGraph: Compute given a nil graph, or a zero
// graph.Graph that no graph.Build made, returns an error wrapping
// ErrNoGraph and no set. Both panicked with a nil dereference or an index
// out of range, which the project forbids for bad input.
func TestComputeWithoutAGraph(t *testing.T) {
	mark := []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}
	for _, tc := range []struct {
		name string
		g    *graph.Graph
		in   dirty.Input
	}{
		{"nil graph", nil, dirty.Input{}},
		{"nil graph, states and marks", nil, dirty.Input{States: dirty.NewStates(3), Marks: mark}},
		{"zero graph", &graph.Graph{}, dirty.Input{}},
		{"zero graph, states and marks", &graph.Graph{}, dirty.Input{States: dirty.NewStates(0), Marks: mark}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s *dirty.Set
			var err error
			require.NotPanics(t, func() { s, err = dirty.Compute(tc.g, tc.in) })
			assert.Nil(t, s)
			require.ErrorIs(t, err, dirty.ErrNoGraph)
			assert.EqualError(t, err, "dirty: no graph: Compute needs a graph made by graph.Build, not nil or a zero graph.Graph")
		})
	}
}

// TestNewStatesOfANegativeCount: NewStates(n) with n < 0 gives the
// states of no node, as NewStates(0) does. It panicked (makeslice: len
// out of range).
func TestNewStatesOfANegativeCount(t *testing.T) {
	for _, n := range []int{-1, -5, math.MinInt} {
		var s *dirty.States
		require.NotPanics(t, func() { s = dirty.NewStates(n) }, "NewStates(%d)", n)
		assert.Equal(t, 0, s.Len())
		for st := dirty.StatusMissing; st <= dirty.StatusCancelled; st++ {
			assert.Zero(t, s.Count(st), "NewStates(%d).Count(%s)", n, st)
		}
		assert.Equal(t, dirty.NewStates(0), s)
	}
}
