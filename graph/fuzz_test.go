package graph_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"script", "asset:image:segment[3]", "asset:video:segment[359]", "a:segment[0]",
		"", "a:segment[]", "a:segment[01]", "a:segment[-1]", "a:segment[1", "a[1]",
		"a:segment[1000000000]", "x:segment[1]:segment[2]", ":segment[1]", "a b", "]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := graph.ParseID(s)
		if err != nil {
			var ie *graph.IDError
			if !errors.As(err, &ie) || !errors.Is(err, graph.ErrMalformedID) || ie.ID != s {
				t.Fatalf("ParseID(%q) = %v: want an *IDError wrapping ErrMalformedID", s, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseID(%q): message has a newline: %q", s, err)
			}
			if id != (graph.ID{}) {
				t.Fatalf("ParseID(%q) = %+v with an error", s, id)
			}
			return
		}
		if got := id.String(); got != s {
			t.Fatalf("ParseID(%q).String() = %q", s, got)
		}
		if id.Segment < graph.NoSegment || id.Segment > 999_999_999 {
			t.Fatalf("ParseID(%q): segment %d", s, id.Segment)
		}
		// The kind is a valid kind name.
		if err := (graph.Template{Kinds: []graph.Kind{{Name: id.Kind}}}).Validate(); err != nil {
			t.Fatalf("ParseID(%q): kind %q is not a valid name: %v", s, id.Kind, err)
		}
	})
}

