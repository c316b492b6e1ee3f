package graph_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// Short constructors for test templates.
var (
	glob    = testgraph.Glob
	per     = testgraph.Per
	batched = testgraph.Batched
	dep     = testgraph.Dep
	tmpl    = testgraph.Tmpl
)

func TestLectureTemplate(t *testing.T) {
	lec := graph.Lecture()
	require.NoError(t, lec.Validate())
	want := graph.Template{Kinds: []graph.Kind{
		{Name: "script"},
		{Name: "asset:narration", PerSegment: true, Deps: []graph.Dep{{Kind: "script", Scope: "global"}}, BatchKey: "asset:narration", Concurrency: 4},
		{Name: "asset:image", PerSegment: true, Deps: []graph.Dep{{Kind: "script", Scope: "global"}}, BatchKey: "asset:image", Concurrency: 5},
		{Name: "asset:video", PerSegment: true, Deps: []graph.Dep{{Kind: "asset:image", Scope: "same-segment"}, {Kind: "asset:narration", Scope: "same-segment"}}, BatchKey: "asset:video", Concurrency: 3},
		{Name: "asset:music", Deps: []graph.Dep{{Kind: "script", Scope: "global"}}},
		{Name: "timeline", Deps: []graph.Dep{{Kind: "asset:video", Scope: "all-segments"}, {Kind: "asset:narration", Scope: "all-segments"}, {Kind: "asset:music", Scope: "global"}}},
	}}
	if diff := cmp.Diff(want, lec); diff != "" {
		t.Fatalf("Lecture() mismatch (-want +got):\n%s", diff)
	}
	// Each call is a fresh copy.
	lec.Kinds[3].Deps[0].Kind = "changed"
	lec.Kinds[0].Name = "changed"
	if diff := cmp.Diff(want, graph.Lecture()); diff != "" {
		t.Fatalf("Lecture() changed by mutating an earlier result (-want +got):\n%s", diff)
	}
}

func TestTemplateClone(t *testing.T) {
	orig := graph.Lecture()
	c := orig.Clone()
	require.Equal(t, orig, c)
	c.Kinds[3].Deps[1].Scope = graph.ScopeAllSegments
	c.Kinds[1].BatchKey = "x"
	assert.Equal(t, graph.ScopeSameSegment, orig.Kinds[3].Deps[1].Scope)
	assert.Equal(t, "asset:narration", orig.Kinds[1].BatchKey)
}

func TestValidateAccepts(t *testing.T) {
	many := make([]graph.Kind, graph.MaxKinds)
	for i := range many {
		many[i] = glob(fmt.Sprintf("k%d", i))
		if i > 0 {
			many[i].Deps = []graph.Dep{dep(fmt.Sprintf("k%d", i-1), graph.ScopeGlobal)}
		}
	}
	tests := []struct {
		name string
		t    graph.Template
	}{
		{"lecture", graph.Lecture()},
		{"one global kind", tmpl(glob("a"))},
		{"one per-segment kind", tmpl(per("a"))},
		{"self previous-segment", tmpl(per("a", dep("a", graph.ScopePreviousSegment)))},
		{"same-segment and previous-segment on one kind", tmpl(per("a"), per("b", dep("a", graph.ScopeSameSegment), dep("a", graph.ScopePreviousSegment)))},
		{"per-segment kind on a global kind", tmpl(glob("g"), per("p", dep("g", graph.ScopeGlobal)))},
		{"global kind on all segments", tmpl(per("p"), glob("g", dep("p", graph.ScopeAllSegments)))},
		{"per-segment kind on all segments", tmpl(per("p"), per("q", dep("p", graph.ScopeAllSegments)))},
		{"kinds listed after their dependents", tmpl(per("b", dep("a", graph.ScopeSameSegment)), per("a"))},
		{"shared batch key with equal concurrency", tmpl(batched(per("a"), "k", 2), batched(glob("b"), "k", 2))},
		{"name with every allowed character", tmpl(glob("Az09_.:/-x"))},
		{"name of 128 bytes", tmpl(glob(strings.Repeat("a", 128)))},
		{"MaxKinds kinds in a chain", graph.Template{Kinds: many}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.t.Validate())
		})
	}
}

