package graph_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

func TestBuildLectureSize(t *testing.T) {
	for _, secs := range []int{10, 20, 30, 3600, 86_400} {
		t.Run(fmt.Sprintf("%ds", secs), func(t *testing.T) {
			g := mustBuild(t, graph.Lecture(), secs)
			s := secs / 10
			assert.Equal(t, s, g.Segments())
			assert.Equal(t, 3*s+3, g.Len())
			// narration, image and music: one each; video two; timeline 2S+1.
			assert.Equal(t, 6*s+2, g.Edges())
			assert.Equal(t, 6, g.Kinds())
		})
	}
}

func TestBuildLectureLayout(t *testing.T) {
	g := mustBuild(t, graph.Lecture(), 30)
	want := []string{
		"script",
		"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:narration:segment[2]",
		"asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]",
		"asset:video:segment[0]", "asset:video:segment[1]", "asset:video:segment[2]",
		"asset:music",
		"timeline",
	}
	all := make([]graph.Node, g.Len())
	for i := range all {
		all[i] = graph.Node(i)
	}
	if diff := cmp.Diff(want, idsOf(g, all)); diff != "" {
		t.Fatalf("node order (-want +got):\n%s", diff)
	}
	deps := map[string][]string{
		"script":                     {},
		"asset:narration:segment[1]": {"script"},
		"asset:image:segment[2]":     {"script"},
		"asset:video:segment[1]":     {"asset:narration:segment[1]", "asset:image:segment[1]"},
		"asset:music":                {"script"},
		"timeline": {
			"asset:narration:segment[0]", "asset:narration:segment[1]", "asset:narration:segment[2]",
			"asset:video:segment[0]", "asset:video:segment[1]", "asset:video:segment[2]",
			"asset:music",
		},
	}
	for id, want := range deps {
		if diff := cmp.Diff(want, idsOf(g, g.Deps(byID(g, id)))); diff != "" {
			t.Errorf("Deps(%s) (-want +got):\n%s", id, diff)
		}
	}
	if diff := cmp.Diff(naiveDeps(graph.Lecture(), 3), graphDeps(g)); diff != "" {
		t.Errorf("graph differs from the naive expansion (-want +got):\n%s", diff)
	}
}

// scopesTemplate has every scope, with S=3:
// g(0) p(1..3) q(4..6) r(7..9) m(10..12) all(13) pa(14..16).
func scopesTemplate() graph.Template {
	return tmpl(
		glob("g"),
		per("p", dep("g", graph.ScopeGlobal)),
		per("q", dep("p", graph.ScopeSameSegment), dep("q", graph.ScopePreviousSegment)),
		per("r", dep("p", graph.ScopePreviousSegment)),
		per("m", dep("p", graph.ScopePreviousSegment), dep("p", graph.ScopeSameSegment)),
		glob("all", dep("q", graph.ScopeAllSegments), dep("g", graph.ScopeGlobal)),
		per("pa", dep("r", graph.ScopeAllSegments)),
	)
}

