package schedule_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

func TestInvalidate(t *testing.T) {
	start := op{call: "start"}
	tests := []struct {
		name  string
		secs  int
		mode  schedule.Mode
		edits []string // the plan: these edits of an all-clean graph; none: everything
		ops   []op
		// wantStates are the final states of the listed nodes.
		wantStates map[string]schedule.State
	}{
		{
			name: "a succeeded narration: its video, not started, and the timeline are skipped",
			secs: 30,
			ops: []op{
				start, {call: "succeed", id: "script", wantStages: []int{0}}, start,
				{call: "succeed", id: "asset:narration:segment[1]"},
				{call: "invalidate", id: "asset:narration:segment[1]",
					wantSkipped: []string{"asset:video:segment[1]", "timeline"}},
				// The image ends later: the skipped video never becomes ready.
				{call: "succeed", id: "asset:image:segment[1]"},
				start,
				// A second invalidation finds nothing left to skip.
				{call: "invalidate", id: "asset:narration:segment[1]"},
			},
			wantStates: map[string]schedule.State{
				"asset:narration:segment[1]": schedule.Succeeded,
				"asset:image:segment[1]":     schedule.Succeeded,
				"asset:video:segment[1]":     schedule.Skipped,
				"asset:video:segment[0]":     schedule.Pending,
				"timeline":                   schedule.Skipped,
			},
		},
		{
			name: "nodes not succeeded are left alone, dependents included",
			secs: 20,
			ops: []op{
				{call: "invalidate", id: "script"}, // ready, not started
				start,
				{call: "invalidate", id: "script"}, // running
				{call: "succeed", id: "script", wantStages: []int{0}},
				start,
				{call: "invalidate", id: "asset:video:segment[0]"}, // pending
				{call: "fail", id: "asset:image:segment[0]", wantSkipped: []string{"asset:video:segment[0]", "timeline"}},
				{call: "invalidate", id: "asset:image:segment[0]"}, // failed
			},
			wantStates: map[string]schedule.State{
				"asset:narration:segment[0]": schedule.Running,
				"asset:video:segment[1]":     schedule.Pending,
			},
		},
		{
			name: "running dependents go on; what depends on them is skipped",
			secs: 10,
			ops: []op{
				start, {call: "succeed", id: "script", wantStages: []int{0}}, start,
				{call: "succeed", id: "asset:narration:segment[0]"},
				{call: "succeed", id: "asset:image:segment[0]"},
				start, // the video runs
				{call: "invalidate", id: "script", wantSkipped: []string{"timeline"}},
				{call: "succeed", id: "asset:video:segment[0]"},
				{call: "succeed", id: "asset:music", wantStages: []int{1, 2, 3}},
			},
			wantStates: map[string]schedule.State{
				"asset:video:segment[0]": schedule.Succeeded,
				"timeline":               schedule.Skipped,
			},
		},
		{
			name:  "outside the plan: planned dependents are skipped, through unplanned ones too",
			secs:  30,
			edits: []string{"asset:video:segment[2]"},
			ops: []op{
				// narration 0 is clean: its unplanned video leads to the
				// planned timeline.
				{call: "invalidate", id: "asset:narration:segment[0]", wantSkipped: []string{"timeline"}},
				// narration 2 is clean too: its planned video is ready.
				{call: "invalidate", id: "asset:narration:segment[2]",
					wantSkipped: []string{"asset:video:segment[2]"}, wantStages: []int{0, 1}},
				start,
			},
			wantStates: map[string]schedule.State{
				"asset:video:segment[2]": schedule.Skipped,
				"timeline":               schedule.Skipped,
			},
		},
		{
			name: "staged: held nodes of later stages are skipped",
			secs: 10,
			mode: schedule.Staged,
			ops: []op{
				start, {call: "succeed", id: "script", wantStages: []int{0}}, start,
				{call: "succeed", id: "asset:narration:segment[0]"},
				{call: "invalidate", id: "asset:narration:segment[0]",
					wantSkipped: []string{"asset:video:segment[0]", "timeline"}},
				{call: "succeed", id: "asset:image:segment[0]"},
				{call: "succeed", id: "asset:music", wantStages: []int{1, 2, 3}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, graph.Lecture(), tt.secs)
			m := newMachine(t, planOf(t, g, tt.edits...), schedule.Config{Mode: tt.mode})
			runOps(t, m, g, tt.ops)
			for id, want := range tt.wantStates {
				got, ok := m.State(node(t, g, id))
				require.True(t, ok, "%s is not in the plan", id)
				assert.Equal(t, want.String(), got.String(), "state of %s", id)
			}
			if tt.mode == schedule.Staged || tt.edits != nil {
				assert.True(t, m.Done(), "every node settled")
			}
		})
	}
}

func TestInvalidateOutsideTheGraph(t *testing.T) {
	g := build(t, graph.Lecture(), 10)
	m := newMachine(t, planOf(t, g), schedule.Config{})
	before := drain(m, g, t0)
	_, err := m.Invalidate(graph.Node(g.Len()))
	require.ErrorIs(t, err, schedule.ErrNotInPlan)
	assert.Contains(t, err.Error(), "the graph has nodes 0 to 5")
	assert.Equal(t, 1, m.Running())
	assert.Equal(t, []string{"script"}, before)
}

// TestInvalidateRunning pins what Invalidate does to a running node:
// nothing, and the machine does not remember it, so the driver's own
// settle decides: Supersede skips the node's dependents, and Succeed,
// accepted as for any running node, releases them.
func TestInvalidateRunning(t *testing.T) {
	tests := []struct {
		name        string
		settle      string
		wantSkipped []string
		wantReady   []string
	}{
		{
			name:        "superseded by the driver: its dependents are skipped",
			settle:      "supersede",
			wantSkipped: []string{"asset:narration:segment[0]", "asset:image:segment[0]", "asset:video:segment[0]", "asset:music", "timeline"},
		},
		{
			name:      "succeeded by the driver: its dependents are released",
			settle:    "succeed",
			wantReady: []string{"asset:narration:segment[0]", "asset:image:segment[0]", "asset:music"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, graph.Lecture(), 10)
			p := planOf(t, g)
			m := newMachine(t, p, schedule.Config{})
			script := node(t, g, "script")
			require.Equal(t, []string{"script"}, drain(m, g, t0))
			r, err := m.Invalidate(script)
			require.NoError(t, err)
			assert.Empty(t, r.Skipped, "Invalidate of a running node skips nothing")
			st, _ := m.State(script)
			assert.Equal(t, schedule.Running, st, "Invalidate of a running node leaves it running")
			if tt.settle == "supersede" {
				r, err = m.Supersede(script)
			} else {
				r, err = m.Succeed(script)
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantSkipped, ids(g, r.Skipped))
			assert.Equal(t, tt.wantReady, readyIDs(m, p))
		})
	}
}
