package executor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// requireStagesFinished checks a run's events: in each round, a stage
// gets at most one stage.finished, the stages in order, each after every
// settling event of its nodes, and with all of them counted; and a stage
// gets one exactly when it and every stage before it had all their nodes
// (the round's outline says how many) settle in their events, which in a
// run that was not cancelled is every stage of every round.
func requireStagesFinished(t *testing.T, evs []progress.Event, cancelled bool) (withheld int) {
	t.Helper()
	type key struct{ round, stage int }
	nodes := map[int][]int{} // by round: its stages' numbers of nodes
	settled := map[key]int{}
	finished := map[key]bool{}
	last := map[int]int{} // by round: the last stage finished
	round := 0
	for _, ev := range evs {
		if ev.Plan != nil {
			round++
			for _, st := range ev.Plan.Stages {
				nodes[round] = append(nodes[round], st.Nodes)
			}
			last[round] = -1
		}
		if ev.Stage < 0 {
			continue
		}
		require.Equal(t, round, ev.Round, "event %+v", ev)
		k := key{ev.Round, ev.Stage}
		switch ev.Type {
		case progress.NodeSucceeded, progress.NodeUnchanged, progress.NodeFailed, progress.NodeSkipped,
			progress.NodeSuperseded, progress.NodeCancelled:
			require.False(t, finished[k], "a settling event after its stage finished: %+v", ev)
			settled[k]++
		case progress.StageFinished:
			require.False(t, finished[k], "a second stage.finished: %+v", ev)
			require.Equal(t, last[ev.Round]+1, ev.Stage, "stage.finished out of order: %+v", ev)
			require.Equal(t, ev.StageTotal, settled[k], "stage.finished before its nodes settled: %+v", ev)
			require.Equal(t, ev.StageTotal, ev.StageDone, "%+v", ev)
			finished[k], last[ev.Round] = true, ev.Stage
		}
	}
	require.NotZero(t, round)
	for r, sizes := range nodes {
		whole := true
		for s, n := range sizes {
			whole = whole && settled[key{r, s}] == n
			require.Equal(t, whole, finished[key{r, s}],
				"round %d, stage %d of %d nodes, %d settled in events, every stage before it whole: %v", r, s, n, settled[key{r, s}], whole)
			if !whole {
				withheld++
			}
		}
		if !cancelled {
			require.True(t, whole, "round %d of a run not cancelled has a stage whose nodes did not all settle", r)
		}
	}
	return withheld
}

