package planner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/quote"
	"github.com/regengraph/regen/internal/strictjson"
)

// GroupKind says whether a [Group] is one node or a batch.
type GroupKind string

// The group kinds.
const (
	// Single is one node of a kind without a batch key.
	Single GroupKind = "single"
	// Batch is the nodes of one stage that share a batch key.
	Batch GroupKind = "batch"
)

// Group is a unit of scheduling within a stage.
type Group struct {
	// Kind is Single or Batch.
	Kind GroupKind
	// BatchKey and Concurrency are the batch's key and limit; both are
	// zero for a Single.
	BatchKey    string
	Concurrency int
	// Nodes are the group's nodes: by kind in template order, then by
	// segment index. In a plan made by [New] the slice may share memory
	// with the dirty set's nodes: the caller must not modify it.
	Nodes []graph.Node
}

// Stage is one layer of the plan: every node in it depends only on nodes
// of earlier stages or on nodes that are not regenerated.
type Stage struct {
	// Index is the stage's position, from 0.
	Index int
	// Groups are in template-kind order; the batch of a key that several
	// kinds share sits at the first of them with nodes in the stage.
	Groups []Group
}

// Plan is a staged plan: the layered topological sort of a dirty set.
// A node's stage is the length of the longest path of regenerated nodes
// that ends at it, so a node whose dependencies are all clean is in stage
// 0. A Plan is immutable once built; it is safe for concurrent reads.
type Plan struct {
	// Graph is the graph the plan's nodes belong to. JSON encoding needs
	// it to name nodes, and decoding to resolve them.
	Graph *graph.Graph
	// Stages are in order.
	Stages []Stage

	// set is the dirty set the plan was made from, when it was; it finds
	// a node's position in O(1).
	set *dirty.Set
	// nodes are the plan's nodes in ascending order, and stageOf their
	// stages, aligned; nil for a plan assembled by hand. They index
	// built, the Stages they were made from: a copy of the plan with
	// other Stages builds its own index.
	nodes   []graph.Node
	stageOf []int32
	built   []Stage
}

// New returns the plan of a dirty set. It is deterministic: groups in
// template-kind order, nodes by kind then segment index. It costs
// O(D + E_D + S·K) for D nodes with E_D edges among them, S stages and K
// kinds, and never looks at nodes outside the set. New(nil), like New of
// a zero dirty.Set, returns an empty plan with no Graph: no stages, a
// lower bound of 0, and JSON encoding refuses it with [ErrNoGraph].
func New(set *dirty.Set) *Plan {
	if set == nil {
		return &Plan{}
	}
	g := set.Graph()
	nodes := set.Nodes()
	p := &Plan{Graph: g, set: set, nodes: nodes}
	if len(nodes) == 0 {
		return p
	}
	// Stages, by forward relaxation in topological order: every dependent
	// of a member is a member.
	full := len(nodes) == g.Len()
	stage := make([]int32, len(nodes))
	var last int32
	for i, n := range nodes {
		s := stage[i] + 1
		last = max(last, stage[i])
		for _, c := range g.Dependents(n) {
			j := int(c)
			if !full {
				j, _ = set.Index(c)
			}
			stage[j] = max(stage[j], s)
		}
	}
	p.stageOf = stage
	p.Stages = make([]Stage, last+1)
	p.built = p.Stages
	for si := range p.Stages {
		p.Stages[si].Index = si
	}
	b := newBatcher(p)
	// Kinds in template order; each kind's members are a contiguous run
	// of nodes, in segment order. A run whose nodes share a stage becomes
	// its group as is; others are split by stage with a stable counting
	// sort.
	var scratch []int32
	for ki := range g.Kinds() {
		first, count := g.KindNodes(ki)
		lo, _ := slices.BinarySearch(nodes, first)
		n, _ := slices.BinarySearch(nodes[lo:], first+graph.Node(count))
		if n == 0 {
			continue
		}
		run, runStage := nodes[lo:lo+n:lo+n], stage[lo:lo+n]
		smin, smax := slices.Min(runStage), slices.Max(runStage)
		if smin == smax {
			b.add(ki, smin, run)
			continue
		}
		buckets := int(smax-smin) + 1
		scratch = slices.Grow(scratch[:0], buckets+1)[:buckets+1]
		clear(scratch)
		for _, s := range runStage {
			scratch[s-smin+1]++
		}
		for x := 1; x <= buckets; x++ {
			scratch[x] += scratch[x-1]
		}
		split := make([]graph.Node, n)
		ends := slices.Clone(scratch[:buckets])
		for x, s := range runStage {
			split[ends[s-smin]] = run[x]
			ends[s-smin]++
		}
		for x := range buckets {
			if a, e := scratch[x], scratch[x+1]; a < e {
				b.add(ki, smin+int32(x), split[a:e:e])
			}
		}
	}
	return p
}