func TestValidateRefuses(t *testing.T) {
	tooMany := make([]graph.Kind, graph.MaxKinds+1)
	for i := range tooMany {
		tooMany[i] = glob(fmt.Sprintf("k%d", i))
	}
	// Ten kinds, so that names are looked up through a map.
	tenWithDup := make([]graph.Kind, 10)
	for i := range tenWithDup {
		tenWithDup[i] = glob(fmt.Sprintf("k%d", i))
	}
	tenWithDup[9].Name = "k3"

	tests := []struct {
		name string
		t    graph.Template
		kind string   // TemplateError.Kind
		msg  []string // parts of the message
	}{
		{"no kinds", graph.Template{}, "", []string{"no kinds"}},
		{"too many kinds", graph.Template{Kinds: tooMany}, "", []string{"1025 kinds", "at most 1024"}},
		{"duplicate kind", tmpl(glob("a"), glob("b"), glob("a")), "a", []string{"duplicate kind", "kinds 0 and 2"}},
		{"duplicate kind among many", graph.Template{Kinds: tenWithDup}, "k3", []string{"duplicate kind", "kinds 3 and 9"}},
		{"empty name", tmpl(glob("a"), glob("")), "", []string{"name is empty: it needs 1 to 128 characters", "(kind 1 of 2)"}},
		{"name starting with a dash", tmpl(glob("-a")), "-a", []string{`"-a" must start with a letter or a digit`}},
		{"name with a space", tmpl(glob("a b")), "a b", []string{`' ' at byte 1`}},
		{"name with a bracket", tmpl(glob("a[1]")), "a[1]", []string{`'[' at byte 1`}},
		{"name of 129 bytes", tmpl(glob(strings.Repeat("a", 129))), strings.Repeat("a", 129), []string{"129 bytes", "at most 128"}},
		{"name with non-ASCII", tmpl(glob("café")), "café", []string{`"café" has 'é' at byte 3`}},
		{"name with invalid UTF-8", tmpl(glob("a\xc3")), "a\xc3", []string{`"a\xc3" has byte '\xc3' at byte 1`}},
		{"batch key with non-ASCII", tmpl(batched(glob("a"), "clé", 1)), "a", []string{`batchKey "clé" has 'é' at byte 2`}},
		{"bad batch key", tmpl(batched(glob("a"), "a b", 1)), "a", []string{`batchKey "a b"`}},
		{"unknown dependency kind", tmpl(glob("a", dep("x", graph.ScopeGlobal))), "a", []string{`depends on unknown kind "x": the template's kinds are a`}},
		{"misspelt dependency kind", tmpl(per("asset:image"), per("asset:video", dep("asset:imgae", graph.ScopeSameSegment))), "asset:video", []string{`depends on unknown kind "asset:imgae": the template's kinds are asset:image, asset:video`}},
		{"unknown dependency kind among many", graph.Template{Kinds: append(slices.Clone(tenWithDup[:9]), glob("z", dep("k", graph.ScopeGlobal)))}, "z", []string{`depends on unknown kind "k": the template's kinds are k0, k1, k2, k3, k4, k5, k6, k7, k8, z`}},
		{"unknown dependency kind among too many to list", graph.Template{Kinds: append(slices.Clone(tooMany[:40]), glob("z", dep("k", graph.ScopeGlobal)))}, "z", []string{`depends on unknown kind "k": the template's kinds are k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15 and 25 more`}},
		// A global kind has one scope on a per-segment kind: all-segments
		// (same-segment and previous-segment need two per-segment kinds).
		{"global scope on a per-segment kind", tmpl(per("a"), glob("b", dep("a", graph.ScopeGlobal))), "b", []string{`scope global on "a", which is per segment: use all-segments`}},
		{"global scope from a per-segment kind on a per-segment kind", tmpl(per("a"), per("b", dep("a", graph.ScopeGlobal))), "b", []string{`scope global on "a", which is per segment: use same-segment, previous-segment or all-segments`}},
		// Each says what would do instead: all-segments from a global kind,
		// global on one; nothing for a global kind on itself.
		{"same-segment from a global kind", tmpl(per("a"), glob("b", dep("a", graph.ScopeSameSegment))), "b", []string{`scope same-segment needs two per-segment kinds, but "b" is global and "a" is per segment: use all-segments`}},
		{"same-segment on a global kind", tmpl(glob("a"), per("b", dep("a", graph.ScopeSameSegment))), "b", []string{`scope same-segment needs two per-segment kinds, but "b" is per segment and "a" is global: use global`}},
		{"same-segment between global kinds", tmpl(glob("a"), glob("b", dep("a", graph.ScopeSameSegment))), "b", []string{"scope same-segment needs two per-segment kinds", ": use global"}},
		{"previous-segment from a global kind", tmpl(per("a"), glob("b", dep("a", graph.ScopePreviousSegment))), "b", []string{`scope previous-segment needs two per-segment kinds, but "b" is global and "a" is per segment: use all-segments`}},
		{"previous-segment on a global kind", tmpl(glob("a"), per("b", dep("a", graph.ScopePreviousSegment))), "b", []string{`scope previous-segment needs two per-segment kinds`, `"a" is global: use global`}},
		{"previous-segment of a global kind on itself", tmpl(glob("a", dep("a", graph.ScopePreviousSegment))), "a", []string{`scope previous-segment needs two per-segment kinds, but "a" is global: only a per-segment kind may depend on itself`}},
		{"all-segments on a global kind", tmpl(glob("a"), glob("b", dep("a", graph.ScopeAllSegments))), "b", []string{`scope all-segments on "a", which is global`}},
		{"unknown scope", tmpl(per("a"), per("b", dep("a", "next-segment"))), "b", []string{`scope "next-segment"`, "allowed are global, same-segment, all-segments and previous-segment"}},
		{"empty scope", tmpl(glob("a"), glob("b", dep("a", ""))), "b", []string{`scope ""`}},
		{"duplicate dependency", tmpl(per("a"), per("b", dep("a", graph.ScopeSameSegment), dep("a", graph.ScopeSameSegment))), "b", []string{`dependency on "a" with scope same-segment is listed twice`}},
		{"duplicate global dependency", tmpl(glob("a"), glob("b", dep("a", graph.ScopeGlobal), dep("a", graph.ScopeGlobal))), "b", []string{"listed twice"}},
		{"all-segments after same-segment", tmpl(per("a"), per("b", dep("a", graph.ScopeSameSegment), dep("a", graph.ScopeAllSegments))), "b", []string{`dependency on "a" mixes all-segments with same-segment`}},
		{"previous-segment after all-segments", tmpl(per("a"), per("b", dep("a", graph.ScopeAllSegments), dep("a", graph.ScopePreviousSegment))), "b", []string{"mixes all-segments with previous-segment"}},
		{"duplicate all-segments dependency", tmpl(per("a"), glob("b", dep("a", graph.ScopeAllSegments), dep("a", graph.ScopeAllSegments))), "b", []string{"listed twice"}},
		{"concurrency 0 with a batch key", tmpl(batched(glob("a"), "k", 0)), "a", []string{"concurrency 0", `batchKey "k" needs a concurrency of at least 1`}},
		{"negative concurrency with a batch key", tmpl(batched(glob("a"), "k", -3)), "a", []string{"concurrency -3", "at least 1"}},
		{"concurrency without a batch key", tmpl(batched(glob("a"), "", 3)), "a", []string{"concurrency 3 without a batchKey"}},
		{"negative concurrency without a batch key", tmpl(batched(glob("a"), "", -1)), "a", []string{"concurrency -1 without a batchKey"}},
		{"conflicting concurrency on a shared batch key", tmpl(batched(per("a"), "k", 2), glob("x"), batched(per("b"), "k", 3)), "b", []string{`batchKey "k" has concurrency 3 here but 2 in kind "a"`, "must agree"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate()
			var te *graph.TemplateError
			require.ErrorAs(t, err, &te)
			assert.ErrorIs(t, err, graph.ErrInvalidTemplate)
			assert.NotErrorIs(t, err, graph.ErrCycle)
			assert.Equal(t, tc.kind, te.Kind)
			requireErrorContains(t, err, append([]string{"graph: invalid template: "}, tc.msg...)...)
			if tc.kind != "" {
				requireErrorContains(t, err, fmt.Sprintf("kind %q: ", tc.kind))
			}
			// Build refuses it with the same error.
			_, berr := graph.Build(tc.t, 30)
			require.Equal(t, err.Error(), berr.Error())
		})
	}
}

