package schedule_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/planner"
)

// randomCall is one call to a machine, drawn by a chaos driver.
type randomCall struct {
	op string // next, more, succeed, succeedAt, fail, supersede, cancel, invalidate, refund, charge, halt
	n  graph.Node
	at time.Time
	// later is a time at or after at, at which the queries are asked too.
	later time.Time
}

// chaos drives machines with random calls, as a careless driver might
// (settling nodes that do not run, More of any node, Invalidate of any
// node, halts, refunds, charges of retries), with a clock that goes on by random steps or
// to the machine's Wake.
type chaos struct {
	p    *planner.Plan
	g    *graph.Graph
	rng  *rand.Rand
	now  time.Time
	keys []string // the plan's batch keys and one it has not
	// last is the node that the last Next or More started, the like of
	// most Mores: a bulk call's.
	last graph.Node
}

func newChaos(p *planner.Plan, seed uint64) *chaos {
	c := &chaos{p: p, g: p.Graph, rng: rand.New(rand.NewPCG(seed, 11)), now: t0, keys: []string{"", "no-such-key"}}
	for k := range p.Graph.Kinds() {
		if key, _ := p.Graph.BatchKey(k); key != "" && !slices.Contains(c.keys, key) {
			c.keys = append(c.keys, key)
		}
	}
	return c
}

// draw returns the next call, chosen from m's state.
func (c *chaos) draw(m *schedule.Machine) randomCall {
	r := c.rng
	switch x := r.IntN(100); {
	case x < 50:
	case x < 85:
		c.now = c.now.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
	default:
		if w, ok := m.Wake(); ok && w.After(c.now) {
			c.now = w
		}
	}
	running := m.RunningNodes()
	anyNode := func() graph.Node {
		switch x := r.IntN(100); {
		case x < 70 && len(running) > 0:
			return running[r.IntN(len(running))]
		case x < 90 && c.p.Len() > 0:
			return c.p.Nodes()[r.IntN(c.p.Len())]
		case x < 97:
			return graph.Node(r.IntN(c.g.Len()))
		}
		return graph.Node(c.g.Len() + r.IntN(3) - 4*r.IntN(2)) // outside the graph, or -1
	}
	call := randomCall{at: c.now, later: c.now.Add(time.Duration(r.IntN(10)) * time.Second)}
	switch x := r.IntN(1000); {
	case x < 330:
		call.op = "next"
	case x < 450:
		call.op, call.n = "more", anyNode()
		if r.IntN(2) == 0 {
			call.n = c.last
		}
	case x < 600:
		call.op, call.n = "succeedAt", anyNode()
	case x < 800:
		call.op, call.n = "succeed", anyNode()
	case x < 860:
		call.op, call.n = "fail", anyNode()
	case x < 900:
		call.op, call.n = "supersede", anyNode()
	case x < 903:
		call.op, call.n = "cancel", anyNode()
	case x < 950:
		call.op, call.n = "invalidate", anyNode()
	case x < 975:
		call.op, call.n = "refund", anyNode()
	case x < 998:
		call.op, call.n = "charge", anyNode()
	default:
		call.op = "halt"
	}
	return call
}

// do makes call c on m and returns its answer and, with full, every
// query's answer, in a line to compare; RateStarts always, as a driver
// that continues as new asks it at any call.
func (c *chaos) do(m *schedule.Machine, call randomCall, full bool) string {
	var b strings.Builder
	at := func(t time.Time) string { return t.Sub(t0).String() }
	fmt.Fprintf(&b, "%s %s %d: ", at(call.at), call.op, call.n)
	res := func(r schedule.Result, err error) {
		fmt.Fprintf(&b, "skipped %v stages %v err %v", r.Skipped, r.StagesFinished, err)
	}
	switch call.op {
	case "next":
		st, ok := m.Next(call.at)
		fmt.Fprintf(&b, "%+v %v", st, ok)
		if ok {
			c.last = st.Node
		}
	case "more":
		st, ok := m.More(call.at, call.n)
		fmt.Fprintf(&b, "%+v %v", st, ok)
		if ok {
			c.last = st.Node
		}
	case "succeedAt":
		res(m.SucceedAt(call.n, call.at))
	case "succeed":
		res(m.Succeed(call.n))
	case "fail":
		res(m.Fail(call.n))
	case "supersede":
		res(m.Supersede(call.n))
	case "cancel":
		res(m.Cancel(call.n))
	case "invalidate":
		res(m.Invalidate(call.n))
	case "refund":
		ok, err := m.Refund(call.n)
		fmt.Fprintf(&b, "%v %v", ok, err)
	case "charge":
		ok, err := m.ChargeAt(call.n, call.at)
		fmt.Fprintf(&b, "%v %v", ok, err)
	case "halt":
		m.Halt()
	}
	w, ok := m.Wake()
	fmt.Fprintf(&b, " | wake %v %v", at(w), ok)
	for _, t := range []time.Time{call.at, call.later} {
		w, ok := m.WakeAt(t)
		fmt.Fprintf(&b, " wakeAt %v %v canStart %v", at(w), ok, m.CanStart(t))
		for _, key := range c.keys {
			fmt.Fprintf(&b, " rateWait %q %v", key, m.RateWait(key, t))
		}
	}
	fmt.Fprintf(&b, " running %d settled %d len %d done %v halted %v", m.Running(), m.Settled(), m.Len(), m.Done(), m.Halted())
	for _, rs := range m.RateStarts(call.at) {
		fmt.Fprintf(&b, " rateStarts %q", rs.Key)
		for _, t := range rs.Starts {
			fmt.Fprintf(&b, " %v", at(t))
		}
	}
	if full {
		fmt.Fprintf(&b, " runningNodes %v unsettled %v states", m.RunningNodes(), m.Unsettled())
		for n := range graph.Node(c.g.Len()) {
			st, ok := m.State(n)
			fmt.Fprintf(&b, " %d:%v:%v", n, st, ok)
		}
	}
	return b.String()
}

// snapshotCase is a plan and Config for the snapshot's property test.
type snapshotCase struct {
	name string
	plan *planner.Plan
	cfg  schedule.Config
}

