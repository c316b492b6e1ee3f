package schedule

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// Mode says when a node may start.
type Mode uint8

// The modes.
const (
	// Dataflow starts a node as soon as its own dependencies are done.
	Dataflow Mode = iota
	// Staged runs the plan's stages in order: a node starts only once
	// every node of the earlier stages has settled.
	Staged
)

// String returns "dataflow" or "staged".
func (m Mode) String() string {
	switch m {
	case Dataflow:
		return "dataflow"
	case Staged:
		return "staged"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Rate limits how often nodes of one batch key start: at most Starts
// starts in any window of length Per. A start is a node's first start
// ([Machine.Next], [Machine.More]) or a call that a driver charges to
// the key, a retry's ([Machine.ChargeAt]).
type Rate struct {
	Starts int
	Per    time.Duration
}

// Config configures a [Machine]. It has a JSON form
// ([Config.MarshalJSON]), so that a driver that keeps a [Snapshot], as a
// workflow engine does, can keep the Config beside it. [Config.Check]
// checks its batch keys and kinds against the templates a driver runs.
type Config struct {
	// Mode is Dataflow or Staged. Default: Dataflow.
	Mode Mode
	// Workers caps the nodes running at once across all keys. Default: 0,
	// no cap beyond the batch keys' concurrency.
	Workers int
	// Rates limits starts per batch key. Default: none.
	Rates map[string]Rate
	// Caps lowers batch keys' concurrency: a key with a cap below its
	// concurrency runs at most that many of its nodes at once, as a
	// host's cap on a provider's calls in flight (the executor's
	// Options.Limits) allows, so that no node starts only to wait for
	// room. A cap of a key the plan has not is ignored. Default: none.
	Caps map[string]int
	// Windows gives kinds, by name, a batch window, for a driver that
	// starts a key's nodes in bulk calls ([Machine.Next], then
	// [Machine.More] while it returns nodes): in Dataflow mode, a node of
	// such a kind at the head of its key's queue waits to start until
	// the window has passed since it became ready, while more nodes of
	// its kind are Pending and fewer are Ready than a call could take
	// (its key's free slots, its rate's starts left, the room under
	// Workers and MaxBatch); nodes of other kinds behind it under the
	// same key start meanwhile. It then starts, or sooner once enough nodes
	// are ready or none of the kind that is Pending can come (none is, or
	// each waits on a node of its kind that has not started); [Machine.Wake]
	// says when the window ends. A node's window counts from the time
	// passed to [Machine.SucceedAt] when it became ready, or else to the
	// first [Machine.Next], [Machine.SucceedAt], or [Machine.More] with a
	// like in the plan, after.
	// A window of a kind without a batch key, or that the graph has
	// not, or with no node in the plan, is ignored (a snapshot's
	// fingerprint leaves it out), as are all windows in Staged mode,
	// where a stage's nodes are ready at once. Each window must be positive. Default:
	// none.
	Windows map[string]time.Duration
	// MaxBatch is the most nodes a driver takes in one bulk call: a
	// call of [Machine.Next]'s node and the nodes [Machine.More] adds
	// to it never has more, and a window never waits for more. Default:
	// 0, no cap beyond the key's free slots.
	MaxBatch int
	// Shared groups kinds, by name, whose nodes share bulk calls, for a
	// driver whose kinds share one bulk generator: [Machine.More] then
	// returns, for a like of a kind of a group, ready nodes of any kind of
	// the group that has like's batch key, in the order they became
	// ready, within the same limits. Kinds of a group under other batch
	// keys share no call, as a call is of one key. A batch window
	// ([Config.Windows]) of a kind that shares calls counts and waits for
	// the nodes of all the kinds it shares them with, for the longest
	// window among them. A kind that the graph has not, or without a
	// batch key, or with no node in the plan, is ignored (a snapshot's
	// fingerprint leaves it out). Each group has two kinds or more, and a
	// kind is in one group, once. Default: none, each kind's calls are
	// its own.
	Shared [][]string
}

// ErrInvalidConfig is wrapped by the errors of [New].
var ErrInvalidConfig = errors.New("schedule: invalid config")

// Errors of the transitions ([Machine.Succeed], [Machine.Fail],
// [Machine.Supersede], [Machine.Cancel]); they leave the machine unchanged.
var (
	// ErrNotInPlan: the node is not in the machine's plan.
	ErrNotInPlan = errors.New("schedule: node not in the plan")
	// ErrNotRunning: the node is in the plan but not running.
	ErrNotRunning = errors.New("schedule: node not running")
)

// ErrNotRated is wrapped by the error of [Machine.ChargeAt] for a node
// whose batch key has no rate in the Config, or that has no batch key:
// no rate counts its calls. It leaves the machine unchanged.
var ErrNotRated = errors.New("schedule: no rate counts the node's calls")

// State is where one node of the plan stands in the machine.
type State uint8

// The node states. Succeeded and later are terminal.
const (
	Pending State = iota
	Ready
	Running
	Succeeded
	Failed
	Skipped
	Superseded
	Cancelled
)

var stateNames = [...]string{"pending", "ready", "running", "succeeded", "failed", "skipped", "superseded", "cancelled"}

// String returns the state's name.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Terminal reports whether a node in this state has settled.
func (s State) Terminal() bool { return s >= Succeeded }

// Step is a node the driver should start now, with what a driver needs
// to dispatch it without looking it up in the plan's graph.
type Step struct {
	Node graph.Node
	// Key is the node's batch key, or "" for a single.
	Key string
	// Stage is the node's plan stage.
	Stage int
	// Kind is the node's kind name (graph.Graph.KindName of its
	// graph.Graph.KindOf), by which a driver picks its generator.
	Kind string
	// Segment is the node's segment index, or graph.NoSegment for a
	// global node (graph.Graph.SegmentOf).
	Segment int
}

// Result is what a transition changed besides its own node.
type Result struct {
	// Ready are the nodes this transition made Ready, in ascending order:
	// the dependents whose planned dependencies have now all succeeded
	// (in Staged mode, once their stage is open) and, in Staged mode, the
	// nodes of the stages it opened whose dependencies had succeeded
	// (a Fail, Supersede, Invalidate or Cancel that settles the rest of a
	// stage opens the next one too), but for those the same transition
	// then skipped. Over a run each node is listed once at most, and
	// those Ready from [New] (or [Restore]) are in no Result.
	//
	// Ready is not a start: [Machine.Next] and [Machine.More] still decide
	// what starts and when, under the batch keys' concurrency, Workers,
	// the rates and the batch windows, in first come, first served order
	// across keys; a driver that wants to know only whether to ask Next
	// again may look at it instead of calling [Machine.CanStart]. The
	// slice is the caller's: the machine never reads or changes it, and no
	// later Result shares its memory. Listing it allocates nothing per
	// call (it is cut from one array of the plan's size, made by New).
	Ready []graph.Node
	// Skipped are the nodes newly skipped because this node failed, was
	// superseded or was invalidated, in ascending order. Each is reported
	// once.
	Skipped []graph.Node
	// StagesFinished are the stages this transition finished, ascending.
	// A stage finishes once it and every earlier stage have settled, so
	// over a run each stage is reported once, in order, even when a
	// failure settles a later stage first (by skipping it) or, in
	// Dataflow, a later stage's nodes all end before an earlier one's.
	StagesFinished []int
}

// keyState is one batch key's queue and slots. Key 0 holds the singles:
// no limit.
type keyState struct {
	name    string
	conc    int // the plan's concurrency, before Config.Caps
	limit   int // 0: no limit
	running int
	queue   []int32 // ready positions, FIFO; entries no longer Ready are skipped
	head    int
	rate    Rate
	// starts are the start times within the rate's window, oldest first:
	// at most rate.Starts of them, as a start is recorded only when fewer
	// are. Those at and after first are live; older ones have left the
	// window.
	starts []time.Time
	first  int
}

// Machine is the deterministic scheduling core of a run: which node is
// ready next, what each completion unblocks, what a failure skips and
// which slot a batch key frees. It has no goroutines, reads no clock (the
// driver passes the time in) and ranges over no map but, in [New], its
// Config's, only to sort their keys: no decision depends on a map's
// order, so the same calls give the same answers, which lets a workflow
// engine that replays code drive it (see the package doc). It is not safe
// for concurrent use: the driver serializes calls.
//
// Make one with [New] or [Restore]. The zero Machine is a machine of no
// plan, and never panics: it starts nothing, is Done, has no node (a
// transition, Refund, ChargeAt and Invalidate return an error wrapping
// [ErrNotInPlan] that says to use New), counts no rate (Inherit refuses
// the starts it would lose, with an error wrapping
// [ErrInvalidRateStarts], and RateStarts returns none) and its Snapshot
// is the zero Snapshot, which is no snapshot.
type Machine struct {
	plan  *planner.Plan
	g     *graph.Graph
	mode  Mode
	limit int // global; 0: none
	nodes []graph.Node
	at    []int32 // by graph node: its position in nodes, or -1
	state []State
	wait  []int32 // dependencies not yet succeeded
	stage []int32
	key   []int32
	order []uint64 // when each node became ready, for FIFO across keys
	seq   uint64
	keys  []keyState
	// carry holds, by ascending name, the batch keys with a rate in the
	// Config that the plan has not: no node starts on them, but the
	// starts a machine inherits for them are carried through it
	// (Machine.Inherit, Machine.RateStarts, Snapshot). nil when there is
	// none.
	carry []keyState

	running   int
	settled   int
	stageLeft []int32 // nodes of each stage not yet settled
	// current is the first stage not settled: the stages before it are
	// reported finished. In Staged mode it is the last stage allowed to
	// start.
	current int32
	held    [][]int32 // Staged: ready positions per later stage
	halted  bool
	wake    time.Time
	startAt []time.Time // by position: when a node of a rate-limited key started
	counted []bool      // by position: its start counts against the rate
	// The bulk calls, for Config.MaxBatch: nil without it.
	callOf  []int32 // by position: the first node of a started node's call
	callLen []int32 // by position of a call's first node: its nodes
	// shares is, by kind, the kind whose calls it shares (Config.Shared):
	// the first kind of its group, in the template's order, with its
	// batch key and a node in the plan, or itself. nil when no kind
	// shares calls.
	shares []int32

	// The batch windows (Config.Windows): all nil without one, and in
	// Staged mode. Their kinds are the kinds of the calls (callKind):
	// kinds that share calls count as one.
	win      []time.Duration // by kind: 0 for none
	maxBatch int
	kindAt   []int32     // by position: the node's kind
	pending  []int32     // by kind: nodes Pending
	blocked  []int32     // by kind: nodes Pending that wait on a node of their kind that has not started
	sameWait []int32     // by position: dependencies of a windowed node's kind that have not started
	readyN   []int32     // by kind: nodes Ready
	readyAt  []time.Time // by position: when a node of a windowed kind became Ready; zero until known
	mixed    []bool      // by key: nodes of more than one kind share it
	fresh    []int32     // Ready positions of windowed kinds whose readyAt is not known yet
	stamp    time.Time   // during SucceedAt: the time its nodes become Ready

	// made lists the nodes in the order they became Ready, for
	// Result.Ready: each transition's are the ones it appended, cut off
	// with their capacity, and never written again. A node becomes Ready
	// at most once, so its capacity of D planned nodes suffices.
	made []graph.Node
}

// New returns a machine for the plan. Every node starts Pending, and the
// nodes whose planned dependencies are all outside the plan are Ready.
//
// A bad Config is a [*ConfigError], which wraps [ErrInvalidConfig] and
// names the field; a plan that the machine cannot run is an error
// wrapping ErrInvalidConfig too, such as one assembled by hand with a node
// outside its graph, a node twice, an empty stage, a batch without a key
// or a concurrency, or a dependency in the same or a later stage, or one
// made by planner.New (or decoded) whose stages were changed afterwards,
// so that its groups disagree with its nodes (Plan.Nodes); those errors
// also wrap planner.ErrInvalidPlan, as does a nil plan or one without a
// graph. A plan from planner.New of a dirty.Set, or decoded by
// Plan.UnmarshalJSON, is always accepted (planner.New(nil), the empty
// plan of no set, has no graph: a driver with nothing to run needs no
// machine). Every rate in c.Rates is checked, in key order, whether or
// not the plan uses its key; a key or kind that the plan has not is
// taken, as one Config serves many plans: [Config.Check] checks them
// against the templates. New costs O((D + E_D) log D + N) for D planned
// nodes with E_D edges among them, in a graph of N nodes; every
// transition then finds a node in O(1), for a plan assembled by hand
// too.
func New(p *planner.Plan, c Config) (*Machine, error) {
	m, err := build(p, c)
	if err != nil {
		return nil, err
	}
	for i := range m.nodes {
		if m.wait[i] == 0 {
			m.ready(int32(i))
		}
	}
	return m, nil
}

// build returns a machine for the plan with every node Pending and none
// queued, each waiting on all its planned dependencies: New then makes
// Ready those that wait on none, and Restore sets the snapshot's states.
func build(p *planner.Plan, c Config) (*Machine, error) {
	if p == nil || p.Graph == nil {
		return nil, invalidPlan("a plan with a graph is required: planner.New of a dirty.Set makes one (planner.New(nil), the empty plan of no set, has none)")
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	g := p.Graph
	nodes := p.Nodes()
	for k, n := range nodes {
		if !g.Contains(n) {
			return nil, invalidPlan("node %d is not in the graph, which has nodes 0 to %d", n, g.Len()-1)
		}
		if k > 0 && nodes[k-1] == n {
			return nil, invalidPlan("node %q appears twice", g.NodeID(n))
		}
	}
	d := len(nodes)
	at := make([]int32, g.Len())
	for i := range at {
		at[i] = -1
	}
	for i, n := range nodes {
		at[n] = int32(i)
	}
	m := &Machine{
		at:   at,
		plan: p, g: g, mode: c.Mode, limit: c.Workers, nodes: nodes,
		state: make([]State, d), wait: make([]int32, d), stage: make([]int32, d),
		key: make([]int32, d), order: make([]uint64, d),
		keys:      []keyState{{name: ""}},
		stageLeft: make([]int32, len(p.Stages)),
		held:      make([][]int32, len(p.Stages)),
		made:      make([]graph.Node, 0, d),
	}
	// A plan made by planner.New, or decoded, keeps the index of nodes it
	// was built with: stages changed afterwards disagree with it. Every
	// node of the groups must be in the index once, and every node of the
	// index in a group; -1 marks a node not placed yet.
	for i := range m.stage {
		m.stage[i] = -1
	}
	for si, st := range p.Stages {
		for gi, grp := range st.Groups {
			k := int32(0)
			switch grp.Kind {
			case planner.Single:
			case planner.Batch:
				if grp.BatchKey == "" || grp.Concurrency < 1 {
					return nil, invalidPlan("stage %d group %d: a batch needs a batch key and a concurrency of at least 1, not %q and %d", si, gi, grp.BatchKey, grp.Concurrency)
				}
				k = m.keyIndex(grp.BatchKey, grp.Concurrency)
				if lim := m.keys[k].limit; lim != grp.Concurrency {
					return nil, invalidPlan("stage %d group %d: batch key %q has concurrency %d here and %d in an earlier group", si, gi, grp.BatchKey, grp.Concurrency, lim)
				}
			default:
				return nil, invalidPlan("stage %d group %d: kind %q: want single or batch", si, gi, grp.Kind)
			}
			for _, n := range grp.Nodes {
				if !g.Contains(n) {
					return nil, invalidPlan("stage %d group %d: node %d is not in the graph, which has nodes 0 to %d", si, gi, n, g.Len()-1)
				}
				i := at[n]
				switch {
				case i < 0:
					return nil, invalidPlan("stage %d group %d: node %q is not among the plan's nodes (Plan.Nodes): %s", si, gi, g.NodeID(n), changed)
				case m.stage[i] >= 0:
					return nil, invalidPlan("stage %d group %d: node %q appears twice", si, gi, g.NodeID(n))
				}
				m.stage[i], m.key[i] = int32(si), k
				m.stageLeft[si]++
			}
		}
		if m.stageLeft[si] == 0 {
			return nil, invalidPlan("stage %d has no nodes", si)
		}
	}
	for i, s := range m.stage {
		if s < 0 {
			return nil, invalidPlan("node %q is among the plan's nodes (Plan.Nodes) but in no group: %s", g.NodeID(nodes[i]), changed)
		}
	}
	for ki := range m.keys {
		if n, ok := c.Caps[m.keys[ki].name]; ok && ki > 0 {
			m.keys[ki].limit = min(m.keys[ki].limit, n)
		}
		// The window of start times grows with the starts, up to
		// r.Starts: a large Starts costs nothing up front.
		if r, ok := c.Rates[m.keys[ki].name]; ok && ki > 0 {
			m.keys[ki].rate = r
			if m.startAt == nil {
				m.startAt, m.counted = make([]time.Time, len(nodes)), make([]bool, len(nodes))
			}
		}
	}
	// The rates of keys the plan has not carry inherited starts through.
	if len(c.Rates) > 0 {
		planned := make(map[string]bool, len(m.keys))
		for _, ks := range m.keys {
			planned[ks.name] = true
		}
		for _, key := range sortedKeys(c.Rates) {
			if !planned[key] {
				m.carry = append(m.carry, keyState{name: key, rate: c.Rates[key]})
			}
		}
	}
	// Each key's queue has room for all its nodes from the start, in one
	// array: a node is queued once each time it becomes ready, so a queue
	// grows (apart from the others) only if a node becomes ready again.
	room := make([]int, len(m.keys))
	for _, k := range m.key {
		room[k]++
	}
	queues, off := make([]int32, d), 0
	for ki := range m.keys {
		m.keys[ki].queue = queues[off : off : off+room[ki]]
		off += room[ki]
	}
	if c.MaxBatch > 0 {
		m.maxBatch = c.MaxBatch
		m.callOf, m.callLen = make([]int32, d), make([]int32, d)
	}
	m.share(c)
	if c.Mode == Dataflow {
		m.windows(c)
	}
	for i, n := range nodes {
		for _, dep := range g.Deps(n) {
			j := at[dep]
			if j < 0 {
				continue // clean: it does not hold n back
			}
			if m.stage[j] >= m.stage[i] {
				return nil, invalidPlan("node %q in stage %d depends on %q in stage %d: a dependency must come in an earlier stage",
					g.NodeID(n), m.stage[i], g.NodeID(dep), m.stage[j])
			}
			m.wait[i]++
		}
	}
	return m, nil
}

// windows sets up the batch windows of c, if any applies: to a kind with
// a batch key and a node in the plan. Called by New before any node is
// ready.
func (m *Machine) windows(c Config) {
	if len(c.Windows) == 0 {
		return
	}
	win := make([]time.Duration, m.g.Kinds())
	kindAt := make([]int32, len(m.nodes))
	pending := make([]int32, len(win))
	keyKind, mixed := make([]int32, len(m.keys)), make([]bool, len(m.keys))
	for i := range keyKind {
		keyKind[i] = -1
	}
	planned := make([]bool, len(win))
	for i, n := range m.nodes {
		planned[m.g.KindOf(n)] = true
		k := m.callKind(m.g.KindOf(n))
		kindAt[i] = int32(k)
		pending[k]++
		if ki := m.key[i]; keyKind[ki] < 0 {
			keyKind[ki] = int32(k)
		} else if keyKind[ki] != int32(k) {
			mixed[ki] = true
		}
	}
	// A window applies only to a kind with a batch key and a node in the
	// plan: the others are left at 0, so that the snapshot's fingerprint,
	// which holds win, does not change with windows the machine ignores.
	// Kinds that share calls wait as one, under the first kind of their
	// group (see share), for the longest of their windows.
	used := false
	for k := range win {
		if key, _ := m.g.BatchKey(k); key != "" && planned[k] {
			ck := m.callKind(k)
			win[ck] = max(win[ck], c.Windows[m.g.KindName(k)])
			used = used || win[ck] > 0
		}
	}
	if !used {
		return
	}
	m.win, m.kindAt, m.pending, m.mixed = win, kindAt, pending, mixed
	// A node that waits on a node of its own kind (a previous-segment
	// dependency) cannot come while its kind's window holds that one back.
	m.blocked, m.sameWait = make([]int32, len(win)), make([]int32, len(m.nodes))
	for i, n := range m.nodes {
		k := kindAt[i]
		if win[k] == 0 {
			continue
		}
		for _, dep := range m.g.Deps(n) {
			if j := m.at[dep]; j >= 0 && kindAt[j] == k {
				m.sameWait[i]++
			}
		}
		if m.sameWait[i] > 0 {
			m.blocked[k]++
		}
	}
	m.readyN, m.readyAt = make([]int32, len(win)), make([]time.Time, len(m.nodes))
}

// changed explains why a plan's groups disagree with its nodes.
const changed = "its stages were changed after it was built"

func invalidPlan(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrInvalidConfig, planner.ErrInvalidPlan, fmt.Sprintf(format, args...))
}

func (m *Machine) keyIndex(name string, limit int) int32 {
	for i := range m.keys {
		if m.keys[i].name == name {
			return int32(i)
		}
	}
	m.keys = append(m.keys, keyState{name: name, conc: limit, limit: limit})
	return int32(len(m.keys) - 1)
}

// pos returns the position of n in the plan, or -1, in O(1), whether the
// plan was made by planner.New or assembled by hand.
func (m *Machine) pos(n graph.Node) int {
	if m.g == nil || !m.g.Contains(n) { // the zero Machine has no graph
		return -1
	}
	return int(m.at[n])
}

// ready makes position i Ready, or holds it until its stage opens.
func (m *Machine) ready(i int32) {
	if m.mode == Staged && m.stage[i] > m.current {
		m.held[m.stage[i]] = append(m.held[m.stage[i]], i)
		return
	}
	m.state[i] = Ready
	m.made = append(m.made, m.nodes[i])
	m.seq++
	m.order[i] = m.seq
	ks := &m.keys[m.key[i]]
	ks.queue = append(ks.queue, i)
	if m.win != nil {
		k := m.kindAt[i]
		m.pending[k]--
		m.readyN[k]++
		if m.win[k] > 0 {
			if m.stamp.IsZero() {
				m.fresh = append(m.fresh, i)
			} else {
				m.readyAt[i] = m.stamp
			}
		}
	}
}

// madeSince returns, ascending, the nodes made Ready since made had
// length from and still Ready, for Result.Ready, or nil: a slice of made
// that no later append writes to, as its capacity ends with it. A node
// made Ready may be skipped by the same transition: an Invalidate, Fail
// or Supersede in Staged mode that settles the rest of a stage opens
// the next one, whose nodes its walk may then reach.
func (m *Machine) madeSince(from int) []graph.Node {
	out := m.made[from:len(m.made):len(m.made)]
	out = slices.DeleteFunc(out, func(n graph.Node) bool { return m.state[m.at[n]] != Ready })
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return out
}

// tick notes now as the time at which the nodes of windowed kinds that
// became Ready without a known time did.
func (m *Machine) tick(now time.Time) {
	if len(m.fresh) == 0 || now.IsZero() {
		return
	}
	for _, i := range m.fresh {
		if m.state[i] == Ready && m.readyAt[i].IsZero() {
			m.readyAt[i] = now
		}
	}
	m.fresh = m.fresh[:0]
}

// holds reports whether the batch window of head i, the first Ready node
// of key ks, holds it back at now, and if so until when: while a bulk
// call could take more nodes of its kind than are Ready, and more of
// them are Pending, not counting those that wait on a node of their kind
// that has not started (they cannot come while the window holds it),
// for up to the kind's window since i became Ready.
// A head whose time is not known yet counts as Ready since now, as the
// next Next at now would note. It changes nothing.
func (m *Machine) holds(ks *keyState, i int32, now time.Time) (time.Time, bool) {
	k := m.kindAt[i]
	w := m.win[k]
	if w == 0 || m.pending[k] == m.blocked[k] {
		return time.Time{}, false // none can come
	}
	room := ks.limit - ks.running
	if m.limit > 0 {
		room = min(room, m.limit-m.running)
	}
	if m.maxBatch > 0 {
		room = min(room, m.maxBatch)
	}
	if ks.rate.Starts > 0 {
		room = min(room, ks.rate.Starts-(len(ks.starts)-ks.live(now)))
	}
	if int(m.readyN[k]) >= room {
		return time.Time{}, false // a full call
	}
	since := m.readyAt[i]
	if since.IsZero() {
		since = now
	}
	if until := since.Add(w); now.Before(until) {
		return until, true
	}
	return time.Time{}, false
}

// behind returns the first Ready position of key ks after its head, of
// another kind than head's, that no batch window holds back at now, or
// -1; and the earliest end of the windows that hold back the kinds it
// passes over (after head's), if any. A window holds back its own kind
// only: a node of another kind that shares the key starts meanwhile (it
// may make the nodes that the window waits for). It changes nothing.
func (m *Machine) behind(ks *keyState, head int32, now time.Time) (int32, time.Time) {
	var buf [4]int32
	held := append(buf[:0], m.kindAt[head])
	var wake time.Time
	for j := ks.head + 1; j < len(ks.queue); j++ {
		i := ks.queue[j]
		if m.state[i] != Ready || slices.Contains(held, m.kindAt[i]) {
			continue
		}
		until, ok := m.holds(ks, i, now)
		if !ok {
			return i, wake
		}
		held = append(held, m.kindAt[i])
		if wake.IsZero() || until.Before(wake) {
			wake = until
		}
	}
	return -1, wake
}

// headOf returns the first Ready position in the key's queue, dropping
// stale entries, or -1.
func (ks *keyState) headOf(state []State) int32 {
	for ks.head < len(ks.queue) {
		if i := ks.queue[ks.head]; state[i] == Ready {
			return i
		}
		ks.head++
	}
	if ks.head > 0 {
		ks.queue, ks.head = ks.queue[:0], 0
	}
	return -1
}

// allowed reports whether the key may start a node at now; when only its
// rate stops it, it also returns the time it may.
func (ks *keyState) allowed(now time.Time) (bool, time.Time) {
	if ks.limit > 0 && ks.running >= ks.limit {
		return false, time.Time{}
	}
	if ks.rate.Starts == 0 {
		return true, time.Time{}
	}
	first := ks.live(now)
	if live := len(ks.starts) - first; live < ks.rate.Starts {
		return true, time.Time{}
	}
	return false, ks.starts[first].Add(ks.rate.Per)
}

// live returns the index in starts of the first start still in the window
// at now: a start counts until Per after it. It changes nothing, so that
// allowed, and with it CanStart, changes nothing either; the starts that
// left the window are dropped when a node starts.
func (ks *keyState) live(now time.Time) int {
	first := ks.first
	for first < len(ks.starts) && !now.Before(ks.starts[first].Add(ks.rate.Per)) {
		first++
	}
	return first
}

func (ks *keyState) recordStart(now time.Time) {
	if ks.rate.Starts == 0 {
		return
	}
	ks.first = ks.live(now)
	if ks.first > 0 && ks.first >= len(ks.starts)/2 {
		// Drop the starts that left the window, in amortized O(1).
		ks.starts = ks.starts[:copy(ks.starts, ks.starts[ks.first:])]
		ks.first = 0
	}
	// By time, as a restored machine holds them: a start inherited from
	// a clock ahead (Inherit) may be later than now. O(1) when now is not
	// before the latest start.
	j := len(ks.starts)
	for j > ks.first && now.Before(ks.starts[j-1]) {
		j--
	}
	ks.starts = slices.Insert(ks.starts, j, now)
}

// refund forgets the start at t, if it is still in the window.
func (ks *keyState) refund(t time.Time) bool {
	for j := len(ks.starts) - 1; j >= ks.first; j-- {
		if ks.starts[j].Equal(t) {
			ks.starts = slices.Delete(ks.starts, j, j+1)
			return true
		}
	}
	return false
}

// pruneCarry drops the starts carried for the rated keys the plan has
// not (Machine.carry) that have left their window at now, so that a
// snapshot holds no start that cannot count again: no node starts on
// those keys, so none would drop them. It changes no answer of a call
// at now or later, as the clock does not go back. O(C + S) for C
// carried keys and S starts dropped.
func (m *Machine) pruneCarry(now time.Time) {
	for ki := range m.carry {
		ks := &m.carry[ki]
		if first := ks.live(now); first > 0 {
			ks.starts = ks.starts[first:]
		}
	}
}

// Next returns the node to start now, if any may: the one that became
// ready first among the keys with a free slot and rate, within the
// global cap, and that no batch window holds back ([Config.Windows]).
// The node becomes Running and holds a slot of its key until it settles.
// When nothing may start because of a rate limit or a batch window,
// [Machine.Wake] says when to ask again. now is the driver's clock, read
// only for the rate limits and the batch windows; it must not go back
// between calls.
func (m *Machine) Next(now time.Time) (Step, bool) {
	m.tick(now)
	best, bestKey, wake := m.pick(now)
	m.wake = wake
	if best < 0 {
		return Step{}, false
	}
	if ks := &m.keys[bestKey]; ks.queue[ks.head] == best {
		ks.head++
	} // else a node behind a head that a batch window holds (behind)
	if m.callOf != nil {
		m.callOf[best], m.callLen[best] = best, 1
	}
	return m.start(best, now), true
}

// CanStart reports whether [Machine.Next] would return a node at now. It
// changes nothing (a node whose batch window has no start time yet
// counts as ready since now, as Next at now would note); a driver uses it
// to wake an idle worker only when there is work for it.
func (m *Machine) CanStart(now time.Time) bool {
	best, _, _ := m.pick(now)
	return best >= 0
}

// WakeAt reports when a rate limit next allows a start, or a batch
// window ends, if no node may start at now and a rate or a window holds
// a ready one back: a driver that did not just call [Machine.Next] uses
// it to know when to ask again. It changes nothing.
func (m *Machine) WakeAt(now time.Time) (time.Time, bool) {
	best, _, wake := m.pick(now)
	if best >= 0 || wake.IsZero() {
		return time.Time{}, false
	}
	return wake, true
}

// pick returns the position and key of the node Next would start, or -1,
// and when a rate limit would next allow a start or a batch window end.
func (m *Machine) pick(now time.Time) (best int32, bestKey int, wake time.Time) {
	best, bestKey = -1, -1
	if m.halted || (m.limit > 0 && m.running >= m.limit) {
		return best, bestKey, wake
	}
	for ki := range m.keys {
		ks := &m.keys[ki]
		i := ks.headOf(m.state)
		if i < 0 {
			continue
		}
		ok, at := ks.allowed(now)
		if ok && m.win != nil {
			if until, held := m.holds(ks, i, now); held {
				at, ok = until, false
				if m.mixed[ki] {
					var later time.Time
					if i, later = m.behind(ks, i, now); i >= 0 {
						ok = true
					} else if !later.IsZero() && later.Before(at) {
						at = later
					}
				}
			}
		}
		if !ok {
			if !at.IsZero() && (wake.IsZero() || at.Before(wake)) {
				wake = at
			}
			continue
		}
		if best < 0 || m.order[i] < m.order[best] {
			best, bestKey = i, ki
		}
	}
	return best, bestKey, wake
}

// More returns another node than like to start now, with the same batch
// key and kind as like (usually a node just started), or of a kind that
// shares calls with like's ([Config.Shared]), for a bulk generator that
// takes many nodes in one call. It honours the same limits
// as [Machine.Next], but no batch window: the window held back the call,
// whose first node Next returned.
//
// With [Config.MaxBatch], it returns nothing once like's call has
// MaxBatch nodes: the call of a node that Next returned is that node and
// those that More returned for it, or for another node of the call, as
// like, whether they still run or not. A node that More returns for a
// like that is not running starts a call of its own.
//
// like need not be running: it names the key and kind, and a Ready node
// names them too. A like that is not in the plan, or not in the graph,
// has neither: More returns false for it, as when no node may start, and
// changes nothing; [Machine.State] of like, whose second result is then
// false, tells the two apart.
func (m *Machine) More(now time.Time, like graph.Node) (Step, bool) {
	li := m.pos(like)
	if li < 0 {
		return Step{}, false // a driver's bug: it must change nothing
	}
	m.tick(now)
	if m.halted || (m.limit > 0 && m.running >= m.limit) {
		return Step{}, false
	}
	call := int32(-1) // like's call, if it runs
	if m.callOf != nil && m.state[li] == Running {
		if call = m.callOf[li]; int(m.callLen[call]) >= m.maxBatch {
			return Step{}, false
		}
	}
	ks := &m.keys[m.key[li]]
	if ok, _ := ks.allowed(now); !ok {
		return Step{}, false
	}
	kind := m.callKind(m.g.KindOf(like))
	for j := ks.head; j < len(ks.queue); j++ {
		i := ks.queue[j]
		if int(i) != li && m.state[i] == Ready && m.callKind(m.g.KindOf(m.nodes[i])) == kind {
			if j == ks.head {
				ks.head++
			}
			if m.callOf != nil {
				if call < 0 {
					call = i
				}
				m.callOf[i] = call
				m.callLen[call]++
			}
			return m.start(i, now), true
		}
	}
	return Step{}, false
}

func (m *Machine) start(i int32, now time.Time) Step {
	m.pruneCarry(now)
	ks := &m.keys[m.key[i]]
	ks.running++
	ks.recordStart(now)
	if ks.rate.Starts > 0 {
		m.startAt[i], m.counted[i] = now, true
	}
	m.running++
	m.state[i] = Running
	if m.win != nil {
		k := m.kindAt[i]
		m.readyN[k]--
		if m.win[k] > 0 {
			for _, c := range m.g.Dependents(m.nodes[i]) {
				if j := m.pos(c); j >= 0 && m.kindAt[j] == k {
					if m.sameWait[j]--; m.sameWait[j] == 0 && m.state[j] == Pending {
						m.blocked[k]--
					}
				}
			}
		}
	}
	n := m.nodes[i]
	return Step{Node: n, Key: ks.name, Stage: int(m.stage[i]), Kind: m.g.KindName(m.g.KindOf(n)), Segment: m.g.SegmentOf(n)}
}

// Wake returns when a rate-limited node may start, or a batch window
// ends, after a call to [Machine.Next] that returned nothing because of
// a rate limit or a window.
func (m *Machine) Wake() (time.Time, bool) { return m.wake, !m.wake.IsZero() }

// mustRunning returns the position of n, which must be Running.
func (m *Machine) mustRunning(n graph.Node) (int32, error) {
	i := m.pos(n)
	switch {
	case m.g == nil:
		return -1, errZero(n)
	case i < 0 && !m.g.Contains(n):
		return -1, fmt.Errorf("%w: node %d: the graph has nodes 0 to %d", ErrNotInPlan, n, m.g.Len()-1)
	case i < 0:
		return -1, fmt.Errorf("%w: node %q", ErrNotInPlan, m.g.NodeID(n))
	case m.state[i] != Running:
		return -1, fmt.Errorf("%w: node %q is %s", ErrNotRunning, m.g.NodeID(n), m.state[i])
	}
	return int32(i), nil
}

// errZero is the error of a transition of the zero Machine.
func errZero(n graph.Node) error {
	return fmt.Errorf("%w: node %d: the zero Machine has no plan: make one with New", ErrNotInPlan, n)
}

// settle settles position i in state s, releasing its slots if it runs,
// and reports the stages that this finishes.
func (m *Machine) settle(i int32, s State, r *Result) {
	switch m.state[i] {
	case Running:
		m.keys[m.key[i]].running--
		m.running--
	case Pending:
		if m.win != nil {
			m.pending[m.kindAt[i]]--
			if m.sameWait[i] > 0 {
				m.blocked[m.kindAt[i]]--
			}
		}
	case Ready:
		if m.win != nil {
			m.readyN[m.kindAt[i]]--
		}
	}
	m.state[i] = s
	m.settled++
	st := m.stage[i]
	m.stageLeft[st]--
	if st == m.current && m.stageLeft[st] == 0 {
		m.advance(r)
	}
}

// advance moves past the settled stages from the current one, reporting
// each as finished, and in Staged mode opens the next stage.
func (m *Machine) advance(r *Result) {
	for int(m.current) < len(m.stageLeft) && m.stageLeft[m.current] == 0 {
		r.StagesFinished = append(r.StagesFinished, int(m.current))
		m.current++
		if m.mode == Staged && int(m.current) < len(m.held) {
			held := m.held[m.current]
			m.held[m.current] = nil
			for _, i := range held {
				if m.state[i] == Pending {
					m.ready(i)
				}
			}
		}
	}
}

// Succeed settles a running node as done and releases the dependents
// whose dependencies are now all done. It is [Machine.SucceedAt] without
// a time: the batch windows ([Config.Windows]) of the nodes it releases
// count from the time passed to the next [Machine.Next], [Machine.More]
// or SucceedAt ([Machine.ChargeAt] notes none).
func (m *Machine) Succeed(n graph.Node) (Result, error) {
	return m.SucceedAt(n, time.Time{})
}

// SucceedAt is [Machine.Succeed] at now, the driver's clock, which must
// not go back between calls: the batch windows ([Config.Windows]) of the
// nodes it releases count from now, and the starts the machine carries
// for rated keys the plan has not ([Machine.Inherit]) that have left
// their window at now are dropped, as a snapshot need hold them no more
// (see [Snapshot]). A zero now is not known, as for Succeed. Without
// windows or carried starts, now is not read.
func (m *Machine) SucceedAt(n graph.Node, now time.Time) (Result, error) {
	i, err := m.mustRunning(n)
	if err != nil {
		return Result{}, err
	}
	if !now.IsZero() {
		m.pruneCarry(now)
	}
	if m.win != nil {
		m.tick(now)
		m.stamp = now
	}
	from := len(m.made)
	var r Result
	m.settle(i, Succeeded, &r)
	for _, c := range m.g.Dependents(n) {
		j := m.pos(c)
		if j < 0 || m.state[j] != Pending {
			continue
		}
		m.wait[j]--
		if m.wait[j] == 0 {
			m.ready(int32(j))
		}
	}
	m.stamp = time.Time{}
	r.Ready = m.madeSince(from)
	return r, nil
}

// Fail settles a running node as failed; every planned node that depends
// on it, directly or not, is skipped.
func (m *Machine) Fail(n graph.Node) (Result, error) { return m.drop(n, Failed) }

// Supersede settles a running node whose result was not kept because it
// was edited meanwhile; its dependents are skipped, as for a failure.
func (m *Machine) Supersede(n graph.Node) (Result, error) { return m.drop(n, Superseded) }

func (m *Machine) drop(n graph.Node, s State) (Result, error) {
	i, err := m.mustRunning(n)
	if err != nil {
		return Result{}, err
	}
	from := len(m.made)
	var r Result
	m.settle(i, s, &r)
	// Dependents have higher indices: walk them in ascending order.
	queue := []graph.Node{n}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, c := range m.g.Dependents(x) {
			j := m.pos(c)
			if j < 0 || m.state[j].Terminal() || m.state[j] == Running {
				continue
			}
			m.settle(int32(j), Skipped, &r)
			r.Skipped = append(r.Skipped, c)
			queue = append(queue, c)
		}
	}
	slices.Sort(r.Skipped)
	r.Ready = m.madeSince(from)
	return r, nil
}

// Invalidate reports that node n's stored output went stale during the
// run: its parameters were edited after it succeeded in this plan, or,
// for a node outside the plan, at any time. Every planned node that
// depends on n, directly or not, and has not started is skipped, since it
// would run on stale inputs; nodes that run go on, and n itself keeps its
// state. It is a no-op for a planned node that has not succeeded: one
// that has not started runs later with its new parameters, the
// dependents of a failed, superseded or skipped one are skipped already,
// and a cancelled one ends the run. For a running node the machine
// neither changes nor remembers anything: it is the driver's to settle
// that node with [Machine.Supersede] when it ends, as its result will be
// stale, which skips its dependents; a [Machine.Succeed] of it is
// accepted as for any running node and releases them. It returns an
// error wrapping [ErrNotInPlan], and changes nothing, only for a node
// that is not in the graph. It costs O(dependents of n, transitively).
func (m *Machine) Invalidate(n graph.Node) (Result, error) {
	if m.g == nil {
		return Result{}, errZero(n)
	}
	if !m.g.Contains(n) {
		return Result{}, fmt.Errorf("%w: node %d: the graph has nodes 0 to %d", ErrNotInPlan, n, m.g.Len()-1)
	}
	var r Result
	if i := m.pos(n); i >= 0 && m.state[i] != Succeeded {
		return r, nil
	}
	// Every dependent is walked, whatever its state or plan: a dependent
	// outside the plan, or one that ran, passes the stale output on.
	from := len(m.made)
	seen := map[graph.Node]bool{n: true}
	queue := []graph.Node{n}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, c := range m.g.Dependents(x) {
			if seen[c] {
				continue
			}
			seen[c] = true
			queue = append(queue, c)
			if j := m.pos(c); j >= 0 && (m.state[j] == Pending || m.state[j] == Ready) {
				m.settle(int32(j), Skipped, &r)
				r.Skipped = append(r.Skipped, c)
			}
		}
	}
	slices.Sort(r.Skipped)
	r.Ready = m.madeSince(from)
	return r, nil
}

