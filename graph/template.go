package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/regengraph/regen/internal/strictjson"
)

// Scope says which nodes of a dependency's kind a node depends on.
type Scope string

// The scopes.
const (
	// ScopeGlobal depends on the one node of a global kind.
	ScopeGlobal Scope = "global"
	// ScopeSameSegment makes segment i depend on segment i of another
	// per-segment kind.
	ScopeSameSegment Scope = "same-segment"
	// ScopeAllSegments depends on every segment's node of a per-segment kind.
	ScopeAllSegments Scope = "all-segments"
	// ScopePreviousSegment makes segment i depend on segment i-1 of a
	// per-segment kind, possibly its own; segment 0 has no such dependency.
	ScopePreviousSegment Scope = "previous-segment"
)

// MaxKinds is the most kinds a template may have.
const MaxKinds = 1024

// maxNameLen is the longest kind name or batch key allowed.
const maxNameLen = 128

// Dep is one dependency of a kind: the kind it depends on and the scope.
type Dep struct {
	Kind  string `json:"kind"`
	Scope Scope  `json:"scope"`
}

// Kind describes one kind of node.
type Kind struct {
	// Name is the kind's name, and the ID of its node when it is global.
	// It is 1 to 128 characters from A-Z a-z 0-9 and _ . : / -, starting
	// with a letter or a digit.
	Name string `json:"name"`
	// PerSegment gives the kind one node per segment; otherwise it has a
	// single global node.
	PerSegment bool `json:"perSegment"`
	// Deps lists what each node of the kind depends on.
	Deps []Dep `json:"deps,omitempty"`
	// BatchKey groups the kind's nodes into batches that share a
	// concurrency limit. Kinds may share a key if they agree on Concurrency.
	// Empty means no batch: each node is planned on its own. A key follows
	// the rules of a Name: 1 to 128 characters from A-Z a-z 0-9 and
	// _ . : / -, starting with a letter or a digit.
	BatchKey string `json:"batchKey,omitempty"`
	// Concurrency is how many nodes of the batch may run at once. It must
	// be at least 1 when BatchKey is set, and 0 when it is not.
	Concurrency int `json:"concurrency,omitempty"`
}

// Template lists the kinds of nodes of a graph. The order of Kinds is the
// order of groups in a plan. It also orders the nodes as far as
// dependencies allow: kinds are laid out one at a time, each time the
// first in template order whose dependencies are laid out, so a template
// listed in dependency order keeps its order, but a kind listed before
// one it depends on comes after it, and so may come after kinds listed
// between them.
// The order of the nodes is that of a node's dependencies ([Graph.Deps],
// the executor's Request.Deps) and of its input hash (dirty.InputHash):
// listing the same kinds in another order can change the inputs of a
// node that depends on two kinds neither of which depends on the other,
// and the executor then regenerates it, as "inputs changed". Swapping two
// neighbouring kinds one of which depends on the other changes nothing,
// nor does a new kind that no existing kind depends on, wherever it is
// listed. Its JSON form is that of [ParseTemplate], which encoding/json
// also reads strictly ([Template.UnmarshalJSON]). A Template is
// a plain value: [Build] copies it, so changing it later does not change
// a built graph.
type Template struct {
	Kinds []Kind `json:"kinds"`
}

// The kinds of the built-in lecture template.
const (
	KindScript    = "script"
	KindNarration = "asset:narration"
	KindImage     = "asset:image"
	KindVideo     = "asset:video"
	KindMusic     = "asset:music"
	KindTimeline  = "timeline"
)