func TestBuildScopes(t *testing.T) {
	g := mustBuild(t, scopesTemplate(), 30)
	seg := func(k string, s int) string { return fmt.Sprintf("%s:segment[%d]", k, s) }
	p0, p1, p2 := seg("p", 0), seg("p", 1), seg("p", 2)
	q0, q1, q2 := seg("q", 0), seg("q", 1), seg("q", 2)
	r0, r1, r2 := seg("r", 0), seg("r", 1), seg("r", 2)
	pa0, pa1, pa2 := seg("pa", 0), seg("pa", 1), seg("pa", 2)
	tests := []struct {
		id         string
		deps, outs []string
	}{
		{"g", nil, []string{p0, p1, p2, "all"}},
		// global
		{p0, []string{"g"}, []string{q0, r1, seg("m", 0), seg("m", 1)}},
		{p1, []string{"g"}, []string{q1, r2, seg("m", 1), seg("m", 2)}},
		{p2, []string{"g"}, []string{q2, seg("m", 2)}},
		// same-segment plus previous-segment on itself; segment 0 has no previous.
		{q0, []string{p0}, []string{q1, "all"}},
		{q1, []string{p1, q0}, []string{q2, "all"}},
		{q2, []string{p2, q1}, []string{"all"}},
		// previous-segment only: segment 0 depends on nothing.
		{r0, nil, []string{pa0, pa1, pa2}},
		{r1, []string{p0}, []string{pa0, pa1, pa2}},
		{r2, []string{p1}, []string{pa0, pa1, pa2}},
		// previous-segment and same-segment on one kind, listed in that order.
		{seg("m", 0), []string{p0}, nil},
		{seg("m", 1), []string{p0, p1}, nil},
		{seg("m", 2), []string{p1, p2}, nil},
		// all-segments from a global kind.
		{"all", []string{"g", q0, q1, q2}, nil},
		// all-segments from a per-segment kind.
		{pa0, []string{r0, r1, r2}, nil},
		{pa2, []string{r0, r1, r2}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			n := byID(g, tc.id)
			if diff := cmp.Diff(tc.deps, idsOf(g, g.Deps(n)), cmp.Comparer(eqEmpty)); diff != "" {
				t.Errorf("Deps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.outs, idsOf(g, g.Dependents(n)), cmp.Comparer(eqEmpty)); diff != "" {
				t.Errorf("Dependents (-want +got):\n%s", diff)
			}
		})
	}
	assert.Equal(t, 17, g.Len())
	assert.Equal(t, 3+5+2+5+4+9, g.Edges())
	if diff := cmp.Diff(naiveDeps(scopesTemplate(), 3), graphDeps(g)); diff != "" {
		t.Errorf("graph differs from the naive expansion (-want +got):\n%s", diff)
	}
}

