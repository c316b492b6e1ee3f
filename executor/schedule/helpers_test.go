package schedule_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/planner"
)

// Short constructors for test templates.
var (
	glob    = testgraph.Glob
	per     = testgraph.Per
	batched = testgraph.Batched
	dep     = testgraph.Dep
	tmpl    = testgraph.Tmpl
)

func build(t testing.TB, tm graph.Template, secs int) *graph.Graph {
	t.Helper()
	g, err := graph.Build(tm, secs)
	require.NoError(t, err)
	return g
}

// planOf plans a graph: every node when ids is empty, otherwise an
// all-clean graph with the given nodes edited.
func planOf(t testing.TB, g *graph.Graph, ids ...string) *planner.Plan {
	t.Helper()
	in := dirty.Input{}
	if len(ids) > 0 {
		in.States = dirty.NewStates(g.Len())
		for n := range g.Len() {
			in.States.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean})
		}
		for _, id := range ids {
			in.Marks = append(in.Marks, dirty.Mark{ID: id, Reason: dirty.ReasonEdited})
		}
	}
	set, err := dirty.Compute(g, in)
	require.NoError(t, err)
	return planner.New(set)
}

func lecturePlan(t testing.TB, secs int, ids ...string) *planner.Plan {
	t.Helper()
	return planOf(t, build(t, graph.Lecture(), secs), ids...)
}

func newMachine(t testing.TB, p *planner.Plan, c schedule.Config) *schedule.Machine {
	t.Helper()
	m, err := schedule.New(p, c)
	require.NoError(t, err)
	return m
}

func node(t testing.TB, g *graph.Graph, id string) graph.Node {
	t.Helper()
	n, err := g.Lookup(id)
	require.NoError(t, err)
	return n
}

// ids returns the nodes' IDs, or nil for none.
func ids(g *graph.Graph, nodes []graph.Node) []string {
	if len(nodes) == 0 {
		return nil
	}
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = g.NodeID(n)
	}
	return out
}