// snapshotCases returns the seed's cases, in both modes: a lecture, fresh
// or with edits, under a random cap, rates, caps and batch windows; or
// a podcast's, under random batch windows, a cap and a rate; or the
// property test's random plan of a random template and Config.
func snapshotCases(t testing.TB, seed uint64) []snapshotCase {
	var p *planner.Plan
	var cfg schedule.Config
	if seed%3 == 0 {
		r := rand.New(rand.NewPCG(seed, 5))
		var edits []string
		if r.IntN(2) == 0 {
			edits = []string{"asset:narration:segment[1]", "asset:image:segment[0]"}
		}
		p = lecturePlan(t, 20*(1+r.IntN(6)), edits...)
		cfg = schedule.Config{Workers: r.IntN(6), MaxBatch: r.IntN(4)}
		if r.IntN(3) > 0 {
			cfg.Rates = map[string]schedule.Rate{graph.KindImage: {Starts: 1 + r.IntN(3), Per: time.Duration(1+r.IntN(4)) * time.Second}}
		}
		if r.IntN(3) > 0 {
			cfg.Windows = map[string]time.Duration{graph.KindVideo: time.Duration(1+r.IntN(5)) * time.Second}
			if r.IntN(2) == 0 {
				cfg.Windows[graph.KindNarration] = 2 * time.Second
			}
		}
		if r.IntN(3) == 0 {
			cfg.Caps = map[string]int{graph.KindVideo: 1}
		}
	} else if seed%3 == 1 {
		// A host's template, with a previous-segment chain (ch.summary)
		// and keys that kinds share, one of them windowed (llm).
		r := rand.New(rand.NewPCG(seed, 6))
		g := build(t, testgraph.Podcast(), 10*(1+r.IntN(12)))
		var edits []string
		if r.IntN(3) == 0 {
			edits = []string{"brief"}
		}
		p = planOf(t, g, edits...)
		cfg = schedule.Config{Workers: r.IntN(6), MaxBatch: r.IntN(4),
			Windows: map[string]time.Duration{"ch.summary": time.Duration(1+r.IntN(4)) * time.Second}}
		if r.IntN(2) == 0 {
			cfg.Windows["ch:voice"] = 3 * time.Second
		}
		if r.IntN(2) == 0 {
			cfg.Rates = map[string]schedule.Rate{"llm": {Starts: 1 + r.IntN(3), Per: 2 * time.Second}}
		}
	} else {
		c := newRandomCase(t, seed)
		p, cfg = c.plan, c.cfg
	}
	if seed%2 == 0 {
		rates := map[string]schedule.Rate{"carried": {Starts: 1 + int(seed/2)%3, Per: time.Duration(1+int(seed/2)%4) * time.Second}}
		for k, r := range cfg.Rates {
			rates[k] = r
		}
		cfg.Rates = rates
	}
	var out []snapshotCase
	for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
		c := cfg
		c.Mode = mode
		out = append(out, snapshotCase{name: mode.String(), plan: p, cfg: c})
	}
	return out
}

// marshal returns s's JSON form.
func marshal(t testing.TB, s schedule.Snapshot) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	return b
}

// roundTrip writes s as JSON, reads it back and restores a machine of it.
func roundTrip(t testing.TB, c snapshotCase, s schedule.Snapshot) *schedule.Machine {
	t.Helper()
	var back schedule.Snapshot
	require.NoError(t, json.Unmarshal(marshal(t, s), &back))
	m, err := schedule.Restore(c.plan, c.cfg, back)
	require.NoError(t, err)
	return m
}

// TestPropertySnapshotRestore drives machines with random calls (every
// call of the package, with a clock that goes on, rates and batch
// windows, in both modes, over lectures, podcasts and random plans,
// after an Inherit of random starts of the plan's keys and, for half
// the seeds, of a rated key the plan has not, which the machine carries),
// takes a snapshot at a random point, writes it as JSON and reads it
// back, restores a machine of it, then makes the same further calls on
// both: every answer, and every query's, must be the same; the restored
// machine's snapshot must have the same bytes as the original's, then
// and at the end. The restored machine is restored again, from its own
// snapshot, after a random fifth of the further calls.
func TestPropertySnapshotRestore(t *testing.T) {
	seeds := uint64(300)
	if testing.Short() {
		seeds = 40
	}
	for seed := range seeds {
		for _, c := range snapshotCases(t, seed) {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, c.name), func(t *testing.T) {
				checkSnapshotRestore(t, c, seed)
			})
		}
	}
}

func checkSnapshotRestore(t *testing.T, c snapshotCase, seed uint64) {
	orig := newMachine(t, c.plan, c.cfg)
	ch := newChaos(c.plan, seed)
	var inherit []schedule.RateStarts
	for _, key := range append(slices.Clone(ch.keys[1:]), "carried") {
		if ch.rng.IntN(2) == 0 {
			continue
		}
		var starts []time.Time
		for range ch.rng.IntN(5) {
			starts = append(starts, t0.Add(-time.Duration(ch.rng.IntN(5000))*time.Millisecond))
		}
		inherit = append(inherit, schedule.RateStarts{Key: key, Starts: starts})
	}
	require.NoError(t, orig.Inherit(inherit))
	limit := 6*c.plan.Len() + 60
	at := ch.rng.IntN(limit)
	// full compares every query, the states included, after every call on
	// small plans, after every 8th on larger ones.
	full := func(i int) bool { return c.plan.Len() <= 150 || i%8 == 0 }
	i := 0
	for ; i < at && !orig.Done(); i++ {
		ch.do(orig, ch.draw(orig), false)
	}
	snap := orig.Snapshot()
	restored := roundTrip(t, c, snap)
	want := marshal(t, snap)
	require.Equal(t, string(want), string(marshal(t, restored.Snapshot())), "the restored machine's snapshot, after %d calls", i)
	require.Equal(t, string(want), string(marshal(t, orig.Snapshot())), "a second snapshot of the original")
	again := at
	// Go on past the end: calls after Done answer too.
	for after := 0; i < limit && after < 20; i++ {
		if orig.Done() {
			after++
		}
		call := ch.draw(orig)
		a, b := ch.do(orig, call, full(i)), ch.do(restored, call, full(i))
		if a != b {
			t.Fatalf("call %d (snapshot after %d, again after %d) answers otherwise:\n%s", i, at, again, cmp.Diff(a, b))
		}
		if ch.rng.IntN(5) == 0 {
			restored, again = roundTrip(t, c, restored.Snapshot()), i
		}
	}
	require.Equal(t, string(marshal(t, orig.Snapshot())), string(marshal(t, restored.Snapshot())), "the snapshots at the end")
}

// TestSnapshotOfGoldenTrace takes a snapshot after each call of the
// golden trace's run, restores a machine of it and makes the rest of
// the recorded calls on it: they answer as recorded.
func TestSnapshotOfGoldenTrace(t *testing.T) {
	for _, tc := range traceCases() {
		t.Run(tc.name, func(t *testing.T) {
			rec := traceRun(t, tc.mode, tc.timed, tc.cancelAt)
			p := lecturePlan(t, 120)
			c := snapshotCase{plan: p, cfg: traceConfig(tc.mode)}
			r := newRecorder(t, p, c.cfg, t0)
			step := max(1, len(rec.calls)/40)
			for k, call := range rec.calls {
				if k%step == 0 {
					again := &recorder{t: t, m: roundTrip(t, c, r.m.Snapshot()), g: p.Graph, t0: t0}
					for _, rest := range rec.calls[k:] {
						again.do(rest)
					}
					if diff := cmp.Diff(rec.log[k:], again.log); diff != "" {
						t.Fatalf("restored after call %d, the calls answer otherwise (-recorded +restored):\n%s", k, diff)
					}
				}
				r.do(call)
			}
		})
	}
}

// snapshotAt returns a snapshot of the 20-second lecture under cfg after
// calls random calls of a chaos driver, and its JSON.
func snapshotAt(t testing.TB, p *planner.Plan, cfg schedule.Config, calls int, seed uint64) (schedule.Snapshot, []byte) {
	m := newMachine(t, p, cfg)
	ch := newChaos(p, seed)
	for range calls {
		ch.do(m, ch.draw(m), false)
	}
	s := m.Snapshot()
	return s, marshal(t, s)
}

