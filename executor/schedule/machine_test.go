package schedule_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// readyIDs returns the plan's nodes the machine has Ready, ascending.
func readyIDs(m *schedule.Machine, p *planner.Plan) []string {
	var out []string
	for _, n := range p.Nodes() {
		if s, _ := m.State(n); s == schedule.Ready {
			out = append(out, p.Graph.NodeID(n))
		}
	}
	return out
}

// succeed settles nodes as done, failing the test on an error.
func succeed(t *testing.T, m *schedule.Machine, g *graph.Graph, idList ...string) schedule.Result {
	t.Helper()
	var last schedule.Result
	for _, id := range idList {
		r, err := m.Succeed(node(t, g, id))
		require.NoError(t, err, "Succeed(%s)", id)
		last = r
	}
	return last
}

func TestModeAndStateStrings(t *testing.T) {
	assert.Equal(t, "dataflow", schedule.Dataflow.String())
	assert.Equal(t, "staged", schedule.Staged.String())
	assert.Equal(t, "Mode(9)", schedule.Mode(9).String())
	want := []string{"pending", "ready", "running", "succeeded", "failed", "skipped", "superseded", "cancelled"}
	for s := range schedule.State(len(want)) {
		assert.Equal(t, want[s], s.String())
		assert.Equal(t, s >= schedule.Succeeded, s.Terminal(), "%s.Terminal()", s)
	}
	assert.Equal(t, "State(42)", schedule.State(42).String())
}

func TestNewReady(t *testing.T) {
	// a is global; b depends on a; c depends on b, same segment.
	chain := tmpl(glob("a"), per("b", dep("a", graph.ScopeGlobal)), per("c", dep("b", graph.ScopeSameSegment)))
	tests := []struct {
		name  string
		tm    graph.Template
		secs  int
		edits []string
		mode  schedule.Mode
		want  []string
	}{
		{name: "fresh lecture: only the script", tm: graph.Lecture(), secs: 30,
			want: []string{"script"}},
		{name: "fresh lecture, staged", tm: graph.Lecture(), secs: 30, mode: schedule.Staged,
			want: []string{"script"}},
		{name: "edited narration: its clean script does not hold it back", tm: graph.Lecture(), secs: 30,
			edits: []string{"asset:narration:segment[1]"},
			want:  []string{"asset:narration:segment[1]"}},
		{name: "two edits in different kinds", tm: graph.Lecture(), secs: 30,
			edits: []string{"asset:image:segment[0]", "asset:narration:segment[2]"},
			want:  []string{"asset:narration:segment[2]", "asset:image:segment[0]"}},
		{name: "a video whose image and narration are clean", tm: graph.Lecture(), secs: 30,
			edits: []string{"asset:video:segment[2]"},
			want:  []string{"asset:video:segment[2]"}},
		{name: "chain edited in the middle", tm: chain, secs: 30,
			edits: []string{"b:segment[1]"},
			want:  []string{"b:segment[1]"}},
		{name: "chain edited at two depths", tm: chain, secs: 30, mode: schedule.Staged,
			edits: []string{"b:segment[0]", "c:segment[2]"},
			want:  []string{"b:segment[0]", "c:segment[2]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planOf(t, build(t, tt.tm, tt.secs), tt.edits...)
			m := newMachine(t, p, schedule.Config{Mode: tt.mode})
			if diff := cmp.Diff(tt.want, readyIDs(m, p)); diff != "" {
				t.Errorf("ready at start (-want +got):\n%s", diff)
			}
			assert.Equal(t, p.Len(), m.Len())
			assert.Zero(t, m.Settled())
			assert.Zero(t, m.Running())
			assert.False(t, m.Done())
			assert.Equal(t, ids(p.Graph, p.Nodes()), ids(p.Graph, m.Unsettled()))
		})
	}
}

func TestEmptyPlan(t *testing.T) {
	p := lecturePlan(t, 30, "asset:image:segment[0]")
	empty := &planner.Plan{Graph: p.Graph}
	m := newMachine(t, empty, schedule.Config{})
	assert.True(t, m.Done())
	assert.Zero(t, m.Len())
	_, ok := m.Next(t0)
	assert.False(t, ok)
	_, ok = m.Wake()
	assert.False(t, ok)
	assert.Empty(t, m.Unsettled())
}

