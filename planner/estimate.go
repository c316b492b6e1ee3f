package planner

import (
	"time"

	"github.com/regengraph/regen/graph"
)

// Remaining counts the work left in a plan.
type Remaining struct {
	// Stages[i] is the number of unfinished nodes in stage i.
	Stages []int
	// Total is the number of unfinished nodes.
	Total int
}

// Remaining returns the work left once the nodes for which finished
// returns true are done. A nil finished means nothing is. O(D).
func (p *Plan) Remaining(finished func(graph.Node) bool) Remaining {
	r := Remaining{Stages: make([]int, len(p.Stages))}
	for si, st := range p.Stages {
		for _, grp := range st.Groups {
			for _, n := range grp.Nodes {
				if finished == nil || !finished(n) {
					r.Stages[si]++
				}
			}
		}
		r.Total += r.Stages[si]
	}
	return r
}

// Costs are the estimates [Plan.LowerBound] works from.
type Costs struct {
	// PerKind is the estimated duration of one node of each kind, by kind
	// name. Kinds not listed cost Default. A negative duration counts as 0.
	PerKind map[string]time.Duration
	// Default is the duration of a node of a kind not in PerKind.
	// Default: 0.
	Default time.Duration
	// Workers is the run's global concurrency limit. Default: 0, no limit.
	Workers int
	// Finished reports nodes already done, which cost nothing. Nil means
	// none is.
	Finished func(graph.Node) bool
}

// LowerBound returns a lower bound on the makespan of the plan's
// unfinished work, before or during a run: the largest of
//   - the critical path: the longest chain of dependent planned nodes,
//     weighted by their durations;
//   - for each batch key, the key's total work divided by its concurrency;
//   - with Workers set, the total work divided by Workers.
//
// No schedule can finish sooner, whatever its order. It costs
// O(D + E_D + K) for D nodes with E_D dependency edges among them. Nodes
// that are not in p.Graph, which only a plan assembled by hand can hold,
// cost nothing; a plan without a Graph has a bound of 0.
func (p *Plan) LowerBound(c Costs) time.Duration {
	q := p.indexed()
	g := q.Graph
	if g == nil || len(q.nodes) == 0 {
		return 0
	}
	k := g.Kinds()
	cost := make([]time.Duration, k)
	for ki := range k {
		cost[ki] = c.Default
		if d, ok := c.PerKind[g.KindName(ki)]; ok {
			cost[ki] = d
		}
		cost[ki] = max(cost[ki], 0) // no node takes less than no time
	}
	kindOf := kindIndexer(g)
	keyWork := map[string]time.Duration{}
	var total, critical time.Duration
	finish := make([]time.Duration, len(q.nodes))
	for i, n := range q.nodes {
		if !g.Contains(n) {
			continue // only a plan assembled by hand holds one
		}
		ki := kindOf(n)
		var d time.Duration
		if c.Finished == nil || !c.Finished(n) {
			d = cost[ki]
		}
		var ready time.Duration
		for _, dep := range g.Deps(n) {
			if j, ok := q.pos(dep); ok {
				ready = max(ready, finish[j])
			}
		}
		finish[i] = ready + d
		critical = max(critical, finish[i])
		total += d
		if key, _ := g.BatchKey(ki); key != "" {
			keyWork[key] += d
		}
	}
	bound := critical
	for ki := range k {
		key, conc := g.BatchKey(ki)
		if key != "" {
			bound = max(bound, keyWork[key]/time.Duration(conc))
		}
	}
	if c.Workers > 0 {
		bound = max(bound, total/time.Duration(c.Workers))
	}
	return bound
}