// Whatever a run's nodes do (succeed, fail at once, fail and then
// succeed on a retry, keep their stored result by early cutoff, be
// superseded by an edit during the run, be skipped, time out and be
// abandoned, wait for room under Options.Limits), in Staged or Dataflow
// mode, with bulk calls or single ones, over Converge rounds, and whether
// a cancel comes or not: every stage of each round of a run not cancelled
// gets one stage.finished, in order, after its nodes' settling events,
// and in a cancelled run exactly the stages that it and the ones before
// it had all their nodes settle in their events get one. The emitter now
// holds a stage.finished back until every node of the stage has settled
// in its events (and those of the stages after one held back, with the
// flag reset at each round): this checks that it holds back no other.
func TestReview12StageFinishedInRandomRuns(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 40
	}
	seen := map[string]int{} // what the runs did, by event type (and round 2)
	for seed := range seeds {
		synctest.Test(t, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 12))
			l := newLab(t, 10*(1+rng.IntN(5)))
			var e *executor.Executor
			var mu sync.Mutex
			edits := map[string]bool{}    // node IDs to edit when they start, once
			stubborn := map[string]bool{} // node IDs whose first call ignores its context
			for n := range l.g.Len() {
				id := l.g.NodeID(graph.Node(n))
				switch rng.IntN(10) {
				case 0:
					l.set(id, fail(executor.Permanent(errors.New("refused"))))
				case 1:
					tries := 0
					l.set(id, func(context.Context, executor.Request) ([]byte, error) {
						mu.Lock()
						defer mu.Unlock()
						if tries++; tries == 1 {
							return nil, errors.New("flaky")
						}
						return nil, nil
					})
				case 2:
					edits[id] = true
				case 3:
					stubborn[id] = true
				}
			}
			for k := range l.latency {
				l.latency[k] = time.Duration(1+rng.IntN(20)) * time.Second
			}
			gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
				mu.Lock()
				edit, hang := edits[req.NodeID], stubborn[req.NodeID]
				delete(edits, req.NodeID)
				delete(stubborn, req.NodeID)
				mu.Unlock()
				if hang {
					// Past its timeout: abandoned, and its node rescued
					// (retried), or a bulk call's outcomes cut at its grace.
					time.Sleep(40 * time.Second)
				}
				if edit {
					// Itself (superseded when it ends), or a node done already
					// (its dependents skipped, and remade in a Converge round).
					target := req.NodeID
					if rng2 := rand.New(rand.NewPCG(uint64(seed), uint64(len(req.NodeID)))); rng2.IntN(2) == 0 {
						target = graph.KindScript
					}
					_, err := e.Edit(context.Background(), l.g, "lecture", target)
					assert.NoError(t, err)
				}
				return l.Generate(ctx, req)
			})
			opts := executor.Options{Converge: rng.IntN(3), MaxBatch: 1 + rng.IntN(3),
				Kinds: map[string]executor.KindOptions{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			for k := range l.g.Kinds() {
				opts.Kinds[l.g.KindName(k)] = executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 3},
					Timeout: 30 * time.Second, BatchTimeout: 30 * time.Second}
			}
			if rng.IntN(2) == 0 {
				opts.Mode = executor.Staged
			}
			if rng.IntN(2) == 0 {
				// Nodes that wait for room: a cancel lets them go unstarted.
				opts.Limits = map[string]int{graph.KindVideo: 1, graph.KindImage: 1}
			}
			reg := l.registry(gen)
			if rng.IntN(2) == 0 {
				for k := range reg {
					reg[k] = bulkOf{gen}
				}
			}
			opts.Generators = reg
			e = l.executor(opts)
			// A first run makes what it can; a second one, with a forced
			// node whose output comes out the same, keeps its dependents
			// by early cutoff (node.unchanged).
			for i := range 2 {
				l.resetCalls()
				var marks []dirty.Mark
				if i == 1 {
					marks = append(marks, dirty.Mark{ID: l.g.NodeID(graph.Node(rng.IntN(l.g.Len()))), Reason: dirty.ReasonForced})
				}
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, Marks: marks})
				require.NoError(t, err)
				cancel := rng.IntN(3) == 0
				ended := make(chan struct{})
				if cancel {
					// A cancel at any moment: its stages' stage.finished go
					// out exactly when each stage up to it is whole.
					wait := time.Duration(rng.IntN(60)) * time.Second
					go func() {
						select {
						case <-time.After(wait):
							r.Cancel()
						case <-ended:
						}
					}()
				}
				_, err = r.Wait()
				close(ended)
				if err != nil && !(cancel && errors.Is(err, executor.ErrCancelled)) {
					require.ErrorIs(t, err, executor.ErrRunFailed)
				}
				cancelled := errors.Is(err, executor.ErrCancelled)
				l.mu.Lock()
				evs := append([]progress.Event(nil), l.events...)
				l.mu.Unlock()
				if len(evs) > 0 && evs[0].Type == progress.RunStarted && evs[0].Plan != nil && len(evs[0].Plan.Stages) > 0 {
					seen["withheld"] += requireStagesFinished(t, evs, cancelled)
					for _, ev := range evs {
						if ev.Type == progress.StageFinished || ev.Type == progress.NodeSuperseded || ev.Type == progress.NodeUnchanged ||
							ev.Type == progress.NodeFailed || ev.Type == progress.NodeSkipped || ev.Type == progress.NodeCancelled || ev.Round > 1 {
							seen[string(ev.Type)+map[bool]string{true: "+round2"}[ev.Round > 1]]++
						}
					}
				}
			}
		})
	}
	t.Log(seen)
	for _, what := range []string{"node.superseded", "node.unchanged", "node.failed", "node.skipped", "node.cancelled",
		"stage.finished+round2", "node.retrying+round2", "withheld"} {
		require.NotZero(t, seen[what], "no run had a %s: %v", what, seen)
	}
}