func TestNextFIFOAcrossKeys(t *testing.T) {
	// p (key kp, one at a time) waits on b; q (no key) waits on a. Node
	// order puts every p before every q, but q becomes ready first.
	tm := tmpl(glob("a"), glob("b"),
		batched(per("p", dep("b", graph.ScopeGlobal)), "kp", 1),
		per("q", dep("a", graph.ScopeGlobal)))
	g := build(t, tm, 20)
	m := newMachine(t, planOf(t, g), schedule.Config{Workers: 1})
	var got []string
	for !m.Done() {
		st, ok := m.Next(t0)
		require.True(t, ok, "nothing to start after %v", got)
		got = append(got, g.NodeID(st.Node))
		_, ok = m.Next(t0)
		require.False(t, ok, "the global cap of 1 let a second node start after %v", got)
		succeed(t, m, g, g.NodeID(st.Node))
	}
	want := []string{"a", "b", "q:segment[0]", "q:segment[1]", "p:segment[0]", "p:segment[1]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("start order (-want +got):\n%s", diff)
	}
}

func TestNextLimitsPerKey(t *testing.T) {
	// x (key kx, 1 at a time) and y (no key) wait on r; z (key kz, 2)
	// waits on x of its segment.
	tm := tmpl(glob("r"),
		batched(per("x", dep("r", graph.ScopeGlobal)), "kx", 1),
		per("y", dep("r", graph.ScopeGlobal)),
		batched(per("z", dep("x", graph.ScopeSameSegment)), "kz", 2))
	g := build(t, tm, 30)
	m := newMachine(t, planOf(t, g), schedule.Config{})
	type step struct {
		succeed []string
		want    []string
	}
	steps := []step{
		{want: []string{"r"}},
		{succeed: []string{"r"}, want: []string{"x:segment[0]", "y:segment[0]", "y:segment[1]", "y:segment[2]"}},
		// x1 was ready before z0: it goes first.
		{succeed: []string{"x:segment[0]"}, want: []string{"x:segment[1]", "z:segment[0]"}},
		{succeed: []string{"y:segment[0]", "y:segment[2]"}},
		{succeed: []string{"x:segment[1]"}, want: []string{"x:segment[2]", "z:segment[1]"}},
		// kz is full: z2 waits for a slot.
		{succeed: []string{"x:segment[2]"}},
		{succeed: []string{"z:segment[1]"}, want: []string{"z:segment[2]"}},
		{succeed: []string{"z:segment[0]", "z:segment[2]", "y:segment[1]"}},
	}
	for i, s := range steps {
		succeed(t, m, g, s.succeed...)
		if diff := cmp.Diff(s.want, drain(m, g, t0)); diff != "" {
			t.Fatalf("step %d, after %v (-want +got):\n%s", i, s.succeed, diff)
		}
	}
	assert.True(t, m.Done())
}

func TestLectureStartOrder(t *testing.T) {
	g := build(t, graph.Lecture(), 60)
	m := newMachine(t, planOf(t, g), schedule.Config{})
	require.Equal(t, []string{"script"}, drain(m, g, t0))
	r := succeed(t, m, g, "script")
	assert.Equal(t, []int{0}, r.StagesFinished)
	want := []string{
		"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:narration:segment[2]", "asset:narration:segment[3]",
		"asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]", "asset:image:segment[3]", "asset:image:segment[4]",
		"asset:music",
	}
	if diff := cmp.Diff(want, drain(m, g, t0)); diff != "" {
		t.Fatalf("after the script (-want +got):\n%s", diff)
	}
	succeed(t, m, g, "asset:image:segment[3]", "asset:narration:segment[3]")
	want = []string{"asset:narration:segment[4]", "asset:image:segment[5]", "asset:video:segment[3]"}
	if diff := cmp.Diff(want, drain(m, g, t0)); diff != "" {
		t.Fatalf("after segment 3's inputs (-want +got):\n%s", diff)
	}
}

