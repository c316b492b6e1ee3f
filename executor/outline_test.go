package executor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
	"github.com/regengraph/regen/progress"
)

// outlineSummary writes stage s of an outline as the planner's summary
// line, as a view would label its bar: the entries are the groups, in
// order ("30 asset:narration nodes in batches of 4", "1 script node").
func outlineSummary(s int, st progress.OutlineStage) string {
	var parts []string
	for _, grp := range st.Groups {
		what := grp.Kind
		if what == "" {
			what = grp.BatchKey
		}
		nodes := "nodes"
		if grp.Nodes == 1 {
			nodes = "node"
		}
		part := fmt.Sprintf("%d %s %s", grp.Nodes, what, nodes)
		if grp.BatchKey != "" {
			part += fmt.Sprintf(" in batches of %d", grp.Concurrency)
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		parts = []string{"nothing"}
	}
	return fmt.Sprintf("Stage %d: Generating %s", s, strings.Join(parts, ", "))
}

// outlineOf returns the outline that p's plan must have, from the
// plan's groups: a batch is one group, and so are the single nodes of one
// kind that follow each other.
func outlineOf(g *graph.Graph, p *planner.Plan) progress.Outline {
	var out progress.Outline
	for _, st := range p.Stages {
		var os progress.OutlineStage
		for _, grp := range st.Groups {
			os.Nodes += len(grp.Nodes)
			if grp.Kind == planner.Batch {
				kind := g.KindName(g.KindOf(grp.Nodes[0]))
				for _, n := range grp.Nodes {
					if g.KindName(g.KindOf(n)) != kind {
						kind = ""
					}
				}
				os.Groups = append(os.Groups, progress.OutlineGroup{Kind: kind, BatchKey: grp.BatchKey,
					Nodes: len(grp.Nodes), Concurrency: grp.Concurrency})
				continue
			}
			for _, n := range grp.Nodes {
				kind := g.KindName(g.KindOf(n))
				if last := len(os.Groups) - 1; last >= 0 && os.Groups[last].BatchKey == "" && os.Groups[last].Kind == kind {
					os.Groups[last].Nodes++
				} else {
					os.Groups = append(os.Groups, progress.OutlineGroup{Kind: kind, Nodes: 1})
				}
			}
		}
		out.Stages = append(out.Stages, os)
	}
	return out
}

// outlined is what checkOutlines read of one run: the outline of each
// round, and each round's settling events by stage and group.
type outlined struct {
	plans   []*progress.Outline
	settled []map[roundStage][]int // by round, from 0: by stage, by group
}

// checkOutlines reads one run's events as a view that draws its bars
// from the outline of run.started (and of the message that starts a
// later round) does, and checks that what follows agrees with it: every
// event of a stage is of one of the outline's stages, says its Nodes as
// StageTotal, and the stage.started's Message is the line the outline's
// groups make; every event of a batch's node names a batch group of its
// stage, whose Nodes is its BatchTotal, and of its kind; and every event
// of a single node names a group of single nodes of its kind. No other
// event has an outline.
func checkOutlines(t *testing.T, g *graph.Graph, events []progress.Event) outlined {
	t.Helper()
	var o outlined
	var cur *progress.Outline
	for _, ev := range events {
		at := fmt.Sprintf("event %d, %s %s", ev.Seq, ev.Type, ev.Node)
		starts := ev.Type == progress.RunStarted ||
			ev.Type == progress.Message && ev.Stage == progress.NoStage && strings.HasPrefix(ev.Message, "Round ")
		if !starts {
			assert.Nil(t, ev.Plan, "%s: an outline on an event that starts no round", at)
		} else {
			require.NotNil(t, ev.Plan, "%s: no outline of the round's plan", at)
			cur = ev.Plan
			o.plans = append(o.plans, cur)
			o.settled = append(o.settled, map[roundStage][]int{})
			for s, st := range cur.Stages {
				sum := 0
				for _, grp := range st.Groups {
					assert.Positive(t, grp.Nodes, "%s: stage %d", at, s)
					sum += grp.Nodes
				}
				assert.Equal(t, sum, st.Nodes, "%s: stage %d's nodes, against its groups'", at, s)
				assert.Positive(t, st.Nodes, "%s: stage %d", at, s)
			}
			continue
		}
		if ev.Stage == progress.NoStage {
			continue
		}
		require.NotNil(t, cur, "%s: an event of a stage before the run's outline", at)
		require.Less(t, ev.Stage, len(cur.Stages), "%s: a stage the outline does not have", at)
		st := cur.Stages[ev.Stage]
		assert.Equal(t, st.Nodes, ev.StageTotal, "%s: StageTotal against the outline's stage", at)
		if ev.Type == progress.StageStarted {
			assert.Equal(t, outlineSummary(ev.Stage, st), ev.Message, "%s: the summary line against the outline's groups", at)
		}
		if ev.Node == "" {
			continue
		}
		gi := -1
		for i, grp := range st.Groups {
			if ev.BatchKey != "" && grp.BatchKey == ev.BatchKey || ev.BatchKey == "" && grp.BatchKey == "" && grp.Kind == ev.Kind {
				gi = i
				break
			}
		}
		require.GreaterOrEqual(t, gi, 0, "%s: no group of its batch key %q or kind %q in its stage's outline %+v",
			at, ev.BatchKey, ev.Kind, st.Groups)
		grp := st.Groups[gi]
		if grp.Kind != "" {
			assert.Equal(t, grp.Kind, ev.Kind, "%s: the kind of its group", at)
		}
		if ev.BatchKey != "" {
			assert.Equal(t, grp.Nodes, ev.BatchTotal, "%s: BatchTotal against the outline's group", at)
			n, err := g.Lookup(ev.Node)
			require.NoError(t, err)
			_, conc := g.BatchKey(g.KindOf(n))
			assert.Equal(t, conc, grp.Concurrency, "%s: the batch's concurrency", at)
		}
		if settles(ev.Type) {
			rs := roundStage{len(o.plans), ev.Stage}
			m := o.settled[len(o.plans)-1]
			if m[rs] == nil {
				m[rs] = make([]int, len(st.Groups))
			}
			m[rs][gi]++
		}
	}
	return o
}

// requireAllSettled checks that every node of each group of each round's
// outline settled in its round: the groups count the run's nodes.
func (o outlined) requireAllSettled(t *testing.T) {
	t.Helper()
	for r, plan := range o.plans {
		got := map[roundStage][]int{}
		for s, st := range plan.Stages {
			got[roundStage{r + 1, s}] = make([]int, len(st.Groups))
			for i, grp := range st.Groups {
				got[roundStage{r + 1, s}][i] = grp.Nodes
			}
		}
		assert.Equal(t, got, o.settled[r], "round %d: the outline's groups against the nodes that settled", r+1)
	}
}

// takeEvents returns the lab's events and forgets them.
func (l *lab) takeEvents() []progress.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	events := l.events
	l.events = nil
	return events
}