// TestRestoreRefuses: a snapshot of another plan or Config, of another
// version, the zero Snapshot, or one whose parts disagree, is refused
// with a *SnapshotError wrapping ErrInvalidSnapshot that says what is
// wrong; a bad Config with ErrInvalidConfig, as New refuses it.
func TestRestoreRefuses(t *testing.T) {
	p := lecturePlan(t, 20) // every node planned: positions are nodes
	cfg := schedule.Config{Workers: 3, MaxBatch: 2,
		Rates:   map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 3 * time.Second}},
		Windows: map[string]time.Duration{graph.KindVideo: 4 * time.Second}}
	staged := cfg
	staged.Mode = schedule.Staged
	// The script done, both narrations and image 0 running, image 1 and
	// the music ready.
	m := newMachine(t, p, cfg)
	st, ok := m.Next(t0)
	require.True(t, ok)
	_, err := m.SucceedAt(st.Node, t0.Add(time.Second))
	require.NoError(t, err)
	for range 3 {
		_, ok := m.Next(t0.Add(2 * time.Second))
		require.True(t, ok)
	}
	s := m.Snapshot()
	require.Equal(t, `{"version":2,"fingerprint":"`+fingerprintOf(t, s)+`","parts":`+partsOf(t, s)+`,"states":"sRRRrpprp","ready":[4,7],`+
		`"running":[{"node":1,"call":1,"callNodes":1},{"node":2,"call":2,"callNodes":1},{"node":3,"rateStart":"2025-01-01T00:00:02Z","call":3,"callNodes":1}],`+
		`"rates":[{"key":"asset:image","starts":["2025-01-01T00:00:02Z"]}]}`, string(marshal(t, s)))
	running := func(f obj, k int) obj { return f["running"].([]any)[k].(obj) }
	for _, tc := range []struct {
		name     string
		plan     *planner.Plan
		cfg      schedule.Config
		edit     func(f obj) // changes the snapshot's JSON form
		zero     bool
		want     string
		mismatch bool
		config   bool // ErrInvalidConfig
	}{
		{name: "another plan", plan: lecturePlan(t, 30), mismatch: true, want: "taken of another plan or Config"},
		{name: "edits", plan: lecturePlan(t, 20, "asset:image:segment[0]"), mismatch: true, want: "another plan"},
		{name: "another mode", cfg: staged, mismatch: true, want: "fingerprint"},
		{name: "parts that disagree with the fingerprint", edit: func(f obj) { f["parts"].(obj)["workers"] = "0000000000000000" },
			want: "parts: they disagree with the fingerprint"},
		{name: "a bad config", cfg: schedule.Config{Workers: -1}, config: true, want: "workers -1"},
		{name: "the zero Snapshot", zero: true, want: "the zero Snapshot"},
		{name: "the script pending", edit: func(f obj) { f["states"] = "pRRRrpprp" },
			want: `node 0 ("script") is pending, but its dependencies have all succeeded`},
		{name: "a video ready", edit: func(f obj) { f["states"] = "sRRRrrprp"; f["ready"] = []int{4, 7, 5} },
			want: "is ready, but a dependency of it has not succeeded"},
		{name: "a video running", edit: func(f obj) { f["states"] = "sRRRrRprp" },
			want: `node 5 ("asset:video:segment[0]") is running, but its dependency 1 ("asset:narration:segment[0]") is running, not succeeded`},
		{name: "a pending node of a failed one", edit: func(f obj) { f["states"] = "fRRRrpprp" },
			want: `is running, but its dependency 0 ("script") is failed`},
		{name: "too few states", edit: func(f obj) { f["states"] = "sRRRrppr" }, want: "8 letters for 9 planned nodes"},
		{name: "a node outside the plan", edit: func(f obj) { f["ready"] = []int{4, 7, 999} }, want: "ready: node 999 is not in the plan"},
		{name: "a ready node left out", edit: func(f obj) { f["ready"] = []int{4} }, want: `ready: node 7 ("asset:music") is Ready but not listed`},
		{name: "a ready node twice", edit: func(f obj) { f["ready"] = []int{4, 7, 4} }, want: "or listed twice"},
		{name: "a running node left out", edit: func(f obj) { f["running"] = f["running"].([]any)[1:] }, want: "2 nodes listed, but 3 are Running"},
		{name: "running out of order", edit: func(f obj) {
			r := f["running"].([]any)
			r[0], r[1] = r[1], r[0]
		}, want: "or out of order"},
		{name: "a cancel without a halt", edit: func(f obj) { f["states"] = "sRRcrpprp"; f["running"] = f["running"].([]any)[:2] },
			want: "is cancelled, but the machine is not halted"},
		{name: "over the workers", edit: func(f obj) {
			f["states"] = "sRRRRpprp"
			f["ready"] = []int{7}
			f["running"] = append(f["running"].([]any), obj{"node": 4, "call": 4, "callNodes": 1})
		}, want: "4 nodes, over Workers 3"},
		{name: "a rate start of a key without a rate", edit: func(f obj) { running(f, 0)["rateStart"] = "2025-01-01T00:00:02Z" },
			want: `has a rate start, but its batch key "asset:narration" has no rate`},
		{name: "no call with MaxBatch", edit: func(f obj) { delete(running(f, 0), "call") }, want: "given with MaxBatch, and only then"},
		{name: "a call of a pending node", edit: func(f obj) { running(f, 0)["call"] = 5 },
			want: `call begins with node 5 ("asset:video:segment[0]"), which is pending`},
		{name: "a call of another key", edit: func(f obj) { running(f, 2)["call"] = 1 }, want: "of another batch key or kind"},
		{name: "a call in another call", edit: func(f obj) { running(f, 1)["call"] = 1; running(f, 0)["call"] = 2 },
			want: "which runs in another call"},
		{name: "a call too large", edit: func(f obj) { running(f, 0)["callNodes"] = 3 }, want: "has 3 nodes: want 1 to MaxBatch, 2"},
		{name: "a call too small", edit: func(f obj) { running(f, 1)["call"] = 1 }, want: "has 1 nodes, but more of them run"},
		{name: "a call's sizes disagree", edit: func(f obj) { running(f, 1)["call"] = 1; running(f, 1)["callNodes"] = 2 },
			want: "has 2 nodes, and 1 for another of its nodes"},
		{name: "a rate start after the window's", edit: func(f obj) { running(f, 2)["rateStart"] = "2025-01-01T00:00:05Z" },
			want: `running: node 3 ("asset:image:segment[0]") has its rate start at 2025-01-01T00:00:05Z, which batch key "asset:image" does not hold`},
		{name: "a rate start that two nodes share", edit: func(f obj) {
			f["states"] = "sRsRRpprp"
			f["ready"] = []int{7}
			f["running"] = []any{obj{"node": 1, "call": 1, "callNodes": 1},
				obj{"node": 3, "rateStart": "2025-01-01T00:00:02Z", "call": 3, "callNodes": 2},
				obj{"node": 4, "rateStart": "2025-01-01T00:00:02Z", "call": 3, "callNodes": 2}}
		}, want: `running: node 4 ("asset:image:segment[1]") has its rate start at 2025-01-01T00:00:02Z, which batch key "asset:image" does not hold`},
		{name: "a rate of a key without one", edit: func(f obj) {
			f["rates"] = []any{obj{"key": "asset:video", "starts": []string{"2025-01-01T00:00:00Z"}}}
		}, want: `batch key "asset:video" is not a key of the plan with a rate`},
		{name: "too many starts", edit: func(f obj) {
			f["rates"] = []any{obj{"key": "asset:image", "starts": []string{"2025-01-01T00:00:00Z", "2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z"}}}
		}, want: "has 3 starts: want 1 to its rate's 2"},
		{name: "held in dataflow", edit: func(f obj) { f["held"] = []any{obj{"stage": 3, "nodes": []int{8}}} }, want: "only Staged holds them"},
		{name: "a window's time of a pending node", edit: func(f obj) { f["readySince"] = []any{obj{"node": 5, "at": "2025-01-01T00:00:00Z"}} },
			want: `readySince: node 5 ("asset:video:segment[0]") is pending`},
		{name: "a window's time of a kind without one", edit: func(f obj) { f["readySince"] = []any{obj{"node": 4, "at": "2025-01-01T00:00:00Z"}} },
			want: "of a kind without a window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, c := p, cfg
			if tc.plan != nil {
				plan = tc.plan
			}
			if tc.cfg.Workers != 0 || tc.cfg.Mode != schedule.Dataflow || tc.cfg.Rates != nil {
				c = tc.cfg
			}
			snap := s
			switch {
			case tc.zero:
				snap = schedule.Snapshot{}
			case tc.edit != nil:
				var f obj
				require.NoError(t, json.Unmarshal(marshal(t, s), &f))
				tc.edit(f)
				b, err := json.Marshal(f)
				require.NoError(t, err)
				snap = schedule.Snapshot{}
				require.NoError(t, json.Unmarshal(b, &snap), "the form is good: Restore refuses it")
			}
			got, err := schedule.Restore(plan, c, snap)
			require.Nil(t, got)
			if tc.config {
				require.ErrorIs(t, err, schedule.ErrInvalidConfig)
				require.ErrorContains(t, err, tc.want)
				return
			}
			requireSnapshotError(t, err, tc.mismatch, tc.want)
		})
	}
}

