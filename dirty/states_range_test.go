package dirty_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// TestStatesOutOfRange: Get, Status and Set of a node out of range
// (States.Set(7) of 3 states, Get(-1)) panicked with an index out of
// range, though the package says nothing in it panics on input. Get and
// Status of such a node answer what they answer of a node never
// recorded: missing. Set of one records nothing and says so, with an
// error wrapping ErrNodeOutOfRange that names the node and the range,
// so that no state is lost without a word; the zero States is the
// states of no node.
func TestStatesOutOfRange(t *testing.T) {
	s := dirty.NewStates(3)
	require.NoError(t, s.Set(1, dirty.State{Status: dirty.StatusClean, Rev: 2}))
	before := s.Clone()
	for _, n := range []graph.Node{3, 7, -1, graph.None, math.MaxInt32} {
		var got dirty.State
		require.NotPanics(t, func() { got = s.Get(n) }, "Get(%d)", n)
		assert.Equal(t, dirty.State{}, got, "Get(%d): missing, as a node never recorded", n)
		require.NotPanics(t, func() { assert.Equal(t, dirty.StatusMissing, s.Status(n)) }, "Status(%d)", n)
		var err error
		require.NotPanics(t, func() { err = s.Set(n, dirty.State{Status: dirty.StatusClean, Rev: 5}) }, "Set(%d)", n)
		require.ErrorIs(t, err, dirty.ErrNodeOutOfRange)
		assert.ErrorContains(t, err, "the states have nodes 0 to 2: make them with NewStates of the graph's Len")
		assert.Equal(t, before, s, "Set(%d) changed nothing", n)
	}
	assert.Equal(t, []int{2, 1}, []int{s.Count(dirty.StatusMissing), s.Count(dirty.StatusClean)})
	assert.ErrorContains(t, s.Set(7, dirty.State{}), "dirty: node out of range: node 7: the states have nodes 0 to 2")

	var zero dirty.States
	assert.Equal(t, 0, zero.Len())
	assert.Equal(t, dirty.State{}, zero.Get(0))
	assert.Equal(t, dirty.StatusMissing, zero.Status(0))
	assert.Zero(t, zero.Count(dirty.StatusMissing))
	err := zero.Set(0, dirty.State{Status: dirty.StatusClean})
	require.ErrorIs(t, err, dirty.ErrNodeOutOfRange)
	assert.ErrorContains(t, err, "the states have no node")
	assert.Zero(t, zero.Count(dirty.StatusClean))
	assert.Equal(t, 0, zero.Clone().Len())
}