// The number of stages was only in run.started's text ("in 4 stages"),
// a stage's StageTotal came with its stage.started, and a batch's
// BatchTotal with its first node's event: a view could not draw its bars
// up front. run.started now carries an outline of the plan, its stages
// and their groups, which agrees with the totals that follow and with
// each stage's summary line; in both modes, with a failure that skips
// nodes, and with batches of several kinds and single nodes of several
// kinds in one stage.
func TestRunStartedOutlinesThePlan(t *testing.T) {
	shared := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "note"},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
		{Name: "title", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}},
		{Name: "effect", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
		{Name: "cover", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}},
	}}
	for _, tc := range []struct {
		name string
		tmpl *graph.Template
		fail string
	}{
		{name: "lecture"},
		{name: "lecture with a failure", fail: "asset:narration:segment[2]"},
		{name: "a shared batch key", tmpl: &shared},
	} {
		for _, mode := range []executor.Mode{executor.Dataflow, executor.Staged} {
			t.Run(tc.name+"/"+mode.String(), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					l := newLab(t, 30)
					if tc.tmpl != nil {
						g, err := graph.Build(*tc.tmpl, 30)
						require.NoError(t, err)
						l.g = g
					}
					if tc.fail != "" {
						l.set(tc.fail, fail(executor.Permanent(errors.New("voice banned"))))
					}
					e := l.executor(executor.Options{Mode: mode})
					run, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
					require.NoError(t, err)
					_, err = run.Wait()
					if tc.fail != "" {
						require.ErrorIs(t, err, executor.ErrRunFailed)
					} else {
						require.NoError(t, err)
					}
					o := checkOutlines(t, l.g, l.takeEvents())
					require.Len(t, o.plans, 1)
					assert.Equal(t, outlineOf(l.g, run.Plan()), *o.plans[0], "the outline against the run's plan")
					o.requireAllSettled(t)
					// The same plan, in another lab, gives the same JSON.
					l2 := newLab(t, 30)
					l2.g = l.g
					_, _ = l2.run(l2.executor(executor.Options{Mode: mode}))
					again := checkOutlines(t, l2.g, l2.takeEvents())
					require.Len(t, again.plans, 1)
					a, err := json.Marshal(o.plans[0])
					require.NoError(t, err)
					b, err := json.Marshal(again.plans[0])
					require.NoError(t, err)
					assert.Equal(t, string(a), string(b))
				})
			})
		}
	}
}

