package schedule_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// BenchmarkMachine drives the machine over a fresh 360-segment lecture
// (1,083 nodes): New, then Next until nothing may start and Succeed of
// the oldest running node, to the end. It reports ns and allocations per
// node; run it with
//
//	go test -run '^$' -bench Machine -benchmem ./executor/schedule/
func BenchmarkMachine(b *testing.B) {
	p := lecturePlan(b, 360*graph.SegmentSeconds)
	// The same plan assembled by hand, as a host or a test may: no dirty
	// set behind it.
	byHand := &planner.Plan{Graph: p.Graph, Stages: p.Stages}
	cases := []struct {
		name string
		cfg  schedule.Config
		bulk bool
		plan *planner.Plan
	}{
		{name: "dataflow", cfg: schedule.Config{}},
		{name: "staged", cfg: schedule.Config{Mode: schedule.Staged}},
		{name: "dataflow/workers=8", cfg: schedule.Config{Workers: 8}},
		{name: "dataflow/bulk", cfg: schedule.Config{}, bulk: true},
		{name: "dataflow/rates", cfg: schedule.Config{Rates: map[string]schedule.Rate{
			graph.KindImage: {Starts: 5, Per: time.Second}, graph.KindVideo: {Starts: 3, Per: time.Second}}}},
		{name: "dataflow/by-hand", cfg: schedule.Config{}, plan: byHand},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := p
			if c.plan != nil {
				p = c.plan
			}
			b.ReportAllocs()
			running := make([]graph.Node, 0, p.Len())
			now := t0
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				m, err := schedule.New(p, c.cfg)
				if err != nil {
					b.Fatal(err)
				}
				running = running[:0]
				for !m.Done() {
					if st, ok := m.Next(now); ok {
						running = append(running, st.Node)
						for c.bulk {
							more, ok := m.More(now, st.Node)
							if !ok {
								break
							}
							running = append(running, more.Node)
						}
						continue
					}
					if len(running) == 0 {
						// Only a rate holds the run: jump to its wake-up.
						if at, ok := m.Wake(); ok {
							now = at
							continue
						}
						b.Fatal("stuck")
					}
					n := running[0]
					running = running[1:]
					if _, err := m.Succeed(n); err != nil {
						b.Fatal(err)
					}
					now = now.Add(time.Millisecond)
				}
			}
			runtime.ReadMemStats(&after)
			nodes := float64(p.Len())
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/nodes, "ns/node")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N)/nodes, "allocs/node")
		})
	}
}
