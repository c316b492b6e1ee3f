package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
	"github.com/regengraph/regen/progress"
)

// settles reports whether t is a node's settling event.
func settles(t progress.Type) bool {
	switch t {
	case progress.NodeSucceeded, progress.NodeUnchanged, progress.NodeFailed, progress.NodeSkipped,
		progress.NodeSuperseded, progress.NodeCancelled:
		return true
	}
	return false
}

// roundStage names a stage of a round.
type roundStage struct{ round, stage int }

// roundBatch names a batch of a stage of a round.
type roundBatch struct {
	round, stage int
	key          string
}

// bars are the counts that a view's bars read: by stage, its StageTotal
// and its settling events; by batch, its BatchTotal and its settling
// events.
type bars struct {
	total, settled           map[roundStage]int
	batchTotal, batchSettled map[roundBatch]int
}

// stageBars reads one run's events as a view that draws a bar per round
// and stage, and per batch key, reads them, from the fields alone, and
// checks them as it goes: the round is 1 from the start and N from the
// message that starts round N, on every event with a stage and on that
// message alone; every event of a stage says the same StageTotal, and a
// StageDone that counts the stage's settling events up to it; the node
// events of a batch's node name its key, and no other event names one;
// and those that name one say the same BatchTotal, and a BatchDone that
// counts the settling events of the batch (the stage's nodes of that
// key) up to it.
func stageBars(t *testing.T, g *graph.Graph, events []progress.Event) bars {
	t.Helper()
	b := bars{total: map[roundStage]int{}, settled: map[roundStage]int{},
		batchTotal: map[roundBatch]int{}, batchSettled: map[roundBatch]int{}}
	total, settled := b.total, b.settled
	round := 1
	for _, ev := range events {
		at := fmt.Sprintf("event %d, %s %s", ev.Seq, ev.Type, ev.Node)
		if ev.Type == progress.Message && ev.Stage == progress.NoStage && strings.HasPrefix(ev.Message, "Round ") {
			round++
			assert.Equal(t, round, ev.Round, "%s: %q", at, ev.Message)
			continue
		}
		if ev.Node == "" {
			assert.Empty(t, ev.BatchKey, at)
		} else {
			n, err := g.Lookup(ev.Node)
			require.NoError(t, err)
			key, _ := g.BatchKey(g.KindOf(n))
			assert.Equal(t, key, ev.BatchKey, at)
		}
		if ev.Stage == progress.NoStage {
			assert.Zero(t, ev.Round, at)
			assert.Zero(t, ev.StageDone, at)
			assert.Zero(t, ev.StageTotal, at)
			continue
		}
		assert.Equal(t, round, ev.Round, at)
		rs := roundStage{ev.Round, ev.Stage}
		if settles(ev.Type) {
			settled[rs]++
		}
		assert.Equal(t, settled[rs], ev.StageDone, "%s: the stage's settled nodes so far", at)
		if _, ok := total[rs]; !ok {
			total[rs] = ev.StageTotal
			assert.Positive(t, ev.StageTotal, at)
		}
		assert.Equal(t, total[rs], ev.StageTotal, "%s: the stage's total changed", at)
		if ev.BatchKey == "" {
			assert.Zero(t, ev.BatchDone, at)
			assert.Zero(t, ev.BatchTotal, at)
			continue
		}
		rb := roundBatch{ev.Round, ev.Stage, ev.BatchKey}
		if settles(ev.Type) {
			b.batchSettled[rb]++
		}
		assert.Equal(t, b.batchSettled[rb], ev.BatchDone, "%s: the batch's settled nodes so far", at)
		if _, ok := b.batchTotal[rb]; !ok {
			b.batchTotal[rb] = ev.BatchTotal
			assert.Positive(t, ev.BatchTotal, at)
		}
		assert.Equal(t, b.batchTotal[rb], ev.BatchTotal, "%s: the batch's total changed", at)
	}
	return b
}

// stageSizes returns the number of nodes of each stage of p, as round
// round's.
func stageSizes(p *planner.Plan, round int) map[roundStage]int {
	out := map[roundStage]int{}
	for _, st := range p.Stages {
		for _, grp := range st.Groups {
			out[roundStage{round, st.Index}] += len(grp.Nodes)
		}
	}
	return out
}

// batchSizes returns the number of nodes of each batch of p, as round
// round's.
func batchSizes(p *planner.Plan, round int) map[roundBatch]int {
	out := map[roundBatch]int{}
	for _, st := range p.Stages {
		for _, grp := range st.Groups {
			if grp.Kind == planner.Batch {
				out[roundBatch{round, st.Index, grp.BatchKey}] += len(grp.Nodes)
			}
		}
	}
	return out
}

