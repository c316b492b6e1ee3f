package executor

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	quotepkg "github.com/regengraph/regen/internal/quote"
	"github.com/regengraph/regen/planner"
	"github.com/regengraph/regen/progress"
)

// emitter numbers a run's events and publishes them in order. A failing
// sink is logged, never returned: it must not fail the run.
type emitter struct {
	mu     sync.Mutex
	sink   progress.Sink
	log    *slog.Logger
	ctx    context.Context // not cancelled with the run
	runID  string
	key    string
	seq    uint64
	done   int  // the highest Done sent
	closed bool // the final event went out: nothing follows it
	// eta is the last ETA sent that was known (not 0), and etaAt when:
	// an event that carries 0 while nodes are left gets it, counted
	// down (see put).
	eta   time.Duration
	etaAt time.Time
	// A failing sink is logged once when it starts failing, then once a
	// sinkWarnEvery while it goes on, and once when it recovers, each
	// time with the count of events it lost: not once an event, which
	// would flood the host's log with thousands of lines a run.
	lost     int       // events the sink failed to take, in all
	failing  int       // of those, since the last one it took
	warnedAt time.Time // the last warning of a failing sink
	// stages holds the summary line of each stage of the round's plan,
	// and shown which stages' stage.started went out, this round (see
	// opens): a stage starts with the first event of one of its nodes
	// that started or settled, not when a worker takes its first node,
	// which a cancel may keep from starting. Nil outside a run's rounds.
	stages []string
	shown  []bool
	// touched says which stages had an event of one of their nodes this
	// round: one that had none (its nodes let go unstarted by a cancel)
	// gets no stage.finished either.
	touched []bool
	// round is the round's number, from 1; sizes holds the number of
	// nodes of each stage of its plan, and settled the number of each
	// stage's settling events sent; batches holds each stage's batches,
	// counted the same way: the Round, StageTotal, StageDone, BatchTotal
	// and BatchDone of every event with a stage, set in put, in Seq
	// order.
	round   int
	sizes   []int
	settled []int
	batches [][]batchCount
	// unfinished says that a stage of the round had its stage.finished
	// withheld (see emitIf): the stages after it get none either.
	unfinished bool
}

// batchCount counts the nodes of a batch of a stage, and their settling
// events sent.
type batchCount struct {
	key           string
	size, settled int
}

// newRound sets the stages of round round's plan, by their summary
// lines, their numbers of nodes and their batches, none of them started
// yet.
func (em *emitter) newRound(round int, stages []string, sizes []int, batches [][]batchCount) {
	em.mu.Lock()
	defer em.mu.Unlock()
	em.stages, em.shown, em.touched = stages, make([]bool, len(stages)), make([]bool, len(stages))
	em.round, em.sizes, em.settled, em.batches = round, sizes, make([]int, len(stages)), batches
	em.unfinished = false
}

// settling reports whether t settles a node: a stage's StageDone counts
// these events.
func settling(t progress.Type) bool {
	switch t {
	case progress.NodeSucceeded, progress.NodeUnchanged, progress.NodeFailed, progress.NodeSkipped,
		progress.NodeSuperseded, progress.NodeCancelled:
		return true
	}
	return false
}

// batchKeyOf returns the batch key of kind ki of g, "" for none: that of
// the plan group of each of its nodes, as planner.New makes a batch of
// every kind with a key.
func batchKeyOf(g *graph.Graph, ki int) string {
	key, _ := g.BatchKey(ki)
	return key
}

// opens reports the stage that ev starts, if its stage.started has not
// gone out yet this round: ev is a node's start, or its settlement
// without a start (node.unchanged, node.failed), or the stage.finished
// of a stage whose nodes were all skipped. A skipped node's event may
// come before its stage starts (see the package doc's Progress). Called
// with mu held.
func (em *emitter) opens(ev *progress.Event) (int, bool) {
	if em.shown == nil || ev.Stage < 0 || ev.Stage >= len(em.shown) || em.shown[ev.Stage] {
		return 0, false
	}
	switch ev.Type {
	case progress.NodeSkipped, progress.NodeRetrying, progress.Message:
		return 0, false
	case progress.StageFinished:
	default:
		if ev.Node == "" {
			return 0, false
		}
	}
	return ev.Stage, true
}