func TestStagedHoldsLaterStages(t *testing.T) {
	for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
		t.Run(mode.String(), func(t *testing.T) {
			g := build(t, graph.Lecture(), 20)
			m := newMachine(t, planOf(t, g), schedule.Config{Mode: mode})
			drain(m, g, t0)
			succeed(t, m, g, "script")
			drain(m, g, t0)
			r := succeed(t, m, g, "asset:narration:segment[0]", "asset:image:segment[0]")
			assert.Empty(t, r.StagesFinished)
			video0 := node(t, g, "asset:video:segment[0]")
			s, _ := m.State(video0)
			started := drain(m, g, t0)
			if mode == schedule.Dataflow {
				assert.Equal(t, schedule.Ready, s)
				assert.Equal(t, []string{"asset:video:segment[0]"}, started)
			} else {
				assert.Equal(t, schedule.Pending, s, "staged: a node of stage 2 is ready while stage 1 runs")
				assert.Empty(t, started, "staged: started a node of stage 2 while stage 1 runs")
			}
			succeed(t, m, g, "asset:narration:segment[1]", "asset:image:segment[1]")
			if mode == schedule.Staged {
				assert.Empty(t, drain(m, g, t0), "staged: the music of stage 1 still runs")
			}
			r = succeed(t, m, g, "asset:music")
			assert.Equal(t, []int{1}, r.StagesFinished)
			if mode == schedule.Staged {
				assert.Equal(t, []string{"asset:video:segment[0]", "asset:video:segment[1]"}, drain(m, g, t0))
			} else {
				assert.Equal(t, []string{"asset:video:segment[1]"}, drain(m, g, t0))
			}
		})
	}
}

// op is one call to the machine in a scripted test.
type op struct {
	call string // "succeed", "fail", "supersede", "cancel", "invalidate", "start"
	id   string
	// wantSkipped and wantStages are the call's Result.
	wantSkipped []string
	wantStages  []int
}

func runOps(t *testing.T, m *schedule.Machine, g *graph.Graph, ops []op) {
	t.Helper()
	for i, o := range ops {
		if o.call == "start" {
			drain(m, g, t0)
			continue
		}
		n := node(t, g, o.id)
		var (
			r   schedule.Result
			err error
		)
		switch o.call {
		case "succeed":
			r, err = m.Succeed(n)
		case "fail":
			r, err = m.Fail(n)
		case "supersede":
			r, err = m.Supersede(n)
		case "cancel":
			r, err = m.Cancel(n)
		case "invalidate":
			r, err = m.Invalidate(n)
		default:
			t.Fatalf("op %d: unknown call %q", i, o.call)
		}
		require.NoError(t, err, "op %d: %s %s", i, o.call, o.id)
		if diff := cmp.Diff(o.wantSkipped, ids(g, r.Skipped)); diff != "" {
			t.Errorf("op %d (%s %s): skipped (-want +got):\n%s", i, o.call, o.id, diff)
		}
		if diff := cmp.Diff(o.wantStages, r.StagesFinished); diff != "" {
			t.Errorf("op %d (%s %s): stages finished (-want +got):\n%s", i, o.call, o.id, diff)
		}
	}
}

func TestFailAndSupersede(t *testing.T) {
	start := op{call: "start"}
	tests := []struct {
		name string
		secs int
		mode schedule.Mode
		ops  []op
		// wantStates are the final states of the listed nodes.
		wantStates map[string]schedule.State
	}{
		{
			name: "script fails: everything else skipped once, every stage finished",
			secs: 20,
			ops: []op{start, {call: "fail", id: "script",
				wantSkipped: []string{
					"asset:narration:segment[0]", "asset:narration:segment[1]",
					"asset:image:segment[0]", "asset:image:segment[1]",
					"asset:video:segment[0]", "asset:video:segment[1]",
					"asset:music", "timeline"},
				wantStages: []int{0, 1, 2, 3}}},
			wantStates: map[string]schedule.State{"script": schedule.Failed, "timeline": schedule.Skipped},
		},
		{
			name: "overlapping failures report each skip once",
			secs: 30,
			ops: []op{
				start, {call: "succeed", id: "script", wantStages: []int{0}}, start,
				{call: "fail", id: "asset:narration:segment[1]", wantSkipped: []string{"asset:video:segment[1]", "timeline"}},
				{call: "fail", id: "asset:image:segment[1]"},
				{call: "supersede", id: "asset:image:segment[2]", wantSkipped: []string{"asset:video:segment[2]"}},
				{call: "succeed", id: "asset:narration:segment[0]"},
				{call: "succeed", id: "asset:image:segment[0]"},
				start,
				{call: "succeed", id: "asset:narration:segment[2]"},
				{call: "succeed", id: "asset:music", wantStages: []int{1}},
				{call: "succeed", id: "asset:video:segment[0]", wantStages: []int{2, 3}},
			},
			wantStates: map[string]schedule.State{
				"asset:narration:segment[1]": schedule.Failed,
				"asset:image:segment[1]":     schedule.Failed,
				"asset:image:segment[2]":     schedule.Superseded,
				"asset:video:segment[0]":     schedule.Succeeded,
				"asset:video:segment[1]":     schedule.Skipped,
				"asset:video:segment[2]":     schedule.Skipped,
				"timeline":                   schedule.Skipped,
			},
		},
		{
			// A failure skips all of stages 2 and 3 while stage 1 still
			// runs: they are reported after stage 1, in order.
			name: "later stages settled first are reported in order",
			secs: 10,
			ops: []op{
				start, {call: "succeed", id: "script", wantStages: []int{0}}, start,
				{call: "fail", id: "asset:image:segment[0]", wantSkipped: []string{"asset:video:segment[0]", "timeline"}},
				{call: "succeed", id: "asset:narration:segment[0]"},
				{call: "succeed", id: "asset:music", wantStages: []int{1, 2, 3}},
			},
		},
		{
			name: "later stages settled first, staged",
			secs: 10,
			mode: schedule.Staged,
			ops: []op{
				start, {call: "succeed", id: "script", wantStages: []int{0}}, start,
				{call: "supersede", id: "asset:narration:segment[0]", wantSkipped: []string{"asset:video:segment[0]", "timeline"}},
				{call: "fail", id: "asset:music"},
				{call: "succeed", id: "asset:image:segment[0]", wantStages: []int{1, 2, 3}},
			},
		},
		{
			name: "failure frees the slot for the next node of the key",
			secs: 60,
			ops: []op{
				start, {call: "succeed", id: "script", wantStages: []int{0}}, start,
				{call: "fail", id: "asset:narration:segment[2]", wantSkipped: []string{"asset:video:segment[2]", "timeline"}},
				start,
			},
			wantStates: map[string]schedule.State{"asset:narration:segment[4]": schedule.Running, "asset:narration:segment[5]": schedule.Ready},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, graph.Lecture(), tt.secs)
			m := newMachine(t, planOf(t, g), schedule.Config{Mode: tt.mode})
			runOps(t, m, g, tt.ops)
			for id, want := range tt.wantStates {
				got, ok := m.State(node(t, g, id))
				require.True(t, ok)
				assert.Equal(t, want.String(), got.String(), "state of %s", id)
			}
		})
	}
}