// partsOf returns the "parts" in s's JSON form, as JSON.
func partsOf(t testing.TB, s schedule.Snapshot) string {
	var f struct{ Parts json.RawMessage }
	require.NoError(t, json.Unmarshal(marshal(t, s), &f))
	return string(f.Parts)
}

// fingerprintOf returns the fingerprint in s's JSON form.
func fingerprintOf(t testing.TB, s schedule.Snapshot) string {
	var f struct{ Fingerprint string }
	require.NoError(t, json.Unmarshal(marshal(t, s), &f))
	return f.Fingerprint
}

func requireSnapshotError(t *testing.T, err error, mismatch bool, want string) {
	t.Helper()
	require.ErrorIs(t, err, schedule.ErrInvalidSnapshot)
	var se *schedule.SnapshotError
	require.True(t, errors.As(err, &se), "a *SnapshotError: %v", err)
	require.Equal(t, mismatch, se.Mismatch, "Mismatch of %v", err)
	require.ErrorContains(t, err, want)
	require.NotRegexp(t, `Form|Go (struct|value)`, err.Error(), "a message in the package's words, not its Go types")
}

// TestSnapshotDecodeRefuses: the JSON form is read strictly.
func TestSnapshotDecodeRefuses(t *testing.T) {
	p := lecturePlan(t, 20)
	_, good := snapshotAt(t, p, schedule.Config{}, 10, 1)
	for _, tc := range []struct{ name, in, want string }{
		{"empty", ``, "no JSON value"},
		{"not an object", `[]`, `bad JSON: want an object, such as {"version": 2, "fingerprint": "3f1c…", …}, not an array`},
		{"a string", `"x"`, `bad JSON: want an object, such as {"version": 2, "fingerprint": "3f1c…", …}, not a string`},
		// Type errors name the member and say what it holds, not the Go
		// types that read it.
		{"a version not a number", `{"version":"2"}`, `version: want an integer, 1 to 2, not a string`},
		{"a version out of range", `{"version":1e30}`, `version: want an integer, 1 to 2, not the number 1e30`},
		{"a fingerprint not a string", `{"fingerprint":1}`, `fingerprint: want a string of 64 lowercase hex digits, not a number`},
		{"parts not an object", `{"parts":[]}`, `parts: want an object of the parts' digests, such as {"plan": "9a0e…", "mode": "…", …}, not an array`},
		{"a part not a string", `{"parts":{"workers":7}}`, `parts: "workers": want a string of 16 lowercase hex digits, not a number`},
		{"states not a string", `{"states":["s"]}`, `states: want a string, one letter a planned node, of "prRsfkSc", not an array`},
		{"ready not a list", `{"ready":12}`, `ready: want a list of nodes, such as [12, 9], not a number`},
		{"a ready node a string", `{"ready":["12"]}`, `ready: want a node, an integer such as 12, not a string`},
		{"a ready node not whole", `{"ready":[1.5]}`, `ready: want a node, an integer such as 12, not the number 1.5`},
		{"readySince not a list", `{"readySince":{}}`, `readySince: want a list, such as [{"node": 12, "at": "2025-01-01T00:00:03Z"}], not an object`},
		{"a readySince entry not an object", `{"readySince":[12]}`, `readySince: want an object such as {"node": 12, "at": "2025-01-01T00:00:03Z"}, not a number`},
		{"a readySince node a bool", `{"readySince":[{"node":true}]}`, `readySince: an entry's "node": want a node, an integer such as 12, not true or false`},
		{"held not a list", `{"held":"x"}`, `held: want a list, such as [{"stage": 2, "nodes": [14, 13]}], not a string`},
		{"a held stage a string", `{"held":[{"stage":"2","nodes":[14]}]}`, `held: an entry's "stage": want an integer, a stage, not a string`},
		{"held nodes not a list", `{"held":[{"stage":2,"nodes":14}]}`, `held: an entry's "nodes": want a list of nodes, such as [14, 13], not a number`},
		{"a held node an object", `{"held":[{"stage":2,"nodes":[{}]}]}`, `held: an entry's "nodes": want a node, an integer such as 14, not an object`},
		{"running not a list", `{"running":{}}`, `running: want a list, such as [{"node": 3, "rateStart": "2025-01-01T00:00:01Z"}], not an object`},
		{"a running entry a list", `{"running":[[]]}`, `running: want an object such as {"node": 3, "rateStart": "2025-01-01T00:00:01Z"}, not an array`},
		{"a running node too large", `{"running":[{"node":3000000000}]}`, `running: an entry's "node": want a node, an integer such as 3, not the number 3000000000`},
		{"a call a string", `{"running":[{"node":3,"call":"3"}]}`, `running: an entry's "call": want a node, an integer such as 3, not a string`},
		{"call nodes a bool", `{"running":[{"node":3,"callNodes":false}]}`, `running: an entry's "callNodes": want an integer, 1 or more, not true or false`},
		{"rates not a list", `{"rates":"x"}`, `rates: want a list, such as [{"key": "asset:image", "starts": ["2025-01-01T00:00:01Z"]}], not a string`},
		{"a rate's key a number", `{"rates":[{"key":1}]}`, `rates: an entry's "key": want a string, the batch key, not a number`},
		{"a rate's starts not a list", `{"rates":[{"key":"k","starts":5}]}`, `rates: an entry's "starts": want a list of times in strings, such as ["2025-01-01T00:00:01Z"], not a number`},
		{"halted a string", `{"halted":"yes"}`, `halted: want true or false, not a string`},
		// A null entry of a list is no node 0, nor a start at the zero
		// time.
		{"a null ready node", `{"ready":[12,null]}`, `ready[1] is null: want a node, an integer such as 12`},
		{"a null ready node of a snapshot", strings.Replace(string(good), `"ready":[`, `"ready":[null,`, 1), `ready[0] is null`},
		{"a null held node", `{"held":[{"stage":2,"nodes":[14,null]}]}`, `held[0].nodes[1] is null: want a node, an integer such as 14`},
		{"a null held entry", `{"held":[null]}`, `held[0] is null: want an object such as {"stage": 2, "nodes": [14, 13]}`},
		{"a null readySince entry", `{"readySince":[null]}`, `readySince[0] is null: want an object such as {"node": 12, "at": "2025-01-01T00:00:03Z"}`},
		{"a null running entry", `{"running":[{"node":3},null]}`, `running[1] is null: want an object such as {"node": 3, "rateStart": "2025-01-01T00:00:01Z"}`},
		{"a null rate entry", `{"rates":[null]}`, `rates[0] is null: want an object such as {"key": "asset:image", "starts": ["2025-01-01T00:00:01Z"]}`},
		{"a null running node", `{"running":[{"node":null}]}`, `running[0].node is null: want a node, an integer such as 3`},
		{"a null readySince node of a snapshot", strings.Replace(string(good), `"version":2`, `"version":2,"readySince":[{"node":null,"at":"2025-01-01T00:00:03Z"}]`, 1), `readySince[0].node is null: want a node, an integer such as 12`},
		{"a null start", `{"rates":[{"key":"null","starts":["2025-01-01T00:00:01Z",null]}]}`, `rates[0].starts[1] is null: want a time in a string, such as "2025-01-01T00:00:01Z"`},
		// A time is read by time.Time, whose own errors name no member.
		{"wake a number", `{"wake":5}`, `wake: want a time in a string, such as "2025-01-01T00:00:05Z", not a number`},
		{"a readySince time an object", `{"readySince":[{"node":1,"at":{}}]}`, `readySince: an entry's "at": want a time in a string, such as "2025-01-01T00:00:03Z", not an object`},
		{"a rate start a bool", `{"running":[{"node":3,"rateStart":true}]}`, `running: an entry's "rateStart": want a time in a string, such as "2025-01-01T00:00:01Z", not true or false`},
		{"a start a number", `{"rates":[{"key":"k","starts":[1]}]}`, `rates: an entry's "starts": want a time in a string, such as "2025-01-01T00:00:01Z", not a number`},
		{"a bad time before a time not a string", `{"wake":"yesterday","readySince":[{"node":1,"at":5}]}`, `wake: want a time in a string, such as "2025-01-01T00:00:05Z", not "yesterday"`},
		{"a readySince time not a time", `{"readySince":[{"node":1,"at":"2025-13-01T00:00:03Z"}]}`, `readySince: an entry's "at": want a time in a string, such as "2025-01-01T00:00:03Z", not "2025-13-01T00:00:03Z"`},
		{"a rate start not a time", `{"rates":[{"key":"k","starts":["soon"]}]}`, `rates: an entry's "starts": want a time in a string, such as "2025-01-01T00:00:01Z", not "soon"`},
		{"a start a list", `{"rates":[{"key":"k","starts":[[]]}]}`, `rates: an entry's "starts": want a time in a string, such as "2025-01-01T00:00:01Z", not an array`},
		{"a long number", `{"version":1` + strings.Repeat("0", 300) + `}`, "not the number 1000"},
		{"trailing data", string(good) + ` {}`, "data after the snapshot object"},
		{"unknown key", strings.Replace(string(good), `"version"`, `"extra":1,"version"`, 1), `unknown field "extra"`},
		{"a key in another case", strings.Replace(string(good), `"version"`, `"Version"`, 1), "names are case-sensitive"},
		{"a repeated key", strings.Replace(string(good), `"version":2`, `"version":2,"version":2`, 1), "appears twice"},
		{"another version", strings.Replace(string(good), `"version":2`, `"version":3`, 1), "version 3: this release reads versions 1 to 2"},
		{"no version", strings.Replace(string(good), `"version":2,`, ``, 1), "version 0"},
		{"parts in version 1", strings.Replace(string(good), `"version":2`, `"version":1`, 1), `"parts" in version 1`},
		{"no parts in version 2", regexp.MustCompile(`"parts":\{[^}]*\},`).ReplaceAllString(string(good), ""), `missing "parts": version 2 has them`},
		{"a short part", regexp.MustCompile(`"workers":"[0-9a-f]*"`).ReplaceAllString(string(good), `"workers":"abc"`), `parts: workers "abc": want 16 lowercase hex digits`},
		{"an unknown part", strings.Replace(string(good), `"plan":`, `"other":"x","plan":`, 1), `unknown field "other"`},
		{"a short fingerprint", strings.Replace(string(good), `"fingerprint":"`, `"fingerprint":"ab`, 1), "fingerprint"},
		{"a bad letter", strings.Replace(string(good), `"states":"`, `"states":"z`, 1), `"z" at 0 is no state's letter`},
		{"no ready", `{"version":1,"fingerprint":"` + strings.Repeat("0", 64) + `","states":"","ready":null}`, `missing "ready"`},
		{"a bad time", strings.Replace(string(good), `"version":2`, `"version":2,"wake":"yesterday"`, 1), `wake: want a time in a string, such as "2025-01-01T00:00:05Z", not "yesterday"`},
		{"a key in an element", `{"version":1,"running":[{"node":1,"Node":2}]}`, `"Node" in running[0]`},
		// A rate entry without its key was the starts of the empty key,
		// which Restore drops as a key it does not rate; without its
		// starts it wrote back as "starts": null, which it refuses.
		{"a rate entry without a key", strings.Replace(string(good), `"version":2`, `"version":2,"rates":[{"starts":["2025-01-01T00:00:01Z"]}]`, 1),
			`rates[0]: missing "key": want a string, the batch key`},
		{"a rate entry of the empty key", strings.Replace(string(good), `"version":2`, `"version":2,"rates":[{"key":"","starts":["2025-01-01T00:00:01Z"]}]`, 1),
			`rates[0]: key "": want a batch key, not the empty string`},
		{"a rate entry without starts", strings.Replace(string(good), `"version":2`, `"version":2,"rates":[{"key":"asset:image"}]`, 1),
			`rates[0]: missing "starts": want a list of times in strings, such as ["2025-01-01T00:00:01Z"]`},
		{"an empty rate entry", strings.Replace(string(good), `"version":2`, `"version":2,"rates":[{}]`, 1), `rates[0]: missing "key"`},
		// Nor is an entry without a member that the form always has: it
		// was node 0, stage 0 or the zero time, or wrote back as null.
		{"a held entry without nodes", strings.Replace(string(good), `"version":2`, `"version":2,"held":[{"stage":1}]`, 1),
			`held[0]: missing "nodes": want a list of nodes, such as [14, 13]`},
		{"a held entry without a stage", strings.Replace(string(good), `"version":2`, `"version":2,"held":[{"nodes":[3]}]`, 1),
			`held[0]: missing "stage": want an integer, a stage`},
		{"an empty held entry", strings.Replace(string(good), `"version":2`, `"version":2,"held":[{}]`, 1), `held[0]: missing "stage"`},
		{"a readySince entry without a node", strings.Replace(string(good), `"version":2`, `"version":2,"readySince":[{"at":"2025-01-01T00:00:03Z"}]`, 1),
			`readySince[0]: missing "node": want a node, an integer such as 12`},
		{"a readySince entry without a time", strings.Replace(string(good), `"version":2`, `"version":2,"readySince":[{"node":3}]`, 1),
			`readySince[0]: missing "at": want a time in a string, such as "2025-01-01T00:00:03Z"`},
		{"a running entry without a node", strings.Replace(string(good), `"running":[`, `"running":[{"callNodes":1},`, 1),
			`running[0]: missing "node": want a node, an integer such as 3`},
		{"a key of an element at the top", strings.Replace(string(good), `"version"`, `"node":1,"version"`, 1),
			`unknown field "node"; allowed fields: fingerprint, halted, held, parts, rates, ready, readySince, running, states, version, wake`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s schedule.Snapshot
			err := s.UnmarshalJSON([]byte(tc.in))
			requireSnapshotError(t, err, false, tc.want)
			require.Zero(t, s.Version(), "a refused snapshot leaves the value unchanged")
		})
	}
}