// sinkWarnEvery is how often a sink that keeps failing is logged again.
const sinkWarnEvery = time.Minute

func (em *emitter) emit(ev progress.Event) { em.emitIf(ev, nil) }

// emitIf emits ev if ok, when given, reports true under the emitter's
// lock: a note is checked against its call's state there, so that one
// sent as the call returns goes out before the node's end, or not at all,
// and a node's start against the run's cancel. The first event of a stage
// this round (see opens) goes out after the stage's stage.started, which
// so goes out only once one of its nodes has started or settled.
func (em *emitter) emitIf(ev progress.Event, ok func() bool) {
	if em.sink == nil {
		return
	}
	em.mu.Lock()
	defer em.mu.Unlock()
	if ok != nil && !ok() {
		return
	}
	if em.closed {
		// A late note from a generator that outlived its run: the final
		// event must stay the last (progress.Type.Final).
		return
	}
	if ev.Type == progress.StageFinished && ev.Stage >= 0 && ev.Stage < len(em.touched) && ev.Stage < len(em.sizes) &&
		(em.unfinished || !em.touched[ev.Stage] || em.settled[ev.Stage] < em.sizes[ev.Stage]) {
		// None of its nodes started or settled, or some never settled: a
		// cancel let them go unstarted (the scheduling machine counts
		// them settled), so the stage did not finish (see the package
		// doc's Progress); nor do the stages after it, as stages finish
		// in order.
		em.unfinished = true
		return
	}
	if ev.Node != "" && ev.Stage >= 0 && ev.Stage < len(em.touched) {
		em.touched[ev.Stage] = true
	}
	if s, ok := em.opens(&ev); ok {
		em.shown[s] = true
		em.put(progress.Event{Type: progress.StageStarted, Stage: s, Message: em.stages[s],
			Done: em.done, Total: ev.Total, ETA: ev.ETA})
	}
	em.put(ev)
}

// put numbers ev and publishes it. Called with mu held.
func (em *emitter) put(ev progress.Event) {
	em.closed = ev.Type.Final()
	capText(&ev)
	// Events sent from workers (node started or retrying, generator notes)
	// read the count outside mu: one may carry a count older than the
	// event before it, and a progress bar never goes back. The others
	// carry the exact count.
	if ev.Done < em.done && (ev.Type == progress.NodeStarted || ev.Type == progress.NodeRetrying || ev.Type == progress.Message) {
		ev.Done = em.done
	}
	em.done = max(em.done, ev.Done)
	if s := ev.Stage; s >= 0 && s < len(em.sizes) {
		// Counted here, in Seq order, so that StageDone and BatchDone
		// never go back.
		settles := settling(ev.Type)
		if settles {
			em.settled[s]++
		}
		ev.Round, ev.StageDone, ev.StageTotal = em.round, em.settled[s], em.sizes[s]
		if ev.BatchKey != "" {
			// A stage has one batch of each key (planner.Stage), and few.
			for i := range em.batches[s] {
				if b := &em.batches[s][i]; b.key == ev.BatchKey {
					if settles {
						b.settled++
					}
					ev.BatchDone, ev.BatchTotal = b.settled, b.size
					break
				}
			}
		}
	}
	now := time.Now()
	// Once known, the ETA is never 0 (unknown) again while nodes are
	// left: an event read before it was known (a worker's, or a note's,
	// outside mu) or the stage.started of a stage whose first event
	// settles the run's last node (its ETA 0, as nothing is left after
	// it) gets the last one sent, counted down.
	if ev.ETA == 0 && em.eta > 0 && !ev.Type.Final() && ev.Done < ev.Total {
		ev.ETA = countdown(em.eta, now.Sub(em.etaAt))
	}
	if ev.ETA > 0 {
		em.eta, em.etaAt = ev.ETA, now
	}
	em.seq++
	ev.RunID, ev.GraphKey, ev.Seq, ev.Time = em.runID, em.key, em.seq, now
	em.logged(em.publish(ev), ev)
}

