package executor

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/regengraph/regen/graph"
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
	done   int // the highest Done sent
	errors int
	closed bool // the final event went out: nothing follows it
}

func (em *emitter) emit(ev progress.Event) { em.emitIf(ev, nil) }

// emitIf emits ev if ok, when given, reports true under the emitter's
// lock: a note is checked against its call's state there, so that one
// sent as the call returns goes out before the node's end, or not at all.
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
	em.closed = ev.Type.Final()
	// Events sent from workers (node started or retrying, generator notes)
	// read the count outside mu: one may carry a count older than the
	// event before it, and a progress bar never goes back. The others
	// carry the exact count.
	if ev.Done < em.done && (ev.Type == progress.NodeStarted || ev.Type == progress.NodeRetrying || ev.Type == progress.Message) {
		ev.Done = em.done
	}
	em.done = max(em.done, ev.Done)
	em.seq++
	ev.RunID, ev.GraphKey, ev.Seq, ev.Time = em.runID, em.key, em.seq, time.Now()
	if err := em.publish(ev); err != nil {
		em.errors++
		em.log.Warn("regen: progress sink failed", "run", em.runID, "seq", ev.Seq, "type", ev.Type, "err", err)
	}
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
	stage   int
	attempt int
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
	ev := progress.Event{Type: progress.Message, Node: r.node, Stage: r.stage, Attempt: r.attempt,
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

// eta estimates the time left in a round from the planner's lower bound,
// with each kind's cost taken from the durations seen so far (or its
// estimate before any). The bound is recomputed at most once a second;
// in between it counts down.
type eta struct {
	plan     *planner.Plan
	workers  int
	estimate map[string]time.Duration
	sum      map[string]time.Duration
	count    map[string]int
	last     time.Time
	value    time.Duration
}

func newETA(p *planner.Plan, workers int, opts *Options) *eta {
	e := &eta{plan: p, workers: workers, estimate: map[string]time.Duration{},
		sum: map[string]time.Duration{}, count: map[string]int{}}
	for ki := range p.Graph.Kinds() {
		name := p.Graph.KindName(ki)
		e.estimate[name] = opts.kindOptions(name).Estimate
	}
	return e
}

// forPlan returns an ETA for the plan of a convergence round, keeping
// the durations seen in the earlier rounds. e may be nil.
func (e *eta) forPlan(p *planner.Plan, workers int, opts *Options) *eta {
	next := newETA(p, workers, opts)
	if e != nil {
		maps.Copy(next.sum, e.sum)
		maps.Copy(next.count, e.count)
	}
	return next
}

func (e *eta) observe(kind string, d time.Duration) {
	e.sum[kind] += d
	e.count[kind]++
}

// at returns the ETA at now; finished reports settled nodes.
func (e *eta) at(now time.Time, finished func(graph.Node) bool, left int) time.Duration {
	if left == 0 {
		return 0
	}
	if !e.last.IsZero() && now.Sub(e.last) < time.Second {
		return max(e.value-now.Sub(e.last), 0)
	}
	costs := planner.Costs{PerKind: make(map[string]time.Duration, len(e.estimate)), Workers: e.workers, Finished: finished}
	for kind, est := range e.estimate {
		if c := e.count[kind]; c > 0 {
			est = e.sum[kind] / time.Duration(c)
		}
		costs.PerKind[kind] = est
	}
	e.value, e.last = e.plan.LowerBound(costs), now
	return e.value
}