// Lecture returns the built-in lecture template: a script; per segment a
// narration, an image and a video made from both; music; and the final
// timeline. Each call returns a fresh copy.
func Lecture() Template {
	return Template{Kinds: []Kind{
		{Name: KindScript},
		{Name: KindNarration, PerSegment: true, Deps: []Dep{{KindScript, ScopeGlobal}},
			BatchKey: KindNarration, Concurrency: 4},
		{Name: KindImage, PerSegment: true, Deps: []Dep{{KindScript, ScopeGlobal}},
			BatchKey: KindImage, Concurrency: 5},
		{Name: KindVideo, PerSegment: true,
			Deps:     []Dep{{KindImage, ScopeSameSegment}, {KindNarration, ScopeSameSegment}},
			BatchKey: KindVideo, Concurrency: 3},
		{Name: KindMusic, Deps: []Dep{{KindScript, ScopeGlobal}}},
		{Name: KindTimeline, Deps: []Dep{
			{KindVideo, ScopeAllSegments}, {KindNarration, ScopeAllSegments}, {KindMusic, ScopeGlobal}}},
	}}
}

// Clone returns a deep copy of t.
func (t Template) Clone() Template {
	kinds := slices.Clone(t.Kinds)
	for i := range kinds {
		kinds[i].Deps = slices.Clone(kinds[i].Deps)
	}
	return Template{Kinds: kinds}
}

// templateForm is a template's JSON form, object by object, for
// strictjson.CheckForm.
var templateForm = func() *strictjson.Object {
	dep := &strictjson.Object{Keys: strictjson.Names(Dep{})}
	kind := &strictjson.Object{Keys: []string{"batchKey", "concurrency", "deps", "name", "perSegment"},
		Items: map[string]*strictjson.Object{"deps": dep}}
	return &strictjson.Object{Keys: []string{"kinds"}, Items: map[string]*strictjson.Object{"kinds": kind}}
}()

// ParseTemplate reads a template from JSON in this form:
//
//	{"kinds": [{"name": "asset:video", "perSegment": true,
//	  "deps": [{"kind": "asset:image", "scope": "same-segment"}],
//	  "batchKey": "asset:video", "concurrency": 3}]}
//
// Unknown fields, keys that differ from these in case, repeated keys and
// trailing data are refused; a refused key is named with the object that
// holds it ("kinds[1].deps[0]") and the keys that object allows. As with
// encoding/json, nesting deeper than 10,000 levels is refused, and more
// than MaxKinds kinds are refused before they are decoded, so that the
// memory used is about the size of data, whatever it holds. The template
// is validated; any problem is an error wrapping [ErrInvalidTemplate].
func ParseTemplate(data []byte) (Template, error) {
	// The syntax first: encoding/json's scanner refuses a nesting deeper
	// than 10,000 levels in constant memory, where CheckForm would hold a
	// frame for each level of it.
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return Template{}, &TemplateError{Problem: `bad JSON: no JSON value: want {"kinds": [...]}`}
		case errors.Is(err, io.ErrUnexpectedEOF):
			return Template{}, &TemplateError{Problem: "bad JSON: unexpected end of JSON input"}
		}
		return Template{}, &TemplateError{Problem: "bad JSON: " + strictjson.Bound(err).Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Template{}, &TemplateError{Problem: "bad JSON: data after the template object"}
	}
	if err := checkCounts(raw); err != nil {
		return Template{}, err
	}
	// encoding/json matches keys whatever their case and keeps the last of
	// repeated keys: a typo or a repeat would change the template silently.
	if err := strictjson.CheckForm(raw, templateForm); err != nil {
		return Template{}, &TemplateError{Problem: "bad JSON: " + strictjson.Bound(err).Error()}
	}
	t, err := decodeTemplate(raw)
	if err != nil {
		return Template{}, &TemplateError{Problem: "bad JSON: " + strictjson.Bound(err).Error()}
	}
	if t.Kinds == nil {
		return Template{}, &TemplateError{Problem: `missing "kinds"`}
	}
	if err := t.Validate(); err != nil {
		return Template{}, err
	}
	return t, nil
}

// templateFields is Template, under a name that decodeTemplate can use
// where a type of its own is named Template.
type templateFields = Template

// decodeTemplate decodes raw, whose keys CheckForm has checked, refusing
// unknown fields.
func decodeTemplate(raw []byte) (Template, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	// This Template has the fields of the package's and its name in
	// encoding/json's messages ("Go struct field Template.kinds"), but not
	// its methods: decoding into the package's would call UnmarshalJSON,
	// which calls ParseTemplate.
	type Template templateFields
	var t Template
	err := dec.Decode(&t)
	return templateFields(t), err
}