// leaders returns, for each kind, the first kind in template order with
// the same batch key: the kind whose batch it joins.
// O(K).
func leaders(g *graph.Graph) []int {
	leader := make([]int, g.Kinds())
	var first map[string]int // a shared key's first kind
	for ki := range leader {
		leader[ki] = ki
		key, _ := g.BatchKey(ki)
		if key == "" {
			continue
		}
		if first == nil {
			first = map[string]int{}
		}
		if kj, ok := first[key]; ok {
			leader[ki] = kj
		} else {
			first[key] = ki
		}
	}
	return leader
}

// batcher appends groups to a plan's stages, merging the runs of kinds
// that share a batch key into one batch per stage, at the first of those
// kinds that has nodes in the stage.
type batcher struct {
	plan   *Plan
	leader []int
	// at[{leader, stage}] is the index of the key's batch in the stage. It
	// is nil when no two kinds share a key, and no batch is ever joined.
	at map[batchAt]int
}

// batchAt names the batch of a key, by its leader kind, in a stage.
type batchAt struct {
	leader int
	stage  int32
}

func newBatcher(p *Plan) batcher {
	b := batcher{plan: p, leader: leaders(p.Graph)}
	for ki, l := range b.leader {
		if l != ki {
			b.at = map[batchAt]int{}
			break
		}
	}
	return b
}

func (b *batcher) add(ki int, si int32, run []graph.Node) {
	st := &b.plan.Stages[si]
	key, conc := b.plan.Graph.BatchKey(ki)
	if key == "" {
		for x := range run {
			st.Groups = append(st.Groups, Group{Kind: Single, Nodes: run[x : x+1 : x+1]})
		}
		return
	}
	if b.at != nil {
		// Some keys are shared: join the key's batch in this stage, if an
		// earlier kind started it. run's capacity is its length, so the
		// append copies rather than overwriting the set's nodes.
		at := batchAt{b.leader[ki], si}
		if i, ok := b.at[at]; ok {
			grp := &st.Groups[i]
			grp.Nodes = append(grp.Nodes, run...)
			return
		}
		b.at[at] = len(st.Groups)
	}
	st.Groups = append(st.Groups, Group{Kind: Batch, BatchKey: key, Concurrency: conc, Nodes: run})
}

// kindIndexer returns a function from node to template kind index that
// is O(1) amortised for nodes visited in ascending order, and O(log K)
// for any other. Making it costs O(K log K). n must be a node of g.
func kindIndexer(g *graph.Graph) func(graph.Node) int {
	// Kinds' node ranges in ascending node order.
	type span struct {
		first, end graph.Node
		kind       int
	}
	spans := make([]span, 0, g.Kinds())
	for ki := range g.Kinds() {
		first, count := g.KindNodes(ki)
		spans = append(spans, span{first, first + graph.Node(count), ki})
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.first - b.first) })
	cur := 0
	return func(n graph.Node) int {
		if n >= spans[cur].first && n < spans[cur].end {
			return spans[cur].kind
		}
		if cur+1 < len(spans) && n >= spans[cur+1].first && n < spans[cur+1].end {
			cur++ // the next kind, in an ascending visit
			return spans[cur].kind
		}
		cur, _ = slices.BinarySearchFunc(spans, n, func(s span, n graph.Node) int {
			switch {
			case n < s.first:
				return 1
			case n >= s.end:
				return -1
			}
			return 0
		})
		cur = min(cur, len(spans)-1)
		return spans[cur].kind
	}
}

// Len returns the number of nodes in the plan.
func (p *Plan) Len() int { return len(p.indexed().nodes) }

// Summary returns the stage's one-line summary, such as
// "Stage 2: Generating 360 asset:video nodes in batches of 3". Several
// groups are listed in order, separated by ", "; singles of one kind are
// counted together. A batch is named by its nodes' kind, or by its batch
// key when it holds nodes of several kinds. A plan assembled by hand may
// hold what New never makes; Summary still describes it: nodes that are
// not in p.Graph are counted as "unknown", and a stage without nodes
// reads "Generating nothing". A stage not in [0, len(p.Stages)) reads
// "Stage 7: no such stage (the plan has 3 stages)".
func (p *Plan) Summary(stage int) string {
	if stage < 0 || stage >= len(p.Stages) {
		s := "s"
		if len(p.Stages) == 1 {
			s = ""
		}
		return fmt.Sprintf("Stage %d: no such stage (the plan has %d stage%s)", stage, len(p.Stages), s)
	}
	st := p.Stages[stage]
	b := []byte("Stage ")
	b = strconv.AppendInt(b, int64(st.Index), 10)
	b = append(b, ": Generating "...)
	start := len(b)
	sep := func() {
		if len(b) > start {
			b = append(b, ", "...)
		}
	}
	// Runs of consecutive single nodes of one kind are counted together.
	runKind, run := 0, 0
	flush := func() {
		if run > 0 {
			sep()
			b = appendCount(b, run, p.kindName(runKind))
			run = 0
		}
	}
	for _, grp := range st.Groups {
		if grp.Kind != Batch {
			for _, n := range grp.Nodes {
				if k := p.kindOf(n); run == 0 || k == runKind {
					runKind = k
					run++
				} else {
					flush()
					runKind, run = k, 1
				}
			}
			continue
		}
		flush()
		sep()
		// The kind's name when the batch is of one kind (the lecture's
		// batch keys are their kinds' names); else the batch key.
		what := grp.BatchKey
		if k := p.kindOfAll(grp.Nodes); k >= 0 || what == "" {
			what = p.kindName(k)
		}
		b = appendCount(b, len(grp.Nodes), what)
		b = append(b, " in batches of "...)
		b = strconv.AppendInt(b, int64(grp.Concurrency), 10)
	}
	flush()
	if len(b) == start {
		b = append(b, "nothing"...)
	}
	return string(b)
}

