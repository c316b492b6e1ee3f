package graph_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// TestGlobalOnlyTemplateIgnoresDuration pins what the package doc
// promises a template without per-segment kinds (a tile pyramid, each
// tile a kind): every valid duration builds the same nodes and edges,
// so one segment's SegmentSeconds does; only the segment count differs.
func TestGlobalOnlyTemplateIgnoresDuration(t *testing.T) {
	tmpl := graph.Template{Kinds: []graph.Kind{
		{Name: "style"},
		{Name: "tile/1/0/0", Deps: []graph.Dep{{Kind: "style", Scope: graph.ScopeGlobal}}, BatchKey: "raster", Concurrency: 2},
		{Name: "tile/1/0/1", Deps: []graph.Dep{{Kind: "style", Scope: graph.ScopeGlobal}}, BatchKey: "raster", Concurrency: 2},
		{Name: "tile/0/0/0", Deps: []graph.Dep{
			{Kind: "tile/1/0/0", Scope: graph.ScopeGlobal},
			{Kind: "tile/1/0/1", Scope: graph.ScopeGlobal},
		}, BatchKey: "raster", Concurrency: 2},
	}}
	one, err := graph.Build(tmpl, graph.SegmentSeconds)
	require.NoError(t, err)
	want := nodesJSON(t, one)
	require.Equal(t, 4, one.Len())
	for _, sec := range []int{20, 600, 86_400} {
		g, err := graph.Build(tmpl, sec)
		require.NoError(t, err, sec)
		require.Equal(t, sec/graph.SegmentSeconds, g.Segments())
		require.JSONEq(t, want, nodesJSON(t, g), "a graph of %d s", sec)
	}
}

// nodesJSON is g's JSON export without its segment count.
func nodesJSON(t *testing.T, g *graph.Graph) string {
	t.Helper()
	b, err := json.Marshal(g)
	require.NoError(t, err)
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m))
	delete(m, "segments")
	b, err = json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}
