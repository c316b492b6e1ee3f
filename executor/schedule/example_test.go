package schedule_test

import (
	"fmt"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// A driver loop over a fresh 20-second lecture with 3 workers: it starts
// whatever the machine allows, and when nothing more may start, the
// oldest running node completes. A real driver runs the nodes in workers
// and passes time.Now; this one stands in for them with a queue.
func Example() {
	g, err := graph.Build(graph.Lecture(), 20)
	if err != nil {
		panic(err)
	}
	set, err := dirty.Compute(g, dirty.Input{})
	if err != nil {
		panic(err)
	}
	p := planner.New(set)
	m, err := schedule.New(p, schedule.Config{Workers: 3})
	if err != nil {
		panic(err)
	}
	var now time.Time
	var running []graph.Node
	for !m.Done() {
		if st, ok := m.Next(now); ok {
			if st.StageStarted {
				fmt.Println(p.Summary(st.Stage))
			}
			fmt.Println("  start", g.NodeID(st.Node))
			running = append(running, st.Node)
			continue
		}
		n := running[0]
		running = running[1:]
		r, err := m.Succeed(n)
		if err != nil {
			panic(err)
		}
		fmt.Println("  done ", g.NodeID(n))
		for _, s := range r.StagesFinished {
			fmt.Printf("Stage %d finished\n", s)
		}
	}
	// Output:
	// Stage 0: Generating 1 script node
	//   start script
	//   done  script
	// Stage 0 finished
	// Stage 1: Generating 2 asset:narration nodes in batches of 4, 2 asset:image nodes in batches of 5, 1 asset:music node
	//   start asset:narration:segment[0]
	//   start asset:narration:segment[1]
	//   start asset:image:segment[0]
	//   done  asset:narration:segment[0]
	//   start asset:image:segment[1]
	//   done  asset:narration:segment[1]
	//   start asset:music
	//   done  asset:image:segment[0]
	// Stage 2: Generating 2 asset:video nodes in batches of 3
	//   start asset:video:segment[0]
	//   done  asset:image:segment[1]
	//   start asset:video:segment[1]
	//   done  asset:music
	// Stage 1 finished
	//   done  asset:video:segment[0]
	//   done  asset:video:segment[1]
	// Stage 2 finished
	// Stage 3: Generating 1 timeline node
	//   start timeline
	//   done  timeline
	// Stage 3 finished
}

// A failed image skips its video and the timeline, each once; the other
// branches go on. The timeline's stage settles first, but stages are
// reported finished in order.
func ExampleMachine_Fail() {
	g, _ := graph.Build(graph.Lecture(), 20)
	set, _ := dirty.Compute(g, dirty.Input{})
	m, _ := schedule.New(planner.New(set), schedule.Config{})
	var now time.Time
	start := func() (started []graph.Node) {
		for {
			st, ok := m.Next(now)
			if !ok {
				return started
			}
			started = append(started, st.Node)
		}
	}
	for _, n := range start() { // the script
		m.Succeed(n)
	}
	image1, _ := g.Lookup("asset:image:segment[1]")
	for _, n := range start() { // stage 1: all but image 1 succeed
		if n != image1 {
			m.Succeed(n)
		}
	}
	r, _ := m.Fail(image1)
	for _, n := range r.Skipped {
		fmt.Println("skipped", g.NodeID(n))
	}
	fmt.Println("stages finished:", r.StagesFinished)
	for _, n := range start() {
		fmt.Println("start", g.NodeID(n))
		r, _ = m.Succeed(n)
		fmt.Println("stages finished:", r.StagesFinished)
	}
	fmt.Println("done:", m.Done())
	// Output:
	// skipped asset:video:segment[1]
	// skipped timeline
	// stages finished: [1]
	// start asset:video:segment[0]
	// stages finished: [2 3]
	// done: true
}