// Shared batch keys: the batch of voice and effect is one group, of no
// one kind, and the single nodes of title and cover, which follow each
// other in the plan, stay apart by kind.
func TestOutlineOfASharedBatchKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		g, err := graph.Build(graph.Template{Kinds: []graph.Kind{
			{Name: "brief"},
			{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
			{Name: "title", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}},
			{Name: "effect", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
			{Name: "cover", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}},
		}}, 30)
		require.NoError(t, err)
		l.g = g
		_, err = l.run(l.executor(executor.Options{}))
		require.NoError(t, err)
		started := l.eventsOf(progress.RunStarted)
		require.Len(t, started, 1)
		require.NotNil(t, started[0].Plan)
		assert.Equal(t, progress.Outline{Stages: []progress.OutlineStage{
			{Nodes: 1, Groups: []progress.OutlineGroup{{Kind: "brief", Nodes: 1}}},
			{Nodes: 8, Groups: []progress.OutlineGroup{
				{BatchKey: "tts", Nodes: 6, Concurrency: 2},
				{Kind: "title", Nodes: 1},
				{Kind: "cover", Nodes: 1},
			}},
		}}, *started[0].Plan)
		data, err := json.Marshal(started[0])
		require.NoError(t, err)
		assert.Contains(t, string(data), `"plan":{"stages":[{"nodes":1,"groups":[{"kind":"brief","batchKey":"","nodes":1,"concurrency":0}]},`+
			`{"nodes":8,"groups":[{"kind":"","batchKey":"tts","nodes":6,"concurrency":2},{"kind":"title","batchKey":"","nodes":1,"concurrency":0},`+
			`{"kind":"cover","batchKey":"","nodes":1,"concurrency":0}]}]}`)
	})
}

// With Converge, the message that starts a later round outlines that
// round's plan, whose stages start at 0 again, as its events count them.
func TestRoundOutlinesItsPlan(t *testing.T) {
	for _, mode := range []executor.Mode{executor.Dataflow, executor.Staged} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				var e *executor.Executor
				gen := l.onceAt("asset:video:segment[0]", func() {
					_, err := e.Edit(context.Background(), l.g, "lecture", "asset:music")
					assert.NoError(t, err)
				})
				e = l.executor(executor.Options{Generators: l.registry(gen), Converge: 1, Mode: mode})
				run, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				rep, err := run.Wait()
				require.NoError(t, err)
				require.Equal(t, 2, rep.Rounds)
				o := checkOutlines(t, l.g, l.takeEvents())
				require.Len(t, o.plans, 2, "an outline for each round")
				assert.Equal(t, outlineOf(l.g, run.Plan()), *o.plans[0], "the first round's")
				o.requireAllSettled(t)
				// The music and the timeline, in two stages.
				assert.Equal(t, progress.Outline{Stages: []progress.OutlineStage{
					{Nodes: 1, Groups: []progress.OutlineGroup{{Kind: graph.KindMusic, Nodes: 1}}},
					{Nodes: 1, Groups: []progress.OutlineGroup{{Kind: graph.KindTimeline, Nodes: 1}}},
				}}, *o.plans[1], "the second round's")
			})
		})
	}
}

// A resumed run's outline is of its own plan: what was left.
func TestResumeOutlinesItsPlan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		x, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "x",
			Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}})
		require.NoError(t, err)
		time.Sleep(25 * time.Second) // the script is made; narrations and images run
		x.Cancel()
		_, err = x.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		o := checkOutlines(t, l.g, l.takeEvents())
		require.Len(t, o.plans, 1)
		assert.Equal(t, outlineOf(l.g, x.Plan()), *o.plans[0], "the cancelled run's")

		y, err := e.Resume(ctx, l.g, "x", executor.ResumeOptions{RunID: "y"})
		require.NoError(t, err)
		_, err = y.Wait()
		require.NoError(t, err)
		o = checkOutlines(t, l.g, l.takeEvents())
		require.Len(t, o.plans, 1)
		assert.Equal(t, outlineOf(l.g, y.Plan()), *o.plans[0], "the resume's")
		assert.Less(t, len(o.plans[0].Stages), len(outlineOf(l.g, x.Plan()).Stages), "the resume remakes only what was left")
		o.requireAllSettled(t)
	})
}