func TestFailFreesSlot(t *testing.T) {
	g := build(t, graph.Lecture(), 60)
	m := newMachine(t, planOf(t, g), schedule.Config{Workers: 3})
	drain(m, g, t0)
	succeed(t, m, g, "script")
	require.Equal(t, []string{"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:narration:segment[2]"}, drain(m, g, t0))
	_, err := m.Fail(node(t, g, "asset:narration:segment[1]"))
	require.NoError(t, err)
	assert.Equal(t, 2, m.Running())
	assert.Equal(t, []string{"asset:narration:segment[3]"}, drain(m, g, t0))
}

func TestTransitionErrors(t *testing.T) {
	// An edit plan: narration 1, video 1 and the timeline. The script is
	// in the graph but not in the plan.
	g := build(t, graph.Lecture(), 30)
	p := planOf(t, g, "asset:narration:segment[1]")
	narr := node(t, g, "asset:narration:segment[1]")
	video := node(t, g, "asset:video:segment[1]")
	script := node(t, g, "script")
	calls := map[string]func(*schedule.Machine, graph.Node) (schedule.Result, error){
		"Succeed":   (*schedule.Machine).Succeed,
		"Fail":      (*schedule.Machine).Fail,
		"Supersede": (*schedule.Machine).Supersede,
		"Cancel":    (*schedule.Machine).Cancel,
	}
	tests := []struct {
		name    string
		prepare func(*testing.T, *schedule.Machine) // before the call
		n       graph.Node
		want    string
		is      error
	}{
		{name: "ready", n: narr, want: `schedule: node not running: node "asset:narration:segment[1]" is ready`, is: schedule.ErrNotRunning},
		{name: "pending", n: video, want: `schedule: node not running: node "asset:video:segment[1]" is pending`, is: schedule.ErrNotRunning},
		{name: "succeeded", n: narr, want: `schedule: node not running: node "asset:narration:segment[1]" is succeeded`, is: schedule.ErrNotRunning,
			prepare: func(t *testing.T, m *schedule.Machine) {
				drain(m, g, t0)
				succeed(t, m, g, "asset:narration:segment[1]")
			}},
		{name: "skipped", n: video, want: `schedule: node not running: node "asset:video:segment[1]" is skipped`, is: schedule.ErrNotRunning,
			prepare: func(t *testing.T, m *schedule.Machine) {
				drain(m, g, t0)
				_, err := m.Fail(narr)
				require.NoError(t, err)
			}},
		{name: "clean node of the graph", n: script, want: `schedule: node not in the plan: node "script"`, is: schedule.ErrNotInPlan},
		{name: "none", n: graph.None, want: `schedule: node not in the plan: node -1: the graph has nodes 0 to 11`, is: schedule.ErrNotInPlan},
		{name: "beyond the graph", n: 1000, want: `schedule: node not in the plan: node 1000: the graph has nodes 0 to 11`, is: schedule.ErrNotInPlan},
	}
	for _, tt := range tests {
		for _, name := range []string{"Succeed", "Fail", "Supersede", "Cancel"} {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				m := newMachine(t, p, schedule.Config{})
				if tt.prepare != nil {
					tt.prepare(t, m)
				}
				before := states(m, p)
				running, settled := m.Running(), m.Settled()
				var r schedule.Result
				var err error
				require.NotPanics(t, func() { r, err = calls[name](m, tt.n) })
				require.EqualError(t, err, tt.want)
				require.ErrorIs(t, err, tt.is)
				assert.Equal(t, schedule.Result{}, r)
				assert.Equal(t, before, states(m, p), "an error changed the states")
				assert.Equal(t, running, m.Running())
				assert.Equal(t, settled, m.Settled())
			})
		}
	}
	t.Run("State", func(t *testing.T) {
		m := newMachine(t, p, schedule.Config{})
		for _, n := range []graph.Node{script, graph.None, 1000} {
			s, ok := m.State(n)
			assert.False(t, ok)
			assert.Equal(t, schedule.Pending, s)
		}
	})
}