// eqEmpty compares string slices, treating nil and empty alike.
func eqEmpty(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBuildOneSegment(t *testing.T) {
	g := mustBuild(t, scopesTemplate(), 10)
	assert.Equal(t, 1, g.Segments())
	assert.Empty(t, idsOf(g, g.Deps(byID(g, "r:segment[0]"))))
	assert.Equal(t, []string{"p:segment[0]"}, idsOf(g, g.Deps(byID(g, "q:segment[0]"))))
	assert.Equal(t, []string{"all"}, idsOf(g, g.Dependents(byID(g, "q:segment[0]"))))
}

func TestBuildLayoutFollowsDependencies(t *testing.T) {
	// b is listed first but depends on a, so a's nodes come first.
	g := mustBuild(t, tmpl(per("b", dep("a", graph.ScopeSameSegment)), per("a"), glob("c")), 20)
	first, count := g.KindNodes(0)
	assert.Equal(t, graph.Node(2), first)
	assert.Equal(t, 2, count)
	first, count = g.KindNodes(1)
	assert.Equal(t, graph.Node(0), first)
	assert.Equal(t, 2, count)
	first, count = g.KindNodes(2)
	assert.Equal(t, graph.Node(4), first)
	assert.Equal(t, 1, count)
	assert.Equal(t, "b", g.KindName(0))
	assert.Equal(t, 0, g.KindOf(byID(g, "b:segment[1]")))
	assert.Equal(t, 1, g.KindOf(byID(g, "a:segment[0]")))
}

func TestBuildDuration(t *testing.T) {
	one := tmpl(per("a"))
	tests := []struct {
		name string
		opts graph.Options
		t    graph.Template
		secs int
		msg  string // "" for success
	}{
		{"ten seconds", graph.Options{}, graph.Lecture(), 10, ""},
		{"the default limit", graph.Options{}, graph.Lecture(), 86_400, ""},
		{"zero", graph.Options{}, graph.Lecture(), 0, "graph: invalid duration: 0s must be positive: a multiple of 10s from 10s to 86400s"},
		{"negative", graph.Options{}, graph.Lecture(), -10, "graph: invalid duration: -10s must be positive"},
		{"not a multiple of 10", graph.Options{}, graph.Lecture(), 125, "graph: invalid duration: 125s is not a multiple of 10s"},
		{"one second", graph.Options{}, graph.Lecture(), 1, "1s is not a multiple of 10s"},
		{"above the default limit", graph.Options{}, graph.Lecture(), 86_410, "graph: invalid duration: 86410s exceeds the limit of 86400s (8640 segments); Options.MaxSeconds raises it"},
		{"above the largest limit", graph.Options{}, graph.Lecture(), graph.MaxSecondsLimit + 10, "graph: invalid duration: 100000010s exceeds the largest limit, MaxSecondsLimit: 100000000s (10000000 segments)"},
		{"raised limit", graph.Options{MaxSeconds: 200_000}, graph.Lecture(), 200_000, ""},
		{"above a raised limit", graph.Options{MaxSeconds: 200_000}, graph.Lecture(), 200_010, "200010s exceeds the limit of 200000s (20000 segments)"},
		{"a million segments", graph.Options{MaxSeconds: 10_000_000}, one, 10_000_000, ""},
		{"the largest limit", graph.Options{MaxSeconds: graph.MaxSecondsLimit}, tmpl(glob("a")), graph.MaxSecondsLimit, ""},
		{"limit too large", graph.Options{MaxSeconds: graph.MaxSecondsLimit + 1}, one, 10, "100000001s is not a valid Options.MaxSeconds: allowed are 10 to 100000000 (1 to 10000000 segments)"},
		{"negative limit", graph.Options{MaxSeconds: -1}, one, 10, "-1s is not a valid Options.MaxSeconds"},
		{"limit below a segment", graph.Options{MaxSeconds: 5}, one, 10, "5s is not a valid Options.MaxSeconds: allowed are 10 to"},
		{"limit of one segment", graph.Options{MaxSeconds: 10}, one, 10, ""},
		{"a lower limit", graph.Options{MaxSeconds: 20}, one, 30, "30s exceeds the limit of 20s (2 segments)"},
		// A limit between two multiples of 10 allows the lower one: the
		// errors say so, not that the limit itself is allowed.
		{"zero under a limit between multiples", graph.Options{MaxSeconds: 95}, one, 0, "graph: invalid duration: 0s must be positive: a multiple of 10s from 10s to 90s"},
		{"above a limit between multiples", graph.Options{MaxSeconds: 95}, one, 100, "graph: invalid duration: 100s exceeds the limit of 95s: at most 90s (9 segments); Options.MaxSeconds raises it"},
		{"at the multiple under a limit", graph.Options{MaxSeconds: 95}, one, 90, ""},
		// One segment is one segment, not "1 segments".
		{"above a limit of one segment", graph.Options{MaxSeconds: 10}, one, 20, "graph: invalid duration: 20s exceeds the limit of 10s (1 segment); Options.MaxSeconds raises it"},
		{"above a limit between one and two segments", graph.Options{MaxSeconds: 15}, one, 20, "graph: invalid duration: 20s exceeds the limit of 15s: at most 10s (1 segment); Options.MaxSeconds raises it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := tc.opts.Build(tc.t, tc.secs)
			if tc.msg == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.secs/10, g.Segments())
				return
			}
			assert.Nil(t, g)
			var de *graph.DurationError
			require.ErrorAs(t, err, &de)
			require.ErrorIs(t, err, graph.ErrInvalidDuration)
			assert.NotErrorIs(t, err, graph.ErrInvalidTemplate)
			requireErrorContains(t, err, tc.msg)
		})
	}
	t.Run("DurationError fields", func(t *testing.T) {
		_, err := graph.Build(graph.Lecture(), 125)
		var de *graph.DurationError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, &graph.DurationError{Seconds: 125, Rule: "is not a multiple of 10s"}, de)
		_, err = graph.Options{MaxSeconds: 5}.Build(graph.Lecture(), 10)
		require.ErrorAs(t, err, &de)
		assert.Equal(t, 5, de.Seconds)
		assert.Equal(t, "MaxSeconds", de.Option)
	})
	t.Run("duration checked before template", func(t *testing.T) {
		_, err := graph.Build(graph.Template{}, 15)
		require.ErrorIs(t, err, graph.ErrInvalidDuration)
	})
	t.Run("invalid template", func(t *testing.T) {
		g, err := graph.Build(graph.Template{}, 10)
		assert.Nil(t, g)
		require.ErrorIs(t, err, graph.ErrInvalidTemplate)
	})
}

