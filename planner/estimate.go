package planner

import (
	"math"
	"math/bits"
	"slices"
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
	// Workers caps the run's calls in flight, all kinds together (the
	// executor's Options.Workers, which caps one run). Default: 0, no
	// limit.
	Workers int
	// Finished reports nodes already done, which cost nothing. Nil means
	// none is.
	Finished func(graph.Node) bool
	// Running reports the nodes under way and the time spent on each so
	// far: such a node costs its kind's duration less that time, and never
	// less than 0, and has taken its start under Rates. A negative time is
	// a node that starts again that long from now (a retry after its
	// backoff): it costs its duration and the wait. Nil means none is
	// under way.
	Running func(graph.Node) (spent time.Duration, ok bool)
	// Staged says that each stage starts once the one before has ended,
	// as the executor's Staged mode runs them: the bound is then the sum
	// of the stages' bounds. Default: false, each node starts once its own
	// dependencies are done.
	Staged bool
	// Rates limits the starts of batch keys, by key, as provider quotas
	// do. Default: none.
	Rates map[string]Rate
	// Limits caps the nodes of a batch key under way at once below its
	// concurrency, by key, as a provider's limit on calls in flight does.
	// A limit not positive caps nothing. Default: none.
	Limits map[string]int
}

// Rate is a batch key's limit on starts, for [Costs]: at most Starts
// nodes of the key start in any window of length Per, and the next not
// sooner than Wait from now. A Rate with Starts or Per not positive
// limits nothing.
type Rate struct {
	Starts int
	Per    time.Duration
	// Wait is the time left until the key may start a node, for the
	// starts it made recently. Default: 0, at once.
	Wait time.Duration
}

