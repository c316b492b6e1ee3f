package graph_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./graph -update to create it")
	// A checkout that turns line ends into CRLF (Git's core.autocrlf on
	// Windows) changes the file, not what the graph writes.
	if diff := cmp.Diff(strings.ReplaceAll(string(want), "\r\n", "\n"), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got); run go test ./graph -update if the change is intended:\n%s", path, diff)
	}
}

// segmentOne highlights segment 1's nodes and the timeline.
func segmentOne(g *graph.Graph) func(graph.Node) bool {
	return func(n graph.Node) bool {
		return g.SegmentOf(n) == 1 || g.NodeID(n) == "timeline"
	}
}

func TestExportGolden(t *testing.T) {
	g := mustBuild(t, graph.Lecture(), 30)
	exports := []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"lecture30.dot", func(b *bytes.Buffer) error { return g.WriteDOT(b, nil) }},
		{"lecture30_highlight.dot", func(b *bytes.Buffer) error { return g.WriteDOT(b, segmentOne(g)) }},
		{"lecture30.mmd", func(b *bytes.Buffer) error { return g.WriteMermaid(b, nil) }},
		{"lecture30_highlight.mmd", func(b *bytes.Buffer) error { return g.WriteMermaid(b, segmentOne(g)) }},
		{"lecture30.json", func(b *bytes.Buffer) error {
			data, err := json.MarshalIndent(g, "", "  ")
			b.Write(data)
			b.WriteByte('\n')
			return err
		}},
		{"scopes30.dot", func(b *bytes.Buffer) error {
			return mustBuild(t, scopesTemplate(), 30).WriteDOT(b, nil)
		}},
	}
	for _, e := range exports {
		t.Run(e.file, func(t *testing.T) {
			var first, second bytes.Buffer
			require.NoError(t, e.write(&first))
			require.NoError(t, e.write(&second))
			require.Equal(t, first.String(), second.String(), "two exports of one graph differ")
			golden(t, e.file, first.Bytes())
		})
	}
}