func TestBuildMillionSegments(t *testing.T) {
	g, err := graph.Options{MaxSeconds: 10_000_000}.Build(tmpl(per("a", dep("a", graph.ScopePreviousSegment))), 10_000_000)
	require.NoError(t, err)
	assert.Equal(t, 1_000_000, g.Segments())
	assert.Equal(t, 1_000_000, g.Len())
	assert.Equal(t, 999_999, g.Edges())
	last := byID(g, "a:segment[999999]")
	assert.Equal(t, []string{"a:segment[999998]"}, idsOf(g, g.Deps(last)))
	assert.Empty(t, g.Dependents(last))
	_, err = g.Lookup("a:segment[1000000]")
	require.ErrorIs(t, err, graph.ErrUnknownNode)
}

func TestBuildSize(t *testing.T) {
	// 300 per-segment kinds of 10,000,000 segments: 3e9 nodes.
	wide := make([]graph.Kind, 300)
	for i := range wide {
		wide[i] = per(fmt.Sprintf("k%d", i))
	}
	// Two per-segment kinds, one on all of the other's segments:
	// S² edges, 74,649,600 at the default limit of 8,640 segments.
	square := tmpl(per("a"), per("b", dep("a", graph.ScopeAllSegments)))
	tests := []struct {
		name string
		opts graph.Options
		t    graph.Template
		secs int
		want *graph.SizeError // nil for success
		msg  string           // the error's text: what to raise, and how far
	}{
		{"edges at MaxEdges", graph.Options{MaxEdges: 20}, graph.Lecture(), 30, nil, ""},
		{"edges over MaxEdges", graph.Options{MaxEdges: 19}, graph.Lecture(), 30, &graph.SizeError{What: "edges", Count: 20, Limit: 19},
			"graph: graph too large: 20 edges exceed the limit of 19; Options.MaxEdges raises it, up to 2147483646"},
		{"MaxEdges 0 is the default", graph.Options{MaxEdges: 0}, graph.Lecture(), 30, nil, ""},
		{"negative MaxEdges is the default", graph.Options{MaxEdges: -5}, graph.Lecture(), 30, nil, ""},
		{"quadratic edges over the default", graph.Options{}, square, 86_400, &graph.SizeError{What: "edges", Count: 8640 * 8640, Limit: graph.DefaultMaxEdges},
			"graph: graph too large: 74649600 edges exceed the limit of 50000000; Options.MaxEdges raises it, up to 2147483646"},
		{"quadratic edges under a raised limit", graph.Options{MaxEdges: 10_000}, square, 1000, nil, ""},
		{"too many nodes", graph.Options{MaxSeconds: graph.MaxSecondsLimit, MaxNodes: math.MaxInt}, graph.Template{Kinds: wide}, graph.MaxSecondsLimit, &graph.SizeError{What: "nodes", Count: 3_000_000_000, Limit: 2_147_483_646},
			"graph: graph too large: 3000000000 nodes exceed the limit of 2147483646, the most a graph can hold"},
		{"nodes over the default MaxNodes", graph.Options{MaxSeconds: graph.MaxSecondsLimit}, graph.Lecture(), graph.MaxSecondsLimit, &graph.SizeError{What: "nodes", Count: 30_000_003, Limit: graph.DefaultMaxNodes},
			"graph: graph too large: 30000003 nodes exceed the limit of 20000000; Options.MaxNodes raises it, up to 2147483646"},
		{"nodes over MaxNodes", graph.Options{MaxNodes: 38}, graph.Lecture(), 120, &graph.SizeError{What: "nodes", Count: 39, Limit: 38},
			"graph: graph too large: 39 nodes exceed the limit of 38; Options.MaxNodes raises it, up to 2147483646"},
		{"nodes at MaxNodes", graph.Options{MaxNodes: 39}, graph.Lecture(), 120, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := tc.opts.Build(tc.t, tc.secs)
			if tc.want == nil {
				require.NoError(t, err)
				require.NoError(t, checkGraph(g))
				return
			}
			assert.Nil(t, g)
			var se *graph.SizeError
			require.ErrorAs(t, err, &se)
			require.ErrorIs(t, err, graph.ErrTooLarge)
			assert.Equal(t, tc.want, se)
			assert.Equal(t, tc.msg, err.Error())
		})
	}
}

