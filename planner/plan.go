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
	// stages, aligned; nil for a plan assembled by hand.
	nodes   []graph.Node
	stageOf []int32
}

// New returns the plan of a dirty set. It is deterministic: groups in
// template-kind order, nodes by kind then segment index. It costs
// O(D + E_D + S·K) for D nodes with E_D edges among them, S stages and K
// kinds, and never looks at nodes outside the set.
func New(set *dirty.Set) *Plan {
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
func leaders(g *graph.Graph) []int {
	leader := make([]int, g.Kinds())
	for ki := range leader {
		leader[ki] = ki
		key, _ := g.BatchKey(ki)
		for kj := 0; kj < ki && key != ""; kj++ {
			if kk, _ := g.BatchKey(kj); kk == key {
				leader[ki] = leader[kj]
				break
			}
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
// is O(1) for nodes visited in ascending order.
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
	cur := -1
	return func(n graph.Node) int {
		if cur >= 0 && n >= spans[cur].first && n < spans[cur].end {
			return spans[cur].kind
		}
		for i := range spans {
			if n >= spans[i].first && n < spans[i].end {
				cur = i
				return spans[i].kind
			}
		}
		return 0
	}
}

// Len returns the number of nodes in the plan.
func (p *Plan) Len() int { return len(p.indexed().nodes) }

// Summary returns the stage's one-line summary, such as
// "Stage 2: Generating 360 asset:video nodes in batches of 3". Several
// groups are listed in order, separated by ", "; singles of one kind are
// counted together. A batch is named by its nodes' kind, or by its batch
// key when it holds nodes of several kinds.
func (p *Plan) Summary(stage int) string {
	st := p.Stages[stage]
	b := []byte("Stage ")
	b = strconv.AppendInt(b, int64(st.Index), 10)
	b = append(b, ": Generating "...)
	first := true
	for i := 0; i < len(st.Groups); i++ {
		grp := st.Groups[i]
		if !first {
			b = append(b, ", "...)
		}
		first = false
		if grp.Kind == Batch {
			// The kind's name when the batch is of one kind (the lecture's
			// batch keys are their kinds' names); else the batch key.
			what := grp.BatchKey
			k := p.Graph.KindOf(grp.Nodes[0])
			if !slices.ContainsFunc(grp.Nodes[1:], func(n graph.Node) bool { return p.Graph.KindOf(n) != k }) {
				what = p.Graph.KindName(k)
			}
			b = appendCount(b, len(grp.Nodes), what)
			b = append(b, " in batches of "...)
			b = strconv.AppendInt(b, int64(grp.Concurrency), 10)
			continue
		}
		kind := p.Graph.KindOf(grp.Nodes[0])
		count := 1
		for i+1 < len(st.Groups) && st.Groups[i+1].Kind == Single && p.Graph.KindOf(st.Groups[i+1].Nodes[0]) == kind {
			count++
			i++
		}
		b = appendCount(b, count, p.Graph.KindName(kind))
	}
	return string(b)
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
// ending in a newline.
func (p *Plan) String() string {
	var buf bytes.Buffer
	for i := range p.Stages {
		buf.WriteString(p.Summary(i))
		buf.WriteByte('\n')
	}
	return buf.String()
}

// ErrNoGraph is returned when a Plan without a Graph is encoded or decoded.
var ErrNoGraph = errors.New("planner: plan has no graph")

// ErrInvalidPlan is wrapped by every error decoding a plan.
var ErrInvalidPlan = errors.New("planner: invalid plan")

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
// deterministic.
func (p *Plan) MarshalJSON() ([]byte, error) {
	if p.Graph == nil {
		return nil, ErrNoGraph
	}
	b := []byte(`{"stages":`)
	b = p.AppendStagesJSON(b)
	return append(b, '}'), nil
}

// AppendStagesJSON appends the plan's "stages" array, as in
// [Plan.MarshalJSON], to b. It derives node IDs as it writes.
func (p *Plan) AppendStagesJSON(b []byte) []byte {
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
			b = append(b, `{"kind":`...)
			b = strconv.AppendQuote(b, string(grp.Kind))
			if grp.Kind == Batch {
				b = append(b, `,"batchKey":`...)
				b = strconv.AppendQuote(b, grp.BatchKey)
				b = append(b, `,"concurrency":`...)
				b = strconv.AppendInt(b, int64(grp.Concurrency), 10)
			}
			b = append(b, `,"nodes":[`...)
			for ni, n := range grp.Nodes {
				if ni > 0 {
					b = append(b, ',')
				}
				b = append(b, '"')
				b = p.Graph.AppendID(b, n)
				b = append(b, '"')
			}
			b = append(b, "]}"...)
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}

// planKeys are the keys of a plan's JSON form.
var planKeys = append(strictjson.Names(jsonStage{}), "stages")

// UnmarshalJSON reads a plan written by [Plan.MarshalJSON]. p.Graph must
// be set to the graph the plan belongs to; node IDs are resolved against
// it. The plan is checked: stage indices in order from 0, no empty stage
// or group, group kinds valid, batch keys and concurrency matching the
// nodes' kinds, every node at most once, and every node in a later stage
// than its dependencies in the plan. Unknown fields, keys that differ in
// case from those MarshalJSON writes, repeated keys and trailing data are
// refused. On error p is unchanged.
func (p *Plan) UnmarshalJSON(data []byte) error {
	if p.Graph == nil {
		return ErrNoGraph
	}
	var in struct {
		Stages []jsonStage `json:"stages"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPlan, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the plan object", ErrInvalidPlan)
	}
	// encoding/json matches keys whatever their case and keeps the last of
	// repeated keys: a repeat would change the plan silently.
	if err := strictjson.Check(data, planKeys...); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPlan, err)
	}
	g := p.Graph
	seen := make(map[graph.Node]bool)
	var stages []Stage // nil for no stages, as New makes it
	if len(in.Stages) > 0 {
		stages = make([]Stage, len(in.Stages))
	}
	for si, js := range in.Stages {
		if js.Index != si {
			return fmt.Errorf("%w: stage %d has index %d", ErrInvalidPlan, si, js.Index)
		}
		if len(js.Groups) == 0 {
			return fmt.Errorf("%w: stage %d has no groups", ErrInvalidPlan, si)
		}
		st := Stage{Index: si, Groups: make([]Group, 0, len(js.Groups))}
		for gi, jg := range js.Groups {
			bad := func(format string, args ...any) error {
				return fmt.Errorf("%w: stage %d group %d: %s", ErrInvalidPlan, si, gi, fmt.Sprintf(format, args...))
			}
			var ids []string
			if err := json.Unmarshal(jg.Nodes, &ids); err != nil {
				return bad("nodes: %v", err)
			}
			if len(ids) == 0 {
				return bad("no nodes")
			}
			grp := Group{Kind: jg.Kind, BatchKey: jg.BatchKey, Concurrency: jg.Concurrency, Nodes: make([]graph.Node, len(ids))}
			for i, id := range ids {
				n, err := g.Lookup(id)
				if err != nil {
					return bad("%v", err)
				}
				if seen[n] {
					return bad("node %q appears twice in the plan", id)
				}
				seen[n] = true
				key, conc := g.BatchKey(g.KindOf(n))
				switch jg.Kind {
				case Single:
					if len(ids) != 1 || jg.BatchKey != "" || jg.Concurrency != 0 || key != "" {
						return bad("single group must hold one node of a kind without a batch key, and no batchKey or concurrency")
					}
				case Batch:
					if jg.BatchKey == "" {
						return bad("batch group without a batchKey: node %q belongs in a single group", id)
					}
					if key != jg.BatchKey || conc != jg.Concurrency {
						return bad("node %q has batch key %q and concurrency %d, not %q and %d", id, key, conc, jg.BatchKey, jg.Concurrency)
					}
				default:
					return bad("kind %q: want single or batch", jg.Kind)
				}
				grp.Nodes[i] = n
			}
			st.Groups = append(st.Groups, grp)
		}
		stages[si] = st
	}
	idx := &Plan{Graph: g, Stages: stages}
	idx.nodes, idx.stageOf = collect(stages)
	for i, n := range idx.nodes {
		for _, d := range g.Deps(n) {
			if j, ok := idx.pos(d); ok && idx.stageOf[j] >= idx.stageOf[i] {
				return fmt.Errorf("%w: node %q in stage %d depends on %q in stage %d: a dependency must come in an earlier stage",
					ErrInvalidPlan, g.NodeID(n), idx.stageOf[i], g.NodeID(d), idx.stageOf[j])
			}
		}
	}
	*p = *idx
	return nil
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

// indexed returns p with its node index, building it for a plan
// assembled by hand.
func (p *Plan) indexed() *Plan {
	if p.nodes != nil || len(p.Stages) == 0 {
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
// in the plan. It is O(1) for a plan made by [New], O(log D) otherwise.
func (p *Plan) Index(n graph.Node) (int, bool) { return p.indexed().pos(n) }