// kindOf returns the template index of n's kind, or -1 if n is not a
// node of p.Graph.
func (p *Plan) kindOf(n graph.Node) int {
	if p.Graph == nil || !p.Graph.Contains(n) {
		return -1
	}
	return p.Graph.KindOf(n)
}

// kindOfAll returns the kind of all the nodes, or -1 if there are none,
// they are of several kinds or one is not a node of p.Graph.
func (p *Plan) kindOfAll(nodes []graph.Node) int {
	if len(nodes) == 0 {
		return -1
	}
	k := p.kindOf(nodes[0])
	for _, n := range nodes[1:] {
		if p.kindOf(n) != k {
			return -1
		}
	}
	return k
}

// kindName returns the name of kind k, or "unknown" for -1.
func (p *Plan) kindName(k int) string {
	if k < 0 {
		return "unknown"
	}
	return p.Graph.KindName(k)
}

func appendCount(b []byte, n int, what string) []byte {
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ' ')
	b = append(b, what...)
	if n == 1 {
		return append(b, " node"...)
	}
	return append(b, " nodes"...)
}

// String returns the plan's text summary: one line per stage, each
// ending in a newline. Its receiver is a value, so that a Plan held by
// value prints its summary too.
func (p Plan) String() string {
	var buf bytes.Buffer
	for i := range p.Stages {
		buf.WriteString(p.Summary(i))
		buf.WriteByte('\n')
	}
	return buf.String()
}

// ErrNoGraph is returned when a Plan without a Graph is encoded or decoded.
var ErrNoGraph = errors.New("planner: plan has no graph")

// ErrInvalidPlan is wrapped by every error decoding a plan, and by the
// error encoding a plan assembled by hand with a node outside its graph.
// Both are a [*PlanError].
var ErrInvalidPlan = errors.New("planner: invalid plan")

// PlanError reports the first rule a plan breaks: one given to
// [Plan.UnmarshalJSON], or one assembled by hand that [Plan.MarshalJSON]
// cannot write. It wraps [ErrInvalidPlan], and Err when set.
type PlanError struct {
	// Stage and Group locate the problem: the stage's position in the
	// plan's stages and the group's in its stage. Stage is -1 when the
	// problem is with the plan as a whole, such as malformed JSON; Group
	// is -1 when it is with a stage as a whole.
	Stage, Group int
	// Node is the ID of the node the problem is about, as given, or "".
	Node string
	// Problem says what is wrong and what is allowed; it names the node,
	// if any. It may be empty when Err says it all.
	Problem string
	// Err is the underlying error, or nil: a JSON syntax or type error, a
	// *strictjson.KeyError, or a graph error wrapping graph.ErrMalformedID
	// or graph.ErrUnknownNode.
	Err error
}

func (e *PlanError) Error() string {
	b := []byte(ErrInvalidPlan.Error())
	b = append(b, ": "...)
	if e.Stage >= 0 {
		b = append(b, "stage "...)
		b = strconv.AppendInt(b, int64(e.Stage), 10)
		if e.Group >= 0 {
			b = append(b, " group "...)
			b = strconv.AppendInt(b, int64(e.Group), 10)
		}
		b = append(b, ": "...)
	}
	b = append(b, e.Problem...)
	if e.Err != nil {
		if e.Problem != "" {
			b = append(b, ": "...)
		}
		b = append(b, e.Err.Error()...)
	}
	return string(b)
}

// Unwrap returns [ErrInvalidPlan], and Err when set.
func (e *PlanError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidPlan}
	}
	return []error{ErrInvalidPlan, e.Err}
}

type jsonGroup struct {
	Kind        GroupKind       `json:"kind"`
	BatchKey    string          `json:"batchKey,omitempty"`
	Concurrency int             `json:"concurrency,omitempty"`
	Nodes       json.RawMessage `json:"nodes"`
}

type jsonStage struct {
	Index  int         `json:"index"`
	Groups []jsonGroup `json:"groups"`
}