// Cancel settles a running node as cancelled: the run was cancelled and
// interrupted it. It halts the machine ([Machine.Halt]), as a cancelled
// run starts nothing more; the node's dependents stay pending, and the
// machine is done once nothing runs.
func (m *Machine) Cancel(n graph.Node) (Result, error) {
	i, err := m.mustRunning(n)
	if err != nil {
		return Result{}, err
	}
	m.halted = true
	from := len(m.made)
	var r Result
	m.settle(i, Cancelled, &r)
	r.Ready = m.madeSince(from)
	return r, nil
}

// Refund gives back the rate start of a running node that made no call to
// its provider, such as one that early cutoff keeps: its start no longer
// counts against its batch key's [Rate]. It reports whether it gave a
// start back: false without a rate, or once given back, or when the start
// was found to have left the window already (one that left it but was not
// yet found to may be given back, to no effect).
// The node stays running; settle it as usual. A node that is not
// running is an error, as for [Machine.Succeed].
func (m *Machine) Refund(n graph.Node) (bool, error) {
	i, err := m.mustRunning(n)
	if err != nil {
		return false, err
	}
	ks := &m.keys[m.key[i]]
	if ks.rate.Starts == 0 || !m.counted[i] {
		return false, nil
	}
	m.counted[i] = false
	return ks.refund(m.startAt[i]), nil
}