func TestLookup(t *testing.T) {
	g := mustBuild(t, graph.Lecture(), 30)
	found := []struct {
		id   string
		node graph.Node
		kind string
		seg  int
	}{
		{"script", 0, "script", graph.NoSegment},
		{"asset:narration:segment[0]", 1, "asset:narration", 0},
		{"asset:narration:segment[2]", 3, "asset:narration", 2},
		{"asset:image:segment[1]", 5, "asset:image", 1},
		{"asset:video:segment[2]", 9, "asset:video", 2},
		{"asset:music", 10, "asset:music", graph.NoSegment},
		{"timeline", 11, "timeline", graph.NoSegment},
	}
	for _, tc := range found {
		t.Run(tc.id, func(t *testing.T) {
			n, err := g.Lookup(tc.id)
			require.NoError(t, err)
			assert.Equal(t, tc.node, n)
			assert.Equal(t, tc.id, g.NodeID(n))
			assert.Equal(t, graph.ID{Kind: tc.kind, Segment: tc.seg}, g.ID(n))
			assert.Equal(t, tc.seg, g.SegmentOf(n))
			assert.Equal(t, tc.kind, g.KindName(g.KindOf(n)))
			m, err := g.Node(graph.ID{Kind: tc.kind, Segment: tc.seg})
			require.NoError(t, err)
			assert.Equal(t, tc.node, m)
		})
	}
	refused := []struct {
		name string
		id   string
		want error
		msg  string
	}{
		{"unknown kind", "asset:sound", graph.ErrUnknownNode, `graph: unknown node "asset:sound": the template has no kind "asset:sound": its kinds are script, asset:narration, asset:image, asset:video, asset:music, timeline`},
		{"unknown per-segment kind", "asset:sound:segment[0]", graph.ErrUnknownNode, `the template has no kind "asset:sound"`},
		{"segment out of range", "asset:image:segment[3]", graph.ErrUnknownNode, `graph: unknown node "asset:image:segment[3]": segment 3 is out of range: the graph has 3 segments (0 to 2)`},
		{"segment far out of range", "asset:image:segment[999999999]", graph.ErrUnknownNode, "segment 999999999 is out of range"},
		{"global kind with a segment", "script:segment[0]", graph.ErrUnknownNode, `kind "script" is global: its node's ID is "script"`},
		{"per-segment kind without a segment", "asset:image", graph.ErrUnknownNode, `kind "asset:image" is per segment: use asset:image:segment[<i>] with i from 0 to 2`},
		{"empty", "", graph.ErrMalformedID, `graph: malformed node ID ""`},
		{"malformed", "asset:image:segment[01]", graph.ErrMalformedID, "leading zero"},
		{"kind case", "Script", graph.ErrUnknownNode, `no kind "Script"`},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			n, err := g.Lookup(tc.id)
			assert.Equal(t, graph.None, n)
			var ie *graph.IDError
			require.ErrorAs(t, err, &ie)
			require.ErrorIs(t, err, tc.want)
			assert.Equal(t, tc.id, ie.ID)
			requireErrorContains(t, err, tc.msg)
		})
	}
	t.Run("Node with a negative segment", func(t *testing.T) {
		n, err := g.Node(graph.ID{Kind: "asset:image", Segment: -5})
		assert.Equal(t, graph.None, n)
		require.ErrorIs(t, err, graph.ErrUnknownNode)
		requireErrorContains(t, err, "segment -5 is out of range")
	})
}