// UnmarshalJSON reads t from JSON as strictly as [ParseTemplate] does,
// with the same errors, so that a Template decoded by encoding/json, as
// a field of a host's own configuration, refuses a misspelt field, a key
// in another case, a repeated key and an invalid template. The errors are
// those of ParseTemplate, which encoding/json returns as they are: they
// name the place of a refused key within the template ("kinds[1]"), not
// within the host's document. On an error t is left as it was. As the
// encoding/json convention has it, null leaves t as it is, as
// encoding/json does with a *Template field or an absent one: a host
// that needs a template checks [Template.Validate] or that Kinds is set.
// A struct type that embeds Template gets this method too, so that
// encoding/json reads the whole struct as a Template alone, refusing its
// other fields as unknown (and encoding/json writes them beside "kinds"):
// hold a Template in a named field instead (Template graph.Template
// `json:"template"`).
func (t *Template) UnmarshalJSON(data []byte) error {
	if string(bytes.Trim(data, " \t\r\n")) == "null" {
		return nil
	}
	parsed, err := ParseTemplate(data)
	if err != nil {
		return err
	}
	*t = parsed
	return nil
}

// maxDeps is the most dependencies a kind of a valid template has: two
// on each kind, same-segment and previous-segment.
const maxDeps = 2 * MaxKinds

// checkCounts refuses the JSON of a template of more kinds than MaxKinds,
// or with a kind of more dependencies than maxDeps, before it is decoded:
// a decoded kind holds about 72 bytes, and a dependency 32, however few
// bytes of input make one ("{},"). It counts the elements of "kinds" and
// of each kind's "deps" with [strictjson.CountArrays], which reads raw's
// tokens once, holding a frame for each level of nesting, of which
// encoding/json's scanner, which has read raw, allows 10,000.
func checkCounts(raw []byte) error {
	const (
		listKinds = 1 + iota // the array of "kinds"
		listDeps             // the array of a kind's "deps"
	)
	// A path of two keys is asked about only under a picked "kinds".
	class := func(keys []string) int {
		switch {
		case len(keys) == 1 && keys[0] == "kinds":
			return listKinds
		case len(keys) == 2 && keys[1] == "deps":
			return listDeps
		}
		return 0
	}
	return strictjson.CountArrays(raw, class, func(list int, counts []int) error {
		switch {
		case list == listKinds && counts[0] > MaxKinds:
			return &TemplateError{Problem: fmt.Sprintf("more than %d kinds: at most %d are allowed", MaxKinds, MaxKinds)}
		case list == listDeps && counts[1] > maxDeps:
			return &TemplateError{Problem: fmt.Sprintf("kinds[%d] has more than %d dependencies: a kind depends on each of at most %d kinds at most twice (same-segment and previous-segment)",
				counts[0]-1, maxDeps, MaxKinds)}
		}
		return nil
	})
}

// Validate reports the first rule t breaks, as a [*TemplateError] or a
// [*CycleError]:
//   - at least one kind and at most [MaxKinds]; names valid and unique;
//   - each dependency names a kind of the template, with a scope that fits
//     both kinds: global needs a global dependency; same-segment and
//     previous-segment need two per-segment kinds; all-segments needs a
//     per-segment dependency;
//   - no dependency listed twice, and all-segments not mixed with another
//     scope on the same kind;
//   - a kind may depend on itself only with previous-segment;
//   - Concurrency ≥ 1 with a BatchKey and 0 without; kinds sharing a
//     BatchKey have the same Concurrency;
//   - no cycle among kinds.
//
// Validate costs O(K² + D·log D) for K kinds with D dependencies in all
// (each kind's dependencies are sorted), and O(K² + (K + D)·log D) when
// it names a cycle.
func (t Template) Validate() error {
	_, err := compile(t)
	return err
}