// templateSeeds returns JSON templates for the fuzz corpora.
func templateSeeds(f *testing.F) [][]byte {
	var out [][]byte
	add := func(t graph.Template) {
		data, err := json.Marshal(t)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	add(graph.Lecture())
	add(scopesTemplate())
	r := rand.New(rand.NewPCG(7, 7))
	for range 8 {
		add(testgraph.RandomTemplate(r))
	}
	for _, s := range []string{
		`{"kinds": [{"name": "a", "deps": [{"kind": "b", "scope": "global"}]}, {"name": "b", "deps": [{"kind": "a", "scope": "global"}]}]}`,
		`{"kinds": [{"name": "a", "perSegment": true, "deps": [{"kind": "a", "scope": "previous-segment"}]}]}`,
		`{"kinds": [{"name": "a", "perSegment": true, "deps": [{"kind": "a", "scope": "same-segment"}]}]}`,
		`{"kinds": [{"name": "a", "batchKey": "k", "concurrency": 0}]}`,
		`{"kinds": [{"name": "a", "perSegment": true}, {"name": "b", "perSegment": true, "deps": [{"kind": "a", "scope": "all-segments"}]}]}`,
		`{"kinds": []}`, `{}`, `null`, `{"kinds": [{"name": "a"}]} x`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range templateSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte(`{"kinds":[{"name":"a","batchKey":"a","concurrency":` + strings.Repeat("9", 5000) + `}]}`))
	f.Add([]byte(`{"kinds":[{"name":"a","` + strings.Repeat("k", 5000) + `":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tm, err := graph.ParseTemplate(data)
		if err != nil {
			checkTemplateError(t, err)
			return
		}
		if err := tm.Validate(); err != nil {
			t.Fatalf("ParseTemplate accepted a template that Validate refuses: %v", err)
		}
		again, err := json.Marshal(tm)
		if err != nil {
			t.Fatal(err)
		}
		back, err := graph.ParseTemplate(again)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", again, err)
		}
		if diff := cmp.Diff(tm, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// FuzzTemplateUnmarshalJSON: Template.UnmarshalJSON, called directly or
// by encoding/json for a field of a host's struct, gives what
// ParseTemplate gives: the same template, or an error of the same type
// and text, leaving the Template as it was; null leaves it as it is. A
// template it reads encodes and decodes again to the same template, and
// encodes to the same bytes each time.
func FuzzTemplateUnmarshalJSON(f *testing.F) {
	for _, s := range templateSeeds(f) {
		f.Add(s)
	}
	for _, s := range []string{` null `, `[]`, `"x"`, `{"kinds":[{"name":"a","perSegmnet":true}]}`, "\ufeff{}", `{"kinds":[{"name":"a"}],"kinds":[]}`} {
		f.Add([]byte(s))
	}
	type config struct {
		Name     string         `json:"name"`
		Template graph.Template `json:"template"`
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, werr := graph.ParseTemplate(data)
		got := graph.Lecture()
		err := got.UnmarshalJSON(data)
		isNull := strings.Trim(string(data), " \t\r\n") == "null"
		switch {
		case isNull:
			if err != nil || cmp.Diff(graph.Lecture(), got) != "" {
				t.Fatalf("UnmarshalJSON(%q) = %v, %+v: want nil, the template unchanged", data, err, got)
			}
		case (err == nil) != (werr == nil):
			t.Fatalf("UnmarshalJSON(%q) = %v, ParseTemplate %v", data, err, werr)
		case err != nil:
			checkTemplateError(t, err)
			if err.Error() != werr.Error() || fmt.Sprintf("%T", err) != fmt.Sprintf("%T", werr) {
				t.Fatalf("UnmarshalJSON(%q) = %v (%T), ParseTemplate %v (%T)", data, err, err, werr, werr)
			}
			if diff := cmp.Diff(graph.Lecture(), got); diff != "" {
				t.Fatalf("UnmarshalJSON(%q) = %v changed the template (-before +after):\n%s", data, err, diff)
			}
		default:
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("UnmarshalJSON(%q) (-ParseTemplate +UnmarshalJSON):\n%s", data, diff)
			}
			enc, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			var back graph.Template
			if err := json.Unmarshal(enc, &back); err != nil {
				t.Fatalf("decoding %s again: %v", enc, err)
			}
			if diff := cmp.Diff(got, back, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("round trip of %s (-first +second):\n%s", enc, diff)
			}
			if again, _ := json.Marshal(back); string(again) != string(enc) {
				t.Fatalf("encoded %s, then %s", enc, again)
			}
		}
		// Within a host's document: encoding/json refuses malformed JSON
		// itself; any other value gets UnmarshalJSON's answer as it is.
		doc := append(append([]byte(`{"name":"x","template":`), data...), '}')
		c := config{Template: graph.Lecture()}
		cerr := json.Unmarshal(doc, &c)
		switch {
		case !json.Valid(data):
			var se *json.SyntaxError
			if !errors.As(cerr, &se) {
				t.Fatalf("Unmarshal of malformed %q = %v (%T): want a *json.SyntaxError", data, cerr, cerr)
			}
			if diff := cmp.Diff(graph.Lecture(), c.Template); diff != "" {
				t.Fatalf("Unmarshal of malformed %q changed the template:\n%s", data, diff)
			}
		case isNull || err == nil:
			if cerr != nil || cmp.Diff(got, c.Template) != "" {
				t.Fatalf("Unmarshal of %s = %v, %+v: want %+v", doc, cerr, c.Template, got)
			}
		default:
			if cerr == nil || cerr.Error() != err.Error() {
				t.Fatalf("Unmarshal of %s = %v: want %v", doc, cerr, err)
			}
			if diff := cmp.Diff(graph.Lecture(), c.Template); diff != "" {
				t.Fatalf("Unmarshal of %s = %v changed the template:\n%s", doc, cerr, diff)
			}
		}
	})
}

// FuzzValidate makes a Template in Go, as a host may, from the fuzzer's
// bytes: names of any bytes (split at "|", and used again as dependency
// kinds and batch keys), any scope, any concurrency. Validate and Build
// give the same answer, the same each time; an error is a template error
// of one line and bounded length. A template of valid UTF-8 reads back
// from its JSON with ParseTemplate with the same answer; a valid one
// builds.
func FuzzValidate(f *testing.F) {
	f.Add("a|b", []byte{0, 0, 3, 1, 0, 0})
	f.Add("script|asset:narration|asset:video", []byte{0, 0, 7, 5, 1, 0, 1, 1, 1, 2})
	f.Add("a|a", []byte{1, 1})
	f.Add("p|q", []byte{1, 0, 1, 1, 1, 3, 1, 1, 2, 0, 4})
	f.Add("\xff|é|"+strings.Repeat("k", 300), []byte{2, 1, 9, 200})
	scopes := []graph.Scope{graph.ScopeGlobal, graph.ScopeSameSegment, graph.ScopeAllSegments, graph.ScopePreviousSegment, "", "Global"}
	f.Fuzz(func(t *testing.T, names string, spec []byte) {
		parts := strings.Split(names, "|")
		if len(parts) > 12 {
			parts = parts[:12]
		}
		next := func() int {
			if len(spec) == 0 {
				return 0
			}
			b := spec[0]
			spec = spec[1:]
			return int(b)
		}
		var tm graph.Template
		for _, name := range parts {
			flags := next()
			kd := graph.Kind{Name: name, PerSegment: flags&1 != 0, Concurrency: flags>>5 - 1}
			if flags&2 != 0 {
				kd.BatchKey = parts[(flags>>2)%len(parts)]
			}
			for range next() % 4 {
				kd.Deps = append(kd.Deps, graph.Dep{Kind: parts[next()%len(parts)], Scope: scopes[next()%len(scopes)]})
			}
			tm.Kinds = append(tm.Kinds, kd)
		}
		err := tm.Validate()
		if again := tm.Clone().Validate(); fmt.Sprint(again) != fmt.Sprint(err) {
			t.Fatalf("Validate(%+v) = %v, then %v", tm, err, again)
		}
		g, berr := graph.Build(tm, 20)
		if fmt.Sprint(berr) != fmt.Sprint(err) || (berr == nil) != (g != nil) {
			t.Fatalf("Validate(%+v) = %v, Build %v", tm, err, berr)
		}
		if err != nil {
			checkTemplateError(t, err)
		} else if got := g.Template(); cmp.Diff(tm, got, cmpopts.EquateEmpty()) != "" {
			t.Fatalf("Build(%+v) holds %+v", tm, got)
		}
		if !utf8.ValidString(names) {
			return // JSON would read another template
		}
		data, merr := json.Marshal(tm)
		if merr != nil {
			t.Fatal(merr)
		}
		back, perr := graph.ParseTemplate(data)
		switch {
		case fmt.Sprint(perr) != fmt.Sprint(err):
			t.Fatalf("Validate(%+v) = %v, ParseTemplate(%s) %v", tm, err, data, perr)
		case err == nil && cmp.Diff(tm, back, cmpopts.EquateEmpty()) != "":
			t.Fatalf("ParseTemplate(%s) = %+v, from %+v", data, back, tm)
		}
	})
}

// checkTemplateError checks that a template error is typed and wraps
// ErrInvalidTemplate, and its message is one line.
func checkTemplateError(t *testing.T, err error) {
	t.Helper()
	var te *graph.TemplateError
	var ce *graph.CycleError
	if !errors.Is(err, graph.ErrInvalidTemplate) || !(errors.As(err, &te) || errors.As(err, &ce)) {
		t.Fatalf("error %v (%T) is not a template error", err, err)
	}
	if ce != nil && len(ce.Kinds) == 0 {
		t.Fatalf("cycle error names no kind")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("message has a newline: %q", err)
	}
	// A long literal of the input is cut: no message is mostly input.
	if n := len(err.Error()); n > 4096 {
		t.Fatalf("message of %d bytes: %.300s", n, err)
	}
}

func FuzzBuild(f *testing.F) {
	for i, s := range templateSeeds(f) {
		f.Add(s, 10*(i%7))
		f.Add(s, 35)
	}
	// Small limits keep each input cheap: at most 200 segments and
	// 20,000 edges.
	opts := graph.Options{MaxSeconds: 2000, MaxEdges: 20_000}
	f.Fuzz(func(t *testing.T, data []byte, secs int) {
		tm, err := graph.ParseTemplate(data)
		if err != nil {
			return
		}
		g, err := opts.Build(tm, secs)
		if err != nil {
			var de *graph.DurationError
			var se *graph.SizeError
			switch {
			case errors.As(err, &de) && errors.Is(err, graph.ErrInvalidDuration):
				if secs > 0 && secs%10 == 0 && secs <= opts.MaxSeconds {
					t.Fatalf("Build refused a valid duration %d: %v", secs, err)
				}
			case errors.As(err, &se) && errors.Is(err, graph.ErrTooLarge):
				if se.Count <= se.Limit {
					t.Fatalf("SizeError %v under its limit", err)
				}
			default:
				t.Fatalf("Build of a parsed template: unexpected error %v (%T)", err, err)
			}
			return
		}
		if secs <= 0 || secs%10 != 0 || secs > opts.MaxSeconds {
			t.Fatalf("Build accepted duration %d", secs)
		}
		if err := checkGraph(g); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(naiveDeps(tm, secs/10), graphDeps(g)); diff != "" {
			t.Fatalf("graph differs from the naive expansion (-want +got):\n%s", diff)
		}
	})
}

// FuzzLookup looks up any text in the graph of a random template (kinds
// listed out of dependency order, global and per-segment, with "asset:"
// prefixes) of 1 to 12 segments: it finds the node whose ID is that text,
// or says why there is none with an *IDError, one line, that wraps
// ErrMalformedID or ErrUnknownNode as ParseID decides. Every node's own
// ID finds it. Nothing panics.
func FuzzLookup(f *testing.F) {
	for i, s := range []string{
		"k0", "k1:segment[0]", "asset:k2:segment[11]", "k3:segment[12]", "k0:segment[0]",
		"k1", "asset:k1", "k9", "", "k1:segment[-1]", "k1:segment[999999999]", "script",
	} {
		f.Add(uint64(i), uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, seed uint64, segs uint8, s string) {
		tm := testgraph.RandomTemplate(rand.New(rand.NewPCG(seed, seed>>32)))
		g, err := graph.Build(tm, 10*(1+int(segs)%12))
		if err != nil {
			t.Fatalf("Build of a valid template: %v", err)
		}
		n, err := g.Lookup(s)
		_, perr := graph.ParseID(s)
		if err != nil {
			var ie *graph.IDError
			switch {
			case !errors.As(err, &ie):
				t.Fatalf("Lookup(%q) = %v (%T): want an *IDError", s, err, err)
			case perr != nil && !errors.Is(err, graph.ErrMalformedID):
				t.Fatalf("Lookup(%q) = %v for a malformed ID: want ErrMalformedID", s, err)
			case perr == nil && !errors.Is(err, graph.ErrUnknownNode):
				t.Fatalf("Lookup(%q) = %v for a well-formed ID: want ErrUnknownNode", s, err)
			case strings.Contains(err.Error(), "\n"):
				t.Fatalf("Lookup(%q): message has a newline: %q", s, err)
			case n != graph.None:
				t.Fatalf("Lookup(%q) = %d with an error", s, n)
			}
			for i := range g.Len() {
				if g.NodeID(graph.Node(i)) == s {
					t.Fatalf("Lookup(%q) refused node %d's own ID: %v", s, i, err)
				}
			}
			return
		}
		if !g.Contains(n) || g.NodeID(n) != s {
			t.Fatalf("Lookup(%q) = %d, whose ID is %q", s, n, g.NodeID(n))
		}
		for i := range g.Len() {
			id := g.NodeID(graph.Node(i))
			if m, err := g.Lookup(id); err != nil || m != graph.Node(i) {
				t.Fatalf("Lookup(%q) = %d, %v: want node %d", id, m, err, i)
			}
		}
	})
}

// FuzzNode looks up any ID value, as a host may make one without
// ParseID, in the graph of a random template: an ID of no node is an
// *IDError wrapping ErrUnknownNode (never ErrMalformedID) that names it,
// in one line of bounded length, the same each time; any other gives the
// node whose ID it is. A kind given as "#i" is the template's i-th.
func FuzzNode(f *testing.F) {
	for i, s := range []struct {
		kind string
		seg  int
	}{
		{"#0", graph.NoSegment}, {"#1", 0}, {"#2", 11}, {"#3", 12}, {"#1", -2}, {"#0", 0},
		{"k9", graph.NoSegment}, {"", 0}, {"", graph.NoSegment}, {"#1", math.MaxInt}, {"#1", math.MinInt},
		{strings.Repeat("k", 5000), 3}, {"a\nb", 1}, {"k1:segment[0]", graph.NoSegment},
	} {
		f.Add(uint64(i), uint8(i), s.kind, s.seg)
	}
	f.Fuzz(func(t *testing.T, seed uint64, segs uint8, kind string, seg int) {
		tm := testgraph.RandomTemplate(rand.New(rand.NewPCG(seed, seed>>32)))
		g, err := graph.Build(tm, 10*(1+int(segs)%12))
		if err != nil {
			t.Fatalf("Build of a valid template: %v", err)
		}
		if i, err := strconv.Atoi(strings.TrimPrefix(kind, "#")); err == nil && strings.HasPrefix(kind, "#") && i >= 0 {
			kind = tm.Kinds[i%len(tm.Kinds)].Name
		}
		id := graph.ID{Kind: kind, Segment: seg}
		n, err := g.Node(id)
		n2, err2 := g.Node(id)
		if n != n2 || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("Node(%+v) = %d, %v, then %d, %v", id, n, err, n2, err2)
		}
		if err != nil {
			var ie *graph.IDError
			switch msg := err.Error(); {
			case !errors.As(err, &ie) || !errors.Is(err, graph.ErrUnknownNode) || errors.Is(err, graph.ErrMalformedID):
				t.Fatalf("Node(%+v) = %v (%T): want an *IDError wrapping ErrUnknownNode", id, err, err)
			case ie.ID != id.String():
				t.Fatalf("Node(%+v): the error names %q, want %q", id, ie.ID, id.String())
			case strings.Contains(msg, "\n") || len(msg) > 4096:
				t.Fatalf("Node(%+v): message of %d bytes: %.300q", id, len(msg), msg)
			case n != graph.None:
				t.Fatalf("Node(%+v) = %d with an error", id, n)
			}
			for i := range g.Len() {
				if g.ID(graph.Node(i)) == id {
					t.Fatalf("Node(%+v) refused node %d: %v", id, i, err)
				}
			}
			return
		}
		if !g.Contains(n) || g.ID(n) != id {
			t.Fatalf("Node(%+v) = %d, whose ID is %+v", id, n, g.ID(n))
		}
		if m, err := g.Lookup(id.String()); err != nil || m != n {
			t.Fatalf("Lookup(%q) = %d, %v: Node gave %d", id.String(), m, err, n)
		}
	})
}

// FuzzExport builds the graph of any template the fuzzer's JSON parses
// as, of 1 to 20 segments, and writes it as JSON, DOT and Mermaid: no
// writer fails, a second build writes the same bytes (with the same
// highlight), and the template in the graph's JSON parses and builds a
// graph that writes the same JSON. Its Dominik graph has the same
// vertices and, from each, the same edges.
func FuzzExport(f *testing.F) {
	for i, s := range templateSeeds(f) {
		f.Add(s, uint8(i), uint8(i*7))
	}
	f.Fuzz(func(t *testing.T, data []byte, segs, mark uint8) {
		tm, err := graph.ParseTemplate(data)
		if err != nil {
			return
		}
		secs := 10 * (1 + int(segs)%20)
		opts := graph.Options{MaxEdges: 50_000}
		export := func(g *graph.Graph) []string {
			t.Helper()
			highlight := func(n graph.Node) bool { return int(n)%(1+int(mark)%5) == 0 }
			js, err := g.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			var dot, mermaid strings.Builder
			if err := g.WriteDOT(&dot, highlight); err != nil {
				t.Fatalf("WriteDOT: %v", err)
			}
			if err := g.WriteMermaid(&mermaid, highlight); err != nil {
				t.Fatalf("WriteMermaid: %v", err)
			}
			return []string{string(js), dot.String(), mermaid.String()}
		}
		g, err := opts.Build(tm, secs)
		if err != nil {
			var se *graph.SizeError
			if !errors.As(err, &se) {
				t.Fatalf("Build of a parsed template, %d s: %v", secs, err)
			}
			return
		}
		first := export(g)
		if !json.Valid([]byte(first[0])) {
			t.Fatalf("MarshalJSON wrote %s", first[0])
		}
		// The dominikbraun graph has the same nodes and edges.
		dg, err := g.Dominik()
		if err != nil {
			t.Fatalf("Dominik: %v", err)
		}
		order, err := dg.Order()
		if err != nil || order != g.Len() {
			t.Fatalf("Dominik: %d vertices (%v), want %d", order, err, g.Len())
		}
		adj, err := dg.AdjacencyMap()
		if err != nil {
			t.Fatalf("Dominik: %v", err)
		}
		for n := range g.Len() {
			id := g.NodeID(graph.Node(n))
			var want []string
			for _, m := range g.Dependents(graph.Node(n)) {
				want = append(want, g.NodeID(m))
			}
			got := slices.Sorted(maps.Keys(adj[id]))
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("Dominik: %s -> %v, want %v", id, got, want)
			}
		}
		g2, err := opts.Build(tm.Clone(), secs)
		if err != nil {
			t.Fatalf("second Build: %v", err)
		}
		if diff := cmp.Diff(first, export(g2)); diff != "" {
			t.Fatalf("a second build writes other bytes (-first +second):\n%s", diff)
		}
		var out struct {
			Template json.RawMessage `json:"template"`
		}
		if err := json.Unmarshal([]byte(first[0]), &out); err != nil {
			t.Fatal(err)
		}
		tm3, err := graph.ParseTemplate(out.Template)
		if err != nil {
			t.Fatalf("the graph's template %s does not parse: %v", out.Template, err)
		}
		g3, err := opts.Build(tm3, secs)
		if err != nil {
			t.Fatalf("Build of the graph's template: %v", err)
		}
		if js := export(g3)[0]; js != first[0] {
			t.Fatalf("the graph's template builds another graph:\n%s\n%s", first[0], js)
		}
	})
}

// FuzzOptions builds graphs with any Options and duration, which no
// other target fuzzes (FuzzBuild's limits are fixed), and checks Build
// against a model of its rules: a MaxSeconds of 0 means 86,400 s and
// one outside 10 to 100,000,000 is a *DurationError naming the option;
// else a duration not positive, not a multiple of 10 or over the limit
// is a *DurationError naming the duration; else a graph of more nodes or
// edges than MaxNodes or MaxEdges allow (0 or less: the default; above
// 2,147,483,646: that) is a *SizeError with the counts; else the graph
// has the nodes and edges the template gives. Every error is one line
// and names its value; a count of one segment is not "1 segments". The
// templates are the lecture (3S+3 nodes, 6S+2 edges) and two per-segment
// kinds, the second on all of the first's segments (2S nodes, S² edges).
// A graph the model accepts over 200,000 nodes and edges is not built.
func FuzzOptions(f *testing.F) {
	for _, s := range []struct {
		maxSecs, maxNodes, maxEdges, secs int
		square                            bool
	}{
		{0, 0, 0, 30, false}, {0, 0, 0, 86_410, false}, {15, 0, 0, 20, false}, {10, 0, 0, 20, true},
		{-1, 0, 0, 10, false}, {graph.MaxSecondsLimit + 1, 0, 0, 10, false}, {graph.MaxSecondsLimit, 5, 0, graph.MaxSecondsLimit, false},
		{0, 9, 0, 20, false}, {0, 0, 99, 100, true}, {0, -1, -1, 100, true}, {0, math.MaxInt, math.MaxInt, 990, true},
		{95, 0, 0, 90, false}, {0, 0, 0, math.MaxInt, false}, {0, 0, 0, math.MinInt, true}, {0, 0, 0, -10, false},
	} {
		f.Add(s.maxSecs, s.maxNodes, s.maxEdges, s.secs, s.square)
	}
	square := graph.Template{Kinds: []graph.Kind{
		{Name: "a", PerSegment: true},
		{Name: "b", PerSegment: true, Deps: []graph.Dep{{Kind: "a", Scope: graph.ScopeAllSegments}}},
	}}
	const maxIndex = math.MaxInt32 - 1
	limit := func(v, def int) int64 {
		switch {
		case v <= 0:
			return int64(def)
		case v > maxIndex:
			return maxIndex
		}
		return int64(v)
	}
	f.Fuzz(func(t *testing.T, maxSecs, maxNodes, maxEdges, secs int, sq bool) {
		opts := graph.Options{MaxSeconds: maxSecs, MaxNodes: maxNodes, MaxEdges: maxEdges}
		tm := graph.Lecture()
		if sq {
			tm = square
		}
		// The model.
		ms := maxSecs
		if ms == 0 {
			ms = graph.DefaultMaxSeconds
		}
		var wantOption string // the option a *DurationError names
		var wantDuration, wantSize bool
		var nodes, edges int64
		switch {
		case ms < graph.SegmentSeconds || ms > graph.MaxSecondsLimit:
			wantOption = "MaxSeconds"
		case secs <= 0 || secs%graph.SegmentSeconds != 0 || secs > ms:
			wantDuration = true
		default:
			s := int64(secs / graph.SegmentSeconds)
			nodes, edges = 3*s+3, 6*s+2
			if sq {
				nodes, edges = 2*s, s*s
			}
			wantSize = nodes > limit(maxNodes, graph.DefaultMaxNodes) || edges > limit(maxEdges, graph.DefaultMaxEdges)
			if !wantSize && nodes+edges > 200_000 {
				return // valid, but too large to build here
			}
		}
		g, err := opts.Build(tm, secs)
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "\n") || strings.Contains(msg, "(1 segments)") {
				t.Fatalf("Build(%+v, %d): message %q", opts, secs, msg)
			}
		}
		var de *graph.DurationError
		var se *graph.SizeError
		switch {
		case wantOption != "":
			if !errors.As(err, &de) || !errors.Is(err, graph.ErrInvalidDuration) || de.Option != wantOption || de.Seconds != maxSecs {
				t.Fatalf("Build(%+v, %d) = %v: want a *DurationError for MaxSeconds %d", opts, secs, err, maxSecs)
			}
		case wantDuration:
			if !errors.As(err, &de) || !errors.Is(err, graph.ErrInvalidDuration) || de.Option != "" || de.Seconds != secs ||
				!strings.Contains(err.Error(), strconv.Itoa(secs)+"s ") {
				t.Fatalf("Build(%+v, %d) = %v: want a *DurationError for the duration", opts, secs, err)
			}
		case wantSize:
			if !errors.As(err, &se) || !errors.Is(err, graph.ErrTooLarge) || se.Count <= se.Limit {
				t.Fatalf("Build(%+v, %d) = %v: want a *SizeError (%d nodes, %d edges)", opts, secs, err, nodes, edges)
			}
			want := nodes
			if se.What == "edges" {
				want = edges
			}
			if se.Count != want {
				t.Fatalf("Build(%+v, %d) = %v: want a count of %d", opts, secs, err, want)
			}
		default:
			if err != nil {
				t.Fatalf("Build(%+v, %d) = %v: want %d nodes and %d edges", opts, secs, err, nodes, edges)
			}
			if g.Segments() != secs/graph.SegmentSeconds || int64(g.Len()) != nodes || int64(g.Edges()) != edges {
				t.Fatalf("Build(%+v, %d): %d segments, %d nodes, %d edges; want %d nodes, %d edges", opts, secs, g.Segments(), g.Len(), g.Edges(), nodes, edges)
			}
		}
		if err != nil && g != nil {
			t.Fatalf("Build(%+v, %d) returned a graph with %v", opts, secs, err)
		}
	})
}