// FuzzSnapshot decodes a snapshot from the fuzzer's bytes, seeded with
// snapshots of lectures at random points: decoding never panics, and
// refuses with a *SnapshotError; what it accepts writes back to bytes
// that read again to the same bytes. Restore, against the lecture's plan
// and Config, never panics either, refuses with ErrInvalidSnapshot, and
// a machine it makes writes the same snapshot back (or, restored under
// other rates, one that restores to the same bytes) and runs to its end.
// go test -fuzz FuzzSnapshot ./executor/schedule/
func FuzzSnapshot(f *testing.F) {
	p := lecturePlan(f, 40)
	cfgs := []schedule.Config{
		{Workers: 4, MaxBatch: 2,
			Rates:   map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 3 * time.Second}},
			Windows: map[string]time.Duration{graph.KindVideo: 4 * time.Second}},
		{Mode: schedule.Staged, Workers: 2, Rates: map[string]schedule.Rate{graph.KindVideo: {Starts: 1, Per: time.Second}}},
		// A rate of a key the plan has not, which carries inherited starts.
		{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 3 * time.Second}, "tts": {Starts: 2, Per: time.Minute}}},
	}
	for k, cfg := range cfgs {
		for _, calls := range []int{0, 5, 20, 60, 200} {
			_, b := snapshotAt(f, p, cfg, calls, uint64(calls))
			f.Add(b, uint8(k))
		}
	}
	carried := newMachine(f, p, cfgs[2])
	require.NoError(f, carried.Inherit([]schedule.RateStarts{{Key: "tts", Starts: []time.Time{t0.Add(-3 * time.Second), t0.Add(-time.Second)}}}))
	f.Add(marshal(f, carried.Snapshot()), uint8(2))
	f.Add([]byte(`{}`), uint8(0))
	f.Add([]byte(`{"version":1,"fingerprint":"00","states":"","ready":[]}`), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		var s schedule.Snapshot
		if err := s.UnmarshalJSON(data); err != nil {
			var se *schedule.SnapshotError
			require.True(t, errors.As(err, &se), "not a *SnapshotError: %v", err)
			require.ErrorIs(t, err, schedule.ErrInvalidSnapshot)
			return
		}
		b := marshal(t, s)
		var again schedule.Snapshot
		require.NoError(t, again.UnmarshalJSON(b), "reading back %s", b)
		require.Equal(t, string(b), string(marshal(t, again)), "the round trip")
		cfg := cfgs[int(which)%len(cfgs)]
		m, err := schedule.Restore(p, cfg, s)
		if err != nil {
			require.ErrorIs(t, err, schedule.ErrInvalidSnapshot)
			return
		}
		mine := m.Snapshot()
		if fingerprintOf(t, mine) == fingerprintOf(t, s) {
			// The fingerprint leaves out the rates of keys the plan has
			// not: their starts are cfg's latest up to its rate, or none.
			require.Equal(t, carriedUnder(t, b, p, cfg, marshal(t, newMachine(t, p, cfg).Snapshot())), string(marshal(t, mine)), "the restored machine's snapshot")
		} else {
			// Taken under other rates (its "parts" say so): the restored
			// machine's snapshot is of cfg, and restores under it.
			again, err := schedule.Restore(p, cfg, mine)
			require.NoError(t, err, "the snapshot of a machine restored under other rates")
			require.Equal(t, string(marshal(t, mine)), string(marshal(t, again.Snapshot())))
		}
		// It runs to its end, or to a halt.
		now := t0.Add(24 * time.Hour)
		running := m.RunningNodes()
		for steps := 0; !m.Done(); steps++ {
			require.Less(t, steps, 10*m.Len()+10, "the run does not end")
			if st, ok := m.Next(now); ok {
				running = append(running, st.Node)
				continue
			}
			if len(running) > 0 {
				_, err := m.Succeed(running[0])
				require.NoError(t, err)
				running = running[1:]
				continue
			}
			w, ok := m.Wake()
			require.True(t, ok, "stalled: nothing runs or may start, no wake; unsettled %v", m.Unsettled())
			now = w
		}
	})
}