// TestExportEdges reads every edge back from each export and checks that
// it lists exactly the graph's edges, in the documented order.
func TestExportEdges(t *testing.T) {
	g := mustBuild(t, scopesTemplate(), 30)
	var want []string // "<dep> -> <dependent>", by dependency then dependent
	for n := range g.Len() {
		for _, m := range g.Dependents(graph.Node(n)) {
			want = append(want, g.NodeID(graph.Node(n))+" -> "+g.NodeID(m))
		}
	}
	require.Len(t, want, g.Edges())

	t.Run("dot", func(t *testing.T) {
		var b bytes.Buffer
		require.NoError(t, g.WriteDOT(&b, nil))
		var got []string
		for _, line := range bytes.Split(b.Bytes(), []byte("\n")) {
			if bytes.Contains(line, []byte(" -> ")) {
				s := string(bytes.Trim(line, "\t;"))
				got = append(got, string(bytes.ReplaceAll([]byte(s), []byte(`"`), nil)))
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})
	t.Run("mermaid", func(t *testing.T) {
		var b bytes.Buffer
		require.NoError(t, g.WriteMermaid(&b, nil))
		var got []string
		for _, line := range bytes.Split(b.Bytes(), []byte("\n")) {
			var from, to int
			if n, _ := fmt.Sscanf(string(line), "\tn%d --> n%d", &from, &to); n == 2 {
				got = append(got, g.NodeID(graph.Node(from))+" -> "+g.NodeID(graph.Node(to)))
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		assert.NotContains(t, b.String(), "classDef", "no highlight, no class")
	})
	t.Run("json", func(t *testing.T) {
		data, err := json.Marshal(g)
		require.NoError(t, err)
		var out struct {
			Segments int            `json:"segments"`
			Template graph.Template `json:"template"`
			Nodes    []struct {
				ID      string   `json:"id"`
				Kind    string   `json:"kind"`
				Segment *int     `json:"segment"`
				Deps    []string `json:"deps"`
			} `json:"nodes"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&out))
		assert.Equal(t, 3, out.Segments)
		if diff := cmp.Diff(scopesTemplate(), out.Template); diff != "" {
			t.Errorf("template (-want +got):\n%s", diff)
		}
		require.Len(t, out.Nodes, g.Len())
		var got []string
		for i, n := range out.Nodes {
			id := g.ID(graph.Node(i))
			assert.Equal(t, id.String(), n.ID)
			assert.Equal(t, id.Kind, n.Kind)
			if id.Segment == graph.NoSegment {
				assert.Nil(t, n.Segment, n.ID)
			} else if assert.NotNil(t, n.Segment, n.ID) {
				assert.Equal(t, id.Segment, *n.Segment)
			}
			require.NotNil(t, n.Deps, "deps is [] for a node without dependencies, not null")
			for _, d := range n.Deps {
				got = append(got, d+" -> "+n.ID)
			}
		}
		slices.Sort(got)
		sorted := slices.Clone(want)
		slices.Sort(sorted)
		if diff := cmp.Diff(sorted, got); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})
}

type failWriter struct{}

var errWrite = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestExportWriteError(t *testing.T) {
	g := mustBuild(t, graph.Lecture(), 30)
	require.ErrorIs(t, g.WriteDOT(failWriter{}, nil), errWrite)
	require.ErrorIs(t, g.WriteMermaid(failWriter{}, nil), errWrite)
}

// failAfter takes left bytes, then writes what it can of the next write
// and fails, as a full disk or a closed connection does.
type failAfter struct {
	got    []byte
	left   int
	failed bool
}

func (w *failAfter) Write(b []byte) (int, error) {
	if w.failed {
		return 0, errWrite
	}
	if len(b) <= w.left {
		w.got = append(w.got, b...)
		w.left -= len(b)
		return len(b), nil
	}
	n := w.left
	w.got = append(w.got, b[:n]...)
	w.failed = true
	return n, errWrite
}

// TestExportStopsAtTheFirstWriteError: WriteDOT and WriteMermaid stop at
// the writer's first error and return it, having called highlight for no
// node after it. They went on walking the whole graph, calling the host's
// highlight for every node (20,000,000 at the graph's default limits)
// and formatting every edge for nothing.
func TestExportStopsAtTheFirstWriteError(t *testing.T) {
	g := mustBuild(t, graph.Lecture(), 86_400)
	for _, tc := range []struct {
		name  string
		write func(g *graph.Graph, w io.Writer, hl func(graph.Node) bool) error
	}{
		{"dot", (*graph.Graph).WriteDOT},
		{"mermaid", (*graph.Graph).WriteMermaid},
	} {
		var whole bytes.Buffer
		require.NoError(t, tc.write(g, &whole, func(graph.Node) bool { return false }))
		for _, n := range []int{0, 1, 5000, 100_000, whole.Len() - 1} {
			t.Run(fmt.Sprintf("%s after %d bytes", tc.name, n), func(t *testing.T) {
				w := failAfter{left: n}
				calls, after := 0, 0
				err := tc.write(g, &w, func(graph.Node) bool {
					calls++
					if w.failed {
						after++
					}
					return false
				})
				require.ErrorIs(t, err, errWrite)
				assert.Equal(t, whole.String()[:n], string(w.got))
				assert.Zero(t, after, "highlight calls after the failed write (of %d before it)", calls-after)
			})
		}
	}
}

func TestDominik(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    graph.Template
	}{{"lecture", graph.Lecture()}, {"scopes", scopesTemplate()}} {
		t.Run(tc.name, func(t *testing.T) {
			g := mustBuild(t, tc.t, 30)
			dg, err := g.Dominik()
			require.NoError(t, err)
			order, err := dg.Order()
			require.NoError(t, err)
			assert.Equal(t, g.Len(), order)
			size, err := dg.Size()
			require.NoError(t, err)
			assert.Equal(t, g.Edges(), size)
			assert.True(t, dg.Traits().IsDirected)
			assert.True(t, dg.Traits().IsAcyclic)

			adj, err := dg.AdjacencyMap()
			require.NoError(t, err)
			require.Len(t, adj, g.Len())
			for i := range g.Len() {
				n := graph.Node(i)
				id := g.ID(n)
				v, props, err := dg.VertexWithProperties(id.String())
				require.NoError(t, err)
				assert.Equal(t, id.String(), v)
				wantAttrs := map[string]string{"kind": id.Kind}
				if id.Segment != graph.NoSegment {
					wantAttrs["segment"] = strconv.Itoa(id.Segment)
				}
				assert.Equal(t, wantAttrs, props.Attributes, id.String())
				var targets []string
				for m, e := range adj[id.String()] {
					assert.Equal(t, id.String(), e.Source)
					assert.Equal(t, m, e.Target)
					targets = append(targets, m)
				}
				assert.ElementsMatch(t, idsOf(g, g.Dependents(n)), targets, "edges from %s", id)
			}
		})
	}
}

// TestGraphValueEncodesAsItsPointer: a Graph held by value, as in a
// host's struct, encodes in the graph's JSON form, as a *Graph does; its
// fields are unexported, so it encoded as {}, silently. A zero Graph,
// which no Build made, is refused with ErrZeroGraph, not encoded as a
// graph of nothing, and does not panic.
func TestGraphValueEncodesAsItsPointer(t *testing.T) {
	g := mustBuild(t, graph.Lecture(), 30)
	want, err := json.Marshal(g)
	require.NoError(t, err)
	require.Contains(t, string(want), `"nodes":[`)

	byValue, err := json.Marshal(*g)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(byValue), "json.Marshal(*g)")

	type record struct {
		Graph graph.Graph `json:"graph"`
	}
	held, err := json.Marshal(record{Graph: *g})
	require.NoError(t, err)
	assert.Equal(t, `{"graph":`+string(want)+`}`, string(held), "a Graph field of a struct marshalled by value")

	for name, v := range map[string]any{"value": graph.Graph{}, "pointer": &graph.Graph{}, "field": record{}} {
		_, err := json.Marshal(v)
		assert.ErrorIs(t, err, graph.ErrZeroGraph, name)
	}
	null, err := json.Marshal((*graph.Graph)(nil))
	require.NoError(t, err)
	assert.Equal(t, "null", string(null), "a nil *Graph")
}
