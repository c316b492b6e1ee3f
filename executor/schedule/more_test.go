package schedule_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// bulk starts a node with Next, then takes as many more like it as More
// gives, and returns all their IDs.
func bulk(t *testing.T, m *schedule.Machine, g *graph.Graph, now time.Time) []string {
	t.Helper()
	st, ok := m.Next(now)
	if !ok {
		return nil
	}
	out := []string{g.NodeID(st.Node)}
	for {
		more, ok := m.More(now, st.Node)
		if !ok {
			return out
		}
		assert.Equal(t, st.Key, more.Key)
		out = append(out, g.NodeID(more.Node))
	}
}

func TestMore(t *testing.T) {
	lecture := graph.Lecture()
	// a and b share key k (3 at a time); c has no key; all independent.
	shared := tmpl(batched(per("a"), "k", 3), batched(per("b"), "k", 3), per("c"))
	tests := []struct {
		name    string
		tm      graph.Template
		secs    int
		cfg     schedule.Config
		prepare func(t *testing.T, m *schedule.Machine, g *graph.Graph)
		// batches are the successive bulk takes.
		batches [][]string
	}{
		{
			name: "up to the key's concurrency",
			tm:   lecture, secs: 60,
			prepare: func(t *testing.T, m *schedule.Machine, g *graph.Graph) {
				drain(m, g, t0)
				succeed(t, m, g, "script")
			},
			batches: [][]string{
				{"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:narration:segment[2]", "asset:narration:segment[3]"},
				{"asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]", "asset:image:segment[3]", "asset:image:segment[4]"},
				{"asset:music"},
				nil,
			},
		},
		{
			name: "same key, other kind: not taken",
			tm:   shared, secs: 20,
			batches: [][]string{
				{"a:segment[0]", "a:segment[1]"},
				{"b:segment[0]"}, // the key has one slot left
				{"c:segment[0]", "c:segment[1]"},
				nil,
			},
		},
		{
			name: "the global cap",
			tm:   lecture, secs: 60, cfg: schedule.Config{Workers: 3},
			prepare: func(t *testing.T, m *schedule.Machine, g *graph.Graph) {
				drain(m, g, t0)
				succeed(t, m, g, "script")
			},
			batches: [][]string{
				{"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:narration:segment[2]"},
				nil,
			},
		},
		{
			name: "a cap below the key's concurrency",
			tm:   lecture, secs: 60,
			cfg: schedule.Config{Caps: map[string]int{graph.KindNarration: 3, graph.KindImage: 9, "other": 1}},
			prepare: func(t *testing.T, m *schedule.Machine, g *graph.Graph) {
				drain(m, g, t0)
				succeed(t, m, g, "script")
			},
			batches: [][]string{
				{"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:narration:segment[2]"},
				{"asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]", "asset:image:segment[3]", "asset:image:segment[4]"},
				{"asset:music"},
				nil,
			},
		},
		{
			name: "the rate",
			tm:   lecture, secs: 60,
			cfg: schedule.Config{Rates: map[string]schedule.Rate{graph.KindNarration: {Starts: 2, Per: time.Minute}}},
			prepare: func(t *testing.T, m *schedule.Machine, g *graph.Graph) {
				drain(m, g, t0)
				succeed(t, m, g, "script")
			},
			batches: [][]string{
				{"asset:narration:segment[0]", "asset:narration:segment[1]"},
				{"asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]", "asset:image:segment[3]", "asset:image:segment[4]"},
				{"asset:music"},
				nil,
			},
		},
		{
			name: "MaxBatch, with a free slot and ready nodes left",
			tm:   lecture, secs: 60, cfg: schedule.Config{MaxBatch: 2},
			prepare: func(t *testing.T, m *schedule.Machine, g *graph.Graph) {
				drain(m, g, t0)
				succeed(t, m, g, "script")
			},
			batches: [][]string{
				{"asset:narration:segment[0]", "asset:narration:segment[1]"},
				{"asset:narration:segment[2]", "asset:narration:segment[3]"}, // the key is full
				{"asset:image:segment[0]", "asset:image:segment[1]"},
				{"asset:image:segment[2]", "asset:image:segment[3]"},
				{"asset:image:segment[4]"}, // the key's last free slot
				{"asset:music"},
				nil,
			},
		},
		{
			name: "settled nodes free slots for the take",
			tm:   lecture, secs: 60,
			prepare: func(t *testing.T, m *schedule.Machine, g *graph.Graph) {
				drain(m, g, t0)
				succeed(t, m, g, "script")
				// Two narrations and their videos settle, out of queue order.
				for _, id := range []string{"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:narration:segment[2]", "asset:narration:segment[3]"} {
					st, ok := m.Next(t0)
					require.True(t, ok)
					require.Equal(t, id, g.NodeID(st.Node))
				}
				succeed(t, m, g, "asset:narration:segment[2]", "asset:narration:segment[0]")
			},
			batches: [][]string{
				{"asset:narration:segment[4]", "asset:narration:segment[5]"},
				{"asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]", "asset:image:segment[3]", "asset:image:segment[4]"},
				{"asset:music"},
				nil,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, tt.tm, tt.secs)
			m := newMachine(t, planOf(t, g), tt.cfg)
			if tt.prepare != nil {
				tt.prepare(t, m, g)
			}
			for i, want := range tt.batches {
				if diff := cmp.Diff(want, bulk(t, m, g, t0)); diff != "" {
					t.Fatalf("take %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestMoreFromTheMiddleOfTheQueue(t *testing.T) {
	// a and b share key k, 3 at a time; its queue is a0 a1 b0 b1.
	g := build(t, tmpl(batched(per("a"), "k", 3), batched(per("b"), "k", 3)), 20)
	m := newMachine(t, planOf(t, g), schedule.Config{})
	st, ok := m.Next(t0)
	require.True(t, ok)
	require.Equal(t, "a:segment[0]", g.NodeID(st.Node))
	more, ok := m.More(t0, node(t, g, "b:segment[1]"))
	require.True(t, ok)
	assert.Equal(t, "b:segment[0]", g.NodeID(more.Node), "More takes the first ready node of the kind")
	assert.Equal(t, []string{"a:segment[1]"}, drain(m, g, t0), "the key has one slot left, for the head of its queue")
	succeed(t, m, g, "b:segment[0]", "a:segment[0]")
	assert.Equal(t, []string{"b:segment[1]"}, drain(m, g, t0), "the entry More took is not started twice")
	succeed(t, m, g, "a:segment[1]", "b:segment[1]")
	assert.True(t, m.Done())
}

func TestMoreTakesOnlyReadyNodesOfTheKind(t *testing.T) {
	g := build(t, graph.Lecture(), 60)
	p := planOf(t, g)
	script := node(t, g, "script")
	tests := []struct {
		name    string
		cfg     schedule.Config
		prepare func(*testing.T, *schedule.Machine)
		like    graph.Node
	}{
		{name: "nothing else of the kind", like: script,
			prepare: func(t *testing.T, m *schedule.Machine) { drain(m, g, t0) }},
		{name: "like not in the graph", like: 1000},
		{name: "like is none", like: graph.None},
		{name: "halted", like: node(t, g, "asset:image:segment[0]"),
			prepare: func(t *testing.T, m *schedule.Machine) {
				drain(m, g, t0)
				succeed(t, m, g, "script")
				m.Halt()
			}},
		{name: "nothing ready of the kind yet", like: node(t, g, "asset:video:segment[0]"),
			prepare: func(t *testing.T, m *schedule.Machine) {
				drain(m, g, t0)
				succeed(t, m, g, "script")
			}},
		{name: "staged: later stages are held", cfg: schedule.Config{Mode: schedule.Staged}, like: node(t, g, "asset:video:segment[0]"),
			prepare: func(t *testing.T, m *schedule.Machine) {
				drain(m, g, t0)
				succeed(t, m, g, "script")
				drain(m, g, t0)
				succeed(t, m, g, "asset:image:segment[1]", "asset:narration:segment[1]")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, p, tt.cfg)
			if tt.prepare != nil {
				tt.prepare(t, m)
			}
			before := states(m, p)
			var ok bool
			require.NotPanics(t, func() { _, ok = m.More(t0, tt.like) })
			assert.False(t, ok)
			assert.Equal(t, before, states(m, p))
		})
	}
}

// More never returns like itself, even when like is ready and not
// started: it returns another node of like's kind, or nothing.
func TestMoreNeverReturnsLike(t *testing.T) {
	g := build(t, tmpl(batched(per("a"), "k", 3)), 20) // a:segment[0] and [1]
	m := newMachine(t, planOf(t, g), schedule.Config{})
	first := node(t, g, "a:segment[0]")
	st, ok := m.More(t0, first)
	require.True(t, ok)
	assert.Equal(t, "a:segment[1]", g.NodeID(st.Node))
	s, _ := m.State(first)
	assert.Equal(t, schedule.Ready, s, "like was not started")

	one := build(t, tmpl(batched(per("a"), "k", 3)), 10) // a:segment[0] alone
	m = newMachine(t, planOf(t, one), schedule.Config{})
	_, ok = m.More(t0, node(t, one, "a:segment[0]"))
	assert.False(t, ok, "the only node of the kind is like itself")
}

// TestMoreCallOfMaxBatch checks which nodes count towards a call's
// MaxBatch: the node Next returned and those More returned for any node
// of its call, while a node that More returns for a like that is not
// running starts a call of its own.
func TestMoreCallOfMaxBatch(t *testing.T) {
	g := build(t, tmpl(batched(per("a"), "k", 9)), 80) // a:segment[0] to [7]
	p := planOf(t, g)
	m := newMachine(t, p, schedule.Config{MaxBatch: 3})
	more := func(like string) string {
		st, ok := m.More(t0, node(t, g, like))
		if !ok {
			return "none"
		}
		return g.NodeID(st.Node)
	}
	st, ok := m.Next(t0)
	require.True(t, ok)
	require.Equal(t, "a:segment[0]", g.NodeID(st.Node))
	assert.Equal(t, "a:segment[1]", more("a:segment[0]"))
	assert.Equal(t, "a:segment[2]", more("a:segment[1]"), "like may be any node of the call")
	assert.Equal(t, "none", more("a:segment[0]"), "the call has 3 nodes")
	assert.Equal(t, "none", more("a:segment[2]"), "the call has 3 nodes")
	// A like that is not running: the node More returns starts a call.
	assert.Equal(t, "a:segment[3]", more("a:segment[7]"))
	assert.Equal(t, "a:segment[4]", more("a:segment[3]"))
	assert.Equal(t, "a:segment[5]", more("a:segment[4]"))
	assert.Equal(t, "none", more("a:segment[3]"), "that call has 3 nodes")
	// A call's nodes count when they settle too: the call stays full.
	succeed(t, m, g, "a:segment[0]", "a:segment[1]")
	assert.Equal(t, "none", more("a:segment[2]"), "the call had 3 nodes")
	st, ok = m.Next(t0)
	require.True(t, ok)
	assert.Equal(t, "a:segment[6]", g.NodeID(st.Node))
	assert.Equal(t, "a:segment[7]", more("a:segment[6]"))
	assert.Equal(t, 6, m.Running())
}

// TestMoreCallOfASettledLike: a like that has settled is not running,
// so the node More returns for it starts a call of its own, while the
// like's call, whose nodes still count, stays full for its running nodes.
func TestMoreCallOfASettledLike(t *testing.T) {
	g := build(t, tmpl(batched(per("a"), "k", 9)), 60) // a:segment[0] to [5]
	p := planOf(t, g)
	for _, settle := range []string{"succeed", "fail", "supersede"} {
		t.Run(settle, func(t *testing.T) {
			m := newMachine(t, p, schedule.Config{MaxBatch: 2})
			more := func(like string) string {
				st, ok := m.More(t0, node(t, g, like))
				if !ok {
					return "none"
				}
				return g.NodeID(st.Node)
			}
			require.Equal(t, []string{"a:segment[0]", "a:segment[1]"}, bulk(t, m, g, t0))
			n := node(t, g, "a:segment[0]")
			var err error
			switch settle {
			case "succeed":
				_, err = m.Succeed(n)
			case "fail":
				_, err = m.Fail(n)
			case "supersede":
				_, err = m.Supersede(n)
			}
			require.NoError(t, err)
			assert.Equal(t, "none", more("a:segment[1]"), "the call of segment[0] had 2 nodes")
			assert.Equal(t, "a:segment[2]", more("a:segment[0]"), "a settled like: a call of its own")
			assert.Equal(t, "a:segment[3]", more("a:segment[2]"))
			assert.Equal(t, "none", more("a:segment[3]"), "that call has 2 nodes")
			assert.Equal(t, []string{"a:segment[1]", "a:segment[2]", "a:segment[3]"}, ids(g, m.RunningNodes()))
		})
	}
}

// TestMoreLikeOutsideThePlan: a like that is not in the plan returns
// false, as when no node may start, and State tells the two apart.
func TestMoreLikeOutsideThePlan(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	p := planOf(t, g, "asset:narration:segment[1]", "asset:narration:segment[2]")
	tests := []struct {
		name   string
		like   graph.Node
		want   string // the node More returns, or ""
		inPlan bool
	}{
		{name: "a clean node, outside the plan", like: node(t, g, "asset:narration:segment[0]")},
		{name: "not in the graph", like: graph.Node(g.Len())},
		{name: "a ready node of the plan names its kind", like: node(t, g, "asset:narration:segment[2]"),
			want: "asset:narration:segment[1]", inPlan: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, p, schedule.Config{})
			before := states(m, p)
			st, ok := m.More(t0, tt.like)
			if tt.want == "" {
				assert.False(t, ok)
				assert.Equal(t, before, states(m, p), "More changed nothing")
			} else if assert.True(t, ok) {
				assert.Equal(t, tt.want, g.NodeID(st.Node))
			}
			_, in := m.State(tt.like)
			assert.Equal(t, tt.inPlan, in, "State tells a like outside the plan")
		})
	}
}