// compiled is a validated template with resolved indices.
type compiled struct {
	kinds []Kind // deep copy, template order
	// deps[k] are kind k's dependencies, resolved and sorted by the
	// dependency's layout position, so that per-node dependency lists come
	// out in ascending node order.
	deps [][]rdep
	// rdeps[k] are the rules that depend on kind k: rdep.kind is the
	// dependent kind. They are sorted by the dependent's layout position,
	// same-segment before previous-segment, so that per-node dependent
	// lists come out in ascending node order.
	rdeps [][]rdep
	// layout lists template indices in a topological order of kinds; node
	// indices follow it, so every edge goes from a lower to a higher index.
	layout []int
	// pos is the inverse of layout.
	pos []int
	// byName maps a name to its template index, for larger templates.
	byName map[string]int
}

type rdep struct {
	kind  int // template index
	scope Scope
	sc    scopeCode // scope as a small integer, for the build loop
}

type scopeCode uint8

const (
	scGlobal scopeCode = iota
	scSame
	scAll
	scPrev
)

var scopeCodes = map[Scope]scopeCode{ScopeGlobal: scGlobal, ScopeSameSegment: scSame,
	ScopeAllSegments: scAll, ScopePreviousSegment: scPrev}

func (c *compiled) index(name string) (int, bool) {
	if c.byName != nil {
		i, ok := c.byName[name]
		return i, ok
	}
	for i := range c.kinds {
		if c.kinds[i].Name == name {
			return i, true
		}
	}
	return 0, false
}

func compile(t Template) (*compiled, error) {
	k := len(t.Kinds)
	if k == 0 {
		return nil, &TemplateError{Problem: "no kinds: a template needs at least one"}
	}
	if k > MaxKinds {
		return nil, &TemplateError{Problem: fmt.Sprintf("%d kinds: at most %d are allowed", k, MaxKinds)}
	}
	c := &compiled{kinds: t.Clone().Kinds}
	if k > 8 {
		c.byName = make(map[string]int, k)
	}
	for i := range c.kinds {
		name := c.kinds[i].Name
		if p := nameProblem(name); p != "" {
			if name == "" {
				// The Kind field cannot say which: give the position.
				p = fmt.Sprintf("%s (kind %d of %d)", p, i, k)
			}
			return nil, &TemplateError{Kind: name, Problem: "name " + p}
		}
		if j, dup := c.index(name); dup && j < i {
			return nil, &TemplateError{Kind: name, Problem: fmt.Sprintf("duplicate kind: kinds %d and %d have the same name", j, i)}
		}
		if c.byName != nil {
			c.byName[name] = i
		}
	}
	batchConc := map[string]string{}
	for i := range c.kinds {
		kd := &c.kinds[i]
		switch {
		case kd.BatchKey == "" && kd.Concurrency != 0:
			return nil, &TemplateError{Kind: kd.Name, Problem: fmt.Sprintf("concurrency %d without a batchKey: a kind without a batchKey has no concurrency (omit it or set a batchKey)", kd.Concurrency)}
		case kd.BatchKey != "" && kd.Concurrency <= 0:
			return nil, &TemplateError{Kind: kd.Name, Problem: fmt.Sprintf("concurrency %d: a kind with batchKey %s needs a concurrency of at least 1", kd.Concurrency, quoteValue(kd.BatchKey))}
		case kd.BatchKey != "":
			if p := nameProblem(kd.BatchKey); p != "" {
				return nil, &TemplateError{Kind: kd.Name, Problem: "batchKey " + p}
			}
			if prev, ok := batchConc[kd.BatchKey]; ok {
				j, _ := c.index(prev)
				if c.kinds[j].Concurrency != kd.Concurrency {
					return nil, &TemplateError{Kind: kd.Name, Problem: fmt.Sprintf("batchKey %q has concurrency %d here but %d in kind %q: kinds sharing a batchKey must agree", kd.BatchKey, kd.Concurrency, c.kinds[j].Concurrency, prev)}
				}
			} else {
				batchConc[kd.BatchKey] = kd.Name
			}
		}
	}
	c.deps = make([][]rdep, k)
	// For the kind being checked, by dependency kind j: the scopes listed
	// so far as bits (valid while stamp[j] is the kind's index + 1) and
	// the first one, so that checking for repeats is O(1) a dependency.
	scopes := make([]uint8, k)
	first := make([]Scope, k)
	stamp := make([]int, k)
	for i := range c.kinds {
		kd := &c.kinds[i]
		rd := make([]rdep, 0, len(kd.Deps))
		for _, d := range kd.Deps {
			j, ok := c.index(d.Kind)
			if !ok {
				return nil, &TemplateError{Kind: kd.Name, Problem: fmt.Sprintf("depends on unknown kind %s: the template's kinds are %s", quoteValue(d.Kind), c.kindList())}
			}
			if p := scopeProblem(kd, &c.kinds[j], d.Scope); p != "" {
				return nil, &TemplateError{Kind: kd.Name, Problem: p}
			}
			sc := scopeCodes[d.Scope]
			bit := uint8(1) << sc
			if stamp[j] != i+1 {
				stamp[j], scopes[j], first[j] = i+1, 0, d.Scope
			}
			switch {
			case scopes[j]&bit != 0:
				return nil, &TemplateError{Kind: kd.Name, Problem: fmt.Sprintf("dependency on %q with scope %s is listed twice", d.Kind, d.Scope)}
			case scopes[j] != 0 && (scopes[j]|bit)&(1<<scAll) != 0:
				return nil, &TemplateError{Kind: kd.Name, Problem: fmt.Sprintf("dependency on %q mixes all-segments with %s: all-segments already covers every segment", d.Kind, otherScope(first[j], d.Scope))}
			}
			scopes[j] |= bit
			rd = append(rd, rdep{kind: j, scope: d.Scope, sc: sc})
		}
		c.deps[i] = rd
	}
	if err := c.sortKinds(); err != nil {
		return nil, err
	}
	c.rdeps = make([][]rdep, k)
	for i := range c.deps {
		slices.SortFunc(c.deps[i], func(a, b rdep) int {
			if a.kind != b.kind {
				return c.pos[a.kind] - c.pos[b.kind]
			}
			return int(b.sc) - int(a.sc) // previous-segment (i-1) first
		})
		for _, d := range c.deps[i] {
			c.rdeps[d.kind] = append(c.rdeps[d.kind], rdep{kind: i, scope: d.scope, sc: d.sc})
		}
	}
	for i := range c.rdeps {
		slices.SortFunc(c.rdeps[i], func(a, b rdep) int {
			if a.kind != b.kind {
				return c.pos[a.kind] - c.pos[b.kind]
			}
			return int(a.sc) - int(b.sc) // same-segment (i) first
		})
	}
	return c, nil
}