// TestSnapshotFingerprintIsStable pins the fingerprints of a few plans
// and Configs: a snapshot that a driver keeps across an upgrade must
// still restore, so a change of them breaks the snapshots kept.
func TestSnapshotFingerprintIsStable(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan *planner.Plan
		cfg  schedule.Config
		want string
	}{
		{"lecture", lecturePlan(t, 20), schedule.Config{}, "2a3683f3375ae216dd3b2792c15ac6471189ddb6a9fc39333ce36c0fcd0af59e"},
		{"lecture, edits", lecturePlan(t, 60, "asset:image:segment[1]"), schedule.Config{Mode: schedule.Staged, Workers: 3}, "53170451c0b89bb9ecfa674dd16c28f0d5445903b14dd4db449442779ceff065"},
		{"trace", lecturePlan(t, 120), traceConfig(schedule.Dataflow), "5b7d5047b95a5211c69ba9fd96b2211a31614140f50c41279c6342255e9f2c89"},
		{"trace, a rate of a key not planned", lecturePlan(t, 120), func() schedule.Config {
			c := traceConfig(schedule.Dataflow)
			c.Rates = map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 3 * time.Second}, "other": {Starts: 1, Per: time.Second}}
			return c
		}(), "5b7d5047b95a5211c69ba9fd96b2211a31614140f50c41279c6342255e9f2c89"},
		{"podcast", planOf(t, build(t, testgraph.Podcast(), 40)), schedule.Config{Caps: map[string]int{"llm": 1}}, "6e09b8f8bab5ee5d75a41f7b9af6c9b60df37ab0e8353a2dc99820510d1b2ed1"},
		{"podcast, kinds that share calls", planOf(t, build(t, testgraph.Podcast(), 40)), sharedPodcast, "f3345690fbe358f5f0f7720dc7de73b52eb77b5d65f571b39f6ec6a47acdd70e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, fingerprintOf(t, newMachine(t, tc.plan, tc.cfg).Snapshot()))
		})
	}
	// So are the digests of its parts, by which Restore says what differs
	// and restores a snapshot under other rates.
	require.Equal(t, `{"plan":"32ad34ee442ddc0c","mode":"78e1989f01eb9e9b","workers":"abb4fd7017cf4b6a","caps":"37c36b613c05a109",`+
		`"rates":"11095f3de5516e59","windows":"645e61ad99727a4c","maxBatch":"92f80c5522ce5582"}`,
		partsOf(t, newMachine(t, lecturePlan(t, 120), traceConfig(schedule.Dataflow)).Snapshot()))
	require.Equal(t, `{"plan":"d624352be0c4f37d","mode":"78e1989f01eb9e9b","workers":"665fc0e611b60adc","caps":"84ccd95050d770b6",`+
		`"rates":"0ebd8ebfc65152b1","windows":"f14b14f2adec2dca","maxBatch":"92f80c5522ce5582","shared":"78f0773889351118"}`,
		partsOf(t, newMachine(t, planOf(t, build(t, testgraph.Podcast(), 40)), sharedPodcast).Snapshot()))
}

// sharedPodcast is a Config of the podcast whose kinds of key tts, and
// two of key llm, share calls (cover.art, of another key, shares none).
var sharedPodcast = schedule.Config{Shared: [][]string{{"ch:voice", "0intro"}, {"ch.summary", "ch/transcript", "cover.art"}},
	Windows: map[string]time.Duration{"ch:voice": 2 * time.Second}, MaxBatch: 3}

