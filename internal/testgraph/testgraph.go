// Package testgraph generates random valid templates for the property
// tests of graph, planner and executor/schedule, and holds the graph
// helpers that several packages' tests share.
package testgraph

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/regengraph/regen/graph"
)

// RandomTemplate returns a random valid template drawn from r: 1 to 7
// kinds, each global or per segment, some named with an "asset:" prefix,
// depending on kinds created before it (so the kinds form a DAG) with a
// random scope that fits, sometimes on its own previous segment, with no
// batch key, a key of its own or a shared one. The kinds are then listed
// in a shuffled order, so template order is not a topological order.
func RandomTemplate(r *rand.Rand) graph.Template {
	kinds := make([]graph.Kind, 1+r.IntN(7))
	sharedConc := map[string]int{}
	for i := range kinds {
		kd := graph.Kind{Name: fmt.Sprintf("k%d", i), PerSegment: r.IntN(3) > 0}
		if r.IntN(4) == 0 {
			kd.Name = "asset:" + kd.Name
		}
		for j := range i {
			if r.IntN(3) != 0 {
				continue
			}
			other := kinds[j]
			var scopes []graph.Scope
			switch {
			case !other.PerSegment:
				scopes = []graph.Scope{graph.ScopeGlobal}
			case kd.PerSegment:
				scopes = []graph.Scope{graph.ScopeSameSegment, graph.ScopePreviousSegment, graph.ScopeAllSegments}
			default:
				scopes = []graph.Scope{graph.ScopeAllSegments}
			}
			s := scopes[r.IntN(len(scopes))]
			kd.Deps = append(kd.Deps, graph.Dep{Kind: other.Name, Scope: s})
			if s == graph.ScopeSameSegment && r.IntN(3) == 0 {
				kd.Deps = append(kd.Deps, graph.Dep{Kind: other.Name, Scope: graph.ScopePreviousSegment})
			}
		}
		if kd.PerSegment && r.IntN(4) == 0 {
			kd.Deps = append(kd.Deps, graph.Dep{Kind: kd.Name, Scope: graph.ScopePreviousSegment})
		}
		r.Shuffle(len(kd.Deps), func(a, b int) { kd.Deps[a], kd.Deps[b] = kd.Deps[b], kd.Deps[a] })
		switch r.IntN(3) {
		case 1:
			kd.BatchKey, kd.Concurrency = "own:"+kd.Name, 1+r.IntN(5)
		case 2:
			key := fmt.Sprintf("shared%d", r.IntN(2))
			if _, ok := sharedConc[key]; !ok {
				sharedConc[key] = 1 + r.IntN(5)
			}
			kd.BatchKey, kd.Concurrency = key, sharedConc[key]
		}
		kinds[i] = kd
	}
	r.Shuffle(len(kinds), func(a, b int) { kinds[a], kinds[b] = kinds[b], kinds[a] })
	return graph.Template{Kinds: kinds}
}

// Glob returns a global kind with the given dependencies.
func Glob(name string, deps ...graph.Dep) graph.Kind {
	return graph.Kind{Name: name, Deps: deps}
}

// Per returns a per-segment kind with the given dependencies.
func Per(name string, deps ...graph.Dep) graph.Kind {
	return graph.Kind{Name: name, PerSegment: true, Deps: deps}
}

// Batched returns k with a batch key and a concurrency.
func Batched(k graph.Kind, key string, conc int) graph.Kind {
	k.BatchKey, k.Concurrency = key, conc
	return k
}

// Dep returns a dependency on kind with scope s.
func Dep(kind string, s graph.Scope) graph.Dep { return graph.Dep{Kind: kind, Scope: s} }

// Tmpl returns a template of the given kinds.
func Tmpl(kinds ...graph.Kind) graph.Template { return graph.Template{Kinds: kinds} }

// Podcast is a host's own template, not the lecture: a podcast maker's.
// It has several global kinds, a previous-segment chain (each chapter's
// summary reads the one before), an all-segments fan-in (the show notes)
// that per-segment kinds (the music beds) then depend on, a batch key
// shared by two kinds (llm) and by a global and a per-segment kind (tts),
// kinds without a key, odd but valid names, and kinds listed out of
// dependency order. A segment is a chapter.
func Podcast() graph.Template {
	G, S, A, P := graph.ScopeGlobal, graph.ScopeSameSegment, graph.ScopeAllSegments, graph.ScopePreviousSegment
	return graph.Template{Kinds: []graph.Kind{
		{Name: "publish", Deps: []graph.Dep{{Kind: "final-mix", Scope: G}}},
		{Name: "final-mix", Deps: []graph.Dep{{Kind: "ch:voice", Scope: A}, {Kind: "ch_bed", Scope: A},
			{Kind: "0intro", Scope: G}, {Kind: "cover.art", Scope: G}}},
		{Name: "brief"},
		{Name: "0intro", Deps: []graph.Dep{{Kind: "brief", Scope: G}}, BatchKey: "tts", Concurrency: 4},
		{Name: "cover.art", Deps: []graph.Dep{{Kind: "brief", Scope: G}}, BatchKey: "img/gen", Concurrency: 1},
		{Name: "ch/transcript", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: G}}, BatchKey: "llm", Concurrency: 3},
		{Name: "ch:voice", PerSegment: true, Deps: []graph.Dep{{Kind: "ch/transcript", Scope: S}}, BatchKey: "tts", Concurrency: 4},
		{Name: "ch.summary", PerSegment: true, Deps: []graph.Dep{{Kind: "ch.summary", Scope: P}, {Kind: "ch/transcript", Scope: S}},
			BatchKey: "llm", Concurrency: 3},
		{Name: "show-notes", Deps: []graph.Dep{{Kind: "ch.summary", Scope: A}}},
		{Name: "ch_bed", PerSegment: true, Deps: []graph.Dep{{Kind: "ch:voice", Scope: S}, {Kind: "show-notes", Scope: G}}},
	}}
}

// LectureIDs returns the node IDs of the lecture of seconds, sorted; it
// fails t if the lecture cannot be built.
func LectureIDs(t testing.TB, seconds int) []string {
	t.Helper()
	g, err := graph.Build(graph.Lecture(), seconds)
	if err != nil {
		t.Fatalf("build a lecture of %d s: %v", seconds, err)
	}
	ids := make([]string, g.Len())
	for n := range g.Len() {
		ids[n] = g.NodeID(graph.Node(n))
	}
	slices.Sort(ids)
	return ids
}

// Episode returns an embedder's two templates of the same length, as
// graphs: a, with transcripts only, and b, the same with subtitles added,
// as a host that adds a kind has, both of 30 s; and a60, a of 60 s.
func Episode(t testing.TB) (a, b, a60 *graph.Graph) {
	t.Helper()
	tA := graph.Template{Kinds: []graph.Kind{{Name: "transcript", PerSegment: true}}}
	tB := graph.Template{Kinds: []graph.Kind{{Name: "transcript", PerSegment: true},
		{Name: "subtitles", PerSegment: true, Deps: []graph.Dep{{Kind: "transcript", Scope: graph.ScopeSameSegment}}}}}
	for _, x := range []struct {
		g    **graph.Graph
		t    graph.Template
		secs int
	}{{&a, tA, 30}, {&b, tB, 30}, {&a60, tA, 60}} {
		g, err := graph.Build(x.t, x.secs)
		if err != nil {
			t.Fatalf("testgraph: episode: %v", err)
		}
		*x.g = g
	}
	return a, b, a60
}
