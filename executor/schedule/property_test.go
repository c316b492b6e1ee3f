package schedule_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/planner"
)

// randomCase is a random valid template, a plan of it (fresh, or a few
// edits of an all-clean graph, so that clean dependencies occur), a
// configuration and the nodes that fail or are superseded.
type randomCase struct {
	plan              *planner.Plan
	cfg               schedule.Config
	fails, supersedes []graph.Node
	invalidates       []graph.Node // any nodes of the graph, planned or not
	bulk              bool
	timed             bool // settle with SucceedAt
}

func newRandomCase(t testing.TB, seed uint64) randomCase {
	r := rand.New(rand.NewPCG(seed, 3))
	tm := testgraph.RandomTemplate(r)
	g := build(t, tm, 10*(1+r.IntN(15)))
	var edits []string
	if r.IntN(2) == 0 {
		for range 1 + r.IntN(3) {
			edits = append(edits, g.NodeID(graph.Node(r.IntN(g.Len()))))
		}
	}
	c := randomCase{plan: planOf(t, g, edits...), bulk: r.IntN(2) == 0}
	c.cfg.Workers = r.IntN(5)
	if r.IntN(3) == 0 {
		c.cfg.Rates = map[string]schedule.Rate{}
		for ki := range g.Kinds() {
			if key, _ := g.BatchKey(ki); key != "" && r.IntN(2) == 0 {
				c.cfg.Rates[key] = schedule.Rate{Starts: 1 + r.IntN(3), Per: time.Duration(1+r.IntN(10)) * time.Second}
			}
		}
	}
	for _, n := range c.plan.Nodes() {
		switch r.IntN(12) {
		case 0:
			c.fails = append(c.fails, n)
		case 1:
			c.supersedes = append(c.supersedes, n)
		}
	}
	// Drawn after the others, so that the other choices of a seed stay;
	// for half the cases only, since when an invalidation skips depends on
	// the mode (see TestPropertyRandomTemplates).
	if r.IntN(2) == 0 {
		for n := range g.Len() {
			if r.IntN(16) == 0 {
				c.invalidates = append(c.invalidates, graph.Node(n))
			}
		}
	}
	// Batch windows, for a third of the cases, of any kinds (those
	// without a batch key have none), drawn last too.
	if r.IntN(3) == 0 {
		c.cfg.Windows = map[string]time.Duration{}
		for ki := range g.Kinds() {
			if r.IntN(2) == 0 {
				c.cfg.Windows[g.KindName(ki)] = time.Duration(1+r.IntN(8)) * time.Second
			}
		}
		c.cfg.MaxBatch = r.IntN(4)
		c.timed = r.IntN(2) == 0
	}
	return c
}

func (c randomCase) sim(t testing.TB, mode schedule.Mode, seed uint64) *sim {
	cfg := c.cfg
	cfg.Mode = mode
	s := newSim(t, c.plan, cfg, seed)
	s.bulk, s.timed = c.bulk, c.timed
	for _, n := range c.fails {
		s.fails[n] = true
	}
	for _, n := range c.supersedes {
		s.supersedes[n] = true
	}
	for _, n := range c.invalidates {
		s.invalidates[n] = true
	}
	return s
}

// TestPropertyRandomTemplates drives random plans of random templates with
// random configurations and completion orders through the simulator,
// which checks the invariants at every step; it also checks that a rerun
// gives the same steps and, when nothing is invalidated, that both modes
// end the same way.
func TestPropertyRandomTemplates(t *testing.T) {
	for seed := range uint64(300) {
		c := newRandomCase(t, seed)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			var finals [2][]string
			for i, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
				s := c.sim(t, mode, seed)
				log := transcript(s.run())
				finals[i] = s.finalStates()
				again := transcript(c.sim(t, mode, seed).run())
				require.Equal(t, log, again, "%s: the same calls gave different steps", mode)
			}
			if len(c.invalidates) > 0 {
				// What an invalidation skips depends on what has started,
				// which differs between the modes.
				return
			}
			if diff := cmp.Diff(finals[0], finals[1]); diff != "" {
				t.Errorf("final states (-dataflow +staged):\n%s", diff)
			}
		})
	}
}

// TestPropertyCancel cancels random runs after a random number of
// completions, in both modes: the simulator checks that the machine halts,
// settles each running node as cancelled, starts nothing more and is
// done, the other nodes as they were.
func TestPropertyCancel(t *testing.T) {
	for seed := range uint64(200) {
		c := newRandomCase(t, seed)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
				s := c.sim(t, mode, seed)
				s.cancelAfter = 1 + int(seed)%max(c.plan.Len(), 1)
				s.run()
			}
		})
	}
}

// FuzzSchedule runs the property test's checks on random cases chosen by
// the fuzzer: go test -fuzz FuzzSchedule ./executor/schedule/
func FuzzSchedule(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(seed, seed%2 == 0)
	}
	// An invalidation that skips the rest of a stage, in Staged mode: it
	// opens the next stage (the simulator once missed that).
	f.Add(uint64(2170), true)
	f.Fuzz(func(t *testing.T, seed uint64, staged bool) {
		mode := schedule.Dataflow
		if staged {
			mode = schedule.Staged
		}
		c := newRandomCase(t, seed)
		cancelAfter := 0
		if seed%3 == 0 { // a third of the cases are cancelled midway
			cancelAfter = 1 + int(seed/3)%max(c.plan.Len(), 1)
		}
		plain := c.sim(t, mode, seed)
		plain.cancelAfter = cancelAfter
		a := transcript(plain.run())
		probed := c.sim(t, mode, seed)
		probed.probe = true // CanStart asked before each Next changes nothing
		probed.cancelAfter = cancelAfter
		b := transcript(probed.run())
		require.Equal(t, a, b, "the same calls, with CanStart asked in between, gave different steps")
	})
}