// TestSnapshotBytesAreTheState: machines in the same state give the same
// bytes, whatever the zone of the driver's clock; the golden trace's
// calls, made from a clock in another zone, give the same snapshot.
func TestSnapshotBytesAreTheState(t *testing.T) {
	for _, tc := range traceCases() {
		t.Run(tc.name, func(t *testing.T) {
			rec := traceRun(t, tc.mode, tc.timed, tc.cancelAt)
			p := lecturePlan(t, 120)
			k := len(rec.calls) / 3
			utc := replay(t, p, traceConfig(tc.mode), t0, rec.calls[:k]).m.Snapshot()
			zoned := replay(t, p, traceConfig(tc.mode), t0.In(time.FixedZone("x", 3600)), rec.calls[:k]).m.Snapshot()
			require.Equal(t, string(marshal(t, utc)), string(marshal(t, zoned)))
		})
	}
}

// TestRestoreRefusesAStartOfALaterStage: in Staged mode no node starts
// before every earlier stage has settled, so a snapshot with a node of a
// later stage running or settled by a run of its own, while an earlier
// stage has not settled, is refused; a node of a later stage skipped
// (after a failure) is not.
func TestRestoreRefusesAStartOfALaterStage(t *testing.T) {
	p := lecturePlan(t, 20) // every node planned: positions are nodes
	cfg := schedule.Config{Mode: schedule.Staged}
	s := newMachine(t, p, cfg).Snapshot()
	// The script, narration 0 and image 0 done; narration 1 running,
	// image 1 and the music ready: stage 1 has not settled. Video 0
	// (stage 2) has its dependencies done.
	for _, tc := range []struct {
		name, states string
		ready        []int
		running      []any
		halted       bool
		want         string
	}{
		{name: "running", states: "ssRsrRprp", ready: []int{4, 7}, running: []any{obj{"node": 2}, obj{"node": 5}},
			want: `node 5 ("asset:video:segment[0]") of stage 2 is running, but stage 1 has not settled`},
		{name: "succeeded", states: "ssRsrsprp", ready: []int{4, 7}, running: []any{obj{"node": 2}},
			want: `node 5 ("asset:video:segment[0]") of stage 2 is succeeded, but stage 1 has not settled`},
		{name: "failed", states: "ssRsrfprk", ready: []int{4, 7}, running: []any{obj{"node": 2}},
			want: `node 5 ("asset:video:segment[0]") of stage 2 is failed, but stage 1 has not settled`},
		{name: "cancelled", states: "ssRsrcprp", ready: []int{4, 7}, running: []any{obj{"node": 2}}, halted: true,
			want: `node 5 ("asset:video:segment[0]") of stage 2 is cancelled, but stage 1 has not settled`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := editSnapshot(t, s, func(f obj) {
				f["states"], f["ready"], f["running"] = tc.states, tc.ready, tc.running
				if tc.halted {
					f["halted"] = true
				}
			})
			m, err := schedule.Restore(p, cfg, snap)
			require.Nil(t, m)
			requireSnapshotError(t, err, false, tc.want)
		})
	}
	// A node of a later stage skipped by a failure is consistent.
	snap := editSnapshot(t, s, func(f obj) {
		f["states"], f["ready"], f["running"] = "sfRsrkprk", []int{4, 7}, []any{obj{"node": 2}}
	})
	_, err := schedule.Restore(p, cfg, snap)
	require.NoError(t, err)
}

type obj = map[string]any

// editSnapshot returns s with its JSON form changed by edit.
func editSnapshot(t testing.TB, s schedule.Snapshot, edit func(f obj)) schedule.Snapshot {
	t.Helper()
	var f obj
	require.NoError(t, json.Unmarshal(marshal(t, s), &f))
	edit(f)
	b, err := json.Marshal(f)
	require.NoError(t, err)
	var out schedule.Snapshot
	require.NoError(t, json.Unmarshal(b, &out), "the form is good: Restore refuses it")
	return out
}

// TestSnapshotOfStartsAtTheZeroTime: a driver may start its clock at the
// zero time (TestRefundAtTheZeroTime): a snapshot of a machine whose rate
// counts starts made then restores, and the restored machine gives the
// starts back and lets nodes start as the original does.
func TestSnapshotOfStartsAtTheZeroTime(t *testing.T) {
	p := lecturePlan(t, 60)
	c := snapshotCase{plan: p, cfg: schedule.Config{Rates: map[string]schedule.Rate{
		graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}}
	var zero time.Time
	m := newMachine(t, p, c.cfg)
	_, ok := m.Next(zero)
	require.True(t, ok)
	_, err := m.Succeed(node(t, p.Graph, "script"))
	require.NoError(t, err)
	var images []graph.Node
	for st, ok := m.Next(zero); ok; st, ok = m.Next(zero) {
		if st.Key == graph.KindImage {
			images = append(images, st.Node)
		}
	}
	require.Len(t, images, 2)
	for _, decode := range []bool{false, true} {
		s := m.Snapshot()
		if decode {
			s = editSnapshot(t, s, func(obj) {})
		}
		restored, err := schedule.Restore(p, c.cfg, s)
		require.NoError(t, err)
		require.Equal(t, string(marshal(t, m.Snapshot())), string(marshal(t, restored.Snapshot())))
		for _, n := range images {
			a, errA := m.Refund(n)
			b, errB := restored.Refund(n)
			require.Equal(t, errA, errB)
			require.Equal(t, a, b, "Refund of %s", p.Graph.NodeID(n))
		}
		for range 3 {
			a, okA := m.Next(zero.Add(time.Second))
			b, okB := restored.Next(zero.Add(time.Second))
			require.Equal(t, okA, okB)
			require.Equal(t, a, b)
		}
		m = restored // and again, from the copy
	}
}

// TestFingerprintIgnoresWhatTheMachineIgnores: a Config that differs only
// in what the machine ignores (a window of a kind the plan has no node
// of, whether or not another kind's window applies; a rate or a cap of a
// key it has not) has the same fingerprint, and a snapshot restores
// under either.
func TestFingerprintIgnoresWhatTheMachineIgnores(t *testing.T) {
	p := lecturePlan(t, 20, "asset:image:segment[0]") // an image, a video and the timeline
	video := map[string]time.Duration{graph.KindVideo: 4 * time.Second}
	for _, tc := range []struct {
		name string
		a, b schedule.Config
	}{
		{"a window of a kind not planned", schedule.Config{}, schedule.Config{
			Windows: map[string]time.Duration{graph.KindNarration: 2 * time.Second}}},
		{"beside a window that applies", schedule.Config{Windows: video}, schedule.Config{
			Windows: map[string]time.Duration{graph.KindVideo: 4 * time.Second, graph.KindNarration: 2 * time.Second}}},
		{"a rate and a cap of a key not planned", schedule.Config{Windows: video}, schedule.Config{Windows: video,
			Rates: map[string]schedule.Rate{graph.KindNarration: {Starts: 1, Per: time.Second}},
			Caps:  map[string]int{graph.KindMusic: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, p, tc.a)
			_, ok := m.Next(t0)
			require.True(t, ok)
			s := m.Snapshot()
			require.Equal(t, fingerprintOf(t, s), fingerprintOf(t, newMachine(t, p, tc.b).Snapshot()))
			_, err := schedule.Restore(p, tc.b, s)
			require.NoError(t, err)
		})
	}
}

// TestSnapshotDecodeTakesTimesToUTC: a snapshot whose times are written
// with another offset (the same instants) reads as the one written in
// UTC: it writes back the same bytes, as the machine restored from it
// does.
func TestSnapshotDecodeTakesTimesToUTC(t *testing.T) {
	p := lecturePlan(t, 20)
	cfg := schedule.Config{MaxBatch: 2,
		Rates:   map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: 3 * time.Second}},
		Windows: map[string]time.Duration{graph.KindVideo: 4 * time.Second}}
	m := newMachine(t, p, cfg)
	st, ok := m.Next(t0)
	require.True(t, ok)
	_, err := m.SucceedAt(st.Node, t0.Add(time.Second))
	require.NoError(t, err)
	for _, ok := m.Next(t0.Add(2 * time.Second)); ok; _, ok = m.Next(t0.Add(2 * time.Second)) {
	}
	for _, n := range m.RunningNodes() {
		_, err := m.SucceedAt(n, t0.Add(3*time.Second))
		require.NoError(t, err)
	}
	// Image 1 starts as the rate allows; video 0, ready since 3s, waits
	// for its window.
	st, ok = m.Next(t0.Add(5 * time.Second))
	require.True(t, ok)
	require.Equal(t, "asset:image:segment[1]", p.Graph.NodeID(st.Node))
	_, ok = m.Next(t0.Add(5 * time.Second))
	require.False(t, ok)
	want := string(marshal(t, m.Snapshot()))
	for _, key := range []string{`"wake"`, `"at"`, `"rateStart"`, `"starts"`} {
		require.Contains(t, want, key)
	}
	zoned := strings.ReplaceAll(want, `T00:00:0`, `T01:00:0`)
	zoned = strings.ReplaceAll(zoned, `Z"`, `+01:00"`)
	var s schedule.Snapshot
	require.NoError(t, json.Unmarshal([]byte(zoned), &s))
	require.Equal(t, want, string(marshal(t, s)))
	restored, err := schedule.Restore(p, cfg, s)
	require.NoError(t, err)
	require.Equal(t, want, string(marshal(t, restored.Snapshot())))
}