// logged logs the outcome of ev's publish, err, as the emitter's comment
// says. Called with mu held.
func (em *emitter) logged(err error, ev progress.Event) {
	if err == nil {
		if em.failing > 0 {
			em.log.Info("regen: progress sink recovered", "run", em.runID, "graph", em.key, "seq", ev.Seq, "lost", em.failing)
			em.failing = 0
		}
	} else {
		em.lost++
		em.failing++
		switch {
		case em.failing == 1:
			em.log.Warn("regen: progress sink failed; its next failures are counted, and logged once a minute",
				"run", em.runID, "graph", em.key, "seq", ev.Seq, "type", ev.Type, "err", err)
			em.warnedAt = ev.Time
		case ev.Time.Sub(em.warnedAt) >= sinkWarnEvery:
			em.log.Warn("regen: progress sink still failing", "run", em.runID, "graph", em.key, "seq", ev.Seq, "type", ev.Type,
				"lost", em.failing, "err", err)
			em.warnedAt = ev.Time
		}
	}
	if ev.Type.Final() && em.lost > 0 {
		em.log.Warn("regen: progress sink lost events of the run", "run", em.runID, "graph", em.key, "lost", em.lost, "events", em.seq)
	}
}

// MaxEventText is the most bytes of each free-text field of an event
// (Message, Reasoning, Error and PreviewURL) that the executor sends.
// Generators' notes and errors can carry anything, such as a provider's
// whole response: a longer Message, Reasoning or Error is cut at a
// character boundary and ends with "… [cut from N bytes]", within the
// limit, and a longer PreviewURL, which a cut would break, is left out,
// and the Message then ends with "[preview URL of N bytes left out]", so
// that a note of a preview alone does not go out as an empty message.
// With it an event's JSON stays under 1 MiB (progress/sse's
// MaxEventSize, which its Client refuses beyond) unless the run ID and
// graph key take more than 200 KiB, and a sink that keeps a run's last
// events (a Redis stream, progress.Memory) holds at most about 4 ×
// MaxEventText for each, but for the event that starts each round, whose
// outline of its plan may take more (see MaxOutline). The error texts
// the executor stores, a failed node's dirty.State.LastError and a run's
// Record.Error, are cut the same way; the errors that Run and Wait
// return keep each node's error whole (in [RunError.Failed], whose text
// lists at most ten, each cut at 1,000 bytes).
const MaxEventText = 32 << 10

// MaxOutline is the most stages and groups, together, of the outline of
// a round's plan that the round's first event carries (Event.Plan of
// run.started, or of the message that starts a later round): a plan
// whose outline would have more gets none, and a view learns each
// stage's totals from its events. An outline has a group for each batch
// of a stage, and one for the single nodes of each kind in it, so a
// stage has at most one for each kind of the template: the lecture's
// four stages have six, ten entries in all. A group's JSON takes at most about 320 bytes
// (a kind name and a batch key of 128 bytes each), so that the largest
// outline takes about 650 KB, and run.started's JSON stays under
// progress/sse's MaxEventSize of 1 MiB unless the run ID and graph key
// take more than 300 KiB; a plan of thousands of stages, a long chain of
// nodes, has none.
const MaxOutline = 2048