// MarshalJSON writes the plan as
//
//	{"stages": [{"index": 0, "groups": [{"kind": "single"|"batch",
//	  "batchKey": "...", "concurrency": C, "nodes": ["<id>", ...]}]}]}
//
// A single group has no batchKey and no concurrency. The output is
// deterministic. A plan without a Graph is [ErrNoGraph]; one assembled by
// hand with a node outside its Graph, which has no ID, is a [*PlanError].
// Any other plan is written as it is, consistent or not; only what New
// makes decodes again (see [Plan.UnmarshalJSON]). Its receiver is a
// value, so that a Plan held by value, as in a struct field, is written
// in this form too, not as a struct of its fields.
func (p Plan) MarshalJSON() ([]byte, error) {
	if p.Graph == nil {
		return nil, ErrNoGraph
	}
	for si, st := range p.Stages {
		for gi, grp := range st.Groups {
			for _, n := range grp.Nodes {
				if !p.Graph.Contains(n) {
					return nil, &PlanError{Stage: si, Group: gi,
						Problem: fmt.Sprintf("node %d is not in the graph, which has nodes 0 to %d", n, p.Graph.Len()-1)}
				}
			}
		}
	}
	b := []byte(`{"stages":`)
	b = p.AppendStagesJSON(b)
	return append(b, '}'), nil
}

// AppendStagesJSON appends the plan's "stages" array, as in
// [Plan.MarshalJSON], to b. It derives node IDs as it writes. A node it
// cannot name, because the plan has no Graph or the node is not in it, is
// written as "#" and its number, which is no node ID: decoding refuses it.
func (p *Plan) AppendStagesJSON(b []byte) []byte {
	return p.appendStages(b, nil)
}

// writeChunk is about the most bytes [Plan.WriteStagesJSON] holds before
// it writes them.
const writeChunk = 32 << 10

// WriteStagesJSON writes the plan's "stages" array to w, as
// [Plan.AppendStagesJSON] appends it, in pieces of about 32 KiB, so that
// the memory it uses does not grow with the plan. It stops at the first
// error of w, and returns it as it is: w has then been given no more
// than the bytes that it took, and the rest of the plan is not walked. A
// write that takes fewer bytes than it is given without an error is
// [io.ErrShortWrite].
func (p *Plan) WriteStagesJSON(w io.Writer) error {
	var err error
	b := make([]byte, 0, writeChunk+512)
	b = p.appendStages(b, func(b []byte) []byte {
		if err = writeAll(w, b); err != nil {
			return nil
		}
		return b[:0]
	})
	if err != nil {
		return err
	}
	return writeAll(w, b)
}