// drain starts everything the machine allows at now and returns the
// started nodes' IDs in order.
func drain(m *schedule.Machine, g *graph.Graph, now time.Time) []string {
	var out []string
	for {
		st, ok := m.Next(now)
		if !ok {
			return out
		}
		out = append(out, g.NodeID(st.Node))
	}
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// sim drives a machine with a simulated clock, as a runner would, and
// checks the machine against an independent model at every step. Each
// started node runs for a random, seeded duration; nodes in fails fail,
// in supersedes are superseded, and the others succeed.
type sim struct {
	t    testing.TB
	p    *planner.Plan
	g    *graph.Graph
	m    *schedule.Machine
	cfg  schedule.Config
	rng  *rand.Rand
	now  time.Time
	bulk bool // take more nodes with More after each Next
	// cancelAfter, if positive, cancels the run once that many jobs have
	// completed: each running node is cancelled, which halts the machine.
	cancelAfter int
	// probe asks CanStart, at now and far ahead, before each Next, and
	// checks that it answers as Next then does: CanStart changes nothing,
	// so a run with probes takes the same steps as one without.
	probe bool
	// refund is the chance that a started node gives its rate start back
	// at once, as a node kept by early cutoff does.
	refund float64
	// timed settles succeeded nodes with SucceedAt, not Succeed: the
	// batch windows of the nodes they release count from now either way.
	timed bool

	fails, supersedes map[graph.Node]bool
	// invalidates are invalidated when they succeed, or, outside the
	// plan, after the first completion.
	invalidates map[graph.Node]bool

	// The model, indexed by node.
	planned  []bool
	stageOf  []int
	state    []schedule.State
	limit    map[string]int
	running  []job
	perKey   map[string]int
	starts   map[string][]time.Time
	stageSet []int // settled nodes per stage
	stageLen []int // nodes per stage
	finished []int // StagesFinished, in report order
	maxKey   map[string]int
	maxAll   int
	// completions counts the completed jobs.
	completions int
	// readyAt is, by node, the transition after which the model made it
	// Ready (0: initially), for first come, first served across keys.
	readyAt     []int
	transitions int
	// readyTime is, by node, when the model made it Ready, for the batch
	// windows.
	readyTime []time.Time
	// idleChecks counts the calls of checkIdle and checkFirstCome, which
	// scan the plan: on large plans only every 16th scans.
	idleChecks int

	// callKind is, by kind, the kind whose bulk calls its nodes share
	// (Config.Shared), in the model: the first kind, in the template's
	// order, of its group with the same batch key and a node in the
	// plan; or the kind itself.
	callKind []int

	// log is the transcript of everything the machine said.
	log []string
}

type job struct {
	n   graph.Node
	end time.Time
}

func newSim(t testing.TB, p *planner.Plan, cfg schedule.Config, seed uint64) *sim {
	t.Helper()
	s := &sim{
		t: t, p: p, g: p.Graph, cfg: cfg, rng: rand.New(rand.NewPCG(seed, 7)), now: t0,
		fails: map[graph.Node]bool{}, supersedes: map[graph.Node]bool{}, invalidates: map[graph.Node]bool{},
		planned: make([]bool, p.Graph.Len()), stageOf: make([]int, p.Graph.Len()), limit: map[string]int{},
		state: make([]schedule.State, p.Graph.Len()), perKey: map[string]int{}, starts: map[string][]time.Time{},
		stageSet: make([]int, len(p.Stages)), stageLen: make([]int, len(p.Stages)),
		maxKey: map[string]int{}, readyAt: make([]int, p.Graph.Len()), readyTime: make([]time.Time, p.Graph.Len()),
	}
	for si, st := range p.Stages {
		for _, grp := range st.Groups {
			if grp.Kind == planner.Batch {
				s.limit[grp.BatchKey] = grp.Concurrency
			}
			for _, n := range grp.Nodes {
				s.planned[n], s.stageOf[n], s.state[n] = true, si, schedule.Pending
				s.stageLen[si]++
			}
		}
	}
	s.callKind = make([]int, p.Graph.Kinds())
	for k := range s.callKind {
		s.callKind[k] = k
	}
	inPlan := make([]bool, p.Graph.Kinds())
	for _, n := range p.Nodes() {
		inPlan[p.Graph.KindOf(n)] = true
	}
	for _, grp := range cfg.Shared {
		first := map[string]int{}
		for k := range p.Graph.Kinds() {
			key, _ := p.Graph.BatchKey(k)
			if key == "" || !inPlan[k] || !slices.Contains(grp, p.Graph.KindName(k)) {
				continue
			}
			if f, ok := first[key]; ok {
				s.callKind[k] = f
			} else {
				first[key] = k
			}
		}
	}
	s.m = newMachine(t, p, cfg)
	return s
}

// ck returns the kind whose calls n's nodes share, in the model.
func (s *sim) ck(n graph.Node) int { return s.callKind[s.g.KindOf(n)] }

func (s *sim) logf(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf("%s ", s.now.Sub(t0))+fmt.Sprintf(format, args...))
}

// depsDone reports whether every planned dependency of n succeeded.
func (s *sim) depsDone(n graph.Node) bool {
	for _, d := range s.g.Deps(n) {
		if s.planned[d] && s.state[d] != schedule.Succeeded {
			return false
		}
	}
	return true
}

func (s *sim) keyOf(n graph.Node) string {
	key, _ := s.g.BatchKey(s.g.KindOf(n))
	return key
}

