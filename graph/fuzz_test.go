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