func TestValidateCycle(t *testing.T) {
	tests := []struct {
		name  string
		t     graph.Template
		kinds []string
		msg   string
	}{
		{
			name:  "two kinds",
			t:     tmpl(glob("a", dep("b", graph.ScopeGlobal)), glob("b", dep("a", graph.ScopeGlobal))),
			kinds: []string{"a", "b"},
			msg:   "graph: cycle among kinds: a -> b -> a (each kind depends on the next)",
		},
		{
			name: "three kinds after a clean one, listed against the cycle",
			t: tmpl(glob("x"), glob("a", dep("c", graph.ScopeGlobal), dep("x", graph.ScopeGlobal)),
				glob("b", dep("a", graph.ScopeGlobal)), glob("c", dep("b", graph.ScopeGlobal))),
			// a depends on c, c on b, b on a.
			kinds: []string{"a", "c", "b"},
			msg:   "graph: cycle among kinds: a -> c -> b -> a (each kind depends on the next)",
		},
		{
			name: "per-segment kinds through same-segment and all-segments",
			t: tmpl(per("p", dep("q", graph.ScopeSameSegment)), per("q", dep("r", graph.ScopeAllSegments)),
				per("r", dep("p", graph.ScopePreviousSegment))),
			kinds: []string{"p", "q", "r"},
		},
		{
			name:  "kind on itself with same-segment",
			t:     tmpl(glob("g"), per("a", dep("g", graph.ScopeGlobal), dep("a", graph.ScopeSameSegment))),
			kinds: []string{"a"},
			msg:   "graph: cycle among kinds: a -> a (only a per-segment kind may depend on itself, with scope previous-segment: each segment on the one before)",
		},
		{
			name:  "global kind on itself",
			t:     tmpl(glob("a", dep("a", graph.ScopeGlobal))),
			kinds: []string{"a"},
			msg:   "graph: cycle among kinds: a -> a (only a per-segment kind may depend on itself, with scope previous-segment: each segment on the one before)",
		},
		{
			name:  "kind on itself with all-segments",
			t:     tmpl(per("a", dep("a", graph.ScopeAllSegments))),
			kinds: []string{"a"},
			msg:   "graph: cycle among kinds: a -> a (only a per-segment kind may depend on itself, with scope previous-segment: each segment on the one before)",
		},
		{
			name: "previous-segment between two kinds is a cycle",
			t: tmpl(per("a", dep("b", graph.ScopePreviousSegment)),
				per("b", dep("a", graph.ScopePreviousSegment))),
			kinds: []string{"a", "b"},
		},
		{
			name: "the first edge that closes a cycle names it",
			// z depends on b and a; the edges are added in template order,
			// so b -> z closes the cycle a -> z -> b -> a before a -> z
			// closes the shorter a -> z -> a.
			t: tmpl(glob("a", dep("z", graph.ScopeGlobal)), glob("b", dep("a", graph.ScopeGlobal)),
				glob("z", dep("b", graph.ScopeGlobal), dep("a", graph.ScopeGlobal))),
			kinds: []string{"a", "z", "b"},
			msg:   "graph: cycle among kinds: a -> z -> b -> a (each kind depends on the next)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate()
			var ce *graph.CycleError
			require.ErrorAs(t, err, &ce)
			assert.ErrorIs(t, err, graph.ErrCycle)
			assert.ErrorIs(t, err, graph.ErrInvalidTemplate)
			if diff := cmp.Diff(tc.kinds, ce.Kinds); diff != "" {
				t.Errorf("cycle kinds (-want +got):\n%s", diff)
			}
			if tc.msg != "" {
				assert.Equal(t, tc.msg, err.Error())
			}
			// Deterministic: the same template names the same cycle.
			for range 20 {
				require.Equal(t, err.Error(), tc.t.Validate().Error())
			}
			// The named kinds really form a cycle, each depending on the next.
			deps := map[string][]string{}
			for _, k := range tc.t.Kinds {
				for _, d := range k.Deps {
					deps[k.Name] = append(deps[k.Name], d.Kind)
				}
			}
			for i, k := range ce.Kinds {
				next := ce.Kinds[(i+1)%len(ce.Kinds)]
				assert.Contains(t, deps[k], next, "%s does not depend on %s", k, next)
			}
		})
	}
}