func TestAccessors(t *testing.T) {
	g := mustBuild(t, graph.Lecture(), 30)
	assert.False(t, g.Contains(-1))
	assert.False(t, g.Contains(graph.Node(g.Len())))
	assert.True(t, g.Contains(graph.Node(g.Len()-1)))
	for ki, want := range []struct {
		name string
		key  string
		conc int
	}{
		{"script", "", 0},
		{"asset:narration", "asset:narration", 4},
		{"asset:image", "asset:image", 5},
		{"asset:video", "asset:video", 3},
		{"asset:music", "", 0},
		{"timeline", "", 0},
	} {
		assert.Equal(t, want.name, g.KindName(ki))
		key, conc := g.BatchKey(ki)
		assert.Equal(t, want.key, key, want.name)
		assert.Equal(t, want.conc, conc, want.name)
		i, ok := g.KindIndex(want.name)
		assert.True(t, ok)
		assert.Equal(t, ki, i)
		assert.Equal(t, graph.Lecture().Kinds[ki], g.Kind(ki))
	}
	_, ok := g.KindIndex("nope")
	assert.False(t, ok)
}

func TestImmutability(t *testing.T) {
	t.Run("template mutated after Build", func(t *testing.T) {
		lec := graph.Lecture()
		g := mustBuild(t, lec, 30)
		lec.Kinds[1].Name = "changed"
		lec.Kinds[1].BatchKey = "changed"
		lec.Kinds[3].Deps[0].Kind = "changed"
		lec.Kinds[5].Deps[0].Scope = graph.ScopeGlobal
		lec.Kinds = append(lec.Kinds[:2], lec.Kinds[3:]...)
		if diff := cmp.Diff(graph.Lecture(), g.Template()); diff != "" {
			t.Fatalf("Template() changed (-want +got):\n%s", diff)
		}
		assert.Equal(t, "asset:narration", g.KindName(1))
		assert.Equal(t, "asset:narration:segment[0]", g.NodeID(1))
		require.NoError(t, checkGraph(g))
	})
	t.Run("Template() result mutated", func(t *testing.T) {
		g := mustBuild(t, graph.Lecture(), 30)
		tm := g.Template()
		tm.Kinds[3].Deps[1].Kind = "changed"
		tm.Kinds[3].Name = "changed"
		tm.Kinds[0].Deps = append(tm.Kinds[0].Deps, graph.Dep{Kind: "x"})
		if diff := cmp.Diff(graph.Lecture(), g.Template()); diff != "" {
			t.Fatalf("Template() changed (-want +got):\n%s", diff)
		}
		assert.Equal(t, "asset:video", g.KindName(3))
	})
	t.Run("Kind() result mutated", func(t *testing.T) {
		g := mustBuild(t, graph.Lecture(), 30)
		k := g.Kind(5)
		k.Deps[0].Kind = "changed"
		k.Name = "changed"
		assert.Equal(t, graph.Lecture().Kinds[5], g.Kind(5))
		assert.Equal(t, "timeline", g.KindName(5))
	})
}

// TestLookupOneSegment: the errors of a lookup in a graph of one segment
// name it as one, not as "1 segments (0 to 0)".
func TestLookupOneSegment(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 10)
	require.NoError(t, err)
	for id, msg := range map[string]string{
		"asset:image:segment[1]": `graph: unknown node "asset:image:segment[1]": segment 1 is out of range: the graph has 1 segment, segment 0`,
		"asset:image":            `graph: unknown node "asset:image": kind "asset:image" is per segment: the graph has 1 segment, so its node's ID is "asset:image:segment[0]"`,
	} {
		_, err := g.Lookup(id)
		require.ErrorIs(t, err, graph.ErrUnknownNode)
		assert.EqualError(t, err, msg, id)
	}
}

