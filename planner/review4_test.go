package planner_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/planner"
)

// TestReview4StagedRateWait: in the staged mode, a rate's Wait counts from
// now, as the executor gives it, so it runs while the stages before the
// rate's own stage run. The videos of a 30 s lecture, whose images and
// narrations are under way (30 s left), may start 50 s from now, then one
// every 100 s: at 50, 150 and 250 s, so the last ends at 310 s and the
// timeline at 325 s. LowerBound added the wait after the images' stage,
// 30 + 50 + 200 + 60 + 15 = 355 s, more than that schedule takes.
func TestReview4StagedRateWait(t *testing.T) {
	s := time.Second
	g := build(t, graph.Lecture(), 30)
	p := planOf(t, g, nil)
	script, err := g.Lookup("script")
	require.NoError(t, err)
	costs := planner.Costs{
		PerKind: map[string]time.Duration{
			"script": 10 * s, "asset:narration": 20 * s, "asset:image": 30 * s,
			"asset:video": 60 * s, "asset:music": 5 * s, "timeline": 15 * s,
		},
		Staged:   true,
		Rates:    map[string]planner.Rate{"asset:video": {Starts: 1, Per: 100 * s, Wait: 50 * s}},
		Finished: func(n graph.Node) bool { return n == script },
		Running: func(n graph.Node) (time.Duration, bool) {
			k := g.KindName(g.KindOf(n))
			return 0, k == graph.KindNarration || k == graph.KindImage || k == graph.KindMusic
		},
	}
	require.Equal(t, 325*s, p.LowerBound(costs))
	// Without the wait, the stages' sum: 30 + (200 + 60) + 15.
	costs.Rates = map[string]planner.Rate{"asset:video": {Starts: 1, Per: 100 * s}}
	require.Equal(t, 305*s, p.LowerBound(costs))
	// A wait shorter than the stages before it delays nothing.
	costs.Rates = map[string]planner.Rate{"asset:video": {Starts: 1, Per: 100 * s, Wait: 20 * s}}
	require.Equal(t, 305*s, p.LowerBound(costs))
}

// simCfg is a simulated run's costs and limits.
type simCfg struct {
	cost    map[string]time.Duration
	workers int
	limits  map[string]int
	rates   map[string]planner.Rate
	staged  bool
}

// snapshot is a simulated run at one moment: the nodes done, the time
// spent on those under way, and what is left of each rate's wait.
type snapshot struct {
	at      time.Duration
	done    map[graph.Node]bool
	started map[graph.Node]time.Duration
	wait    map[string]time.Duration
}

// simulate list-schedules the plan greedily and returns the makespan and
// snapshots taken at each event. It follows the executor's rules: a node
// starts once its planned dependencies are done (and, staged, once the
// stages before its own are), within its key's concurrency or limit, the
// workers, and its key's rate: at most Starts starts in any window of
// Per.
func simulate(p *planner.Plan, c simCfg) (time.Duration, []snapshot) {
	g := p.Graph
	nodes := p.Nodes()
	in := map[graph.Node]bool{}
	for _, n := range nodes {
		in[n] = true
	}
	cost := func(n graph.Node) time.Duration { return max(c.cost[g.KindName(g.KindOf(n))], 0) }
	done := map[graph.Node]bool{}
	start := map[graph.Node]time.Duration{}
	ring := map[string][]time.Duration{}
	var snaps []snapshot
	t := time.Duration(0)
	for len(done) < len(nodes) {
		// finish
		for n, s := range start {
			if !done[n] && s+cost(n) <= t {
				done[n] = true
			}
		}
		if len(done) == len(nodes) {
			break
		}
		curStage := 1 << 30
		for _, n := range nodes {
			if !done[n] {
				s, _ := p.StageOf(n)
				curStage = min(curStage, s)
			}
		}
		running := func() (int, map[string]int) {
			tot, by := 0, map[string]int{}
			for n, s := range start {
				if !done[n] && s <= t {
					tot++
					k, _ := g.BatchKey(g.KindOf(n))
					by[k]++
				}
			}
			return tot, by
		}
		for _, n := range nodes {
			if done[n] {
				continue
			}
			if _, ok := start[n]; ok {
				continue
			}
			if s, _ := p.StageOf(n); c.staged && s != curStage {
				continue
			}
			ready := true
			for _, d := range g.Deps(n) {
				if in[d] && !done[d] {
					ready = false
				}
			}
			if !ready {
				continue
			}
			tot, by := running()
			if c.workers > 0 && tot >= c.workers {
				continue
			}
			key, conc := g.BatchKey(g.KindOf(n))
			if key != "" {
				if l := c.limits[key]; l > 0 {
					conc = min(conc, l)
				}
				if by[key] >= conc {
					continue
				}
				if r, ok := c.rates[key]; ok {
					rg := ring[key]
					if len(rg) >= r.Starts && t < rg[len(rg)-r.Starts]+r.Per {
						continue
					}
				}
				ring[key] = append(ring[key], t)
			}
			start[n] = t
			if cost(n) == 0 {
				done[n] = true
			}
		}
		// snapshot
		sn := snapshot{at: t, done: map[graph.Node]bool{}, started: map[graph.Node]time.Duration{}, wait: map[string]time.Duration{}}
		for n := range done {
			sn.done[n] = true
		}
		for n, s := range start {
			if !done[n] {
				sn.started[n] = t - s
			}
		}
		for key, r := range c.rates {
			rg := ring[key]
			if len(rg) >= r.Starts {
				sn.wait[key] = max(0, rg[len(rg)-r.Starts]+r.Per-t)
			}
		}
		snaps = append(snaps, sn)
		// next event
		next := time.Duration(-1)
		upd := func(x time.Duration) {
			if x > t && (next < 0 || x < next) {
				next = x
			}
		}
		for n, s := range start {
			if !done[n] {
				upd(s + cost(n))
			}
		}
		for key, r := range c.rates {
			rg := ring[key]
			if len(rg) >= r.Starts {
				upd(rg[len(rg)-r.Starts] + r.Per)
			}
		}
		if next < 0 {
			// everything finished at t (zero costs)
			allDone := true
			for _, n := range nodes {
				if !done[n] {
					allDone = false
				}
			}
			if allDone {
				break
			}
			next = t // retry at same time: zero-cost nodes just finished
			continue
		}
		t = next
	}
	return t, snaps
}