// start records a step and checks every invariant of a start.
func (s *sim) start(st schedule.Step) {
	t, n := s.t, st.Node
	t.Helper()
	id := s.g.NodeID(n)
	require.True(t, s.planned[n], "started %s, which is not in the plan", id)
	require.Equal(t, schedule.Ready, s.state[n], "started %s, which the model has %s", id, s.state[n])
	require.True(t, s.depsDone(n), "started %s before its planned dependencies succeeded", id)
	require.Equal(t, s.keyOf(n), st.Key, "step key of %s", id)
	require.Equal(t, s.stageOf[n], st.Stage, "step stage of %s", id)
	require.Equal(t, s.g.KindName(s.g.KindOf(n)), st.Kind, "step kind of %s", id)
	require.Equal(t, s.g.SegmentOf(n), st.Segment, "step segment of %s", id)
	if s.cfg.Mode == schedule.Staged {
		for e := range st.Stage {
			require.Equal(t, s.stageCount(e), s.stageSet[e], "staged: %s of stage %d started before stage %d settled", id, st.Stage, e)
		}
	}
	s.state[n] = schedule.Running
	if st.Key != "" {
		s.perKey[st.Key]++
		require.LessOrEqual(t, s.perKey[st.Key], s.limit[st.Key], "batch key %q over its concurrency at %s", st.Key, id)
		s.maxKey[st.Key] = max(s.maxKey[st.Key], s.perKey[st.Key])
		if r, ok := s.cfg.Rates[st.Key]; ok {
			s.starts[st.Key] = append(s.starts[st.Key], s.now)
			ts := s.starts[st.Key]
			if len(ts) > r.Starts {
				require.GreaterOrEqual(t, s.now.Sub(ts[len(ts)-1-r.Starts]), r.Per,
					"batch key %q: %d starts within %v at %s", st.Key, r.Starts+1, r.Per, id)
			}
		}
	}
	if s.refund > 0 && s.rng.Float64() < s.refund {
		ok, err := s.m.Refund(n)
		require.NoError(t, err, "Refund of %s", id)
		if _, rated := s.cfg.Rates[st.Key]; rated && st.Key != "" {
			require.True(t, ok, "Refund of %s, just started under a rate", id)
			s.starts[st.Key] = s.starts[st.Key][:len(s.starts[st.Key])-1]
			s.logf("refund %s", id)
		} else {
			require.False(t, ok, "Refund of %s, which has no rate", id)
		}
	}
	s.running = append(s.running, job{n, s.now.Add(time.Duration(1+s.rng.IntN(20)) * time.Second)})
	if s.cfg.Workers > 0 {
		require.LessOrEqual(t, len(s.running), s.cfg.Workers, "global cap exceeded at %s", id)
	}
	s.maxAll = max(s.maxAll, len(s.running))
	require.Equal(t, len(s.running), s.m.Running())
	st2, _ := s.m.State(n)
	require.Equal(t, schedule.Running, st2)
	s.logf("start %s key=%q stage=%d", id, st.Key, st.Stage)
}

func (s *sim) stageCount(si int) int { return s.stageLen[si] }

// settle moves the model's node n to state st, counting it once.
func (s *sim) settle(n graph.Node, st schedule.State) {
	s.t.Helper()
	require.False(s.t, s.state[n].Terminal(), "%s settled twice", s.g.NodeID(n))
	if s.state[n] == schedule.Running {
		if k := s.keyOf(n); k != "" {
			s.perKey[k]--
		}
	}
	s.state[n] = st
	s.stageSet[s.stageOf[n]]++
}