// ChargeAt charges a call that running node n makes to its provider at
// now, beyond its first start, to its batch key's [Rate], if the rate
// allows a start at now: a driver that retries a node's failed attempt
// itself, as a workflow engine does, asks it before each retry's call,
// so that the rate counts every call the provider counts, as it counts
// the first starts of [Machine.Next] and [Machine.More]. It reports
// whether it charged the call; when the rate allows no start at now it
// charges nothing and returns false, and the driver makes the call once
// [Machine.RateWait] of the key has passed, charging it then. A charge
// counts as a start of the key until its rate's Per after it, holding
// back the key's next starts and charges alike, and a [Snapshot] holds
// it among the key's starts (its form is unchanged: every release that
// reads version 2 restores it); no node counts it, so [Machine.Refund]
// gives none back. The rate serves first the call that asks first: a
// driver that asks ChargeAt before [Machine.Next] at the same now
// gives its retries the starts that free then. The node's slot and
// state are unchanged: it still runs, and settles as usual. now is the
// driver's clock, as for Next, which must not go back between calls.
//
// It refuses, and changes nothing: a node not in the plan, or the zero
// Machine's, with an error wrapping [ErrNotInPlan]; a node that is not
// running, wrapping [ErrNotRunning]; a node whose batch key has no rate
// in the Config (a single has none), wrapping [ErrNotRated]; and a now
// before the latest start that the key's rate counts (the driver's
// clock went back, or [Machine.Inherit] took a start from a clock
// ahead), wrapping [ErrInvalidRateStarts]. Like every call that changes the machine it
// is part of the driver's record: a replay makes it again. It costs
// O(S) for S starts that left the rate's window since the key's last
// start or charge.
func (m *Machine) ChargeAt(n graph.Node, now time.Time) (bool, error) {
	i, err := m.mustRunning(n)
	if err != nil {
		return false, err
	}
	ks := &m.keys[m.key[i]]
	switch {
	case ks.rate.Starts == 0 && m.key[i] == 0:
		return false, fmt.Errorf("%w: node %q is a single: it has no batch key, and no rate counts its calls", ErrNotRated, m.g.NodeID(n))
	case ks.rate.Starts == 0:
		return false, fmt.Errorf("%w: node %q: batch key %q has no rate (Config.Rates): nothing counts its calls", ErrNotRated, m.g.NodeID(n), ks.name)
	case len(ks.starts) > 0 && now.Before(ks.starts[len(ks.starts)-1]):
		return false, fmt.Errorf("%w: a charge of node %q at %s, before the latest start of batch key %q, %s: the driver's clock must not go back (a start inherited from a clock ahead counts as made then: see Inherit)",
			ErrInvalidRateStarts, m.g.NodeID(n), utc(now).Format(time.RFC3339Nano), ks.name, utc(ks.starts[len(ks.starts)-1]).Format(time.RFC3339Nano))
	case len(ks.starts)-ks.live(now) >= ks.rate.Starts:
		return false, nil
	}
	ks.recordStart(now)
	m.pruneCarry(now)
	return true, nil
}