// writeAll writes b to w, and makes a short write without an error
// [io.ErrShortWrite], as bufio.Writer does.
func writeAll(w io.Writer, b []byte) error {
	n, err := w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// appendStages appends the "stages" array to b. With flush set, it hands
// b to flush, which returns the slice to go on with, each time b holds
// writeChunk bytes or more; when flush returns nil, appendStages stops
// there and returns nil.
func (p *Plan) appendStages(b []byte, flush func([]byte) []byte) []byte {
	b = append(b, '[')
	for si, st := range p.Stages {
		if si > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(st.Index), 10)
		b = append(b, `,"groups":[`...)
		for gi, grp := range st.Groups {
			if gi > 0 {
				b = append(b, ',')
			}
			if flush != nil && len(b) >= writeChunk {
				if b = flush(b); b == nil {
					return nil
				}
			}
			b = append(b, `{"kind":`...)
			b = appendString(b, string(grp.Kind))
			if grp.Kind == Batch {
				b = append(b, `,"batchKey":`...)
				b = appendString(b, grp.BatchKey)
				b = append(b, `,"concurrency":`...)
				b = strconv.AppendInt(b, int64(grp.Concurrency), 10)
			}
			b = append(b, `,"nodes":[`...)
			for ni, n := range grp.Nodes {
				if ni > 0 {
					b = append(b, ',')
				}
				if flush != nil && len(b) >= writeChunk {
					if b = flush(b); b == nil {
						return nil
					}
				}
				b = append(b, '"')
				if p.Graph == nil || !p.Graph.Contains(n) {
					b = append(b, '#')
					b = strconv.AppendInt(b, int64(n), 10)
				} else {
					b = p.Graph.AppendID(b, n)
				}
				b = append(b, '"')
			}
			b = append(b, "]}"...)
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}

// appendString appends s to b as a JSON string. Kinds and batch keys of
// a plan made by New are plain ASCII, which strconv quotes as JSON does;
// a plan assembled by hand may hold anything, which strconv would quote
// with escapes JSON does not have (\x01, \a).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	return strconv.AppendQuote(b, s)
}

// planForm is a plan's JSON form, object by object, for
// strictjson.CheckForm. The elements of "nodes" are IDs: objects there
// are left to the decoder, which refuses them as such.
var planForm = func() *strictjson.Object {
	group := &strictjson.Object{Keys: strictjson.Names(jsonGroup{})}
	stage := &strictjson.Object{Keys: []string{"groups", "index"}, Items: map[string]*strictjson.Object{"groups": group}}
	return &strictjson.Object{Keys: []string{"stages"}, Items: map[string]*strictjson.Object{"stages": stage}}
}()

// UnmarshalJSON reads a plan written by [Plan.MarshalJSON]. p.Graph must
// be set to the graph the plan belongs to; node IDs are resolved against
// it. It accepts exactly the plans [New] makes from the dirty sets of
// that graph, so that what it accepts re-encodes, byte for byte, as New's
// plan of the same nodes. Anything else is a [*PlanError] wrapping
// [ErrInvalidPlan] that locates the first problem found, reading the plan
// in order, and says what is allowed. A plan is accepted when:
//   - stages are numbered 0, 1, 2, … in order, and none is empty;
//   - a group holds at least one node, and its kind is "single" or
//     "batch";
//   - a single holds one node, of a kind without a batch key, and has no
//     batchKey or concurrency;
//   - a batch has a batchKey and a concurrency of at least 1, which are
//     those of each of its nodes' kinds, and a stage has one batch per
//     key at most;
//   - every node is a node of the graph, and in one group at most: a
//     well-formed ID of no node of it, as in a plan stored for a longer
//     lecture or another template, is refused with a Problem that names
//     it and says that the plan was likely made for another graph, and
//     an Err wrapping graph.ErrUnknownNode;
//   - a group's nodes are in template-kind order, then by segment, and a
//     stage's groups in that order of their first nodes;
//   - a node's stage is 0 if it depends on no node of the plan, and
//     otherwise one after the latest stage of those it depends on;
//   - every node that depends on a node of the plan is in the plan, as
//     every node downstream of a dirty node is dirty.
//
// The text may differ from MarshalJSON's in whitespace, key order and
// string escapes, and "stages" may be null or left out for a plan of no
// stages; a key left out reads as zero or empty. Unknown fields, keys
// that differ in case from those MarshalJSON writes, repeated keys and
// trailing data are refused; a refused key is named with the object that
// holds it ("stages[0].groups[1]") and the keys that object allows. A
// nesting deeper than 10,000 levels, as for encoding/json, and more
// stages, groups or nodes than the graph has nodes are refused before
// the plan is decoded, so that the memory used is about the size of data;
// the error then names the first node entry, if any comes before that
// count is passed, that is not in the graph or repeats another, as
// decoding would.
// JSON null leaves p as it is, as encoding/json does for a null value. On
// error p is unchanged. It costs O((D + E) log D) for D nodes with E
// edges to or from them.
func (p *Plan) UnmarshalJSON(data []byte) error {
	if string(bytes.Trim(data, " \t\r\n")) == "null" { // JSON's whitespace only
		return nil
	}
	if p.Graph == nil {
		return ErrNoGraph
	}
	// The syntax first: encoding/json's scanner refuses a nesting deeper
	// than 10,000 levels in constant memory, where CheckForm would hold a
	// frame for each level of it.
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return &PlanError{Stage: -1, Group: -1, Problem: "no JSON value: want one JSON object"}
		}
		return &PlanError{Stage: -1, Group: -1, Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &PlanError{Stage: -1, Group: -1, Problem: "data after the plan object: want one JSON object"}
	}
	if err := checkCounts(raw, p.Graph.Len()); err != nil {
		// More entries than the graph has nodes: the plan holds a node
		// that is not in it, or one twice, within its first v+1 node
		// entries. A stored plan of a graph since made shorter (or of
		// another template) is the common case; name the node.
		if pe, ok := err.(*PlanError); ok {
			if e := firstBadNode(raw, p.Graph, pe); e != nil {
				return e
			}
		}
		return err
	}
	// encoding/json matches keys whatever their case and keeps the last of
	// repeated keys: a repeat would change the plan silently. Its own
	// unknown-field error says neither where nor what is allowed.
	if err := strictjson.CheckForm(raw, planForm); err != nil {
		return &PlanError{Stage: -1, Group: -1, Err: strictjson.Bound(err)}
	}
	var in struct {
		Stages []jsonStage `json:"stages"`
	}
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return &PlanError{Stage: -1, Group: -1, Err: strictjson.Bound(err)}
	}
	g := p.Graph
	// before reports whether a sorts before b: template-kind order, then
	// by segment, which is node order within a kind.
	before := func(a, b graph.Node) bool {
		ka, kb := g.KindOf(a), g.KindOf(b)
		return ka < kb || ka == kb && a < b
	}
	at := make(map[graph.Node]place)
	var stages []Stage // nil for no stages, as New makes it
	if len(in.Stages) > 0 {
		stages = make([]Stage, len(in.Stages))
	}
	for si, js := range in.Stages {
		if js.Index != si {
			return &PlanError{Stage: si, Group: -1, Problem: fmt.Sprintf("index %d: stages are numbered 0, 1, 2, … in order, so this one is %d", js.Index, si)}
		}
		if len(js.Groups) == 0 {
			return &PlanError{Stage: si, Group: -1, Problem: "no groups: a stage holds at least one group"}
		}
		st := Stage{Index: si, Groups: make([]Group, 0, len(js.Groups))}
		var batches map[string]int // batch key: its group
		for gi, jg := range js.Groups {
			bad := func(node, format string, args ...any) error {
				return &PlanError{Stage: si, Group: gi, Node: node, Problem: fmt.Sprintf(format, args...)}
			}
			var ids []string // "nodes" left out reads as empty, as null does
			if err := json.Unmarshal(jg.Nodes, &ids); len(jg.Nodes) > 0 && err != nil {
				return &PlanError{Stage: si, Group: gi, Problem: "nodes", Err: strictjson.Bound(err)}
			}
			if len(ids) == 0 {
				return bad("", "no nodes: a group holds at least one node")
			}
			switch jg.Kind {
			case Single:
				if len(ids) != 1 {
					return bad("", "a single group holds one node, not %d: the nodes of a kind without a batch key are each a single", len(ids))
				}
				if jg.BatchKey != "" || jg.Concurrency != 0 {
					return bad("", "a single group has no batchKey or concurrency, not %s and %d", quoteValue(jg.BatchKey), jg.Concurrency)
				}
			case Batch:
				if jg.BatchKey == "" || jg.Concurrency < 1 {
					return bad("", "a batch group needs a batchKey and a concurrency of at least 1, not %s and %d", quoteValue(jg.BatchKey), jg.Concurrency)
				}
				if j, ok := batches[jg.BatchKey]; ok {
					return bad("", "a second batch of key %s, after group %d: a stage has one batch per key, with all its nodes of the key", quoteValue(jg.BatchKey), j)
				}
				if batches == nil {
					batches = map[string]int{}
				}
				batches[jg.BatchKey] = gi
			default:
				return bad("", "kind %s: want single or batch", quoteValue(string(jg.Kind)))
			}
			grp := Group{Kind: jg.Kind, BatchKey: jg.BatchKey, Concurrency: jg.Concurrency, Nodes: make([]graph.Node, len(ids))}
			for i, id := range ids {
				n, err := g.Lookup(id)
				if err != nil {
					return lookupError(si, gi, id, g.Len(), err)
				}
				if first, dup := at[n]; dup {
					return bad(id, "node %q appears twice in the plan, first in stage %d group %d: each node is in one group at most", id, first.stage, first.group)
				}
				at[n] = place{si, gi}
				ki := g.KindOf(n)
				key, conc := g.BatchKey(ki)
				switch {
				case jg.Kind == Single && key != "":
					return bad(id, "node %q is of kind %q, which has batch key %q: it belongs in the stage's batch of that key, not in a single", id, g.KindName(ki), key)
				case jg.Kind == Batch && key == "":
					return bad(id, "node %q is of kind %q, which has no batch key: it belongs in a single group, not in a batch", id, g.KindName(ki))
				case jg.Kind == Batch && (key != jg.BatchKey || conc != jg.Concurrency):
					return bad(id, "node %q has batch key %q and concurrency %d, not %s and %d", id, key, conc, quoteValue(jg.BatchKey), jg.Concurrency)
				}
				if i > 0 && !before(grp.Nodes[i-1], n) {
					return bad(id, "node %q is listed after %q: a group's nodes are in template-kind order, then by segment", id, ids[i-1])
				}
				if i == 0 && gi > 0 && !before(st.Groups[gi-1].Nodes[0], n) {
					return bad(id, "the group starts with %q, which does not come after %q, the first node of group %d: a stage's groups are in template-kind order of their first nodes, then by segment",
						id, g.NodeID(st.Groups[gi-1].Nodes[0]), gi-1)
				}
				grp.Nodes[i] = n
			}
			st.Groups = append(st.Groups, grp)
		}
		stages[si] = st
	}
	idx := &Plan{Graph: g, Stages: stages, built: stages}
	idx.nodes, idx.stageOf = collect(stages)
	// Each node's stage is the longest path of planned nodes to it. A
	// dependency in the same or a later stage is reported first, as the
	// graver fault, wherever it is.
	var misplaced error
	for i, n := range idx.nodes {
		want, last := int32(0), graph.None
		for _, d := range g.Deps(n) {
			j, ok := idx.pos(d)
			if !ok {
				continue
			}
			if idx.stageOf[j] >= idx.stageOf[i] {
				pl := at[n]
				return &PlanError{Stage: pl.stage, Group: pl.group, Node: g.NodeID(n), Problem: fmt.Sprintf(
					"node %q depends on %q, in stage %d: a dependency must come in an earlier stage", g.NodeID(n), g.NodeID(d), idx.stageOf[j])}
			}
			if idx.stageOf[j]+1 > want {
				want, last = idx.stageOf[j]+1, d
			}
		}
		if idx.stageOf[i] != want && misplaced == nil {
			pl := at[n]
			e := &PlanError{Stage: pl.stage, Group: pl.group, Node: g.NodeID(n)}
			if last == graph.None {
				e.Problem = fmt.Sprintf("node %q depends on no node of the plan: it belongs in stage 0", e.Node)
			} else {
				e.Problem = fmt.Sprintf("node %q belongs in stage %d, the one after its latest planned dependency, %q in stage %d: a node's stage is the length of the longest path of planned nodes to it",
					e.Node, want, g.NodeID(last), want-1)
			}
			misplaced = e
		}
	}
	if misplaced != nil {
		return misplaced
	}
	// The plan is closed downstream, as a dirty set is.
	for _, n := range idx.nodes {
		for _, c := range g.Dependents(n) {
			if _, ok := idx.pos(c); !ok {
				pl := at[n]
				return &PlanError{Stage: pl.stage, Group: pl.group, Node: g.NodeID(n), Problem: fmt.Sprintf(
					"node %q is in the plan but %q, which depends on it, is not: a plan holds every node downstream of its nodes", g.NodeID(n), g.NodeID(c))}
			}
		}
	}
	*p = *idx
	return nil
}