// TestSnapshotJSONNull: JSON null leaves a Snapshot as it is, as it
// does a Config and a planner.Plan (encoding/json's convention for a
// null value), and the zero Snapshot, which is no snapshot, is written
// as null, so that a host's record without one yet reads back. Restore
// refuses the zero Snapshot with a *SnapshotError that says a snapshot
// is needed.
func TestSnapshotJSONNull(t *testing.T) {
	p := lecturePlan(t, 20)
	s, b := snapshotAt(t, p, schedule.Config{}, 10, 1)
	require.NoError(t, json.Unmarshal([]byte(" null\n"), &s))
	require.Equal(t, string(b), string(marshal(t, s)), "null leaves the snapshot as it is")
	type record struct{ Snap schedule.Snapshot }
	h := record{Snap: s}
	require.NoError(t, json.Unmarshal([]byte(`{"Snap":null}`), &h))
	require.Equal(t, string(b), string(marshal(t, h.Snap)), "a null field leaves the snapshot as it is")

	zero, err := json.Marshal(record{})
	require.NoError(t, err)
	require.Equal(t, `{"Snap":null}`, string(zero), "the zero Snapshot is no snapshot")
	var back record
	require.NoError(t, json.Unmarshal(zero, &back), "a record without a snapshot reads back")
	require.Zero(t, back.Snap.Version())
	for _, snap := range []schedule.Snapshot{{}, back.Snap} {
		m, err := schedule.Restore(p, schedule.Config{}, snap)
		require.Nil(t, m)
		requireSnapshotError(t, err, false, "no snapshot (the zero Snapshot, or none read from JSON null): take one with Machine.Snapshot")
	}
}

// TestRestoreChecksThePartsAgainstTheFingerprint: of a snapshot's
// "parts", Restore checks against the fingerprint, which the plan and
// Config make, every digest but the plan's: with the same fingerprint
// the plan's may differ (a batch key whose concurrency a cap lowers to
// the same limit, in a plan assembled by hand), so an edited plan digest
// restores, and the restored machine writes its own. Restore's doc said
// that a snapshot whose parts disagree "with the plan" is refused, and
// with the plan's digest edited, the digests of caps, rates, windows and shared
// were not checked at all (what differs is not compared past the plan).
func TestRestoreChecksThePartsAgainstTheFingerprint(t *testing.T) {
	p := lecturePlan(t, 20)
	cfg := schedule.Config{Workers: 3}
	m := newMachine(t, p, cfg)
	_, ok := m.Next(t0)
	require.True(t, ok)
	s := m.Snapshot()
	edited := editSnapshot(t, s, func(f obj) { f["parts"].(obj)["plan"] = "0123456789abcdef" })
	r, err := schedule.Restore(p, cfg, edited)
	require.NoError(t, err, "the plan's digest alone is not checked")
	require.Equal(t, string(marshal(t, s)), string(marshal(t, r.Snapshot())), "the restored machine writes its own digests")
	for _, part := range []string{"mode", "workers", "caps", "rates", "windows", "maxBatch", "shared"} {
		bad := editSnapshot(t, s, func(f obj) {
			f["parts"].(obj)["plan"] = "0123456789abcdef"
			f["parts"].(obj)[part] = "0123456789abcdef"
		})
		_, err := schedule.Restore(p, cfg, bad)
		t.Run(part, func(t *testing.T) {
			requireSnapshotError(t, err, false, "parts: they disagree with the fingerprint")
		})
	}
}

// carriedUnder returns the snapshot b, of plan p, with the starts of each
// key the plan has not fitted to cfg's rate of it, as Restore under cfg
// fits them: the latest, up to its Starts, or none without a rate; and
// with the version and "parts" of fresh, the JSON of the snapshot of a
// new machine of p and cfg: Restore takes a snapshot of version 1, or
// one whose plan digest alone differs with the same fingerprint, without
// checking that digest, and the machine then writes its own (see
// Snapshot), which is that of any machine of p and cfg. (Taking them
// from the restored machine's own snapshot, which the caller compares
// with, would leave them unchecked.)
func carriedUnder(t testing.TB, b []byte, p *planner.Plan, cfg schedule.Config, fresh []byte) string {
	t.Helper()
	var f, own map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &f))
	require.NoError(t, json.Unmarshal(fresh, &own))
	f["version"], f["parts"] = own["version"], own["parts"]
	var rates []schedule.RateStarts
	if r, ok := f["rates"]; ok {
		require.NoError(t, json.Unmarshal(r, &rates))
	}
	planned := map[string]bool{}
	for k := range p.Graph.Kinds() {
		if key, _ := p.Graph.BatchKey(k); key != "" {
			planned[key] = true
		}
	}
	var kept []schedule.RateStarts
	for _, rs := range rates {
		if !planned[rs.Key] {
			r, ok := cfg.Rates[rs.Key]
			if !ok {
				continue
			}
			rs.Starts = rs.Starts[max(0, len(rs.Starts)-r.Starts):]
		}
		kept = append(kept, rs)
	}
	switch {
	case len(kept) == len(rates) && slices.EqualFunc(kept, rates, func(a, b schedule.RateStarts) bool { return len(a.Starts) == len(b.Starts) }):
	case len(kept) == 0:
		delete(f, "rates")
	default:
		r, err := json.Marshal(kept)
		require.NoError(t, err)
		f["rates"] = r
	}
	// In the form's order of members, as Snapshot.MarshalJSON writes them.
	var out bytes.Buffer
	out.WriteByte('{')
	for _, name := range []string{"version", "fingerprint", "parts", "states", "ready", "readySince", "held", "running", "rates", "halted", "wake"} {
		if v, ok := f[name]; ok {
			if out.Len() > 1 {
				out.WriteByte(',')
			}
			fmt.Fprintf(&out, "%q:%s", name, v)
		}
	}
	out.WriteByte('}')
	return out.String()
}