// outline returns the outline of p, the Plan of the first event of its
// round (see progress.Event.Plan), or nil if it would have more than
// MaxOutline stages and groups. Its groups are the entries of each
// stage's summary line (planner.Plan.Summary), in order: each batch, and
// each run of single nodes of one kind, which the planner places one
// after another. It costs O(D) for D planned nodes, the cost of the
// plan's summary lines, which the round writes too.
func outline(g *graph.Graph, p *planner.Plan) *progress.Outline {
	entries := len(p.Stages)
	if entries > MaxOutline {
		return nil
	}
	out := &progress.Outline{}
	if len(p.Stages) > 0 {
		// No stages is nil, as the event's JSON reads it back.
		out.Stages = make([]progress.OutlineStage, len(p.Stages))
	}
	for s, st := range p.Stages {
		os := &out.Stages[s]
		add := func(grp progress.OutlineGroup) bool {
			if entries++; entries > MaxOutline {
				return false
			}
			os.Groups = append(os.Groups, grp)
			return true
		}
		for _, grp := range st.Groups {
			if len(grp.Nodes) == 0 {
				continue // none in a plan that New made
			}
			os.Nodes += len(grp.Nodes)
			if grp.Kind == planner.Batch {
				// The batch's kind, as its summary line names it, if it
				// has one.
				ki := g.KindOf(grp.Nodes[0])
				for _, n := range grp.Nodes[1:] {
					if g.KindOf(n) != ki {
						ki = -1
						break
					}
				}
				kind := ""
				if ki >= 0 {
					kind = g.KindName(ki)
				}
				if !add(progress.OutlineGroup{Kind: kind, BatchKey: grp.BatchKey, Nodes: len(grp.Nodes),
					Concurrency: grp.Concurrency}) {
					return nil
				}
				continue
			}
			for _, n := range grp.Nodes {
				kind := g.KindName(g.KindOf(n))
				if last := len(os.Groups) - 1; last >= 0 && os.Groups[last].BatchKey == "" && os.Groups[last].Kind == kind {
					os.Groups[last].Nodes++
				} else if !add(progress.OutlineGroup{Kind: kind, Nodes: 1}) {
					return nil
				}
			}
		}
	}
	return out
}

// capText cuts ev's free-text fields to MaxEventText.
func capText(ev *progress.Event) {
	ev.Reasoning = cutText(ev.Reasoning)
	ev.Error = cutText(ev.Error)
	if n := len(ev.PreviewURL); n > MaxEventText {
		ev.PreviewURL = ""
		left := fmt.Sprintf("[preview URL of %d bytes left out]", n)
		if ev.Message == "" {
			ev.Message = left
		} else {
			ev.Message = cutTo(ev.Message, MaxEventText-len(left)-1) + " " + left
		}
		return
	}
	ev.Message = cutText(ev.Message)
}

// cutText returns s if it has at most MaxEventText bytes, else its start,
// cut at a character boundary, and a marker that says how long it was.
func cutText(s string) string { return cutTo(s, MaxEventText) }

// cutTo is cutText within limit bytes.
func cutTo(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	mark := fmt.Sprintf("… [cut from %d bytes]", len(s))
	end := limit - len(mark)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + mark
}

// publish hands one event to the sink; a panic in the sink is an error,
// like any other sink failure.
func (em *emitter) publish(ev progress.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sink panicked: %v", p)
		}
	}()
	return em.sink.Publish(em.ctx, ev)
}

// reporter turns a generator's notes into message events. Only the notes
// sent during the call count: those of a call that was abandoned are
// dropped, as its result is, and so are those sent after it returned (its
// inflight may serve another node by then).
type reporter struct {
	run     *run
	node    string
	stage   int32 // int32s: see attemptCtx
	attempt int32
	call    *inflight
	word    uint64 // the call's state word while it runs
}

func (r *reporter) Report(n Note) {
	if r.call != nil && r.call.state.Load() != r.word {
		return
	}
	run := r.run
	if run.em.sink == nil {
		return
	}
	// The kind and its batch key from the ID: a reporter has no room for
	// them (see callState).
	id, _ := graph.ParseID(r.node)
	var key string
	if ki, ok := run.g.KindIndex(id.Kind); ok {
		key = batchKeyOf(run.g, ki)
	}
	ev := progress.Event{Type: progress.Message, Node: r.node, Kind: id.Kind, BatchKey: key, Stage: int(r.stage), Attempt: int(r.attempt),
		Message: n.Message, PreviewURL: n.PreviewURL, Reasoning: n.Reasoning,
		Done: int(run.settled.Load()), Total: int(run.planned.Load()), ETA: run.etaNow()}
	if r.call == nil {
		run.em.emit(ev)
		return
	}
	// Checked again under the emitter's lock: the call's state word flips
	// when Generate returns, before the node's result is submitted, so a
	// note that passes here goes out before the node's end event.
	run.em.emitIf(ev, func() bool { return r.call.state.Load() == r.word })
}