// maxListedKinds is the most kind names an error lists.
const maxListedKinds = 16

// kindList returns the names of c's kinds in template order, for an error:
// the first maxListedKinds of them, then how many more there are.
func (c *compiled) kindList() string {
	var b strings.Builder
	for i := range min(len(c.kinds), maxListedKinds) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.kinds[i].Name)
	}
	if more := len(c.kinds) - maxListedKinds; more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

func otherScope(a, b Scope) Scope {
	if a == ScopeAllSegments {
		return b
	}
	return a
}

func scopeProblem(from, to *Kind, s Scope) string {
	per := func(k *Kind) string {
		if k.PerSegment {
			return "per segment"
		}
		return "global"
	}
	switch s {
	case ScopeGlobal:
		if to.PerSegment && !from.PerSegment {
			// Same-segment and previous-segment need two per-segment kinds.
			return fmt.Sprintf("scope global on %q, which is per segment: use all-segments", to.Name)
		}
		if to.PerSegment {
			return fmt.Sprintf("scope global on %q, which is per segment: use same-segment, previous-segment or all-segments", to.Name)
		}
	case ScopeSameSegment, ScopePreviousSegment:
		switch {
		case from == to && !from.PerSegment:
			return fmt.Sprintf("scope %s needs two per-segment kinds, but %q is global: only a per-segment kind may depend on itself", s, from.Name)
		case !to.PerSegment:
			return fmt.Sprintf("scope %s needs two per-segment kinds, but %q is %s and %q is %s: use global", s, from.Name, per(from), to.Name, per(to))
		case !from.PerSegment:
			return fmt.Sprintf("scope %s needs two per-segment kinds, but %q is %s and %q is %s: use all-segments", s, from.Name, per(from), to.Name, per(to))
		}
	case ScopeAllSegments:
		if !to.PerSegment {
			return fmt.Sprintf("scope all-segments on %q, which is global: use global", to.Name)
		}
	default:
		return fmt.Sprintf("dependency on %q has scope %s: allowed are global, same-segment, all-segments and previous-segment", to.Name, quoteValue(string(s)))
	}
	return ""
}