func states(m *schedule.Machine, p *planner.Plan) []string {
	var out []string
	for _, n := range p.Nodes() {
		s, _ := m.State(n)
		out = append(out, s.String())
	}
	return out
}

func TestHalt(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	m := newMachine(t, planOf(t, g), schedule.Config{})
	drain(m, g, t0)
	succeed(t, m, g, "script")
	st, ok := m.Next(t0)
	require.True(t, ok)
	st2, ok := m.Next(t0)
	require.True(t, ok)
	assert.False(t, m.Halted())
	m.Halt()
	assert.True(t, m.Halted())
	_, ok = m.Next(t0)
	assert.False(t, ok, "Next after Halt")
	_, ok = m.More(t0, st.Node)
	assert.False(t, ok, "More after Halt")
	_, ok = m.Wake()
	assert.False(t, ok)
	assert.False(t, m.Done(), "done while two nodes run")
	_, err := m.Succeed(st.Node)
	require.NoError(t, err, "a running node still settles after Halt")
	assert.False(t, m.Done())
	r, err := m.Cancel(st2.Node)
	require.NoError(t, err)
	assert.Empty(t, r.Skipped, "a cancel skips nothing")
	assert.True(t, m.Done(), "halted with nothing running")
	assert.Zero(t, m.Running())
	assert.Equal(t, 3, m.Settled(), "the script and the two nodes that ran")
	s, _ := m.State(st2.Node)
	assert.Equal(t, schedule.Cancelled, s)
	// Everything not settled is listed, ascending; the ready ones stay ready.
	unsettled := m.Unsettled()
	assert.Len(t, unsettled, m.Len()-3)
	assert.IsIncreasing(t, unsettled)
	s, _ = m.State(node(t, g, "asset:music"))
	assert.Equal(t, schedule.Ready, s)
}

func TestCancelKeepsDependentsPending(t *testing.T) {
	g := build(t, graph.Lecture(), 10)
	m := newMachine(t, planOf(t, g), schedule.Config{})
	drain(m, g, t0)
	r, err := m.Cancel(node(t, g, "script"))
	require.NoError(t, err)
	assert.Empty(t, r.Skipped)
	assert.Equal(t, []int{0}, r.StagesFinished)
	for _, id := range []string{"asset:narration:segment[0]", "asset:music", "timeline"} {
		s, _ := m.State(node(t, g, id))
		assert.Equal(t, schedule.Pending, s, id)
	}
	// A cancelled run starts nothing more: the cancel halted the machine,
	// which is done, nothing running.
	assert.True(t, m.Halted())
	_, ok := m.Next(t0)
	assert.False(t, ok)
	assert.True(t, m.Done())
}

