package executor

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// TestWorkerCount: the pool is the plan's batch concurrency plus its
// singles (64 at most without a cap), never more than the global cap or
// the plan's nodes, and a key's "no limit" (math.MaxInt) does not
// overflow it down to one worker.
func TestWorkerCount(t *testing.T) {
	unlimited := graph.Template{Kinds: []graph.Kind{{Name: "script"},
		{Name: "a", PerSegment: true, Deps: []graph.Dep{{Kind: "script", Scope: graph.ScopeGlobal}}, BatchKey: "a", Concurrency: math.MaxInt}}}
	twoKeys := graph.Template{Kinds: []graph.Kind{
		{Name: "a", PerSegment: true, BatchKey: "a", Concurrency: math.MaxInt},
		{Name: "b", PerSegment: true, BatchKey: "b", Concurrency: math.MaxInt}}}
	for _, tc := range []struct {
		name    string
		tmpl    graph.Template
		seconds int
		cap     int
		want    int
	}{
		{"the lecture: 4+5+3 batch slots and 3 singles", graph.Lecture(), 3600, 0, 15},
		{"the lecture under a global cap", graph.Lecture(), 3600, 2, 2},
		{"a short lecture: no more than its nodes", graph.Lecture(), 10, 0, 6},
		{"one unlimited key and a single", unlimited, 1000, 0, 101},
		{"one unlimited key under a cap", unlimited, 1000, 8, 8},
		{"two unlimited keys", twoKeys, 1000, 0, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := graph.Build(tc.tmpl, tc.seconds)
			require.NoError(t, err)
			set, err := dirty.Compute(g, dirty.Input{})
			require.NoError(t, err)
			assert.Equal(t, tc.want, workerCount(planner.New(set), tc.cap))
		})
	}
}
