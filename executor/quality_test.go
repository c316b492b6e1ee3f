package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/planner"
)

// TestScheduleQuality runs the 360-segment lecture (1,083 nodes) in
// virtual time with log-normal fake latencies (medians: script 20 s,
// narration 3 s, image 8 s, video 30 s, music 20 s, timeline 10 s; sigma 1;
// seed 1) and the template's limits, in both modes, and reports each
// makespan divided by the planner's lower bound, computed with each kind's
// mean realized latency. Run it with -v to see the figures:
//
//	go test -run TestScheduleQuality -v ./executor
func TestScheduleQuality(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 3600)
	require.NoError(t, err)
	opts := fake.Options{Seed: 1, Latency: fake.LectureMedians(), Sigma: 1}
	probe := fake.New(opts)
	// Each kind's mean realized latency: the planner's lower bound then
	// counts each batch key's work exactly.
	sum := map[string]time.Duration{}
	count := map[string]int{}
	for n := range g.Len() {
		id := g.ID(graph.Node(n))
		sum[id.Kind] += probe.Latency(id.String(), 0, 1)
		count[id.Kind]++
	}
	costs := planner.Costs{PerKind: map[string]time.Duration{}}
	for kind, s := range sum {
		costs.PerKind[kind] = s / time.Duration(count[kind])
	}
	makespan := map[executor.Mode]time.Duration{}
	var bound time.Duration
	for _, mode := range []executor.Mode{executor.Dataflow, executor.Staged} {
		synctest.Test(t, func(t *testing.T) {
			f := fake.New(opts)
			e, err := executor.New(executor.Options{Generators: f.Registry(), Mode: mode})
			require.NoError(t, err)
			start := time.Now()
			r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "quality", Graph: g})
			require.NoError(t, err)
			rep, err := r.Wait()
			require.NoError(t, err)
			makespan[mode] = time.Since(start)
			require.Len(t, rep.Generated, g.Len())
			bound = r.Plan().LowerBound(costs)
		})
	}
	df, st := makespan[executor.Dataflow], makespan[executor.Staged]
	t.Logf("lower bound %v; dataflow %v (%.3f× the bound); staged %v (%.3f× the bound); dataflow %.1f%% shorter than staged",
		bound.Round(time.Second), df.Round(time.Second), float64(df)/float64(bound),
		st.Round(time.Second), float64(st)/float64(bound), 100*(1-float64(df)/float64(st)))
	// Virtual time: these are properties of the schedule, not of the
	// machine's speed. The targets.
	assert.LessOrEqual(t, float64(df)/float64(bound), 1.10, "dataflow within 1.10× the lower bound")
	assert.LessOrEqual(t, float64(df), 0.90*float64(st), "dataflow at least 10% shorter than staged")
	assert.GreaterOrEqual(t, df, bound, "no schedule beats the lower bound")
}