func TestParseTemplate(t *testing.T) {
	lecJSON, err := json.Marshal(graph.Lecture())
	require.NoError(t, err)
	t.Run("lecture round trip", func(t *testing.T) {
		got, err := graph.ParseTemplate(lecJSON)
		require.NoError(t, err)
		if diff := cmp.Diff(graph.Lecture(), got); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})
	t.Run("issue format", func(t *testing.T) {
		in := `{"kinds": [
			{"name": "asset:image", "perSegment": true},
			{"name": "asset:video", "perSegment": true, "deps": [{"kind": "asset:image", "scope": "same-segment"}], "batchKey": "asset:video", "concurrency": 3}
		]}` + "\n\t "
		got, err := graph.ParseTemplate([]byte(in))
		require.NoError(t, err)
		want := tmpl(per("asset:image"), batched(per("asset:video", dep("asset:image", graph.ScopeSameSegment)), "asset:video", 3))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})

	bad := []struct {
		name string
		in   string
		msg  []string
	}{
		{"empty input", ``, []string{`bad JSON: no JSON value: want {"kinds": [...]}`}},
		{"not JSON", `kinds`, []string{"bad JSON", "invalid character"}},
		// An unknown key is named with the object that holds it and the
		// keys that object allows.
		{"unknown top-level field", `{"kinds": [{"name": "a"}], "extra": 1}`, []string{"bad JSON", `unknown field "extra"; allowed fields: kinds`}},
		{"unknown kind field", `{"kinds": [{"name": "a", "colour": "red"}]}`, []string{`bad JSON: unknown field "colour" in kinds[0]; allowed fields: batchKey, concurrency, deps, name, perSegment`}},
		{"unknown dep field", `{"kinds": [{"name": "a"}, {"name": "b", "deps": [{"kind": "a", "scope": "global", "weight": 1}]}]}`, []string{`unknown field "weight" in kinds[1].deps[0]; allowed fields: kind, scope`}},
		{"misspelt deps", `{"kinds": [{"name": "a"}, {"name": "b", "dpes": [{"kind": "a", "scope": "global"}]}]}`, []string{`unknown field "dpes" in kinds[1]; allowed fields: batchKey, concurrency, deps, name, perSegment`}},
		{"dependency key in a kind", `{"kinds": [{"name": "a", "kind": "x"}]}`, []string{`unknown field "kind" in kinds[0]; allowed fields: batchKey, concurrency, deps, name, perSegment`}},
		{"dependency key in a kind, in another case", `{"kinds": [{"name": "a", "Kind": "x"}]}`, []string{`unknown field "Kind" in kinds[0]; allowed fields: batchKey, concurrency, deps, name, perSegment`}},
		{"kind key in a dependency", `{"kinds": [{"name": "a"}, {"name": "b", "deps": [{"name": "a", "scope": "global"}]}]}`, []string{`unknown field "name" in kinds[1].deps[0]; allowed fields: kind, scope`}},
		{"kinds key in a kind", `{"kinds": [{"name": "a", "kinds": []}]}`, []string{`unknown field "kinds" in kinds[0]`}},
		{"key in another case", `{"KINDS": [{"name": "a"}]}`, []string{"bad JSON", `key "KINDS" does not match "kinds": names are case-sensitive`}},
		{"field in another case", `{"kinds": [{"name": "a", "PerSegment": true, "BATCHKEY": "k", "Concurrency": 2}]}`, []string{`key "PerSegment" in kinds[0] does not match "perSegment"`}},
		{"repeated key", `{"kinds": [{"name": "a"}], "kinds": [{"name": "b"}]}`, []string{`key "kinds" appears twice in one object`}},
		{"repeated field", `{"kinds": [{"name": "a"}, {"name": "b", "deps": [{"kind": "a", "scope": "global", "scope": "all-segments"}]}]}`, []string{`key "scope" appears twice in one object in kinds[1].deps[0]`}},
		{"trailing object", `{"kinds": [{"name": "a"}]} {}`, []string{"data after the template object"}},
		{"trailing garbage", `{"kinds": [{"name": "a"}]}x`, []string{"data after the template object"}},
		{"trailing comma", `{"kinds": [{"name": "a"}]},`, []string{"data after the template object"}},
		{"truncated", `{"kinds": [{"name": "a"}]`, []string{"bad JSON: unexpected end of JSON input"}},
		// encoding/json's scanner stops at 10,000 levels of nesting.
		{"nested too deep", `{"kinds":` + strings.Repeat("[", 100_000), []string{"bad JSON: invalid character '[' exceeded max depth"}},
		{"nested too deep, closed", `{"kinds":` + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + `}`, []string{"bad JSON: invalid character '[' exceeded max depth"}},
		{"missing kinds", `{}`, []string{`missing "kinds"`}},
		{"null", `null`, []string{`missing "kinds"`}},
		{"null kinds", `{"kinds": null}`, []string{`missing "kinds"`}},
		{"empty kinds", `{"kinds": []}`, []string{"no kinds"}},
		{"kinds of the wrong type", `{"kinds": {}}`, []string{"bad JSON: json: cannot unmarshal object into Go struct field Template.kinds of type []graph.Kind"}},
		{"concurrency of the wrong type", `{"kinds": [{"name": "a", "batchKey": "a", "concurrency": "3"}]}`, []string{"bad JSON"}},
		{"invalid template", `{"kinds": [{"name": "a", "deps": [{"kind": "b", "scope": "global"}]}]}`, []string{`kind "a": depends on unknown kind "b"`}},
		{"issue example alone", `{"kinds": [{"name": "asset:video", "perSegment": true, "deps": [{"kind": "asset:image", "scope": "same-segment"}], "batchKey": "asset:video", "concurrency": 3}]}`, []string{`unknown kind "asset:image"`}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := graph.ParseTemplate([]byte(tc.in))
			var te *graph.TemplateError
			require.ErrorAs(t, err, &te)
			require.ErrorIs(t, err, graph.ErrInvalidTemplate)
			requireErrorContains(t, err, tc.msg...)
			assert.Equal(t, graph.Template{}, got)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
	t.Run("cycle", func(t *testing.T) {
		_, err := graph.ParseTemplate([]byte(`{"kinds": [{"name": "a", "deps": [{"kind": "b", "scope": "global"}]}, {"name": "b", "deps": [{"kind": "a", "scope": "global"}]}]}`))
		var ce *graph.CycleError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, []string{"a", "b"}, ce.Kinds)
		assert.True(t, errors.Is(err, graph.ErrInvalidTemplate))
	})
}

// TestParseTemplateDeepNestingIsCheap: a template nested a million levels
// deep is refused at encoding/json's limit of 10,000 levels, in memory
// about its size. Checking its keys first walked it all, holding a frame
// for each level: 338 MB allocated for these 1 MB, and a -template file
// of the plan command's 256 MiB limit would take tens of gigabytes.
func TestParseTemplateDeepNestingIsCheap(t *testing.T) {
	data := []byte(`{"kinds":` + strings.Repeat("[", 1<<20))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := graph.ParseTemplate(data)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, graph.ErrInvalidTemplate)
	assert.Contains(t, err.Error(), "exceeded max depth")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16*len(data)), "bytes allocated")
}