// LowerBound returns a lower bound on the makespan of the plan's
// unfinished work, before or during a run: the largest of
//   - the critical path: the longest chain of dependent planned nodes,
//     weighted by their durations;
//   - for each batch key, the key's total work divided by its concurrency
//     (or its limit in Limits, when lower);
//   - with Workers set, the total work divided by Workers;
//   - for each batch key with a rate, the time its nodes not started yet
//     take to start: from the earliest that any of them may start (its
//     dependencies done, and the rate's Wait), one window of Per for each
//     Starts of them after the first Starts, then the shortest such node
//     and, without Staged, the shortest of their longest chains of
//     planned dependents.
//
// With Staged set, it is the sum of these bounds for each stage's
// unfinished nodes, except that a rate's Wait counts from now: it runs
// while the stages before the rate's own stage do, and delays that stage
// only beyond their end. A node under way (Running) costs only what is left of
// its duration. No schedule can finish sooner, whatever its order, if
// each node takes its kind's duration. It costs O(D + E_D + K log K) for
// D nodes with E_D dependency edges into them, from nodes of the plan or
// not (a timeline's 2S+1 when it alone is planned), and K kinds, and
// O(D + E_D + S + P log P + K log K) with Staged, for S stages with P
// pairs of a stage and a batch key that has nodes in it (P ≤ D), and
// its memory grows with D, S and K alone. Nodes that are
// not in p.Graph, which only a plan assembled by hand can hold, cost
// nothing; a plan without a Graph has a bound of 0. A bound longer than
// the longest Duration (costs of centuries over millions of nodes) is
// the longest Duration, math.MaxInt64; a work that sums past it is
// divided over the workers or a key's concurrency exactly.
func (p *Plan) LowerBound(c Costs) time.Duration {
	q := p.indexed()
	g := q.Graph
	if g == nil || len(q.nodes) == 0 {
		return 0
	}
	k := g.Kinds()
	cost := make([]time.Duration, k)
	// Batch keys by index, for each kind (-1: none), with their rates.
	keyOf := make([]int, k)
	var keys []string
	var rates []Rate
	keyIndex := map[string]int{}
	for ki := range k {
		cost[ki] = c.Default
		if d, ok := c.PerKind[g.KindName(ki)]; ok {
			cost[ki] = d
		}
		cost[ki] = max(cost[ki], 0) // no node takes less than no time
		keyOf[ki] = -1
		if key, _ := g.BatchKey(ki); key != "" {
			i, ok := keyIndex[key]
			keyOf[ki] = i
			if !ok {
				keyOf[ki] = len(keys)
				keyIndex[key] = len(keys)
				keys = append(keys, key)
				r := c.Rates[key]
				if r.Starts <= 0 || r.Per <= 0 {
					r = Rate{}
				}
				rates = append(rates, r)
			}
		}
	}
	limited := slices.ContainsFunc(rates, func(r Rate) bool { return r.Starts > 0 })
	stages := 1
	if c.Staged {
		stages = len(q.Stages)
	}
	// Per stage (one in all without Staged): the work of each key, the
	// total work and the critical path; with rates, the key's nodes not
	// started yet.
	type keyTally struct {
		work    work
		waiting int           // nodes not started yet, with a rate
		head    time.Duration // the earliest of those may start
		least   time.Duration // the shortest of those
		tail    time.Duration // the shortest chain after one of those
	}
	// tally holds the tallies of the (stage, key) pairs that have nodes,
	// at most one a node: a dense table of every stage and key could be
	// far larger than the plan (8,640 stages of a chain beside 1,023 keys,
	// 500 MB for 10,000 nodes), and its size overflowed int on 32 bits.
	// last caches each key's latest pair, which most nodes hit.
	type pair struct{ stage, key, index int }
	var (
		tally []keyTally
		pairs []pair
		at    map[[2]int]int
	)
	last := make([]pair, len(keys))
	for key := range last {
		last[key] = pair{stage: -1}
	}
	tallyOf := func(s, key int) *keyTally {
		if l := last[key]; l.stage == s {
			return &tally[l.index]
		}
		i, ok := at[[2]int{s, key}]
		if !ok {
			if at == nil {
				at = map[[2]int]int{}
			}
			i = len(tally)
			tally = append(tally, keyTally{})
			pairs = append(pairs, pair{s, key, i})
			at[[2]int{s, key}] = i
		}
		last[key] = pair{s, key, i}
		return &tally[i]
	}
	total := make([]work, stages)
	critical := make([]time.Duration, stages)
	kindOf := kindIndexer(g)
	stageOf := func(i int) int {
		if c.Staged {
			return int(q.stageOf[i])
		}
		return 0
	}
	finish := make([]time.Duration, len(q.nodes))
	var dur []time.Duration // with rates: each node's cost
	var waiting []bool      // with rates: not started yet
	if limited {
		dur, waiting = make([]time.Duration, len(q.nodes)), make([]bool, len(q.nodes))
	}
	for i, n := range q.nodes {
		if !g.Contains(n) {
			continue // only a plan assembled by hand holds one
		}
		ki := kindOf(n)
		var d time.Duration
		started := false
		if c.Finished == nil || !c.Finished(n) {
			d = cost[ki]
			if c.Running != nil {
				var spent time.Duration
				if spent, started = c.Running(n); started {
					if spent < 0 { // starts again after a wait: that long more
						d = addSat(d, -max(spent, -math.MaxInt64))
					} else {
						d = max(d-spent, 0)
					}
				}
			}
		} else {
			started = true
		}
		s := stageOf(i)
		var ready time.Duration
		for _, dep := range g.Deps(n) {
			// With Staged, a stage starts once the ones before have ended:
			// only its own nodes make a chain in it.
			if j, ok := q.pos(dep); ok && stageOf(j) == s {
				ready = max(ready, finish[j])
			}
		}
		finish[i] = addSat(ready, d)
		if limited {
			dur[i] = d
		}
		critical[s] = max(critical[s], finish[i])
		total[s].add(d)
		if key := keyOf[ki]; key >= 0 {
			t := tallyOf(s, key)
			t.work.add(d)
			if rates[key].Starts > 0 && !started {
				waiting[i] = true
				if t.waiting == 0 || ready < t.head {
					t.head = ready
				}
				if t.waiting == 0 || d < t.least {
					t.least = d
				}
				t.waiting++
			}
		}
	}
	if limited && !c.Staged {
		// The shortest chain after each node waiting for its rate: the
		// longest path from it to the end, in reverse topological order.
		after := make([]time.Duration, len(q.nodes))
		for i := len(q.nodes) - 1; i >= 0; i-- {
			n := q.nodes[i]
			if !g.Contains(n) {
				continue
			}
			for _, dep := range g.Deps(n) {
				if j, ok := q.pos(dep); ok {
					after[j] = max(after[j], addSat(dur[i], after[i]))
				}
			}
		}
		seen := make([]bool, len(keys))
		for i, n := range q.nodes {
			if !waiting[i] {
				continue
			}
			t := tallyOf(0, keyOf[kindOf(n)])
			if !seen[keyOf[kindOf(n)]] || after[i] < t.tail {
				t.tail = after[i]
			}
			seen[keyOf[kindOf(n)]] = true
		}
	}
	// bound is the earliest the stages so far can end, from now: the
	// earliest the next stage can start. A rate's Wait counts from now
	// too, so it runs while the stages before its own do, and delays its
	// first start only beyond their end.
	// Each key's concurrency, under its limit: kinds that share a key
	// share its concurrency.
	conc := make([]int, len(keys))
	for ki := range k {
		if key := keyOf[ki]; key >= 0 {
			_, conc[key] = g.BatchKey(ki)
			if l := c.Limits[keys[key]]; l > 0 {
				conc[key] = min(conc[key], l)
			}
		}
	}
	// The pairs by stage, each stage's in key order.
	slices.SortFunc(pairs, func(a, b pair) int {
		if a.stage != b.stage {
			return a.stage - b.stage
		}
		return a.key - b.key
	})
	var bound time.Duration
	wait := make([]bool, len(keys)) // the rate's Wait counted, in the first stage that waits
	for s, next := 0, 0; s < stages; s++ {
		lo := next
		for next < len(pairs) && pairs[next].stage == s {
			next++
		}
		inStage := pairs[lo:next]
		sb := critical[s]
		for _, pr := range inStage {
			if conc[pr.key] > 0 {
				sb = max(sb, tally[pr.index].work.div(conc[pr.key]))
			}
		}
		if c.Workers > 0 {
			sb = max(sb, total[s].div(c.Workers))
		}
		end := addSat(bound, sb)
		for _, pr := range inStage {
			key, r, t := pr.key, rates[pr.key], tally[pr.index]
			if r.Starts <= 0 || t.waiting == 0 {
				continue
			}
			first := addSat(bound, t.head)
			if !wait[key] {
				first, wait[key] = max(first, r.Wait), true
			}
			windows := (t.waiting - 1) / r.Starts
			end = max(end, addSat(addSat(addSat(first, mulSat(windows, r.Per)), t.least), t.tail))
		}
		bound = end
	}
	return bound
}

// addSat returns a+b for durations not negative, or the longest Duration
// if the sum overflows it.
func addSat(a, b time.Duration) time.Duration {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt64
}

// work is a sum of durations not negative, exact past the longest
// Duration (it holds 2^64 of them), so that a work divided over workers
// is its true share, and saturates only if that share does.
type work struct{ hi, lo uint64 }

// add adds d, not negative, to w.
func (w *work) add(d time.Duration) {
	var carry uint64
	w.lo, carry = bits.Add64(w.lo, uint64(d), 0)
	w.hi += carry
}

// div returns w/n for n positive, or the longest Duration if the
// quotient is longer.
func (w work) div(n int) time.Duration {
	if w.hi >= uint64(n) { // the quotient needs more than 64 bits
		return math.MaxInt64
	}
	q, _ := bits.Div64(w.hi, w.lo, uint64(n))
	return time.Duration(min(q, math.MaxInt64))
}

// mulSat returns n·d for n and d not negative, or the longest Duration if
// the product overflows it.
func mulSat(n int, d time.Duration) time.Duration {
	if n > 0 && d > math.MaxInt64/time.Duration(n) {
		return math.MaxInt64
	}
	return time.Duration(n) * d
}
