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
		// The videos cost nothing, so that no key's work saturates: 723
		// nodes of per over 5 workers do.
		{"the total over the workers", planner.Costs{Default: per, Workers: 5,
			PerKind: map[string]time.Duration{graph.KindVideo: 0}}},
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

// TestLowerBoundDividesWorkPastTheLongestDuration: a work that sums past
// the longest Duration, divided over more workers or a key's concurrency,
// is the exact quotient: a bound of the longest Duration would be above
// what a schedule takes, so no lower bound.
func TestLowerBoundDividesWorkPastTheLongestDuration(t *testing.T) {
	// 3 segments of one kind, each node costing 2/5 of the longest
	// Duration: 6/5 of it in all, none depending on another.
	tm := graph.Template{Kinds: []graph.Kind{{Name: "a", PerSegment: true, BatchKey: "a", Concurrency: 3}}}
	g := build(t, tm, 3*graph.SegmentSeconds)
	p := planOf(t, g, nil)
	const longest = time.Duration(math.MaxInt64)
	per := longest / 5 * 2
	for _, tc := range []struct {
		name string
		c    planner.Costs
		want time.Duration
	}{
		// 3·per, past the longest Duration, over 3.
		{"the key's work over its concurrency", planner.Costs{Default: per}, per},
		{"the key's work over its limit", planner.Costs{Default: per, Limits: map[string]int{"a": 2}}, 3 * (per / 2)},
		{"the total over the workers", planner.Costs{Default: per, Workers: 2}, 3 * (per / 2)},
		{"the total over the workers, staged", planner.Costs{Default: per, Workers: 2, Staged: true}, 3 * (per / 2)},
		{"the total over one worker", planner.Costs{Default: per, Workers: 1}, longest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, p.LowerBound(tc.c))
		})
	}
}