// wantSkipped is what a failure of n skips: its planned dependents that
// have not settled, transitively, ascending.
func (s *sim) wantSkipped(n graph.Node) []graph.Node {
	seen := map[graph.Node]bool{}
	var out []graph.Node
	queue := []graph.Node{n}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, c := range s.g.Dependents(x) {
			if !s.planned[c] || seen[c] || s.state[c].Terminal() {
				continue
			}
			require.NotEqual(s.t, schedule.Running, s.state[c], "%s runs while its dependency %s did not succeed", s.g.NodeID(c), s.g.NodeID(x))
			seen[c] = true
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	slices.Sort(out)
	return out
}

// wantFinished returns the stages a transition should report: those
// now settled whose earlier stages are all settled, not yet reported.
func (s *sim) wantFinished() []int {
	var out []int
	for si := len(s.finished); si < len(s.p.Stages) && s.stageSet[si] == s.stageCount(si); si++ {
		out = append(out, si)
	}
	return out
}

// complete ends the running job j.
func (s *sim) complete(j job) {
	t := s.t
	t.Helper()
	s.now = j.end
	s.transitions++
	n := j.n
	id := s.g.NodeID(n)
	var (
		r          schedule.Result
		err        error
		want       []graph.Node
		verb       string
		finalState schedule.State
	)
	switch {
	case s.fails[n]:
		want = s.wantSkipped(n)
		r, err = s.m.Fail(n)
		verb, finalState = "fail", schedule.Failed
	case s.supersedes[n]:
		want = s.wantSkipped(n)
		r, err = s.m.Supersede(n)
		verb, finalState = "supersede", schedule.Superseded
	case s.timed:
		r, err = s.m.SucceedAt(n, s.now)
		verb, finalState = "succeed", schedule.Succeeded
	default:
		r, err = s.m.Succeed(n)
		verb, finalState = "succeed", schedule.Succeeded
	}
	require.NoError(t, err, "%s %s", verb, id)
	s.settle(n, finalState)
	for _, c := range want {
		s.settle(c, schedule.Skipped)
	}
	require.Equal(t, ids(s.g, want), ids(s.g, r.Skipped), "%s %s: skipped", verb, id)
	wantStages := s.wantFinished()
	require.Equal(t, wantStages, r.StagesFinished, "%s %s: stages finished", verb, id)
	s.finished = append(s.finished, r.StagesFinished...)
	require.Equal(t, ids(s.g, s.readyUp()), ids(s.g, r.Ready), "%s %s: made ready", verb, id)
	// Every node's state agrees with the model: checked after every
	// transition on small plans, and on large ones every 16th and for the
	// nodes this one touched (starts check the rest as they happen).
	s.completions++
	check := s.p.Nodes()
	if len(check) > 400 && s.completions%16 != 0 {
		check = append(append([]graph.Node{n}, want...), s.g.Dependents(n)...)
	}
	for _, x := range check {
		if !s.planned[x] {
			continue
		}
		if got, ok := s.m.State(x); !ok || got != s.state[x] {
			t.Fatalf("after %s %s: state of %s is %s (in plan: %v), want %s", verb, id, s.g.NodeID(x), got, ok, s.state[x])
		}
	}
	s.logf("%s %s skipped=%v stages=%v", verb, id, ids(s.g, r.Skipped), r.StagesFinished)
	if finalState == schedule.Succeeded && s.invalidates[n] {
		s.invalidate(n)
	}
	if s.completions == 1 {
		for _, x := range sortedNodes(s.invalidates) {
			if !s.planned[x] {
				s.invalidate(x)
			}
		}
	}
}

func sortedNodes(set map[graph.Node]bool) []graph.Node {
	out := make([]graph.Node, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// wantInvalidated is what invalidating x skips: nothing if x is planned
// and did not succeed; otherwise every planned node that depends on x,
// through any node, and has not started; ascending.
func (s *sim) wantInvalidated(x graph.Node) []graph.Node {
	if s.planned[x] && s.state[x] != schedule.Succeeded {
		return nil
	}
	seen := map[graph.Node]bool{x: true}
	var out []graph.Node
	queue := []graph.Node{x}
	for len(queue) > 0 {
		y := queue[0]
		queue = queue[1:]
		for _, c := range s.g.Dependents(y) {
			if seen[c] {
				continue
			}
			seen[c] = true
			queue = append(queue, c)
			if s.planned[c] && (s.state[c] == schedule.Pending || s.state[c] == schedule.Ready) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// readyUp makes the model's newly unblocked nodes ready: those whose
// planned dependencies succeeded, in a stage that is open. It returns
// them, ascending, or nil: what the transition's Result.Ready lists.
func (s *sim) readyUp() []graph.Node {
	var out []graph.Node
	for _, x := range s.p.Nodes() {
		if s.state[x] == schedule.Pending && s.depsDone(x) && s.open(x) {
			s.state[x] = schedule.Ready
			s.readyAt[x] = s.transitions
			s.readyTime[x] = s.now
			out = append(out, x)
		}
	}
	return out
}

// invalidate invalidates x in the machine and the model, and checks what
// it skipped and finished.
func (s *sim) invalidate(x graph.Node) {
	t := s.t
	t.Helper()
	s.transitions++
	want := s.wantInvalidated(x)
	r, err := s.m.Invalidate(x)
	require.NoError(t, err, "invalidate %s", s.g.NodeID(x))
	for _, c := range want {
		s.settle(c, schedule.Skipped)
	}
	require.Equal(t, ids(s.g, want), ids(s.g, r.Skipped), "invalidate %s: skipped", s.g.NodeID(x))
	require.Equal(t, s.wantFinished(), r.StagesFinished, "invalidate %s: stages finished", s.g.NodeID(x))
	s.finished = append(s.finished, r.StagesFinished...)
	// Skipping the rest of a stage opens the next one, in Staged mode.
	require.Equal(t, ids(s.g, s.readyUp()), ids(s.g, r.Ready), "invalidate %s: made ready", s.g.NodeID(x))
	for _, x := range s.p.Nodes() {
		got, _ := s.m.State(x)
		require.Equal(t, s.state[x].String(), got.String(), "after invalidate %s: state of %s", s.g.NodeID(x), s.g.NodeID(x))
	}
	s.logf("invalidate %s skipped=%v stages=%v", s.g.NodeID(x), ids(s.g, r.Skipped), r.StagesFinished)
}

// open reports whether n's stage may start: always in Dataflow; in
// Staged once every earlier stage has settled.
func (s *sim) open(n graph.Node) bool {
	if s.cfg.Mode != schedule.Staged {
		return true
	}
	for e := range s.stageOf[n] {
		if s.stageSet[e] != s.stageCount(e) {
			return false
		}
	}
	return true
}

// run drives the machine to its end and returns the transcript.
func (s *sim) run() []string {
	t := s.t
	t.Helper()
	for _, n := range s.p.Nodes() {
		if s.depsDone(n) && s.open(n) {
			s.state[n] = schedule.Ready
			s.readyTime[n] = s.now
		}
	}
	for _, n := range s.p.Nodes() {
		got, _ := s.m.State(n)
		require.Equal(t, s.state[n].String(), got.String(), "initial state of %s", s.g.NodeID(n))
	}
	for steps := 0; ; steps++ {
		require.Less(t, steps, 100*s.p.Len()+100, "the run does not end")
		for {
			var can bool
			if s.probe {
				s.m.CanStart(s.now.Add(24 * time.Hour))
				can = s.m.CanStart(s.now)
			}
			st, ok := s.m.Next(s.now)
			if s.probe {
				require.Equal(t, ok, can, "CanStart(%v) before Next", s.now)
			}
			if !ok {
				s.checkIdle()
				break
			}
			s.checkFirstCome(st.Node)
			s.start(st)
			// The call takes nodes while More gives them, for any node of
			// the call as like: the machine, not the driver, stops it at
			// MaxBatch.
			for call := []graph.Node{st.Node}; s.bulk; {
				like := call[int(st.Node)%len(call)]
				more, ok := s.m.More(s.now, like)
				if !ok {
					s.checkMoreNone(like, len(call))
					break
				}
				require.Equal(t, s.ck(st.Node), s.ck(more.Node), "More gave a kind that shares no call with %s: %s", s.g.NodeID(st.Node), s.g.NodeID(more.Node))
				require.Equal(t, st.Key, more.Key, "More gave another key")
				s.start(more)
				call = append(call, more.Node)
				if s.cfg.MaxBatch > 0 {
					require.LessOrEqual(t, len(call), s.cfg.MaxBatch, "at %v More gave a call of %s more than MaxBatch nodes: %v",
						s.now.Sub(t0), s.g.NodeID(st.Node), ids(s.g, call))
				}
			}
		}
		if s.m.Done() {
			break
		}
		// The next event: the earliest completion (ties by node), or the
		// rate limit's wake-up if sooner.
		wake, hasWake := s.m.Wake()
		if len(s.running) == 0 {
			require.True(t, hasWake, "stuck: nothing runs, nothing may start, not done; unsettled %v", ids(s.g, s.m.Unsettled()))
		}
		if hasWake {
			require.True(t, wake.After(s.now), "Wake %v is not after now %v", wake, s.now)
		}
		if len(s.running) > 0 {
			slices.SortStableFunc(s.running, func(a, b job) int {
				if c := a.end.Compare(b.end); c != 0 {
					return c
				}
				return int(a.n - b.n)
			})
			if !hasWake || !wake.Before(s.running[0].end) {
				j := s.running[0]
				s.running = s.running[1:]
				s.complete(j)
				if s.cancelAfter > 0 && s.completions >= s.cancelAfter {
					s.cancel()
					return s.log
				}
				continue
			}
		}
		s.now = wake
	}
	require.Empty(t, s.running)
	require.Equal(t, s.p.Len(), s.m.Settled(), "settled count")
	require.Empty(t, s.m.Unsettled())
	for _, n := range s.p.Nodes() {
		require.True(t, s.state[n].Terminal(), "%s never settled", s.g.NodeID(n))
	}
	// Every stage was reported finished once, in order.
	want := make([]int, len(s.p.Stages))
	for i := range want {
		want[i] = i
	}
	require.Equal(t, want, s.finished, "stages finished over the run")
	return s.log
}

// cancel cancels the run as a runner does: it halts the machine, as the
// first Cancel does, and cancels every running node, ascending. Nothing
// may start after it; the machine is done once nothing runs, and the
// nodes not started stay pending or ready (a stage that the cancel
// finishes opens the next one, though nothing of it can start).
func (s *sim) cancel() {
	t := s.t
	t.Helper()
	if len(s.running) == 0 {
		s.m.Halt()
	}
	slices.SortFunc(s.running, func(a, b job) int { return int(a.n - b.n) })
	for _, j := range s.running {
		id := s.g.NodeID(j.n)
		r, err := s.m.Cancel(j.n)
		require.NoError(t, err, "cancel %s", id)
		require.True(t, s.m.Halted(), "cancel %s: the machine is halted", id)
		require.Empty(t, r.Skipped, "cancel %s: a cancel skips nothing", id)
		s.settle(j.n, schedule.Cancelled)
		require.Equal(t, s.wantFinished(), r.StagesFinished, "cancel %s: stages finished", id)
		s.finished = append(s.finished, r.StagesFinished...)
		// A stage the cancel finished opens the next one, halted.
		require.Equal(t, ids(s.g, s.readyUp()), ids(s.g, r.Ready), "cancel %s: made ready", id)
		s.logf("cancel %s stages=%v", id, r.StagesFinished)
		_, ok := s.m.Next(s.now)
		require.False(t, ok, "a start after cancelling %s", id)
	}
	s.running = nil
	require.True(t, s.m.Done(), "done once the cancelled nodes settled")
	require.Zero(t, s.m.Running())
	_, ok := s.m.Next(s.now.Add(time.Hour))
	require.False(t, ok, "a start after the cancel")
	var unsettled []graph.Node
	for _, n := range s.p.Nodes() {
		got, _ := s.m.State(n)
		require.Equal(t, s.state[n].String(), got.String(), "state of %s after the cancel", s.g.NodeID(n))
		if !s.state[n].Terminal() {
			unsettled = append(unsettled, n)
		}
	}
	require.Equal(t, ids(s.g, unsettled), ids(s.g, s.m.Unsettled()), "unsettled after the cancel")
}

// finalStates renders the model's final state of every planned node.
func (s *sim) finalStates() []string {
	var out []string
	for _, n := range s.p.Nodes() {
		out = append(out, s.g.NodeID(n)+" "+s.state[n].String())
	}
	return out
}

// transcript joins a log for byte comparison.
func transcript(log []string) string { return strings.Join(log, "\n") }

// blocked reports whether a node of key may not start at now for the
// key's limit or rate, in the model, and, when only the rate stops it,
// when the rate next allows a start.
func (s *sim) blocked(key string) (bool, time.Time) {
	if key == "" {
		return false, time.Time{}
	}
	if s.perKey[key] >= s.limit[key] {
		return true, time.Time{}
	}
	r, ok := s.cfg.Rates[key]
	if !ok {
		return false, time.Time{}
	}
	var live []time.Time
	for _, at := range s.starts[key] {
		if s.now.Before(at.Add(r.Per)) {
			live = append(live, at)
		}
	}
	if len(live) < r.Starts {
		return false, time.Time{}
	}
	return true, live[0].Add(r.Per)
}

// checkMoreNone checks, when More for like, a running node of a call
// of size nodes, returned nothing, that nothing else could start in that
// call: the call has MaxBatch nodes, or the halt, the global cap or
// like's key's concurrency or rate stops a start, or no node of like's
// kind and key but like is Ready.
func (s *sim) checkMoreNone(like graph.Node, size int) {
	t := s.t
	t.Helper()
	key := s.keyOf(like)
	if s.m.Halted() || (s.cfg.MaxBatch > 0 && size >= s.cfg.MaxBatch) ||
		(s.cfg.Workers > 0 && len(s.running) >= s.cfg.Workers) {
		return
	}
	if stop, _ := s.blocked(key); stop {
		return
	}
	for _, n := range s.p.Nodes() {
		if n != like && s.state[n] == schedule.Ready && s.ck(n) == s.ck(like) && s.keyOf(n) == key {
			t.Fatalf("at %v More(%s) gave nothing to a call of %d nodes (MaxBatch %d), but %s is ready and nothing stops it",
				s.now.Sub(t0), s.g.NodeID(like), size, s.cfg.MaxBatch, s.g.NodeID(n))
		}
	}
}

// checkIdle checks, when Next starts nothing, that the machine holds no
// node back without cause: every Ready node is stopped by the halt, the
// global cap, its key's concurrency or its key's rate, or waits behind
// its kind's head for the head's batch window, which holds it back for
// less than the window since it became ready; and that Wake is exactly
// when the earliest rate that alone stops a Ready node allows a start,
// or the earliest such window ends, or none.
func (s *sim) checkIdle() {
	t := s.t
	t.Helper()
	if s.m.Halted() || (s.cfg.Workers > 0 && len(s.running) >= s.cfg.Workers) || s.skipScan() {
		return
	}
	var want time.Time
	holds := s.windowHolds()
	for _, n := range s.p.Nodes() {
		if s.state[n] != schedule.Ready {
			continue
		}
		stop, at := s.blocked(s.keyOf(n))
		if !stop {
			h, held := holds[s.ck(n)]
			require.True(t, held, "at %v Next started nothing, but %s is ready and nothing stops it", s.now.Sub(t0), s.g.NodeID(n))
			require.Less(t, s.now.Sub(s.readyTime[n]), h.window, "at %v: %s held back for the window of %s for longer than it",
				s.now.Sub(t0), s.g.NodeID(n), s.g.NodeID(h.head))
			at = h.until
		}
		if !at.IsZero() && (want.IsZero() || at.Before(want)) {
			want = at
		}
	}
	wake, ok := s.m.Wake()
	if want.IsZero() {
		require.False(t, ok, "at %v: Wake %v, but no rate or window holds a ready node back", s.now.Sub(t0), wake.Sub(t0))
		return
	}
	require.True(t, ok, "at %v: no Wake, but a rate or window holds a ready node back until %v", s.now.Sub(t0), want.Sub(t0))
	require.Equal(t, want.Sub(t0), wake.Sub(t0), "at %v: Wake", s.now.Sub(t0))
}

// checkFirstCome checks that Next's node n became ready no later than
// any Ready node that could start instead: first come, first served
// across keys; and that no batch window holds n back.
func (s *sim) checkFirstCome(n graph.Node) {
	t := s.t
	t.Helper()
	if s.skipScan() {
		return
	}
	holds := s.windowHolds()
	if h, held := holds[s.ck(n)]; held {
		t.Fatalf("at %v Next started %s, which the window of %s holds until %v", s.now.Sub(t0), s.g.NodeID(n), s.g.NodeID(h.head), h.until.Sub(t0))
	}
	for _, x := range s.p.Nodes() {
		if s.state[x] != schedule.Ready || s.readyAt[x] >= s.readyAt[n] {
			continue
		}
		stop, _ := s.blocked(s.keyOf(x))
		_, held := holds[s.ck(x)]
		require.True(t, stop || held, "at %v Next started %s (ready after transition %d) before %s (ready after %d), which nothing stops",
			s.now.Sub(t0), s.g.NodeID(n), s.readyAt[n], s.g.NodeID(x), s.readyAt[x])
	}
}

// skipScan reports whether to skip a check that scans the plan: on plans
// of over 400 nodes, all but every 16th, as complete does.
func (s *sim) skipScan() bool {
	s.idleChecks++
	return s.p.Len() > 400 && s.idleChecks%16 != 0
}

// window returns kind k's batch window in the model: none for a kind
// without a batch key, and in Staged mode.
func (s *sim) window(k int) time.Duration {
	if key, _ := s.g.BatchKey(k); key == "" || s.cfg.Mode != schedule.Dataflow {
		return 0
	}
	// Kinds that share calls wait as one, for the longest of their
	// windows.
	var w time.Duration
	for o, ck := range s.callKind {
		if ck == k {
			w = max(w, s.cfg.Windows[s.g.KindName(o)])
		}
	}
	return w
}

// room returns how many nodes of key a bulk call could take now: the
// key's free slots, within the global cap, MaxBatch and the key's rate.
func (s *sim) room(key string) int {
	room := s.limit[key] - s.perKey[key]
	if s.cfg.Workers > 0 {
		room = min(room, s.cfg.Workers-len(s.running))
	}
	if s.cfg.MaxBatch > 0 {
		room = min(room, s.cfg.MaxBatch)
	}
	if r, ok := s.cfg.Rates[key]; ok {
		live := 0
		for _, at := range s.starts[key] {
			if s.now.Before(at.Add(r.Per)) {
				live++
			}
		}
		room = min(room, r.Starts-live)
	}
	return room
}

// waitsOnOwnKind reports whether n, Pending, waits on a planned node of
// its kind that has not started: n cannot come while its kind's window
// holds that one back.
func (s *sim) waitsOnOwnKind(n graph.Node) bool {
	for _, d := range s.g.Deps(n) {
		if s.planned[d] && s.ck(d) == s.ck(n) && (s.state[d] == schedule.Pending || s.state[d] == schedule.Ready) {
			return true
		}
	}
	return false
}

// hold is a batch window that holds a kind's head back.
type hold struct {
	head   graph.Node
	window time.Duration
	until  time.Time
}

// windowHolds returns, by kind (kinds that share calls as one, under
// their callKind), the window that holds the kind's head
// back at now, in the model: the head is the kind's Ready node that
// became ready first (ties by node, the order in which a transition
// makes nodes ready), and its window holds it, and the kind's other
// Ready nodes, while fewer nodes of its kind are Ready than a call of
// its key could take, more are Pending (but for those that wait on one
// of their kind that has not started), and now is within the window
// since it became ready. Nodes of other kinds that share the key are
// not held.
func (s *sim) windowHolds() map[int]hold {
	if len(s.cfg.Windows) == 0 {
		return nil
	}
	ready, pending := map[int]int{}, map[int]int{}
	heads := map[int]graph.Node{}
	for _, n := range s.p.Nodes() {
		k := s.ck(n)
		switch s.state[n] {
		case schedule.Pending:
			if !s.waitsOnOwnKind(n) {
				pending[k]++
			}
		case schedule.Ready:
			ready[k]++
			if h, ok := heads[k]; !ok || s.readyAt[n] < s.readyAt[h] {
				heads[k] = n // ascending nodes: ties keep the first
			}
		}
	}
	out := map[int]hold{}
	for k, h := range heads {
		key := s.keyOf(h)
		w := s.window(k)
		if key == "" || w == 0 || pending[k] == 0 || ready[k] >= s.room(key) {
			continue
		}
		if until := s.readyTime[h].Add(w); s.now.Before(until) {
			out[k] = hold{head: h, window: w, until: until}
		}
	}
	return out
}
