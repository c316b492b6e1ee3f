package planner_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// TestUnmarshalJSONOfAPlanForAnotherGraph: a stored plan decoded against
// a graph that is now shorter is refused with the first node that is not
// in this graph, and says the plan was likely made for another graph.
// A plan with more node entries than the graph has nodes was refused
// with "more than 12 nodes: a node is in one group at most", although no
// node repeats, and named none (PodForge's finding: a plan made for 240
// minutes decoded against a graph of 235).
func TestUnmarshalJSONOfAPlanForAnotherGraph(t *testing.T) {
	long := build(t, graph.Lecture(), 60)  // 6 segments, 21 nodes
	short := build(t, graph.Lecture(), 30) // 3 segments, 12 nodes
	encode := func(p *planner.Plan) string {
		b, err := json.Marshal(p)
		require.NoError(t, err)
		return string(b)
	}
	// A single of "script" in each of n stages: no valid plan, but its
	// nodes are all in the graph.
	repeated := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = `{"index":` + strconv.Itoa(i) + `,"groups":[{"kind":"single","nodes":["script"]}]}`
		}
		return `{"stages":[` + strings.Join(s, ",") + `]}`
	}
	for _, tc := range []struct {
		name, data       string
		stage, group     int
		node, msg        string
		anotherGraphHint bool
	}{
		{
			name:  "every node: more entries than the graph has nodes",
			data:  encode(planOf(t, long, nil)),
			stage: 1, group: 0, node: "asset:narration:segment[3]",
			msg:              `planner: invalid plan: stage 1 group 0: node "asset:narration:segment[3]" is not in this graph of 12 nodes: the plan was likely made for another graph (another duration or template): graph: unknown node "asset:narration:segment[3]": segment 3 is out of range: the graph has 3 segments (0 to 2)`,
			anotherGraphHint: true,
		},
		{
			name:  "one edit: fewer entries than the graph has nodes",
			data:  encode(planOf(t, long, edits("asset:video:segment[5]"))),
			stage: 0, group: 0, node: "asset:video:segment[5]",
			msg:              `planner: invalid plan: stage 0 group 0: node "asset:video:segment[5]" is not in this graph of 12 nodes: the plan was likely made for another graph (another duration or template): graph: unknown node "asset:video:segment[5]": segment 5 is out of range`,
			anotherGraphHint: true,
		},
		{
			name:  "a node repeated: more entries than the graph has nodes",
			data:  repeated(13),
			stage: 1, group: 0, node: "script",
			msg: `planner: invalid plan: stage 1 group 0: node "script" appears twice in the plan, first in stage 0 group 0: each node is in one group at most`,
		},
		{
			// The count is passed first, as the stage starts: it stands.
			name:  "a node after the count is passed",
			data:  `{"stages":[` + strings.Repeat(`{"groups":[]},`, 12) + `{"groups":[{"kind":"single","nodes":["asset:sound"]}]}]}`,
			stage: 12, group: -1, node: "",
			msg: `planner: invalid plan: stage 12: more than 12 stages`,
		},
		{
			// Only the strings of a group's "nodes" array are node
			// entries, as checkCounts counts them.
			name:  "an ID in an object, not in a nodes array",
			data:  `{"stages":[{"groups":[{"kind":"single","nodes":{"x":"asset:sound"}}` + strings.Repeat(`,{}`, 12) + `]}]}`,
			stage: 0, group: 12, node: "",
			msg: `planner: invalid plan: stage 0 group 12: more than 12 groups`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &planner.Plan{Graph: short}
			err := p.UnmarshalJSON([]byte(tc.data))
			var pe *planner.PlanError
			require.ErrorAs(t, err, &pe)
			assert.ErrorIs(t, err, planner.ErrInvalidPlan)
			assert.Equal(t, tc.stage, pe.Stage, "Stage")
			assert.Equal(t, tc.group, pe.Group, "Group")
			assert.Equal(t, tc.node, pe.Node, "Node")
			assert.Contains(t, err.Error(), tc.msg)
			if tc.anotherGraphHint {
				assert.ErrorIs(t, err, graph.ErrUnknownNode)
			}
			assert.Empty(t, p.Stages, "a refused plan leaves p unchanged")
		})
	}
}