// An outline has at most MaxOutline stages and groups together: a plan
// of more gets none, so that run.started stays small enough for the
// sinks that bound an event (progress/sse's MaxEventSize). A chain of
// segments makes a stage, of one group, a segment.
func TestOutlineBound(t *testing.T) {
	chain := graph.Template{Kinds: []graph.Kind{
		{Name: "step", PerSegment: true, Deps: []graph.Dep{{Kind: "step", Scope: graph.ScopePreviousSegment}}},
	}}
	for _, tc := range []struct {
		segments int
		want     bool
	}{
		{executor.MaxOutline / 2, true},
		{executor.MaxOutline/2 + 1, false},
	} {
		t.Run(fmt.Sprint(tc.segments), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				g, err := graph.Build(chain, tc.segments*graph.SegmentSeconds)
				require.NoError(t, err)
				l.g = g
				e := l.executor(executor.Options{})
				_, err = l.run(e)
				require.NoError(t, err)
				started := l.eventsOf(progress.RunStarted)
				require.Len(t, started, 1)
				if !tc.want {
					assert.Nil(t, started[0].Plan, "an outline of %d stages and groups", 2*tc.segments)
					return
				}
				require.NotNil(t, started[0].Plan)
				require.Len(t, started[0].Plan.Stages, tc.segments)
				checkOutlines(t, l.g, l.takeEvents()).requireAllSettled(t)
				data, err := json.Marshal(started[0])
				require.NoError(t, err)
				assert.Less(t, len(data), 1<<20, "the JSON of run.started")
			})
		})
	}
}

// The outline of a plan with nothing to do has no stages, and reads back
// from its JSON as it went out: a sink that keeps events as JSON (a
// Redis stream, a Postgres history) replays the run.started that an
// in-memory sink holds, field for field. It had an empty, not nil, list
// of stages, which JSON reads back as nil.
func TestOutlineOfNothingToDoReadsBackAsItWentOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		rep, err := l.run(e)
		require.NoError(t, err)
		require.Zero(t, rep.Record.Counts.Planned, "the second run has nothing to do")
		for _, ev := range l.eventsOf(progress.RunStarted) {
			require.NotNil(t, ev.Plan)
			data, err := json.Marshal(ev)
			require.NoError(t, err)
			var back progress.Event
			require.NoError(t, json.Unmarshal(data, &back))
			assert.Empty(t, cmp.Diff(ev, back), "run.started, against its JSON read back")
		}
	})
}

// The batch of a key that kinds share names its kind when its nodes in
// the stage are of one kind, as the stage's summary line does: the
// outline's Kind is "" only for a batch of several kinds.
func TestOutlineOfASharedKeyOfOneKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		g, err := graph.Build(graph.Template{Kinds: []graph.Kind{
			{Name: "brief"},
			{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
			{Name: "effect", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
		}}, 30)
		require.NoError(t, err)
		l.g = g
		e := l.executor(executor.Options{})
		_, err = l.run(e)
		require.NoError(t, err)
		l.takeEvents()
		_, err = l.run(e, dirty.Mark{ID: "voice:segment[0]", Reason: dirty.ReasonEdited},
			dirty.Mark{ID: "voice:segment[2]", Reason: dirty.ReasonEdited})
		require.NoError(t, err)
		started := l.eventsOf(progress.RunStarted)
		require.Len(t, started, 1)
		require.NotNil(t, started[0].Plan)
		assert.Equal(t, progress.Outline{Stages: []progress.OutlineStage{
			{Nodes: 2, Groups: []progress.OutlineGroup{{Kind: "voice", BatchKey: "tts", Nodes: 2, Concurrency: 2}}},
		}}, *started[0].Plan)
		stages := l.eventsOf(progress.StageStarted)
		require.Len(t, stages, 1)
		assert.Equal(t, "Stage 0: Generating 2 voice nodes in batches of 2", stages[0].Message)
	})
}
