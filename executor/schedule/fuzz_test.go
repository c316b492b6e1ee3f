package schedule_test

import (
	"testing"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// FuzzNewPlans gives New the plans it must refuse or run: plans
// assembled by hand from the fuzzer's bytes (empty groups and stages,
// nodes outside the graph or twice, unknown group kinds, any index, key
// and concurrency), and plans made by planner.New whose stages were then
// changed in place (a group added, dropped or repeated), against their
// immutability. New must not panic, and must refuse with ErrInvalidConfig
// what it cannot run; a plan it accepts runs to its end in either mode,
// under a cap, rates and batch windows, with failures: every node
// settles, and the run never stalls. go test -fuzz FuzzNewPlans ./executor/schedule/
func FuzzNewPlans(f *testing.F) {
	g, err := graph.Build(graph.Lecture(), 20)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{}, false, uint8(0))
	f.Add([]byte{0, 1, 0, 2, 3, 4, 1, 9, 8, 7, 255, 3}, false, uint8(1))
	f.Add([]byte{1, 0, 0, 0, 5, 2, 1, 1, 2, 3}, false, uint8(10))
	// New's plan of edits of narration 0 and image 1, then changed: a
	// node outside the graph added, the music added, the image's group
	// dropped, the narration's group repeated (in Staged mode, where the
	// stage then never settled).
	f.Add([]byte{1, 1, 4, 1, 0, 0}, true, uint8(3))
	f.Add([]byte{1, 1, 4, 0, 0, 9}, true, uint8(0))
	f.Add([]byte{1, 1, 4, 0, 1, 1}, true, uint8(1))
	f.Add([]byte{1, 1, 4, 0, 2, 0}, true, uint8(3))
	// Batch windows, with a MaxBatch.
	f.Add([]byte{0, 1, 0, 2, 3, 4, 1, 9, 8, 7, 255, 3}, false, uint8(0x30))
	f.Add([]byte{1, 2, 4, 1, 0, 0}, true, uint8(0x58))
	kinds := []planner.GroupKind{planner.Single, planner.Batch, "", "pair"}
	keys := []string{"", graph.KindNarration, graph.KindVideo, "k"}
	f.Fuzz(func(t *testing.T, data []byte, changeNew bool, cfgBits uint8) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		anyNode := func() graph.Node { return graph.Node(next()%(g.Len()+4) - 2) }
		var p *planner.Plan
		if changeNew {
			// New's plan of a few edits, then changes of its stages.
			states := dirty.NewStates(g.Len())
			for n := range g.Len() {
				states.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean})
			}
			var marks []dirty.Mark
			for range 1 + next()%3 {
				marks = append(marks, dirty.Mark{ID: g.NodeID(graph.Node(next() % g.Len())), Reason: dirty.ReasonEdited})
			}
			set, err := dirty.Compute(g, dirty.Input{States: states, Marks: marks})
			if err != nil {
				t.Fatal(err)
			}
			p = planner.New(set)
			for len(data) > 0 && len(p.Stages) > 0 {
				st := &p.Stages[next()%len(p.Stages)]
				switch next() % 3 {
				case 0:
					st.Groups = append(st.Groups, planner.Group{Kind: planner.Single, Nodes: []graph.Node{anyNode()}})
				case 1:
					if i := next() % (len(st.Groups) + 1); i < len(st.Groups) {
						st.Groups = append(st.Groups[:i:i], st.Groups[i+1:]...)
					}
				case 2:
					if len(st.Groups) > 0 {
						st.Groups = append(st.Groups, st.Groups[next()%len(st.Groups)])
					}
				}
			}
		} else {
			var stages []planner.Stage
			for len(data) > 0 {
				st := planner.Stage{Index: next() - 2}
				for range next() % 4 {
					grp := planner.Group{Kind: kinds[next()%4], BatchKey: keys[next()%4], Concurrency: next()%5 - 1}
					for range next() % 5 {
						grp.Nodes = append(grp.Nodes, anyNode())
					}
					st.Groups = append(st.Groups, grp)
				}
				stages = append(stages, st)
			}
			p = &planner.Plan{Graph: g, Stages: stages}
		}
		cfg := schedule.Config{Mode: schedule.Mode(cfgBits % 2), Workers: int(cfgBits/2) % 3}
		if cfgBits&8 != 0 {
			cfg.Rates = map[string]schedule.Rate{graph.KindVideo: {Starts: 1, Per: time.Second}, "k": {Starts: 2, Per: 3 * time.Second}}
		}
		if cfgBits&16 != 0 {
			cfg.Windows = map[string]time.Duration{graph.KindVideo: 2 * time.Second, graph.KindImage: time.Second, "k": time.Second}
			cfg.MaxBatch = int(cfgBits>>5) % 3
		}
		m, err := schedule.New(p, cfg)
		if err != nil {
			return
		}
		// Run it: start what may start; else end the oldest running node,
		// failing every third; else wait for the rate.
		now := time.Unix(0, 0)
		var running []graph.Node
		for steps := 0; !m.Done(); steps++ {
			if steps > 100*(m.Len()+1) {
				t.Fatalf("the run does not end; unsettled %v", m.Unsettled())
			}
			if st, ok := m.Next(now); ok {
				running = append(running, st.Node)
				continue
			}
			if len(running) > 0 {
				n := running[0]
				running = running[1:]
				settle := m.Succeed
				if int(n)%3 == int(cfgBits)%3 {
					settle = m.Fail
				}
				if _, err := settle(n); err != nil {
					t.Fatalf("settling %d: %v", n, err)
				}
				now = now.Add(time.Duration(1+int(n)%4) * 500 * time.Millisecond)
				continue
			}
			wake, ok := m.Wake()
			if !ok {
				t.Fatalf("stalled: nothing runs or may start, no wake; unsettled %v", m.Unsettled())
			}
			now = wake
		}
		if m.Settled() != m.Len() || len(m.Unsettled()) != 0 {
			t.Fatalf("done with %d of %d nodes settled", m.Settled(), m.Len())
		}
	})
}
