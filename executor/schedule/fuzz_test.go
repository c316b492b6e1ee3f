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

// FuzzMoreCalls makes the fuzzer's calls in any order (Next, More with
// any node as like, every settle, Refund, Invalidate and Halt, at times
// that move on) with a MaxBatch, and checks More against a model of the
// calls as its doc defines them: no call has more than MaxBatch nodes,
// and More gives nothing to a call that is not full only when the halt,
// the global cap, the key's concurrency or rate, or the lack of another
// Ready node of like's kind and key explains it.
// go test -fuzz FuzzMoreCalls ./executor/schedule/
func FuzzMoreCalls(f *testing.F) {
	p := lecturePlan(f, 60)
	g := p.Graph
	limit := map[string]int{}
	for _, st := range p.Stages {
		for _, grp := range st.Groups {
			if grp.Kind == planner.Batch {
				limit[grp.BatchKey] = grp.Concurrency
			}
		}
	}
	f.Add(uint8(2), []byte{0, 1, 1, 1, 2, 0, 0, 1, 1, 1})
	f.Add(uint8(0x13), []byte{0, 0, 0, 2, 2, 2, 0, 1, 3, 1, 4, 1, 7, 5, 1, 9, 1, 2})
	f.Fuzz(func(t *testing.T, cfgBits uint8, ops []byte) {
		cfg := schedule.Config{MaxBatch: 1 + int(cfgBits%3), Workers: int(cfgBits/4) % 4, Mode: schedule.Mode(cfgBits / 16 % 2)}
		if cfgBits&32 != 0 {
			cfg.Rates = map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 3 * time.Second}, graph.KindNarration: {Starts: 3, Per: time.Second}}
		}
		m, err := schedule.New(p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		key := func(n graph.Node) string { k, _ := g.BatchKey(g.KindOf(n)); return k }
		callOf := map[graph.Node]int{}
		var size []int
		now := t0
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return int(b)
		}
		for len(ops) > 0 {
			op := next() % 10
			switch op {
			case 0:
				if st, ok := m.Next(now); ok {
					callOf[st.Node] = len(size)
					size = append(size, 1)
				}
			case 1, 2:
				like := graph.Node(next()%(g.Len()+2) - 1)
				state, in := m.State(like)
				call := -1
				if state == schedule.Running {
					call = callOf[like]
				}
				st, ok := m.More(now, like)
				if !in {
					if ok {
						t.Fatalf("More(%d), outside the plan, gave %s", like, g.NodeID(st.Node))
					}
					continue
				}
				if ok {
					if call < 0 {
						call = len(size)
						size = append(size, 0)
					}
					callOf[st.Node] = call
					size[call]++
					if size[call] > cfg.MaxBatch {
						t.Fatalf("More(%s) gave %s, a call of %d nodes over MaxBatch %d", g.NodeID(like), g.NodeID(st.Node), size[call], cfg.MaxBatch)
					}
					if g.KindOf(st.Node) != g.KindOf(like) {
						t.Fatalf("More(%s) gave %s, of another kind", g.NodeID(like), g.NodeID(st.Node))
					}
					continue
				}
				if (call >= 0 && size[call] >= cfg.MaxBatch) || m.Halted() || (cfg.Workers > 0 && m.Running() >= cfg.Workers) ||
					key(like) == "" || m.RateWait(key(like), now) > 0 {
					continue
				}
				busy := 0
				for _, n := range m.RunningNodes() {
					if key(n) == key(like) {
						busy++
					}
				}
				if busy >= limit[key(like)] {
					continue
				}
				for _, n := range p.Nodes() {
					if s, _ := m.State(n); n != like && s == schedule.Ready && g.KindOf(n) == g.KindOf(like) {
						t.Fatalf("More(%s), %s, gave nothing, but %s is ready and nothing stops it", g.NodeID(like), state, g.NodeID(n))
					}
				}
			default:
				rs := m.RunningNodes()
				if len(rs) == 0 {
					continue
				}
				n := rs[next()%len(rs)]
				var err error
				switch op {
				case 3, 4:
					_, err = m.Succeed(n)
				case 5:
					_, err = m.SucceedAt(n, now)
				case 6:
					_, err = m.Fail(n)
				case 7:
					_, err = m.Supersede(n)
				case 8:
					_, err = m.Refund(n)
				case 9:
					if next()%8 == 0 {
						_, err = m.Cancel(n)
					} else {
						_, err = m.Invalidate(graph.Node(next() % g.Len()))
					}
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			now = now.Add(time.Duration(next()%4) * 500 * time.Millisecond)
		}
	})
}