// Halt stops the machine: [Machine.Next] and [Machine.More] return
// nothing from now on. Running nodes still settle.
func (m *Machine) Halt() { m.halted = true }

// Halted reports whether [Machine.Halt] was called.
func (m *Machine) Halted() bool { return m.halted }

// State returns node n's state, and whether n is in the plan.
func (m *Machine) State(n graph.Node) (State, bool) {
	i := m.pos(n)
	if i < 0 {
		return 0, false
	}
	return m.state[i], true
}

// RateWait returns how long after now the rate of batch key allows its
// next start: 0 when it allows one at now, and for a key without a rate
// in the Config. A rated key that the plan has not answers too, by the
// starts the machine carries for it ([Machine.Inherit]), so that a driver
// learns when that provider's quota frees, for a call of its own or the
// next round. It counts the calls charged with [Machine.ChargeAt] as
// starts, ignores the key's free slots and changes nothing. O(K + log C + S) for K keys of the plan, C rated keys it has
// not and S starts in the rate's window.
func (m *Machine) RateWait(key string, now time.Time) time.Duration {
	ks := m.rated(key)
	if ks == nil {
		return 0
	}
	first := ks.live(now)
	if len(ks.starts)-first < ks.rate.Starts {
		return 0
	}
	return ks.starts[first].Add(ks.rate.Per).Sub(now)
}

