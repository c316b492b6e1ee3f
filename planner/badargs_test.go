package planner_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/planner"
)

// TestNewOfNoSet: New(nil), like New of a zero dirty.Set, gives an empty
// plan with no Graph: no stages, no nodes, an empty summary and a lower
// bound of 0, and JSON encoding refuses it with ErrNoGraph. New(nil)
// panicked with a nil dereference.
func TestNewOfNoSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  *dirty.Set
	}{
		{"nil set", nil},
		{"zero set", &dirty.Set{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p *planner.Plan
			require.NotPanics(t, func() { p = planner.New(tc.set) })
			require.NotNil(t, p)
			assert.Nil(t, p.Graph)
			assert.Empty(t, p.Stages)
			assert.Zero(t, p.Len())
			assert.Empty(t, p.Nodes())
			assert.Equal(t, "", p.String())
			assert.Equal(t, planner.Remaining{Stages: []int{}}, p.Remaining(nil))
			assert.Zero(t, p.LowerBound(planner.Costs{Default: 1}))
			_, ok := p.StageOf(0)
			assert.False(t, ok)
			_, err := json.Marshal(p)
			assert.ErrorIs(t, err, planner.ErrNoGraph)
		})
	}
}