func TestConfigErrors(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	p := planOf(t, g)
	edit := planOf(t, g, "asset:narration:segment[0]") // no image key
	tests := []struct {
		name string
		p    *planner.Plan
		c    schedule.Config
		want string // "" for no error
	}{
		{name: "nil plan", c: schedule.Config{}, want: "schedule: invalid config: planner: invalid plan: a plan with a graph is required: planner.New of a dirty.Set makes one (planner.New(nil), the empty plan of no set, has none)"},
		{name: "plan without graph", p: &planner.Plan{}, want: "schedule: invalid config: planner: invalid plan: a plan with a graph is required: planner.New of a dirty.Set makes one (planner.New(nil), the empty plan of no set, has none)"},
		{name: "bad mode", p: p, c: schedule.Config{Mode: 7}, want: "schedule: invalid config: mode 7: want Dataflow or Staged"},
		{name: "negative workers", p: p, c: schedule.Config{Workers: -1}, want: "schedule: invalid config: workers -1: want 0 (no cap) or more"},
		{name: "zero starts", p: p, c: schedule.Config{Rates: map[string]schedule.Rate{"asset:image": {Per: time.Second}}},
			want: `schedule: invalid config: rate for batch key "asset:image" is 0 per 1s: want at least 1 start per positive period`},
		{name: "zero period", p: p, c: schedule.Config{Rates: map[string]schedule.Rate{"asset:image": {Starts: 2}}},
			want: `schedule: invalid config: rate for batch key "asset:image" is 2 per 0s: want at least 1 start per positive period`},
		{name: "negative period", p: p, c: schedule.Config{Rates: map[string]schedule.Rate{"asset:video": {Starts: 2, Per: -time.Second}}},
			want: `schedule: invalid config: rate for batch key "asset:video" is 2 per -1s: want at least 1 start per positive period`},
		{name: "first bad key in key order", p: p, c: schedule.Config{Rates: map[string]schedule.Rate{
			"asset:video": {}, "asset:image": {Starts: -1, Per: time.Second}, "asset:narration": {Starts: 1, Per: time.Second}}},
			want: `schedule: invalid config: rate for batch key "asset:image" is -1 per 1s: want at least 1 start per positive period`},
		{name: "bad rate for a key the plan does not use", p: edit, c: schedule.Config{Rates: map[string]schedule.Rate{"asset:image": {}}},
			want: `schedule: invalid config: rate for batch key "asset:image" is 0 per 0s: want at least 1 start per positive period`},
		{name: "empty batch key", p: p, c: schedule.Config{Rates: map[string]schedule.Rate{"": {Starts: 1, Per: time.Second}}},
			want: "schedule: invalid config: a rate for the empty batch key: rates apply to batch keys, and singles have none"},
		{name: "good rate for a key the plan does not use", p: edit, c: schedule.Config{Rates: map[string]schedule.Rate{"asset:image": {Starts: 1, Per: time.Second}}}},
		{name: "huge rate", p: p, c: schedule.Config{Rates: map[string]schedule.Rate{"asset:image": {Starts: math.MaxInt, Per: time.Hour}}}},
		{name: "staged with a cap", p: p, c: schedule.Config{Mode: schedule.Staged, Workers: 1}},
		{name: "zero cap", p: p, c: schedule.Config{Caps: map[string]int{"asset:image": 0}},
			want: `schedule: invalid config: cap for batch key "asset:image" is 0: want at least 1`},
		{name: "first bad cap in key order", p: p, c: schedule.Config{Caps: map[string]int{"asset:video": -2, "asset:image": -1}},
			want: `schedule: invalid config: cap for batch key "asset:image" is -1: want at least 1`},
		{name: "cap of the empty batch key", p: p, c: schedule.Config{Caps: map[string]int{"": 1}},
			want: "schedule: invalid config: a cap for the empty batch key: caps apply to batch keys, and singles have none"},
		{name: "cap of a key the plan does not use", p: edit, c: schedule.Config{Caps: map[string]int{"asset:image": 1}}},
		{name: "cap above the concurrency", p: p, c: schedule.Config{Caps: map[string]int{"asset:image": math.MaxInt}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				m   *schedule.Machine
				err error
			)
			require.NotPanics(t, func() { m, err = schedule.New(tt.p, tt.c) })
			if tt.want == "" {
				require.NoError(t, err)
				require.NotNil(t, m)
				return
			}
			require.EqualError(t, err, tt.want)
			assert.ErrorIs(t, err, schedule.ErrInvalidConfig)
			assert.Nil(t, m)
		})
	}
}