// Len returns the number of nodes in the plan.
func (m *Machine) Len() int { return len(m.nodes) }

// Settled returns the number of nodes that have settled.
func (m *Machine) Settled() int { return m.settled }

// Running returns the number of nodes running.
func (m *Machine) Running() int { return m.running }

// RunningNodes returns the nodes running, in ascending order (the plan's
// node order), in a new slice that the caller owns, or nil when none
// runs. It changes nothing, and costs O(D) for D planned nodes: a driver
// that keeps its own list of the nodes it started needs not call it.
func (m *Machine) RunningNodes() []graph.Node {
	if m.running == 0 {
		return nil
	}
	out := make([]graph.Node, 0, m.running)
	for i, s := range m.state {
		if s == Running {
			out = append(out, m.nodes[i])
		}
	}
	return out
}

// Done reports whether the run has nothing left to do: every node has
// settled, or the machine is halted and nothing runs.
func (m *Machine) Done() bool {
	return m.settled == len(m.nodes) || (m.halted && m.running == 0)
}

// Unsettled returns the nodes that have not settled, in ascending order.
func (m *Machine) Unsettled() []graph.Node {
	var out []graph.Node
	for i, s := range m.state {
		if !s.Terminal() {
			out = append(out, m.nodes[i])
		}
	}
	return out
}