// TestReview4LowerBoundAgainstSimulation checks that LowerBound is a lower
// bound: a greedy list schedule of random plans, with concurrency, limits,
// workers, rates and either mode, never ends sooner than the bound, from
// its start or from any moment of it (nodes finished, under way, and the
// rates' waits as they stand then).
func TestReview4LowerBoundAgainstSimulation(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for iter := range 2000 {
		tm := testgraph.RandomTemplate(r)
		g, err := graph.Build(tm, 10*(1+r.IntN(6)))
		require.NoError(t, err)
		in := dirty.Input{}
		if r.IntN(2) == 0 {
			in.States = allClean(g)
			for range 1 + r.IntN(3) {
				in.Marks = append(in.Marks, dirty.Mark{ID: g.NodeID(graph.Node(r.IntN(g.Len()))), Reason: dirty.ReasonEdited})
			}
		}
		set, err := dirty.Compute(g, in)
		require.NoError(t, err)
		p := planner.New(set)
		c := simCfg{cost: map[string]time.Duration{}, limits: map[string]int{}, rates: map[string]planner.Rate{}, staged: r.IntN(2) == 0}
		for ki := range g.Kinds() {
			c.cost[g.KindName(ki)] = time.Duration(r.IntN(5)) * time.Second
			if key, _ := g.BatchKey(ki); key != "" {
				if r.IntN(3) == 0 {
					c.limits[key] = 1 + r.IntN(2)
				}
				if r.IntN(3) == 0 {
					c.rates[key] = planner.Rate{Starts: 1 + r.IntN(3), Per: time.Duration(1+r.IntN(4)) * time.Second}
				}
			}
		}
		if r.IntN(2) == 0 {
			c.workers = 1 + r.IntN(3)
		}
		span, snaps := simulate(p, c)
		for _, sn := range snaps {
			rates := map[string]planner.Rate{}
			for k, rt := range c.rates {
				rt.Wait = sn.wait[k]
				rates[k] = rt
			}
			costs := planner.Costs{PerKind: c.cost, Workers: c.workers, Limits: c.limits, Rates: rates, Staged: c.staged,
				Finished: func(n graph.Node) bool { return sn.done[n] },
				Running: func(n graph.Node) (time.Duration, bool) {
					s, ok := sn.started[n]
					return s, ok
				}}
			if lb := p.LowerBound(costs); lb > span-sn.at {
				t.Fatalf("iter %d: at %v bound %v > remaining %v (span %v)\ntemplate %+v\nplan\n%v\ncfg %+v\nsnap %+v", iter, sn.at, lb, span-sn.at, span, tm, p, c, sn)
			}
		}
	}
}
