package planner_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// TestLowerBoundSaturates: costs whose sums overflow a Duration give the
// longest Duration, never a bound that wrapped round to a small or
// negative one.
func TestLowerBoundSaturates(t *testing.T) {
	g := build(t, graph.Lecture(), 3600)
	p := planOf(t, g, nil)
	const longest = time.Duration(math.MaxInt64)
	per := longest / 100 // 360 videos of these overflow
	for _, tc := range []struct {
		name string
		c    planner.Costs
	}{
		{"a key's work", planner.Costs{PerKind: map[string]time.Duration{graph.KindVideo: per}}},
		{"a key's work, staged", planner.Costs{PerKind: map[string]time.Duration{graph.KindVideo: per}, Staged: true}},
		{"the total over the workers", planner.Costs{Default: per, Workers: 1000}},
		{"the critical path", planner.Costs{Default: longest / 3}},
		{"a rate's windows", planner.Costs{Rates: map[string]planner.Rate{graph.KindVideo: {Starts: 1, Per: per}}}},
		{"a rate's wait and windows, staged", planner.Costs{Default: time.Second, Staged: true,
			Rates: map[string]planner.Rate{graph.KindVideo: {Starts: 2, Per: per, Wait: per}}}},
		{"a retry's wait", planner.Costs{Default: per,
			Running: func(graph.Node) (time.Duration, bool) { return math.MinInt64, true }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, longest, p.LowerBound(tc.c))
		})
	}
}