// minETA is the least ETA of a run with work left, once its costs are
// known: a node that takes longer than its kind's nodes did is expected
// to end any moment, and an ETA of 0 would read as unknown.
const minETA = time.Second

// eta estimates the time left in a round from the planner's lower bound.
// A kind's nodes cost the mean duration of those generated so far, in
// this round or an earlier one, or before any its KindOptions.Estimate;
// a kind with neither costs the mean of the kinds that have one, so that
// the work not seen yet counts too. A node under way costs what is left
// of that, from the start of its attempt, and during a retry's backoff
// what is left of the wait as well. The bound follows the mode (one
// stage after another in Staged) and the rates and limits of the batch
// keys; a key's next start waits for the executor's quota too (see
// quota.wait), which counts the starts of retries, a limited key's calls
// share its limit with the other runs' nodes of the key not settled (see
// limitBound), and a node in a
// retry's backoff still has its start to take (see at), unless the
// retry only puts the output it made, or commits it (see run.putRetry). It is
// recomputed when a kind's first duration is seen, when a node starts a
// retry's backoff (see afresh), and at most once a second otherwise; in
// between it counts down. It is guarded by the run's mu.
type eta struct {
	plan     *planner.Plan
	m        *schedule.Machine        // nil before the round starts
	callAt   []atomic.Int64           // the run's: by node, when its call started or its retry will (Unix ns)
	putRetry []atomic.Bool            // the run's: by node, that its retry puts its output alone
	backoffs *atomic.Int32            // the run's: nodes waiting for a retry
	quotas   map[string]*quota        // the executor's, by batch key
	limits   map[string]*limit        // the executor's, by batch key
	mine     map[string]*atomic.Int64 // the run's nodes under limits not settled, by batch key (see run.limitLeft)
	keys     []string                 // batch keys, by kind index ("" for none)
	others   map[string][]int64       // other runs' nodes under the limits not settled, for the bound being computed
	// unstarted says that running reports a node in a retry's backoff as
	// not started, so that its retry counts among its key's starts.
	unstarted bool
	costs     planner.Costs
	names     []string        // kind names, by kind index
	estimate  []time.Duration // by kind index
	sum       []time.Duration
	count     []int
	fresh     bool      // a kind's first duration was seen since the last bound
	now       time.Time // of the bound being computed
	last      time.Time
	value     time.Duration
}

// newETA returns the ETA of plan p, run by m (nil before the round), with
// the durations seen in an earlier round's prev (nil for none).
func newETA(p *planner.Plan, m *schedule.Machine, callAt []atomic.Int64, putRetry []atomic.Bool, backoffs *atomic.Int32,
	quotas map[string]*quota, limits map[string]*limit, mine map[string]*atomic.Int64, opts *Options, prev *eta) *eta {
	g := p.Graph
	k := g.Kinds()
	e := &eta{plan: p, m: m, callAt: callAt, putRetry: putRetry, backoffs: backoffs, quotas: quotas, limits: limits, mine: mine,
		names: make([]string, k), estimate: make([]time.Duration, k), keys: make([]string, k),
		sum: make([]time.Duration, k), count: make([]int, k)}
	e.costs = planner.Costs{PerKind: make(map[string]time.Duration, k), Workers: opts.Workers,
		Staged: opts.Mode == Staged}
	for ki := range k {
		e.names[ki] = g.KindName(ki)
		e.estimate[ki] = opts.kindOptions(e.names[ki]).Estimate
		if key, _ := g.BatchKey(ki); key != "" {
			e.keys[ki] = key
			if l, ok := opts.Limits[key]; ok {
				if e.costs.Limits == nil {
					e.costs.Limits = map[string]int{}
				}
				e.costs.Limits[key] = l
			}
			if r, ok := opts.Rates[key]; ok && e.costs.Rates[key].Starts == 0 {
				if e.costs.Rates == nil {
					e.costs.Rates = map[string]planner.Rate{}
				}
				e.costs.Rates[key] = planner.Rate{Starts: r.Starts, Per: r.Per}
			}
		}
	}
	if prev != nil {
		copy(e.sum, prev.sum)
		copy(e.count, prev.count)
	}
	if m != nil {
		e.costs.Finished = func(n graph.Node) bool {
			s, _ := m.State(n)
			return s.Terminal()
		}
		e.costs.Running = e.running
	}
	return e
}