// TestLongValuesInErrors: an error names a value too long to be valid (a
// kind name, a batch key, a scope, a node ID) by its first bytes and its
// length, as internal/quote does for the executor's keys, not whole: a
// template with a name of a megabyte was refused with a message of two.
// Values that can be valid are named whole.
func TestLongValuesInErrors(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	digits := strings.Repeat("9", 1<<20)
	parse := func(s string) error {
		_, err := graph.ParseTemplate([]byte(s))
		return err
	}
	g := mustBuild(t, graph.Lecture(), 30)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"kind name", parse(`{"kinds":[{"name":"` + long + `"}]}`)},
		{"batch key", parse(`{"kinds":[{"name":"a","batchKey":"` + long + `"}]}`)},
		{"unknown dependency", parse(`{"kinds":[{"name":"a","deps":[{"kind":"` + long + `","scope":"global"}]}]}`)},
		{"scope", parse(`{"kinds":[{"name":"a"},{"name":"b","deps":[{"kind":"a","scope":"` + long + `"}]}]}`)},
		// A literal that encoding/json's type error, or a refused key's
		// error, quotes whole.
		{"number for a number too large", parse(`{"kinds":[{"name":"a","batchKey":"a","concurrency":` + digits + `}]}`)},
		{"unknown key", parse(`{"kinds":[{"name":"a","` + long + `":1}]}`)},
		{"key in another case", parse(`{"kinds":[{"name":"a"}],"KINDS` + long + `":1}`)},
		{"ParseID", func() error { _, err := graph.ParseID(long + ":segment[1]"); return err }()},
		{"Lookup", func() error { _, err := g.Lookup(long); return err }()},
		{"Node", func() error { _, err := g.Node(graph.ID{Kind: long, Segment: graph.NoSegment}); return err }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, tc.err)
			msg := tc.err.Error()
			assert.Less(t, len(msg), 1000, "%.300s", msg)
			assert.Regexp(t, `… \(\d+ bytes\)`, msg)
		})
	}
	// A valid name of 128 bytes is named whole.
	name := strings.Repeat("k", 128)
	err := parse(`{"kinds":[{"name":"` + name + `","deps":[{"kind":"x","scope":"global"}]}]}`)
	assert.Contains(t, err.Error(), `kind "`+name+`": depends on unknown kind "x"`)
}

// TestGraphTooLargeForTheAddressSpace: on a 32-bit platform, a graph
// under the node and edge caps may still need more memory than a slice
// holds there: 92,680 nodes and 2,147,395,600 edges (a kind depending on
// all segments of another, 46,340 segments) need arrays of 17 GB. Their
// length, 2·(V+1) + 2·E, overflowed int, and Build panicked in make
// ("len out of range"); it now returns a *SizeError that says so. On a
// 64-bit platform no graph under the caps is too large to address, and
// the graph would take 17 GB: the case runs with GOARCH=386.
func TestGraphTooLargeForTheAddressSpace(t *testing.T) {
	if strconv.IntSize != 32 {
		t.Skip("a graph under the caps is too large to address on a 32-bit platform alone (GOARCH=386 go test)")
	}
	square := graph.Template{Kinds: []graph.Kind{
		{Name: "a", PerSegment: true},
		{Name: "b", PerSegment: true, Deps: []graph.Dep{{Kind: "a", Scope: graph.ScopeAllSegments}}},
	}}
	opts := graph.Options{MaxSeconds: graph.MaxSecondsLimit, MaxNodes: math.MaxInt, MaxEdges: math.MaxInt}
	var g *graph.Graph
	var err error
	require.NotPanics(t, func() { g, err = opts.Build(square, 463_400) })
	assert.Nil(t, g)
	var se *graph.SizeError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, graph.ErrTooLarge)
	assert.Equal(t, "graph: graph too large: its nodes and edges need 17179906248 bytes, more than the 2147483647 a slice holds on this platform: a shorter duration or fewer edges fit", err.Error())
}