// nameProblem says what is wrong with a kind name or batch key, or "".
func nameProblem(s string) string {
	if s == "" {
		return "is empty: it needs 1 to 128 characters from A-Z a-z 0-9 _ . : / -"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("has %d bytes: at most %d are allowed", len(s), maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		punct := c == '_' || c == '.' || c == ':' || c == '/' || c == '-'
		if i == 0 && punct {
			// A character allowed elsewhere; one allowed nowhere ("é", a
			// letter but not A-Z) is named below as such.
			return fmt.Sprintf("%q must start with a letter or a digit (A-Z a-z 0-9)", s)
		}
		if !alnum && !punct {
			// Name the character as written: a non-ASCII byte starts a
			// character of several bytes, or is not UTF-8 at all.
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return fmt.Sprintf("%q has byte '\\x%02x' at byte %d, which is not UTF-8: allowed are A-Z a-z 0-9 _ . : / -", s, c, i)
			}
			return fmt.Sprintf("%q has %q at byte %d: allowed are A-Z a-z 0-9 _ . : / -", s, r, i)
		}
	}
	return ""
}

// edgeOfKind reports whether dependency d of a kind orders kinds: a
// previous-segment dependency of a kind on itself is a chain of its own
// segments, not a cycle.
func edgeOfKind(self int, d rdep) bool {
	return d.kind != self || d.scope != ScopePreviousSegment
}