// running reports a node whose call has started, and the time since;
// during a retry's backoff, minus the time until its next call (or, with
// unstarted, not started: its retry has its start to take, unless the
// retry only puts the output made, which takes no start).
func (e *eta) running(n graph.Node) (time.Duration, bool) {
	if s, _ := e.m.State(n); s != schedule.Running {
		return 0, false
	}
	at := e.callAt[n].Load()
	if at == 0 {
		return 0, false // it waits for room or for its rate
	}
	spent := e.now.Sub(time.Unix(0, at))
	if spent < 0 && e.unstarted && !e.putRetry[n].Load() {
		return 0, false
	}
	return spent, true
}

// observe counts the duration of a node of kind ki that was generated.
func (e *eta) observe(ki int, d time.Duration) {
	if e.count[ki] == 0 {
		e.fresh = true
	}
	e.sum[ki] += max(d, 0)
	e.count[ki]++
}

// at returns the ETA at now, with left nodes not settled in the round: 0
// with none left, 0 (unknown) while no kind has a cost, and else at
// least minETA.
func (e *eta) at(now time.Time, left int) time.Duration {
	if left == 0 {
		return 0
	}
	if !e.fresh && !e.last.IsZero() && now.Sub(e.last) < time.Second {
		return countdown(e.value, now.Sub(e.last))
	}
	e.fresh, e.last, e.now = false, now, now
	var known time.Duration
	n := 0
	for ki, name := range e.names {
		d := e.estimate[ki]
		if c := e.count[ki]; c > 0 {
			d = e.sum[ki] / time.Duration(c)
		} else if d <= 0 {
			continue
		}
		e.costs.PerKind[name] = d
		known += d
		n++
	}
	if n == 0 {
		e.value = 0
		return 0
	}
	mean := known / time.Duration(n)
	var most time.Duration // the longest cost
	for ki, name := range e.names {
		if e.count[ki] == 0 && e.estimate[ki] <= 0 {
			e.costs.PerKind[name] = mean
		}
		most = max(most, e.costs.PerKind[name])
	}
	e.countOthers()
	if len(e.costs.Rates) == 0 && !e.shared() && (e.backoffs == nil || e.backoffs.Load() == 0) && most <= minETA/time.Duration(left) {
		// All the work left takes no longer than minETA, and no bound
		// is longer than that work (without rates, and with no node
		// waiting for a retry): no need to compute it.
		e.value = minETA
		return e.value
	}
	for key, r := range e.costs.Rates {
		r.Wait = 0
		if e.m != nil {
			r.Wait = e.m.RateWait(key, now)
		}
		if q := e.quotas[key]; q != nil {
			// The run's schedule counts its first attempts alone; the
			// quota counts every start, a retry's (and another run's).
			r.Wait = max(r.Wait, q.wait(now))
		}
		e.costs.Rates[key] = r
	}
	bound := e.plan.LowerBound(e.costs)
	if len(e.costs.Rates) > 0 && e.m != nil && e.backoffs != nil && e.backoffs.Load() > 0 {
		// A node in a retry's backoff costs the wait, and its retry takes
		// a start of its key's rate: the planner counts one or the other,
		// so the bound is the larger of the two, each a lower bound.
		e.unstarted = true
		bound = max(bound, e.plan.LowerBound(e.costs))
		e.unstarted = false
	}
	if e.others != nil {
		bound = max(bound, e.limitBound())
	}
	e.value = max(bound, minETA)
	return e.value
}