// checkCounts refuses the JSON of a plan of more stages, groups or node
// entries than its graph's v nodes, which no plan has (a stage holds a
// group, a group a node, and a node is in one group at most), before it
// is decoded: a decoded group holds about 64 bytes, and a stage 32,
// however few bytes of input make one ("{},"). It counts the elements of
// "stages", of each stage's "groups" and of each group's "nodes" with
// [strictjson.CountArrays], which reads raw's tokens once, holding a
// frame for each level of nesting, of which encoding/json's scanner,
// which has read raw, allows 10,000.
func checkCounts(raw []byte, v int) error {
	const (
		listStages = 1 + iota // the array of "stages"
		listGroups            // the array of a stage's "groups"
		listNodes             // the array of a group's "nodes"
	)
	// A longer path is asked about only under the picked arrays of the
	// shorter ones: "stages", then its "groups".
	class := func(keys []string) int {
		switch {
		case len(keys) == 1 && keys[0] == "stages":
			return listStages
		case len(keys) == 2 && keys[1] == "groups":
			return listGroups
		case len(keys) == 3 && keys[2] == "nodes":
			return listNodes
		}
		return 0
	}
	groups, nodes := 0, 0 // in the plan so far
	return strictjson.CountArrays(raw, class, func(list int, counts []int) error {
		switch list {
		case listStages:
			if counts[0] > v {
				return &PlanError{Stage: counts[0] - 1, Group: -1, Problem: fmt.Sprintf("more than %s: a stage holds a node of its own, and the graph has %s", count(v, "stage"), count(v, "node"))}
			}
		case listGroups:
			if groups++; groups > v {
				return &PlanError{Stage: counts[0] - 1, Group: counts[1] - 1, Problem: fmt.Sprintf("more than %s: a group holds a node of its own, and the graph has %s", count(v, "group"), count(v, "node"))}
			}
		case listNodes:
			if nodes++; nodes > v {
				return &PlanError{Stage: counts[0] - 1, Group: counts[1] - 1, Problem: fmt.Sprintf("more than %s: a node is in one group at most, and the graph has %s", count(v, "node"), count(v, "node"))}
			}
		}
		return nil
	})
}