// Every event with a stage says its round, and how many of the stage's
// nodes the round planned and how many settled so far, so that a view
// draws a bar per stage without parsing the stage's summary line; and
// every event about a node of a batch names its batch key, so that a view
// draws a bar per key without parsing node IDs. In Dataflow mode, where
// the stages' events interleave, in Staged mode, and with a failure that
// skips nodes of later stages, whose events may come before their stage
// starts.
func TestEventsCountTheirStage(t *testing.T) {
	for _, mode := range []executor.Mode{executor.Dataflow, executor.Staged} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				l.set("asset:narration:segment[2]", fail(executor.Permanent(errors.New("voice banned"))))
				e := l.executor(executor.Options{Mode: mode})
				run, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				_, err = run.Wait()
				require.Error(t, err)

				l.mu.Lock()
				events := l.events
				l.mu.Unlock()
				b := stageBars(t, l.g, events)
				want := stageSizes(run.Plan(), 1)
				assert.Equal(t, want, b.total, "StageTotal of each stage")
				assert.Equal(t, want, b.settled, "every planned node settled")
				batches := batchSizes(run.Plan(), 1)
				assert.Equal(t, batches, b.batchTotal, "BatchTotal of each batch")
				assert.Equal(t, batches, b.batchSettled, "every node of each batch settled")
				var stageEvents int
				for _, ev := range events {
					if ev.Type == progress.StageStarted || ev.Type == progress.StageFinished {
						stageEvents++
						if ev.Type == progress.StageFinished {
							assert.Equal(t, ev.StageTotal, ev.StageDone, "stage %d finished", ev.Stage)
						}
					}
				}
				assert.Equal(t, 2*len(want), stageEvents, "a start and an end for each stage")
			})
		})
	}
}

// A Converge round has a plan of its own, whose stages start at 0 again:
// its events say round 2, from the message that starts it on, and count
// its own plan's stages.
func TestEventsOfAConvergeRoundCountItsPlan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var e *executor.Executor
		gen := l.onceAt("asset:video:segment[0]", func() {
			_, err := e.Edit(context.Background(), l.g, "lecture", "asset:music")
			assert.NoError(t, err)
		})
		e = l.executor(executor.Options{Generators: l.registry(gen), Converge: 1})
		run, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		rep, err := run.Wait()
		require.NoError(t, err)
		require.Equal(t, 2, rep.Rounds)

		l.mu.Lock()
		events := l.events
		l.mu.Unlock()
		b := stageBars(t, l.g, events)
		total := b.total
		assert.Equal(t, total, b.settled, "every planned node settled, in each round")
		assert.Equal(t, b.batchTotal, b.batchSettled, "every node of each batch settled, in each round")
		first, second := map[roundStage]int{}, 0
		for rs, n := range total {
			if rs.round == 1 {
				first[rs] = n
			} else {
				require.Equal(t, 2, rs.round)
				second += n
			}
		}
		assert.Equal(t, stageSizes(run.Plan(), 1), first, "the first round's stages")
		final := l.eventsOf(progress.RunFinished)
		require.Len(t, final, 1)
		assert.Equal(t, final[0].Total-l.g.Len(), second, "the second round's stages hold its plan's nodes")
		assert.Contains(t, total, roundStage{2, 0}, "the second round's stages start at 0")
	})
}

// A cancelled run's stages keep the totals of its plan, their nodes that
// never started uncounted; its Resume has a plan of what was left, which
// its events count, from round 1.
func TestEventsOfAResumeCountItsPlan(t *testing.T) {
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

		l.mu.Lock()
		events := l.events
		l.events = nil
		l.mu.Unlock()
		b := stageBars(t, l.g, events)
		planned := stageSizes(x.Plan(), 1)
		for rs, n := range b.total {
			assert.Equal(t, planned[rs], n, "stage %d of the cancelled run", rs.stage)
			assert.LessOrEqual(t, b.settled[rs], n, "stage %d of the cancelled run", rs.stage)
		}
		plannedBatches := batchSizes(x.Plan(), 1)
		for rb, n := range b.batchTotal {
			assert.Equal(t, plannedBatches[rb], n, "batch %s of stage %d of the cancelled run", rb.key, rb.stage)
		}

		y, err := e.Resume(ctx, l.g, "x", executor.ResumeOptions{RunID: "y"})
		require.NoError(t, err)
		_, err = y.Wait()
		require.NoError(t, err)
		l.mu.Lock()
		events = l.events
		l.mu.Unlock()
		b = stageBars(t, l.g, events)
		want := stageSizes(y.Plan(), 1)
		assert.Equal(t, want, b.total, "the resume's stages")
		assert.Equal(t, want, b.settled, "every node of the resume's plan settled")
		assert.Equal(t, batchSizes(y.Plan(), 1), b.batchTotal, "the resume's batches")
		assert.Less(t, y.Plan().Len(), x.Plan().Len(), "the resume remakes only what was left")
	})
}

// Every kind of event about a node of a batch names its key: starts,
// retries, notes, successes, failures and skips alike; those of a single
// node, and stage and run events, name none.
func TestEventsNameTheNodesBatchKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := everyNodeEvent(t)

		l.mu.Lock()
		defer l.mu.Unlock()
		stageBars(t, l.g, l.events)
		keyed, single := map[progress.Type]bool{}, map[progress.Type]bool{}
		for _, ev := range l.events {
			switch {
			case ev.BatchKey != "":
				keyed[ev.Type] = true
			case ev.Node != "":
				single[ev.Type] = true
			}
		}
		for _, typ := range []progress.Type{progress.NodeStarted, progress.NodeRetrying, progress.Message,
			progress.NodeSucceeded, progress.NodeFailed, progress.NodeSkipped} {
			assert.True(t, keyed[typ], "no %s event about a node of a batch", typ)
		}
		for _, typ := range []progress.Type{progress.NodeStarted, progress.Message, progress.NodeSucceeded, progress.NodeSkipped} {
			assert.True(t, single[typ], "no %s event about a single node", typ)
		}
	})
}