// TestParseTemplateManyElementsIsCheap: a template of more kinds than
// MaxKinds, or a kind of more dependencies than any valid one has (two
// on each kind: same-segment and previous-segment), is refused before it
// is decoded, in memory about its size. Decoding it first held 72 bytes
// a kind for each "null," or "{}," of the input: 821 MB for 8 MB.
func TestParseTemplateManyElementsIsCheap(t *testing.T) {
	for _, tc := range []struct {
		name, data, msg string
	}{
		{"kinds", `{"kinds":[` + strings.Repeat("null,", 1<<18) + `null]}`,
			"graph: invalid template: more than 1024 kinds: at most 1024 are allowed"},
		{"empty kinds", `{"kinds":[` + strings.Repeat("{},", 1<<18) + `{}]}`,
			"graph: invalid template: more than 1024 kinds: at most 1024 are allowed"},
		{"dependencies", `{"kinds":[{"name":"a"},{"name":"b","deps":[` + strings.Repeat("{},", 1<<18) + `{}]}]}`,
			"graph: invalid template: kinds[1] has more than 2048 dependencies: a kind depends on each of at most 1024 kinds at most twice (same-segment and previous-segment)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := graph.ParseTemplate([]byte(tc.data))
			runtime.ReadMemStats(&after)
			var te *graph.TemplateError
			require.ErrorAs(t, err, &te)
			assert.EqualError(t, err, tc.msg)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16*len(tc.data)), "bytes allocated")
		})
	}
}