// lookupError is the error of node entry id, in stage si and group gi,
// that graph.Lookup refused with err on a graph of v nodes. A
// well-formed ID that names no node of the graph is most likely a node
// of the graph the plan was made for: a longer lecture, or another
// template.
func lookupError(si, gi int, id string, v int, err error) *PlanError {
	e := &PlanError{Stage: si, Group: gi, Node: id, Err: err}
	if errors.Is(err, graph.ErrUnknownNode) {
		e.Problem = fmt.Sprintf("node %s is not in this graph of %s: the plan was likely made for another graph (another duration or template)", quoteValue(id), count(v, "node"))
	}
	return e
}

// place is where a node entry of a plan's JSON is: its stage and group.
type place struct{ stage, group int }

// firstBadNode returns the error of the first node entry of raw, in
// order, that is well formed but not a node of g, or that repeats an
// earlier entry, if it comes no later than where countErr, the error of
// [checkCounts], is; or nil when there is none, or when a malformed or
// non-string entry comes first. It reads raw's tokens once, as
// checkCounts does, and stops after g.Len()+1 node entries, among which
// a plan whose node entries outnumber g's nodes has such an entry or a
// malformed one. It holds a frame for each level of nesting and an entry
// for each node seen: memory about the size of raw.
func firstBadNode(raw []byte, g *graph.Graph, countErr *PlanError) error {
	// within reports whether stage si, group gi comes no later than
	// countErr's place: its group, or, for a stage (Group -1), before it.
	within := func(si, gi int) bool {
		return si < countErr.Stage || si == countErr.Stage && gi <= countErr.Group
	}
	type frame struct {
		object  bool
		key     string // an object's current key
		inValue bool   // an object's key was read, its value not yet
		count   int    // an array's elements so far
	}
	var stack []frame
	// nodeList reports whether the innermost frame is the array of
	// "nodes" of a group of a stage of "stages", as checkCounts counts it.
	nodeList := func() bool {
		if len(stack) != 6 {
			return false
		}
		for i, f := range stack {
			if f.object != (i%2 == 0) {
				return false
			}
		}
		return stack[0].key == "stages" && stack[2].key == "groups" && stack[4].key == "nodes"
	}
	seen := make(map[graph.Node]place)
	entries, v := 0, g.Len()
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end of raw, which holds one value
		}
		n := len(stack)
		if n > 0 && stack[n-1].object && !stack[n-1].inValue {
			if key, ok := tok.(string); ok {
				stack[n-1].key, stack[n-1].inValue = key, true
				continue
			}
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:n-1]
		} else {
			if n > 0 && !stack[n-1].object {
				stack[n-1].count++
			}
			if nodeList() {
				si, gi := stack[1].count-1, stack[3].count-1
				id, ok := tok.(string)
				if !ok || !within(si, gi) {
					return nil // decoding refuses it, or the count comes first
				}
				if entries++; entries > v+1 {
					return nil
				}
				node, err := g.Lookup(id)
				switch {
				case errors.Is(err, graph.ErrUnknownNode):
					return lookupError(si, gi, id, v, err)
				case err != nil:
					return nil // malformed: the count error stands
				}
				if first, dup := seen[node]; dup {
					return &PlanError{Stage: si, Group: gi, Node: id, Problem: fmt.Sprintf("node %q appears twice in the plan, first in stage %d group %d: each node is in one group at most", id, first.stage, first.group)}
				}
				seen[node] = place{si, gi}
			}
			if d, ok := tok.(json.Delim); ok { // '{' or '['
				stack = append(stack, frame{object: d == '{'})
				continue
			}
		}
		// A value ended: its object expects a key again.
		if n = len(stack); n == 0 {
			return nil
		}
		stack[n-1].inValue = false
	}
}