// shared reports whether other runs have nodes under a limit of the
// plan's keys (see countOthers).
func (e *eta) shared() bool {
	for _, ns := range e.others {
		if len(ns) > 0 {
			return true
		}
	}
	return false
}

// countOthers reads, for each limited batch key of the plan, the nodes
// not settled of the executor's other runs, into e.others (keys with
// none left out).
func (e *eta) countOthers() {
	for key, ns := range e.others {
		e.others[key] = ns[:0]
	}
	for key := range e.costs.Limits {
		l := e.limits[key]
		if l == nil {
			continue
		}
		if e.others == nil {
			e.others = map[string][]int64{}
		}
		e.others[key] = l.others(e.others[key], e.mine[key])
	}
}

// limitBound is a lower bound from the limited batch keys that other
// runs use too (see countOthers), which the planner, whose Limits cap the
// run's own nodes, does not see. The key's limit serves the runs in
// turns (its waiters take their room in the order they came), so the
// run's nodes of the key that are left, each at what is left of its
// cost, end no sooner than they would with each other run's nodes of the
// key that are left (each at the cost of the key's cheapest kind) taking
// an equal share of the limit until that run has no more: the work of
// each other run counts up to the run's own, and all that work is
// divided over the limit. Calls that no run has planned yet are not
// counted. O(D + R) for the plan's D nodes and the R runs of the
// executor; the same state gives the same bound.
func (e *eta) limitBound() time.Duration {
	g := e.plan.Graph
	var bound time.Duration
	for key, others := range e.others {
		if len(others) == 0 || e.limits[key].n <= 0 {
			continue
		}
		var cheapest time.Duration = -1
		for ki, k := range e.keys {
			if k == key {
				if c := max(e.costs.PerKind[e.names[ki]], 0); cheapest < 0 || c < cheapest {
					cheapest = c
				}
			}
		}
		if cheapest <= 0 {
			continue
		}
		var own time.Duration
		for _, st := range e.plan.Stages {
			for _, grp := range st.Groups {
				for _, n := range grp.Nodes {
					ki := g.KindOf(n)
					if e.keys[ki] != key || (e.costs.Finished != nil && e.costs.Finished(n)) {
						continue
					}
					d := max(e.costs.PerKind[e.names[ki]], 0)
					if e.costs.Running != nil {
						if spent, ok := e.running(n); ok {
							d = max(d-spent, 0)
						}
					}
					own = satAdd(own, d)
				}
			}
		}
		if own == 0 {
			continue
		}
		w := own
		for _, n := range others {
			w = satAdd(w, min(satMul(n, cheapest), own))
		}
		bound = max(bound, w/time.Duration(e.limits[key].n))
	}
	return bound
}

// satAdd returns a+b for durations not negative, or the longest
// Duration if the sum overflows it.
func satAdd(a, b time.Duration) time.Duration {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt64
}

// satMul returns n*d for n and d not negative, or the longest Duration
// if the product overflows it.
func satMul(n int64, d time.Duration) time.Duration {
	if n > 0 && d > math.MaxInt64/time.Duration(n) {
		return math.MaxInt64
	}
	return time.Duration(n) * d
}

// afresh returns the ETA at now, with left nodes not settled in the
// round, computed again rather than counted down from the last: a node
// that starts a retry's backoff adds the wait to what is left.
func (e *eta) afresh(now time.Time, left int) time.Duration {
	e.last = time.Time{}
	return e.at(now, left)
}

// countdown returns an ETA of v computed elapsed ago: 0 (unknown) stays 0,
// and a known one never falls below minETA.
func countdown(v, elapsed time.Duration) time.Duration {
	if v <= 0 {
		return 0
	}
	return max(v-elapsed, minETA)
}

// quote returns a graph key or run ID quoted for an error, cut after 64
// bytes (see internal/quote).
func quote(s string) string { return quotepkg.Key(s) }