// TestTemplateUnmarshalJSON: a Template decoded by encoding/json, as a
// field of a host's own configuration, is read as strictly as
// ParseTemplate reads it, with the same errors. It was decoded leniently:
// a misspelt or unknown field, a key in another case, a repeated key and
// an invalid template went through without an error.
func TestTemplateUnmarshalJSON(t *testing.T) {
	type config struct {
		Name     string         `json:"name"`
		Template graph.Template `json:"template"`
	}
	roundTrips := map[string]graph.Template{
		"lecture": graph.Lecture(),
		"custom":  scopesTemplate(),
		"podcast": testgraph.Podcast(),
	}
	for name, want := range roundTrips {
		t.Run("round trip "+name, func(t *testing.T) {
			data, err := json.Marshal(config{Name: "x", Template: want})
			require.NoError(t, err)
			var got config
			require.NoError(t, json.Unmarshal(data, &got))
			if diff := cmp.Diff(want, got.Template, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			// Directly, and the same as ParseTemplate.
			data, err = json.Marshal(want)
			require.NoError(t, err)
			var direct graph.Template
			require.NoError(t, unmarshalTemplate(&direct, data))
			parsed, err := graph.ParseTemplate(data)
			require.NoError(t, err)
			if diff := cmp.Diff(parsed, direct); diff != "" {
				t.Fatalf("UnmarshalJSON (-ParseTemplate +UnmarshalJSON):\n%s", diff)
			}
		})
	}

	bad := []struct {
		name, template, msg string
	}{
		{"unknown field", `{"kinds": [{"name": "a"}], "kindz": []}`, `unknown field "kindz"; allowed fields: kinds`},
		{"misspelt kind field", `{"kinds": [{"name": "a", "batchKey": "a", "concurency": 2}]}`, `unknown field "concurency" in kinds[0]`},
		{"field in another case", `{"kinds": [{"name": "a", "BatchKey": "a", "concurrency": 2}]}`, `key "BatchKey" in kinds[0] does not match "batchKey"`},
		{"repeated key", `{"kinds": [{"name": "a"}], "kinds": [{"name": "b"}]}`, `key "kinds" appears twice in one object`},
		{"missing kinds", `{}`, `missing "kinds"`},
		{"empty kinds", `{"kinds": []}`, "no kinds"},
		{"invalid template", `{"kinds": [{"name": "a", "deps": [{"kind": "b", "scope": "global"}]}]}`, `depends on unknown kind "b"`},
		{"too many kinds", `{"kinds": [` + strings.Repeat("{},", graph.MaxKinds) + `{}]}`, "more than 1024 kinds"},
		{"cycle", `{"kinds": [{"name": "a", "deps": [{"kind": "b", "scope": "global"}]}, {"name": "b", "deps": [{"kind": "a", "scope": "global"}]}]}`, "cycle"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, want := graph.ParseTemplate([]byte(tc.template))
			require.Error(t, want)
			require.ErrorContains(t, want, tc.msg)

			// Inside a host's struct: the same error, as it is.
			got := config{Template: graph.Lecture()}
			err := json.Unmarshal([]byte(`{"name": "x", "template": `+tc.template+`}`), &got)
			require.ErrorIs(t, err, graph.ErrInvalidTemplate)
			assert.Equal(t, want, err)
			assert.Equal(t, graph.Lecture(), got.Template, "a refused template leaves the field as it was")

			// Directly.
			direct := graph.Lecture()
			assert.Equal(t, want, unmarshalTemplate(&direct, []byte(tc.template)))
			assert.Equal(t, graph.Lecture(), direct)
		})
	}
	t.Run("typed error naming the field", func(t *testing.T) {
		var c config
		err := json.Unmarshal([]byte(`{"name": "x", "template": {"kinds": [{"name": "a", "perSegmnet": true}]}}`), &c)
		var te *graph.TemplateError
		require.ErrorAs(t, err, &te)
		assert.EqualError(t, err, `graph: invalid template: bad JSON: unknown field "perSegmnet" in kinds[0]; allowed fields: batchKey, concurrency, deps, name, perSegment`)
	})
	// Called directly, UnmarshalJSON sees what encoding/json would refuse
	// before calling it.
	for _, tc := range []struct{ name, data, msg string }{
		{"trailing data", `{"kinds": [{"name": "a"}]} {}`, "data after the template object"},
		{"empty", ``, "no JSON value"},
		{"truncated", `{"kinds": [{"name": "a"}]`, "unexpected end of JSON input"},
	} {
		t.Run("direct "+tc.name, func(t *testing.T) {
			_, want := graph.ParseTemplate([]byte(tc.data))
			var got graph.Template
			err := unmarshalTemplate(&got, []byte(tc.data))
			var te *graph.TemplateError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, want, err)
			assert.ErrorContains(t, err, tc.msg)
		})
	}
	// null leaves a Template as it is, as encoding/json does for a
	// *Template field and for one that is absent.
	t.Run("null", func(t *testing.T) {
		got := config{Template: graph.Lecture()}
		require.NoError(t, json.Unmarshal([]byte(`{"name": "x", "template": null}`), &got))
		assert.Equal(t, graph.Lecture(), got.Template)
		direct := graph.Lecture()
		require.NoError(t, unmarshalTemplate(&direct, []byte(" null\n")))
		assert.Equal(t, graph.Lecture(), direct)
	})
}