// sortKinds computes c.layout, a topological order of kinds, taking the
// earliest kind in template order among those ready (Kahn's algorithm),
// so a template listed in dependency order keeps its order. It is
// O(K² + D); K is at most MaxKinds.
func (c *compiled) sortKinds() error {
	k := len(c.kinds)
	indeg := make([]int, k)
	dependents := make([][]int, k)
	for i, ds := range c.deps {
		for _, d := range ds {
			if edgeOfKind(i, d) {
				indeg[i]++
				dependents[d.kind] = append(dependents[d.kind], i)
			}
		}
	}
	c.layout = make([]int, 0, k)
	c.pos = make([]int, k)
	done := make([]bool, k)
	for len(c.layout) < k {
		next := -1
		for i := 0; i < k; i++ {
			if !done[i] && indeg[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			return c.cycleError()
		}
		done[next] = true
		c.pos[next] = len(c.layout)
		c.layout = append(c.layout, next)
		for _, i := range dependents[next] {
			indeg[i]--
		}
	}
	return nil
}

// kindEdge is an edge between kinds, from a dependency to its dependent.
type kindEdge struct{ from, to int }

// kindEdges returns the edges that order kinds, dependents in template
// order and each one's dependencies as listed.
func (c *compiled) kindEdges() []kindEdge {
	var edges []kindEdge
	for i, ds := range c.deps {
		for _, d := range ds {
			if edgeOfKind(i, d) {
				edges = append(edges, kindEdge{d.kind, i})
			}
		}
	}
	return edges
}

// cycleCheck holds the buffers of [cycleCheck.acyclic], reused from one
// call to the next.
type cycleCheck struct {
	indeg, off, fill, out, queue []int
}

// grow returns b resized to n, reusing its memory when it can.
func grow(b []int, n int) []int {
	if cap(b) < n {
		return make([]int, n)
	}
	return b[:n]
}

// acyclic reports whether k kinds with these edges have no cycle. It is
// O(k + len(edges)), and allocates only when the edges are more than at
// any earlier call.
func (ch *cycleCheck) acyclic(k int, edges []kindEdge) bool {
	ch.indeg, ch.off, ch.fill = grow(ch.indeg, k), grow(ch.off, k+1), grow(ch.fill, k)
	ch.out, ch.queue = grow(ch.out, len(edges)), grow(ch.queue, k)[:0]
	indeg, off, out := ch.indeg, ch.off, ch.out
	clear(indeg)
	clear(off)
	for _, e := range edges {
		indeg[e.to]++
		off[e.from+1]++
	}
	for i := range k {
		off[i+1] += off[i]
	}
	fill := ch.fill
	copy(fill, off[:k])
	for _, e := range edges {
		out[fill[e.from]] = e.to
		fill[e.from]++
	}
	queue := ch.queue
	for i := range k {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	for q := 0; q < len(queue); q++ {
		for _, m := range out[off[queue[q]]:off[queue[q]+1]] {
			if indeg[m]--; indeg[m] == 0 {
				queue = append(queue, m)
			}
		}
	}
	return len(queue) == k
}

// cycleError names the cycle among kinds. It is only called once Kahn's
// sort has found that one exists. The cycle named is the one closed by
// the first edge, in template order, that closes one: the edge a
// dominikbraun graph with PreventCycles would refuse if the edges were
// added one by one. That edge is found by a binary search over prefixes
// of the edge list, each checked in linear time with the same buffers;
// adding the edges to a PreventCycles graph one by one would cost a full
// graph traversal per edge. The cycle is that edge plus the shortest path
// back, found by a breadth-first search that visits kinds in template
// order so the answer is deterministic. It costs O((K + D)·log D), in
// memory O(K + D).
func (c *compiled) cycleError() error {
	k := len(c.kinds)
	edges := c.kindEdges()
	var ch cycleCheck
	j := sort.Search(len(edges), func(j int) bool { return !ch.acyclic(k, edges[:j+1]) })
	if j == len(edges) {
		// Unreachable when sortKinds found a cycle; report it plainly anyway.
		return &TemplateError{Problem: "cycle among kinds"}
	}
	return c.namedCycle(edges, edges[j].from, edges[j].to)
}

// namedCycle returns the cycle closed by the edge from -> to, one of
// edges: the shortest path to -> ... -> from along edges, in canonical
// rotation. The path is searched for breadth first, in O(K + D): a
// closing edge without one is reported as such (it is not one).
func (c *compiled) namedCycle(edges []kindEdge, from, to int) error {
	k := len(c.kinds)
	// dependents of kind i: out[off[i]:off[i+1]], in template order, once
	// each.
	off := make([]int, k+1)
	for _, e := range edges {
		off[e.from+1]++
	}
	for i := range k {
		off[i+1] += off[i]
	}
	out := make([]int, len(edges))
	fill := slices.Clone(off[:k])
	for _, e := range edges {
		out[fill[e.from]] = e.to
		fill[e.from]++
	}
	prev := make([]int, k)
	for i := range prev {
		prev[i] = -1
	}
	queue := make([]int, 1, k)
	queue[0] = to
	prev[to] = to
	for q := 0; q < len(queue) && prev[from] < 0; q++ {
		n := queue[q]
		ds := out[off[n]:off[n+1]]
		slices.Sort(ds)
		for _, m := range ds {
			if prev[m] < 0 {
				prev[m] = n
				queue = append(queue, m)
			}
		}
	}
	if prev[from] < 0 {
		return &TemplateError{Problem: fmt.Sprintf("checking for cycles: edge %q -> %q closes no cycle", c.kinds[from].Name, c.kinds[to].Name)}
	}
	// Walk back from "from" to "to". Each kind on the way depends on the
	// next one, and "to" depends on "from" through the closing edge.
	var path []int
	for n := from; ; n = prev[n] {
		path = append(path, n)
		if n == to {
			break
		}
	}
	start := 0
	for i, n := range path {
		if n < path[start] {
			start = i
		}
	}
	names := make([]string, 0, len(path))
	for i := range path {
		names = append(names, c.kinds[path[(start+i)%len(path)]].Name)
	}
	return &CycleError{Kinds: names}
}

// String returns s.
func (s Scope) String() string { return string(s) }
