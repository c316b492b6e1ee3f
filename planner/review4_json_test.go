package planner_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// TestReview4MarshalJSONHandMadeStrings: MarshalJSON writes a plan
// assembled by hand as it is, consistent or not; its text must still be
// JSON. Group kinds and batch keys were quoted with Go's strconv.Quote,
// whose \x01, \a and \xff escapes JSON does not have.
func TestReview4MarshalJSONHandMadeStrings(t *testing.T) {
	g := build(t, graph.Lecture(), 30)
	for _, s := range []string{"a\x01b", "bell\a", "bad\xffutf8", "tab\t\"q\"\\", "ok"} {
		p := &planner.Plan{Graph: g, Stages: []planner.Stage{{Groups: []planner.Group{
			{Kind: planner.GroupKind(s), Nodes: []graph.Node{0}},
			{Kind: planner.Batch, BatchKey: s, Concurrency: 1, Nodes: []graph.Node{1}},
		}}}}
		b, err := p.MarshalJSON()
		require.NoError(t, err)
		require.True(t, json.Valid(b), "%q gives %s", s, b)
		_, err = json.Marshal(p)
		require.NoError(t, err, "%q", s)
	}
}
