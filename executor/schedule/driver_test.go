package schedule_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestResultReady checks that a transition lists the nodes it made Ready,
// ascending, once each over the run, in both modes: the dependents a
// Succeed releases, and in Staged mode the nodes of the stage it opens,
// whatever settles the stage (a Succeed, a Fail that skips the rest).
func TestResultReady(t *testing.T) {
	p := lecturePlan(t, 30)
	g := p.Graph
	stage1 := []string{"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:narration:segment[2]",
		"asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]", "asset:music"}
	succeed := func(t *testing.T, m *schedule.Machine, id string) schedule.Result {
		t.Helper()
		r, err := m.Succeed(node(t, g, id))
		require.NoError(t, err)
		return r
	}
	startAll := func(t *testing.T, m *schedule.Machine) []string {
		t.Helper()
		var out []string
		for {
			st, ok := m.Next(t0)
			if !ok {
				return out
			}
			out = append(out, g.NodeID(st.Node))
		}
	}
	for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
		t.Run(mode.String(), func(t *testing.T) {
			m := newMachine(t, p, schedule.Config{Mode: mode})
			require.Equal(t, []string{"script"}, startAll(t, m))
			r := succeed(t, m, "script")
			assert.Equal(t, stage1, ids(g, r.Ready))
			assert.IsIncreasing(t, r.Ready)
			for _, n := range r.Ready {
				s, _ := m.State(n)
				assert.Equal(t, schedule.Ready, s, "state of %s", g.NodeID(n))
			}
			// The caller owns the slice: an append to it changes no later
			// Result, nor a later Result it.
			first, kept := r, slices.Clone(r.Ready)
			_ = append(r.Ready, graph.Node(0))
			require.ElementsMatch(t, stage1, startAll(t, m))
			assert.Empty(t, succeed(t, m, "asset:narration:segment[0]").Ready,
				"the video waits on the image too")
			r = succeed(t, m, "asset:image:segment[0]")
			if mode == schedule.Dataflow {
				assert.Equal(t, []string{"asset:video:segment[0]"}, ids(g, r.Ready))
			} else {
				assert.Empty(t, r.Ready, "in Staged mode a node is Ready only once its stage opens")
			}
			// A failure skips what it must and releases nothing.
			r, err := m.Fail(node(t, g, "asset:narration:segment[2]"))
			require.NoError(t, err)
			assert.Equal(t, []string{"asset:video:segment[2]", "timeline"}, ids(g, r.Skipped))
			assert.Empty(t, r.Ready)
			succeed(t, m, "asset:narration:segment[1]")
			succeed(t, m, "asset:music")
			succeed(t, m, "asset:image:segment[2]")
			r = succeed(t, m, "asset:image:segment[1]")
			if mode == schedule.Dataflow {
				assert.Equal(t, []string{"asset:video:segment[1]"}, ids(g, r.Ready))
			} else {
				assert.Equal(t, []int{1}, r.StagesFinished)
				assert.Equal(t, []string{"asset:video:segment[0]", "asset:video:segment[1]"}, ids(g, r.Ready),
					"the Succeed that settles stage 1 opens stage 2, in ascending order")
			}
			assert.Equal(t, kept, first.Ready, "a later transition changed an earlier Result")
		})
	}
}

// TestSucceedAllocatesNothing checks that listing the nodes a Succeed
// made Ready costs no allocation per call: Next and Succeed over a whole
// lecture, which release over a thousand nodes, allocate nothing beyond
// New's.
func TestSucceedAllocatesNothing(t *testing.T) {
	p := lecturePlan(t, 120*graph.SegmentSeconds)
	// AllocsPerRun calls its function twice: a warm-up, then the run
	// measured, each with a machine of its own.
	ms := []*schedule.Machine{newMachine(t, p, schedule.Config{}), newMachine(t, p, schedule.Config{})}
	running := make([]graph.Node, 0, p.Len())
	released := 0
	allocs := testing.AllocsPerRun(1, func() {
		m := ms[0]
		ms = ms[1:]
		running = running[:0]
		for done := 0; !m.Done(); {
			if st, ok := m.Next(t0); ok {
				running = append(running, st.Node)
				continue
			}
			r, err := m.Succeed(running[done])
			if err != nil {
				panic(err)
			}
			done++
			released += len(r.Ready)
		}
	})
	require.Equal(t, 2*(p.Len()-1), released, "each node but the script, made Ready once by each run")
	// Result.StagesFinished allocates once for each of the plan's stages.
	assert.Equal(t, float64(len(p.Stages)), allocs, "allocations of a whole run of Next and Succeed")
}

// TestStepNamesKindAndSegment checks that a Step carries what a driver
// dispatches on without the graph: the node's kind name and segment, for
// Next and More alike.
func TestStepNamesKindAndSegment(t *testing.T) {
	p := lecturePlan(t, 30)
	g := p.Graph
	m := newMachine(t, p, schedule.Config{})
	st, ok := m.Next(t0)
	require.True(t, ok)
	assert.Equal(t, schedule.Step{Node: node(t, g, "script"), Kind: graph.KindScript, Segment: graph.NoSegment}, st)
	_, err := m.Succeed(st.Node)
	require.NoError(t, err)
	var got []schedule.Step
	for {
		st, ok := m.Next(t0)
		if !ok {
			break
		}
		got = append(got, st)
		for {
			more, ok := m.More(t0, st.Node)
			if !ok {
				break
			}
			got = append(got, more)
		}
	}
	require.Len(t, got, 7)
	for _, st := range got {
		id := g.ID(st.Node)
		assert.Equal(t, id.Kind, st.Kind, "kind of %s", g.NodeID(st.Node))
		assert.Equal(t, id.Segment, st.Segment, "segment of %s", g.NodeID(st.Node))
		key, _ := g.BatchKey(g.KindOf(st.Node))
		assert.Equal(t, key, st.Key, "key of %s", g.NodeID(st.Node))
	}
	img := slices.IndexFunc(got, func(st schedule.Step) bool { return g.NodeID(st.Node) == "asset:image:segment[2]" })
	require.GreaterOrEqual(t, img, 0)
	assert.Equal(t, "asset:image", got[img].Kind)
	assert.Equal(t, 2, got[img].Segment)
}