// A nil plan, or one without a graph (planner.New(nil), the empty plan
// of no set, which New's doc once said was always accepted), is refused
// as a plan, and the error says where a plan with a graph comes from.
func TestNewRefusesAPlanWithoutAGraph(t *testing.T) {
	for name, p := range map[string]*planner.Plan{"nil": nil, "zero": {}, "planner.New(nil)": planner.New(nil)} {
		t.Run(name, func(t *testing.T) {
			m, err := schedule.New(p, schedule.Config{})
			require.Nil(t, m)
			require.ErrorIs(t, err, schedule.ErrInvalidConfig)
			require.ErrorIs(t, err, planner.ErrInvalidPlan)
			require.ErrorContains(t, err, "planner.New of a dirty.Set makes one")
		})
	}
}

// TestInvalidPlan covers plans assembled by hand: New refuses what would
// make the machine panic, deadlock or ignore a limit.
func TestInvalidPlan(t *testing.T) {
	g := build(t, graph.Lecture(), 20)
	n := func(id string) graph.Node { return node(t, g, id) }
	single := func(ns ...graph.Node) planner.Group { return planner.Group{Kind: planner.Single, Nodes: ns} }
	batch := func(key string, c int, ns ...graph.Node) planner.Group {
		return planner.Group{Kind: planner.Batch, BatchKey: key, Concurrency: c, Nodes: ns}
	}
	stages := func(gs ...[]planner.Group) []planner.Stage {
		out := make([]planner.Stage, len(gs))
		for i, grp := range gs {
			out[i] = planner.Stage{Index: i, Groups: grp}
		}
		return out
	}
	narr0, narr1 := n("asset:narration:segment[0]"), n("asset:narration:segment[1]")
	tests := []struct {
		name   string
		stages []planner.Stage
		want   string
	}{
		{name: "valid by hand",
			stages: stages([]planner.Group{single(n("script"))}, []planner.Group{batch("asset:narration", 4, narr0, narr1)})},
		{name: "node beyond the graph",
			stages: stages([]planner.Group{single(n("script")), single(99)}),
			want:   "schedule: invalid config: planner: invalid plan: node 99 is not in the graph, which has nodes 0 to 8"},
		{name: "negative node",
			stages: stages([]planner.Group{single(graph.None)}),
			want:   "schedule: invalid config: planner: invalid plan: node -1 is not in the graph, which has nodes 0 to 8"},
		{name: "node twice",
			stages: stages([]planner.Group{single(n("script"))}, []planner.Group{batch("asset:narration", 4, narr0, narr0)}),
			want:   `schedule: invalid config: planner: invalid plan: node "asset:narration:segment[0]" appears twice`},
		{name: "dependency in the same stage",
			stages: stages([]planner.Group{single(n("script")), batch("asset:narration", 4, narr0)}),
			want:   `schedule: invalid config: planner: invalid plan: node "asset:narration:segment[0]" in stage 0 depends on "script" in stage 0: a dependency must come in an earlier stage`},
		{name: "dependency in a later stage",
			stages: stages([]planner.Group{batch("asset:narration", 4, narr0)}, []planner.Group{single(n("script"))}),
			want:   `schedule: invalid config: planner: invalid plan: node "asset:narration:segment[0]" in stage 0 depends on "script" in stage 1: a dependency must come in an earlier stage`},
		{name: "empty stage",
			stages: stages([]planner.Group{single(n("script"))}, nil, []planner.Group{batch("asset:narration", 4, narr0)}),
			want:   "schedule: invalid config: planner: invalid plan: stage 1 has no nodes"},
		{name: "batch without a key",
			stages: stages([]planner.Group{batch("", 4, narr0)}),
			want:   "schedule: invalid config: planner: invalid plan: stage 0 group 0: a batch needs a batch key and a concurrency of at least 1, not \"\" and 4"},
		{name: "batch without concurrency",
			stages: stages([]planner.Group{batch("asset:narration", 0, narr0)}),
			want:   "schedule: invalid config: planner: invalid plan: stage 0 group 0: a batch needs a batch key and a concurrency of at least 1, not \"asset:narration\" and 0"},
		{name: "one key, two limits",
			stages: stages([]planner.Group{batch("k", 2, narr0)}, []planner.Group{batch("k", 3, n("asset:video:segment[0]"))}),
			want:   `schedule: invalid config: planner: invalid plan: stage 1 group 0: batch key "k" has concurrency 3 here and 2 in an earlier group`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { _, err = schedule.New(&planner.Plan{Graph: g, Stages: tt.stages}, schedule.Config{}) })
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.want)
			assert.ErrorIs(t, err, schedule.ErrInvalidConfig)
			assert.ErrorIs(t, err, planner.ErrInvalidPlan)
		})
	}
}