// unmarshalTemplate calls t's UnmarshalJSON, as encoding/json would.
func unmarshalTemplate(t *graph.Template, data []byte) error {
	u, ok := any(t).(json.Unmarshaler)
	if !ok {
		return errors.New("graph.Template has no UnmarshalJSON")
	}
	return u.UnmarshalJSON(data)
}

// TestTemplateUnmarshalJSONOfAnEmbeddingStruct pins what Template's doc
// says of a struct that embeds it: the promoted UnmarshalJSON reads the
// whole object as a Template, and refuses the struct's own fields, where
// a named field reads as documented.
func TestTemplateUnmarshalJSONOfAnEmbeddingStruct(t *testing.T) {
	type embedding struct {
		graph.Template
		Seconds int `json:"seconds"`
	}
	data, err := json.Marshal(embedding{Template: graph.Lecture(), Seconds: 120})
	require.NoError(t, err)
	var e embedding
	err = json.Unmarshal(data, &e)
	require.ErrorIs(t, err, graph.ErrInvalidTemplate)
	assert.Contains(t, err.Error(), `unknown field "seconds"`)

	type named struct {
		Template graph.Template `json:"template"`
		Seconds  int            `json:"seconds"`
	}
	data, err = json.Marshal(named{Template: graph.Lecture(), Seconds: 120})
	require.NoError(t, err)
	var n named
	require.NoError(t, json.Unmarshal(data, &n))
	assert.Equal(t, named{Template: graph.Lecture(), Seconds: 120}, n)
}
