package graph_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

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

// FuzzExport builds the graph of any template the fuzzer's JSON parses
// as, of 1 to 20 segments, and writes it as JSON, DOT and Mermaid: no
// writer fails, a second build writes the same bytes (with the same
// highlight), and the template in the graph's JSON parses and builds a
// graph that writes the same JSON.
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