// TestDecodedPlan runs a plan that went through JSON, as a Temporal
// workflow would receive it.
func TestDecodedPlan(t *testing.T) {
	p := lecturePlan(t, 60, "asset:image:segment[2]", "asset:narration:segment[4]")
	data, err := p.MarshalJSON()
	require.NoError(t, err)
	back := &planner.Plan{Graph: p.Graph}
	require.NoError(t, back.UnmarshalJSON(data))
	a := newSim(t, p, schedule.Config{}, 1).run()
	b := newSim(t, back, schedule.Config{}, 1).run()
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("decoded plan runs differently (-built +decoded):\n%s", diff)
	}
}

func TestErrInvalidConfigIsSentinel(t *testing.T) {
	_, err := schedule.New(nil, schedule.Config{})
	require.True(t, errors.Is(err, schedule.ErrInvalidConfig))
	assert.Equal(t, "schedule: invalid config", schedule.ErrInvalidConfig.Error())
}

// TestPlanChangedAfterNew covers plans made by planner.New whose stages
// were changed afterwards, against their documented immutability: the
// plan's node index (Plan.Nodes) then disagrees with its groups, and New
// refuses the plan rather than panic, run a node outside its batch or
// never finish a stage.
func TestPlanChangedAfterNew(t *testing.T) {
	g := build(t, graph.Lecture(), 20)
	n := func(id string) graph.Node { return node(t, g, id) }
	tests := []struct {
		name   string
		change func(p *planner.Plan)
		want   string
	}{
		{name: "a node added to a stage",
			change: func(p *planner.Plan) {
				p.Stages[0].Groups = append(p.Stages[0].Groups, planner.Group{Kind: planner.Single, Nodes: []graph.Node{n("asset:music")}})
			},
			want: `schedule: invalid config: planner: invalid plan: stage 0 group 2: node "asset:music" is not among the plan's nodes (Plan.Nodes): its stages were changed after it was built`},
		{name: "a node outside the graph added",
			change: func(p *planner.Plan) {
				p.Stages[1].Groups = append(p.Stages[1].Groups, planner.Group{Kind: planner.Single, Nodes: []graph.Node{99}})
			},
			want: `schedule: invalid config: planner: invalid plan: stage 1 group 1: node 99 is not in the graph, which has nodes 0 to 8`},
		{name: "a group dropped",
			change: func(p *planner.Plan) { p.Stages[0].Groups = p.Stages[0].Groups[:1] },
			want:   `schedule: invalid config: planner: invalid plan: node "asset:image:segment[1]" is among the plan's nodes (Plan.Nodes) but in no group: its stages were changed after it was built`},
		{name: "a group repeated",
			change: func(p *planner.Plan) { p.Stages[0].Groups = append(p.Stages[0].Groups, p.Stages[0].Groups[0]) },
			want:   `schedule: invalid config: planner: invalid plan: stage 0 group 2: node "asset:narration:segment[0]" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planOf(t, g, "asset:narration:segment[0]", "asset:image:segment[1]")
			tt.change(p)
			var err error
			require.NotPanics(t, func() { _, err = schedule.New(p, schedule.Config{Mode: schedule.Staged}) })
			require.EqualError(t, err, tt.want)
			assert.ErrorIs(t, err, schedule.ErrInvalidConfig)
			assert.ErrorIs(t, err, planner.ErrInvalidPlan)
		})
	}
}

func TestRunningNodes(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	p := planOf(t, g)
	m := newMachine(t, p, schedule.Config{Rates: map[string]schedule.Rate{graph.KindNarration: {Starts: 1, Per: time.Minute}}})
	assert.Nil(t, m.RunningNodes(), "nothing runs")
	drain(m, g, t0)
	assert.Equal(t, []string{"script"}, ids(g, m.RunningNodes()))
	succeed(t, m, g, "script")
	require.Equal(t, []string{"asset:narration:segment[0]", "asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]", "asset:music"},
		drain(m, g, t0))
	require.Equal(t, []string{"asset:narration:segment[1]"}, drain(m, g, t0.Add(time.Minute)))
	_, err := m.Fail(node(t, g, "asset:image:segment[1]"))
	require.NoError(t, err)
	// Listed in node order, not in the order they started.
	want := []string{"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:image:segment[0]", "asset:image:segment[2]", "asset:music"}
	got := m.RunningNodes()
	assert.Equal(t, want, ids(g, got))
	assert.Len(t, got, m.Running())
	got[0] = graph.None // the caller's own slice
	assert.Equal(t, want, ids(g, m.RunningNodes()))
}