// maxValueLen is the length of the longest valid batch key or node ID: a
// name of 128 bytes, ":segment[", 9 digits and "]".
const maxValueLen = 128 + len(":segment[") + 9 + 1

// quoteValue quotes a value read from a plan, as %q does. One longer than
// any valid batch key or node ID is cut, with a note of its length
// (internal/quote), so that a message names it without being mostly it.
func quoteValue(s string) string {
	if len(s) <= maxValueLen {
		return strconv.Quote(s)
	}
	return quote.Key(s)
}

// count returns n and a noun, plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// collect returns the nodes of the stages in ascending order, with their
// stages aligned.
func collect(stages []Stage) ([]graph.Node, []int32) {
	type ns struct {
		n graph.Node
		s int32
	}
	var all []ns
	for si, st := range stages {
		for _, grp := range st.Groups {
			for _, n := range grp.Nodes {
				all = append(all, ns{n, int32(si)})
			}
		}
	}
	if len(all) == 0 {
		return nil, nil
	}
	slices.SortFunc(all, func(a, b ns) int { return int(a.n - b.n) })
	nodes := make([]graph.Node, len(all))
	stage := make([]int32, len(all))
	for i, e := range all {
		nodes[i], stage[i] = e.n, e.s
	}
	return nodes, stage
}

// pos returns n's position in p.nodes, and whether n is in the plan.
func (p *Plan) pos(n graph.Node) (int, bool) {
	if p.set != nil {
		return p.set.Index(n)
	}
	return slices.BinarySearch(p.nodes, n)
}

// indexed returns p with its node index: p itself when it was made by
// New or decoded and still holds the stages its index was built from,
// else a plan whose index is built now from p's stages.
func (p *Plan) indexed() *Plan {
	if len(p.Stages) == len(p.built) && (len(p.Stages) == 0 || &p.Stages[0] == &p.built[0]) {
		return p
	}
	q := &Plan{Graph: p.Graph, Stages: p.Stages}
	q.nodes, q.stageOf = collect(p.Stages)
	return q
}

// Nodes returns the plan's nodes in ascending index order, a topological
// order. The slice is shared: the caller must not modify it.
func (p *Plan) Nodes() []graph.Node { return p.indexed().nodes }

// StageOf returns the stage of node n, and whether n is in the plan.
func (p *Plan) StageOf(n graph.Node) (int, bool) {
	q := p.indexed()
	i, ok := q.pos(n)
	if !ok {
		return 0, false
	}
	return int(q.stageOf[i]), true
}

// Index returns the position of node n in [Plan.Nodes], and whether n is
// in the plan. It is O(1) for a plan made by [New], O(log D) for a
// decoded one, and O(D log D) for one assembled by hand, whose index is
// built at each call.
func (p *Plan) Index(n graph.Node) (int, bool) { return p.indexed().pos(n) }
