package executor_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

var narration3 = dirty.Mark{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}

func TestStoryFreshLecture(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 120)
		e := l.executor(executor.Options{})
		start := time.Now()
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
		assert.Len(t, rep.Generated, l.g.Len())
		assert.Empty(t, rep.Failed)
		assert.Equal(t, 39, rep.Record.Counts.Attempts)
		l.requireAllClean()
		l.requireEventOrder(progress.RunFinished)
		// Script 20s, then narration+image overlap, videos in batches of 3
		// (12 videos * 30s / 3 = 120s), then the timeline: about 20+8+120+10 s.
		took := time.Since(start)
		assert.GreaterOrEqual(t, took, 158*time.Second)
		assert.LessOrEqual(t, took, 200*time.Second)
		// Limits held.
		assert.LessOrEqual(t, l.maxRun[graph.KindNarration], 4)
		assert.LessOrEqual(t, l.maxRun[graph.KindImage], 5)
		assert.Equal(t, 3, l.maxRun[graph.KindVideo])
		// Stage events, with the planner's summary lines.
		started := l.eventsOf(progress.StageStarted)
		require.Len(t, started, 4)
		assert.Equal(t, "Stage 2: Generating 12 asset:video nodes in batches of 3", started[2].Message)
		assert.Len(t, l.eventsOf(progress.StageFinished), 4)
		last := l.eventsOf(progress.NodeSucceeded)
		assert.Equal(t, 39, last[len(last)-1].Done)
		assert.Equal(t, 39, last[len(last)-1].Total)
		// The run record.
		rec, err := l.runs.GetRun(context.Background(), rep.Record.ID)
		require.NoError(t, err)
		assert.Equal(t, "test", rec.TriggeredBy)
		assert.Equal(t, 120, rec.Seconds)
		assert.Equal(t, executor.RunSucceeded, rec.Status)
		assert.Equal(t, 39, rec.Counts.Generated)
		assert.False(t, rec.EndedAt.Before(rec.StartedAt))
	})
}

func TestStoryOneEdit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 120)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		before := l.snapshot()
		l.resetCalls()
		rep, err := l.run(e, narration3)
		require.NoError(t, err)
		want := []string{"asset:narration:segment[3]", "asset:video:segment[3]", "timeline"}
		assert.Equal(t, sorted(want...), rep.Generated)
		assert.Equal(t, sorted(want...), l.calledIDs())
		after := l.snapshot()
		assert.Equal(t, before.States["asset:narration:segment[3]"].Rev+1, after.States["asset:narration:segment[3]"].Rev)
		for id, st := range before.States {
			if id == want[0] || id == want[1] || id == want[2] {
				assert.NotEqual(t, st.OutputHash, after.States[id].OutputHash, id)
				continue
			}
			assert.Equal(t, st, after.States[id], id)
		}
		l.requireAllClean()
	})
}

func TestStoryEditThroughExecutorEdit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		_, err = e.Edit(context.Background(), l.g, "lecture", "asset:image:segment[2]")
		require.NoError(t, err)
		l.resetCalls()
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Equal(t, sorted("asset:image:segment[2]", "asset:video:segment[2]", "timeline"), rep.Generated)
		_, err = e.Edit(context.Background(), l.g, "lecture", "asset:image:segment[9]")
		require.ErrorIs(t, err, graph.ErrUnknownNode)
	})
}

func TestStoryFlakyProviderRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		flaky := func(failures int) behave {
			n := 0
			return func(context.Context, executor.Request) ([]byte, error) {
				n++
				if n <= failures {
					return nil, errors.New("provider: 503")
				}
				return nil, nil
			}
		}
		l.set("asset:image:segment[1]", flaky(2))
		l.set("asset:narration:segment[4]", flaky(1))
		e := l.executor(executor.Options{})
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Len(t, rep.Generated, l.g.Len())
		assert.Equal(t, l.g.Len()+3, rep.Record.Counts.Attempts)
		assert.Equal(t, 3, l.calls["asset:image:segment[1]"])
		retries := l.eventsOf(progress.NodeRetrying)
		require.Len(t, retries, 3)
		var img []progress.Event
		for _, ev := range retries {
			if ev.Node == "asset:image:segment[1]" {
				img = append(img, ev)
			}
		}
		require.Len(t, img, 2)
		assert.Equal(t, 2, img[0].Attempt)
		assert.Equal(t, 3, img[1].Attempt)
		assert.Equal(t, "provider: 503", img[0].Error)
		// Backoff: 1s then 2s between attempts of 8s each.
		assert.Equal(t, 8*time.Second+time.Second+8*time.Second, img[1].Time.Sub(img[0].Time)+8*time.Second)
		st := l.snapshot().States["asset:image:segment[1]"]
		assert.Equal(t, 3, st.Attempts)
		l.requireAllClean()
	})
}

func TestStoryBatchMemberFailsForGood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		l.set("asset:image:segment[2]", fail(errors.New("content policy")))
		e := l.executor(executor.Options{Default: executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 2}}})
		rep, err := l.run(e)
		var runErr *executor.RunError
		require.ErrorAs(t, err, &runErr)
		require.ErrorIs(t, err, executor.ErrRunFailed)
		require.Len(t, runErr.Failed, 1)
		assert.Equal(t, "asset:image:segment[2]", runErr.Failed[0].Node)
		assert.Equal(t, 2, runErr.Failed[0].Attempt, "%v", err)
		assert.EqualError(t, runErr.Failed[0].Err, "content policy")
		assert.Equal(t, executor.RunFailed, rep.Record.Status)
		assert.Equal(t, []string{"asset:image:segment[2]"}, rep.Failed)
		assert.Equal(t, sorted("asset:video:segment[2]", "timeline"), rep.Skipped)
		// The rest of the batch and the unrelated branches finished.
		assert.Len(t, rep.Generated, l.g.Len()-3)
		assert.Contains(t, rep.Generated, "asset:image:segment[5]")
		assert.Contains(t, rep.Generated, "asset:video:segment[1]")
		assert.Contains(t, rep.Generated, "asset:music")
		// Skipped once each, naming the failed node.
		skipped := l.eventsOf(progress.NodeSkipped)
		require.Len(t, skipped, 2)
		for _, ev := range skipped {
			assert.Equal(t, "skipped: upstream asset:image:segment[2] failed", ev.Message)
		}
		snap := l.snapshot()
		assert.Equal(t, dirty.StatusFailed, snap.States["asset:image:segment[2]"].Status)
		assert.Equal(t, "content policy", snap.States["asset:image:segment[2]"].LastError)
		assert.Equal(t, dirty.StatusMissing, snap.States["timeline"].Status, "never generated")
		l.requireEventOrder(progress.RunFailed)
		rec, err := l.runs.GetRun(context.Background(), rep.Record.ID)
		require.NoError(t, err)
		assert.Equal(t, []string{"asset:image:segment[2]"}, rec.Failed)

		// Rerun only the failed nodes, once the provider is fixed.
		l.set("asset:image:segment[2]", nil)
		l.resetCalls()
		r, err := e.RerunFailed(context.Background(), l.g, rep.Record.ID)
		require.NoError(t, err)
		rep2, err := r.Wait()
		require.NoError(t, err)
		assert.Equal(t, sorted("asset:image:segment[2]", "asset:video:segment[2]", "timeline"), rep2.Generated)
		l.requireAllClean()
	})
}

func TestStoryPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		l.set("asset:narration:segment[1]", func(context.Context, executor.Request) ([]byte, error) {
			panic("tts exploded")
		})
		e := l.executor(executor.Options{})
		rep, err := l.run(e)
		var pe *executor.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "tts exploded", pe.Value)
		assert.Contains(t, string(pe.Stack), "story_test.go")
		assert.Equal(t, []string{"asset:narration:segment[1]"}, rep.Failed)
		assert.Equal(t, 1, l.calls["asset:narration:segment[1]"], "a panic is not retried")
		assert.Equal(t, sorted("asset:video:segment[1]", "timeline"), rep.Skipped)
		assert.Len(t, rep.Generated, l.g.Len()-3)
	})
}

func TestStoryHungGeneratorTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		l.set("asset:video:segment[0]", func(context.Context, executor.Request) ([]byte, error) {
			time.Sleep(time.Hour) // ignores its context
			return []byte("late"), nil
		})
		e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{
			graph.KindVideo: {Timeout: time.Minute, Retry: executor.RetryPolicy{MaxAttempts: 2}},
		}})
		start := time.Now()
		rep, err := l.run(e)
		var te *executor.TimeoutError
		require.ErrorAs(t, err, &te)
		require.ErrorIs(t, err, executor.ErrTimeout)
		assert.Equal(t, time.Minute, te.Timeout)
		assert.Equal(t, []string{"asset:video:segment[0]"}, rep.Failed)
		// Two attempts of a minute and a second of backoff, plus the grace
		// period for the abandoned calls: not the hour the generator takes.
		assert.Less(t, time.Since(start), 10*time.Minute)
		// The late results were thrown away.
		st := l.snapshot().States["asset:video:segment[0]"]
		assert.Equal(t, dirty.StatusFailed, st.Status)
		assert.Empty(t, st.OutputHash)
	})
}

func TestStoryCancelThenResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 120)
		e := l.executor(executor.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		// Stage 2 (videos) is under way at 20+8+3+30+15 s.
		time.Sleep(76 * time.Second)
		synctest.Wait()
		cancel()
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, executor.RunCancelled, rep.Record.Status)
		require.NotEmpty(t, rep.Cancelled)
		assert.LessOrEqual(t, len(rep.Cancelled), 3, "%v", rep.Cancelled)
		for _, id := range rep.Cancelled {
			assert.Contains(t, id, "asset:video")
		}
		assert.Empty(t, rep.Failed)
		snap := l.snapshot()
		for _, id := range rep.Cancelled {
			assert.Equal(t, dirty.StatusCancelled, snap.States[id].Status, id)
		}
		l.requireEventOrder(progress.RunCancelled)
		assert.Len(t, l.eventsOf(progress.NodeCancelled), len(rep.Cancelled))

		// Resume: only what is not clean runs; nothing clean runs again.
		var clean []string
		for id, st := range snap.States {
			if st.Status == dirty.StatusClean && id != executor.GraphStateID {
				clean = append(clean, id)
			}
		}
		l.resetCalls()
		r2, err := e.Resume(context.Background(), l.g, rep.Record.ID)
		require.NoError(t, err)
		rep2, err := r2.Wait()
		require.NoError(t, err)
		for _, id := range clean {
			assert.Zero(t, l.calls[id], "clean node %s ran again", id)
		}
		assert.Equal(t, l.g.Len()-len(clean), len(rep2.Generated))
		l.requireAllClean()
		rec, err := l.runs.GetRun(context.Background(), rep2.Record.ID)
		require.NoError(t, err)
		assert.Equal(t, "resume of run "+rep.Record.ID, rec.Reason)
	})
}

func TestStoryRunHandleCancelFreesSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(25 * time.Second)
		synctest.Wait()
		r.Cancel()
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, executor.RunCancelled, rep.Record.Status)
		// Narrations and images were running: all cancelled, none failed.
		assert.NotEmpty(t, rep.Cancelled)
		assert.Empty(t, rep.Failed)
		synctest.Wait()
		l.mu.Lock()
		defer l.mu.Unlock()
		for kind, n := range l.running {
			assert.Zero(t, n, "%s still running", kind)
		}
	})
}

func TestStoryEditDuringRunIsSuperseded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		l.resetCalls()
		// Regenerate video 3 (forced); while it runs, the user edits it.
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "asset:video:segment[3]", Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		v, err := e.Edit(context.Background(), l.g, "lecture", "asset:video:segment[3]")
		require.NoError(t, err)
		rep, err := r.Wait()
		require.NoError(t, err)
		assert.Equal(t, []string{"asset:video:segment[3]"}, rep.Superseded)
		assert.Equal(t, []string{"timeline"}, rep.Skipped)
		sup := l.eventsOf(progress.NodeSuperseded)
		require.Len(t, sup, 1)
		assert.Contains(t, sup[0].Message, "edited while it ran")
		// The edit is not lost: the node stays dirty at the edited revision.
		snap := l.snapshot()
		st := snap.States["asset:video:segment[3]"]
		assert.Equal(t, dirty.StatusDirty, st.Status)
		assert.Equal(t, int64(1), st.Rev)
		assert.Greater(t, snap.Version, v-1)

		// The next run picks it up.
		rep, err = l.run(e)
		require.NoError(t, err)
		assert.Equal(t, sorted("asset:video:segment[3]", "timeline"), rep.Generated)
		l.requireAllClean()
	})
}

func TestStoryEditDuringRunConverges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{Converge: 2})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		// While the videos run, the user edits a narration that is done
		// (a commit conflict for the run) and the video being made.
		time.Sleep(40 * time.Second)
		synctest.Wait()
		videos := l.activeOf(graph.KindVideo)
		require.Len(t, videos, 3)
		_, err = e.Edit(context.Background(), l.g, "lecture", "asset:narration:segment[5]", videos[1])
		require.NoError(t, err)
		rep, err := r.Wait()
		require.NoError(t, err)
		assert.Equal(t, 2, rep.Rounds)
		// Superseded in round 1, made in round 2: the report lists its
		// last outcome, the events both.
		assert.Empty(t, rep.Superseded)
		assert.Contains(t, rep.Generated, videos[1])
		sup := l.eventsOf(progress.NodeSuperseded)
		require.Len(t, sup, 1)
		assert.Equal(t, videos[1], sup[0].Node)
		snap := l.snapshot()
		assert.Equal(t, int64(1), snap.States["asset:narration:segment[5]"].Rev)
		assert.Equal(t, int64(1), snap.States[videos[1]].Rev)
		l.requireAllClean()
		l.requireEventOrder(progress.RunFinished)
	})
}

func TestStoryEarlyCutoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		// The edit changes nothing in the narration's output.
		same := func(_ context.Context, req executor.Request) ([]byte, error) {
			req.Rev = 0
			return defaultData(req), nil
		}
		l.set("asset:narration:segment[3]", same)
		l.resetCalls()
		rep, err := l.run(e, narration3)
		require.NoError(t, err)
		assert.Equal(t, []string{"asset:narration:segment[3]"}, rep.Generated)
		assert.Equal(t, sorted("asset:video:segment[3]", "timeline"), rep.Unchanged)
		assert.Equal(t, []string{"asset:narration:segment[3]"}, l.calledIDs())
		assert.Len(t, l.eventsOf(progress.NodeUnchanged), 2)
		l.requireAllClean()
	})
}

// bulk is a batch generator for images that records its calls.
type bulk struct {
	*lab
	failOnce map[string]bool
}

func (b *bulk) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.NodeID
	}
	b.mu.Lock()
	b.batches = append(b.batches, ids)
	b.mu.Unlock()
	out := make([]executor.Outcome, len(reqs))
	time.Sleep(8 * time.Second)
	for i, r := range reqs {
		if b.failOnce[r.NodeID] {
			delete(b.failOnce, r.NodeID)
			out[i].Err = errors.New("partial failure")
			continue
		}
		out[i].Asset = executor.Asset{Data: defaultData(r)}
	}
	return out
}

func TestStoryBulkGeneratorPartialFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		b := &bulk{lab: l, failOnce: map[string]bool{"asset:image:segment[2]": true}}
		reg := l.registry(l)
		reg[graph.KindImage] = b
		e := l.executor(executor.Options{Generators: reg})
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Len(t, rep.Generated, l.g.Len())
		// Six images, five at a time: a bulk call of five, then one of one,
		// or however the slots came free; every image went through one.
		total := 0
		for _, call := range b.batches {
			assert.LessOrEqual(t, len(call), 5)
			total += len(call)
		}
		assert.Equal(t, 6, total)
		assert.Greater(t, len(b.batches[0]), 1)
		// The failed one was retried alone with Generate; the others kept.
		assert.Equal(t, 1, l.calls["asset:image:segment[2]"])
		for _, id := range ids(l, graph.KindImage, 0, 1, 3, 4, 5) {
			assert.Zero(t, l.calls[id], id)
		}
		l.requireAllClean()
	})
}

func TestStoryMissingGenerator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		reg := l.registry(l)
		delete(reg, graph.KindMusic)
		delete(reg, graph.KindVideo)
		e := l.executor(executor.Options{Generators: reg})
		rep, err := l.run(e)
		assert.Nil(t, rep)
		var me *executor.MissingGeneratorError
		require.ErrorAs(t, err, &me)
		require.ErrorIs(t, err, executor.ErrMissingGenerator)
		assert.Equal(t, []string{graph.KindMusic, graph.KindVideo}, me.Kinds)
		assert.Empty(t, me.Unused)
		assert.Empty(t, l.calledIDs())
		assert.Zero(t, l.snapshot().Version, "nothing committed")
		// A plan without those kinds runs: only an image edit... which
		// needs video. Only music's absence matters for a narration-free
		// plan? No: an edit of the script needs everything.
		_, err = l.run(e, dirty.Mark{ID: "script", Reason: dirty.ReasonEdited})
		require.ErrorIs(t, err, executor.ErrMissingGenerator)

		// A misspelt kind is named among the generators of no kind.
		reg["asset:musc"], reg["asset:vdeo"] = l, l
		e = l.executor(executor.Options{Generators: reg})
		_, err = l.run(e)
		require.ErrorAs(t, err, &me)
		assert.Equal(t, []string{"asset:musc", "asset:vdeo"}, me.Unused)
		assert.EqualError(t, err, "executor: missing generator for kinds asset:music, asset:video: register one per kind in Options.Generators"+
			" (it has generators for names the graph has no kind of: asset:musc, asset:vdeo)")
		// A registry shared with other templates: the text names a few.
		for i := range 10 {
			reg[fmt.Sprintf("other:%d", i)] = l
		}
		_, err = l.run(l.executor(executor.Options{Generators: reg}))
		require.ErrorAs(t, err, &me)
		assert.Len(t, me.Unused, 12)
		assert.ErrorContains(t, err, "no kind of: asset:musc, asset:vdeo, other:0, other:1, other:2, other:3, other:4, other:5 and 4 more)")
	})
}

func TestStoryStagedAndDataflowAgree(t *testing.T) {
	final := map[executor.Mode]map[string]dirty.State{}
	took := map[executor.Mode]time.Duration{}
	for _, mode := range []executor.Mode{executor.Dataflow, executor.Staged} {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 120)
			// Uneven latencies make the stage barrier visible.
			l.set("asset:image:segment[0]", func(context.Context, executor.Request) ([]byte, error) {
				time.Sleep(60 * time.Second)
				return nil, nil
			})
			e := l.executor(executor.Options{Mode: mode})
			start := time.Now()
			_, err := l.run(e)
			require.NoError(t, err)
			took[mode] = time.Since(start)
			_, err = l.run(e, narration3)
			require.NoError(t, err)
			snap := l.snapshot()
			for id, st := range snap.States {
				st.UpdatedAt = time.Time{}
				if id == executor.GraphStateID {
					st.OutputHash = "" // a random token of the graph's making
				}
				snap.States[id] = st
			}
			final[mode] = snap.States
		})
	}
	assert.Empty(t, cmp.Diff(final[executor.Dataflow], final[executor.Staged]))
	assert.Less(t, took[executor.Dataflow], took[executor.Staged])
}

// An edit of a node that already succeeded in the run makes the inputs of
// its dependents stale: once the run learns of it (its next commit
// conflicts), the dependents that have not started are skipped instead of
// made from stale inputs. Each is then generated once, by the next round
// or run, and never twice.
func TestStoryEditAfterSuccessSkipsStaleDependents(t *testing.T) {
	for _, converge := range []int{0, 1} {
		t.Run(fmt.Sprintf("converge=%d", converge), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 60)
				e := l.executor(executor.Options{Converge: converge})
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				// At 45 s narration 5 is done, and its video waits for a
				// slot: three other videos run.
				time.Sleep(45 * time.Second)
				synctest.Wait()
				narration5, video5 := "asset:narration:segment[5]", "asset:video:segment[5]"
				require.Len(t, l.activeOf(graph.KindVideo), 3)
				require.NotContains(t, l.activeOf(graph.KindVideo), video5)
				require.NotContains(t, l.calledIDs(), video5)
				require.Equal(t, dirty.StatusClean, l.snapshot().States[narration5].Status)
				_, err = e.Edit(context.Background(), l.g, "lecture", narration5)
				require.NoError(t, err)
				rep, err := r.Wait()
				require.NoError(t, err)
				assert.Empty(t, rep.Superseded)
				if converge == 0 {
					assert.Contains(t, rep.Skipped, video5)
					assert.Contains(t, rep.Skipped, "timeline")
				} else {
					assert.Empty(t, rep.Skipped, "skipped in round 1, made in round 2: listed as generated alone")
				}
				var msgs []string
				for _, ev := range l.eventsOf(progress.NodeSkipped) {
					msgs = append(msgs, ev.Node+": "+ev.Message)
				}
				why := "skipped: upstream " + narration5 + " was edited during the run"
				assert.Equal(t, []string{video5 + ": " + why, "timeline: " + why}, msgs)
				if converge == 0 {
					assert.Equal(t, 1, rep.Rounds)
					st := l.snapshot().States[video5]
					assert.NotEqual(t, dirty.StatusClean, st.Status, "the skipped video is left for the next run")
					rep, err = l.run(e)
					require.NoError(t, err)
				} else {
					assert.Equal(t, 2, rep.Rounds)
				}
				assert.Subset(t, rep.Generated, []string{narration5, video5, "timeline"})
				// Narration 5 was made in both rounds: listed once.
				assert.Equal(t, slices.Compact(slices.Clone(rep.Generated)), rep.Generated)
				assert.Equal(t, len(rep.Generated), rep.Record.Counts.Generated)
				l.mu.Lock()
				calls := maps.Clone(l.calls)
				l.mu.Unlock()
				assert.Equal(t, 2, calls[narration5], "before and after the edit")
				assert.Equal(t, 1, calls[video5], "made once, from the edited narration")
				assert.Equal(t, 1, calls["timeline"])
				l.requireAllClean()
				snap := l.snapshot()
				assert.Equal(t, int64(1), snap.States[narration5].Rev)
			})
		})
	}
}

// Two runs on one graph at once: run B regenerates a narration and then
// its video, while run A, started earlier, still makes the same video
// from the old narration. A ends last. Its result must not overwrite B's:
// it was made from inputs that are no longer the stored ones. B's video
// is current, so A keeps it as its own, and the stored video matches the
// stored narration.
func TestStoryConcurrentRunsNeverKeepStaleInputs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		settleLab(t, l)
		e := l.executor(executor.Options{})
		l.resetCalls()
		narration1, image1, video1 := "asset:narration:segment[1]", "asset:image:segment[1]", "asset:video:segment[1]"
		var videoCalls atomic.Int32
		l.set(video1, func(ctx context.Context, _ executor.Request) ([]byte, error) {
			if videoCalls.Add(1) == 1 { // run A's call: 20 s slower
				return nil, pause(ctx, 20*time.Second)
			}
			return nil, nil
		})
		a, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: video1, Reason: dirty.ReasonForced}}, TriggeredBy: "A"})
		require.NoError(t, err)
		time.Sleep(5 * time.Second)
		b, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: narration1, Reason: dirty.ReasonEdited}}, TriggeredBy: "B"})
		require.NoError(t, err)
		repB, err := b.Wait()
		require.NoError(t, err)
		assert.Equal(t, sorted(narration1, video1, "timeline"), repB.Generated)
		repA, err := a.Wait()
		require.NoError(t, err)
		// B's video, made from the new narration, is current: it stands
		// for A's. A's timeline was skipped when A learnt of the edit.
		assert.Equal(t, []string{video1}, repA.Unchanged)
		assert.Equal(t, []string{"timeline"}, repA.Skipped)
		assert.Empty(t, repA.Superseded)
		assert.Empty(t, repA.Generated)

		// The stored video was made from the stored narration and image.
		l.requireAllClean()
		requireConsistent(t, l)
		snap := l.snapshot()
		var inputs []string
		v1, err := l.g.Lookup(video1)
		require.NoError(t, err)
		for _, d := range l.g.Deps(v1) {
			inputs = append(inputs, snap.States[l.g.NodeID(d)].OutputHash)
		}
		require.Equal(t, []string{snap.States[narration1].OutputHash, snap.States[image1].OutputHash}, inputs)
		want := dirty.InputHash(0, inputs)
		assert.Equal(t, want, snap.States[video1].InputHash)
		assert.Equal(t, int64(1), snap.States[narration1].Rev)
	})
}

// requireConsistent fails unless every node's stored input hash is the
// hash of its revision and its dependencies' stored outputs: no stored
// result was made from inputs that the store no longer holds.
func requireConsistent(t *testing.T, l *lab) {
	t.Helper()
	snap := l.snapshot()
	for n := range l.g.Len() {
		node := graph.Node(n)
		st := snap.States[l.g.NodeID(node)]
		var inputs []string
		for _, d := range l.g.Deps(node) {
			inputs = append(inputs, snap.States[l.g.NodeID(d)].OutputHash)
		}
		require.Equal(t, dirty.InputHash(st.Rev, inputs), st.InputHash, "node %s was made from inputs no longer stored", l.g.NodeID(node))
	}
}

// Two runs regenerate the same video at once, from the same inputs, and
// their outputs differ. Run B commits first, and its timeline builds on
// its video; run A, ending last, must not overwrite that video: it keeps
// B's, made from the same inputs, as it would keep a result by early
// cutoff.
func TestStoryConcurrentRunsNeverOverwriteACommittedResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		settleLab(t, l)
		e := l.executor(executor.Options{})
		video1 := "asset:video:segment[1]"
		var videoCalls atomic.Int32
		l.set(video1, func(ctx context.Context, _ executor.Request) ([]byte, error) {
			if videoCalls.Add(1) == 1 { // run A's call: 20 s slower, another output
				return []byte("A's take"), pause(ctx, 20*time.Second)
			}
			return []byte("B's take"), nil
		})
		force := []dirty.Mark{{ID: video1, Reason: dirty.ReasonForced}}
		a, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, Marks: force})
		require.NoError(t, err)
		time.Sleep(5 * time.Second)
		b, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, Marks: force})
		require.NoError(t, err)
		repB, err := b.Wait()
		require.NoError(t, err)
		assert.Equal(t, sorted(video1, "timeline"), repB.Generated)
		repA, err := a.Wait()
		require.NoError(t, err)
		// A keeps B's video, made from the same inputs, as if by early
		// cutoff, and so its timeline too.
		t.Logf("A: gen %v unch %v sup %v skip %v", repA.Generated, repA.Unchanged, repA.Superseded, repA.Skipped)
		assert.Equal(t, sorted(video1, "timeline"), repA.Unchanged)
		assert.Empty(t, repA.Superseded)
		l.requireAllClean()
		requireConsistent(t, l)
		a1, err := l.assets.Get(context.Background(), l.snapshot().States[video1].AssetRef)
		require.NoError(t, err)
		assert.Equal(t, "B's take", string(a1.Data))
	})
}

// Run A reloads on one commit and learns that run B replaced a narration;
// its video of that narration, made before from the old one, ends later.
// A must not commit it (its inputs are stale, though the commit itself
// meets no conflict), and B's video, ending last, is the one kept.
func TestStoryConcurrentRunsStaleAcrossCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		settleLab(t, l)
		e := l.executor(executor.Options{})
		narration1, video1, video2 := "asset:narration:segment[1]", "asset:video:segment[1]", "asset:video:segment[2]"
		var videoCalls atomic.Int32
		l.set(video1, func(ctx context.Context, _ executor.Request) ([]byte, error) {
			extra := 20 * time.Second // A's call ends at 50 s
			if videoCalls.Add(1) > 1 {
				extra = 70 * time.Second // B's ends at 108 s
			}
			return nil, pause(ctx, extra)
		})
		// A's video 2 ends at 30 s: its commit conflicts with B's
		// narration, committed at 8 s, and A reloads.
		a, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: video1, Reason: dirty.ReasonForced}, {ID: video2, Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		time.Sleep(5 * time.Second)
		b, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: narration1, Reason: dirty.ReasonEdited}}})
		require.NoError(t, err)
		repA, err := a.Wait()
		require.NoError(t, err)
		assert.Equal(t, []string{video1}, repA.Superseded)
		assert.Contains(t, repA.Generated, video2)
		repB, err := b.Wait()
		require.NoError(t, err)
		assert.Contains(t, repB.Generated, video1)
		assert.Empty(t, repB.Superseded)
		l.requireAllClean()
		requireConsistent(t, l)
	})
}

// Run B edits a narration whose new take is slow; run A, forcing the
// narration's video, ends first. The narration is dirty then, so A's
// video, made from the old narration, is not committed clean: B's video,
// made from the new one, is the one kept.
func TestStoryConcurrentRunsDirtyDependency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		settleLab(t, l)
		e := l.executor(executor.Options{})
		narration1, video1 := "asset:narration:segment[1]", "asset:video:segment[1]"
		l.set(narration1, func(ctx context.Context, _ executor.Request) ([]byte, error) {
			return nil, pause(ctx, 40*time.Second) // B's new take ends at 48 s
		})
		a, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: video1, Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		time.Sleep(5 * time.Second)
		b, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: narration1, Reason: dirty.ReasonEdited}}})
		require.NoError(t, err)
		repA, err := a.Wait()
		require.NoError(t, err)
		assert.Equal(t, []string{video1}, repA.Superseded)
		repB, err := b.Wait()
		require.NoError(t, err)
		assert.Equal(t, sorted(narration1, video1, "timeline"), repB.Generated)
		l.requireAllClean()
		requireConsistent(t, l)
	})
}

// slowExists is an asset store whose Exists takes a while for one
// reference, once, after a given time: the window of an early cutoff.
type slowExists struct {
	executor.AssetStore
	ref   string
	after time.Time
	once  sync.Once
}

func (s *slowExists) Exists(ctx context.Context, ref string) (bool, error) {
	if ref == s.ref && !time.Now().Before(s.after) {
		s.once.Do(func() { time.Sleep(10 * time.Second) })
	}
	return s.AssetStore.Exists(ctx, ref)
}

// Run A regenerates an image to the same output, so its video may keep
// its stored result by early cutoff; while A checks that the asset is
// still there, run B forces the video. A's cutoff must not undo B's force:
// B's new take is the one kept.
func TestStoryConcurrentRunsForceBeatsCutoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		settleLab(t, l)
		image1, video1 := "asset:image:segment[1]", "asset:video:segment[1]"
		assets := &slowExists{AssetStore: l.assets, ref: l.snapshot().States[video1].AssetRef,
			after: time.Now().Add(5 * time.Second)}
		e2, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets,
			Runs: l.runs})
		require.NoError(t, err)
		l.set(video1, func(context.Context, executor.Request) ([]byte, error) { return []byte("B's new take"), nil })
		a, err := e2.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: image1, Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		time.Sleep(10 * time.Second) // A's video checks its asset from 8 s to 18 s
		b, err := e2.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: video1, Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		repA, err := a.Wait()
		require.NoError(t, err)
		assert.Equal(t, []string{video1}, repA.Superseded)
		repB, err := b.Wait()
		require.NoError(t, err)
		assert.Contains(t, repB.Generated, video1)
		l.requireAllClean()
		requireConsistent(t, l)
		got, err := l.assets.Get(context.Background(), l.snapshot().States[video1].AssetRef)
		require.NoError(t, err)
		assert.Equal(t, "B's new take", string(got.Data))
		require.NoError(t, e2.Close(context.Background()))
	})
}

// Two runs force the same video; B's take is committed first, and A's
// attempt then fails for good. B's video stands for A's: A does not fail
// because of a node that is clean and current.
func TestStoryConcurrentRunsFailureOverCommittedResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		settleLab(t, l)
		e := l.executor(executor.Options{})
		video1 := "asset:video:segment[1]"
		var calls atomic.Int32
		l.set(video1, func(ctx context.Context, _ executor.Request) ([]byte, error) {
			if calls.Add(1) == 1 { // A's call fails at 50 s
				time.Sleep(20 * time.Second)
				return nil, executor.Permanent(errors.New("provider refused"))
			}
			return []byte("B's take"), nil
		})
		force := []dirty.Mark{{ID: video1, Reason: dirty.ReasonForced}}
		a, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, Marks: force})
		require.NoError(t, err)
		time.Sleep(5 * time.Second)
		b, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, Marks: force})
		require.NoError(t, err)
		_, err = b.Wait()
		require.NoError(t, err)
		repA, err := a.Wait()
		require.NoError(t, err, "A failed over B's good video")
		assert.Empty(t, repA.Failed)
		assert.Contains(t, repA.Unchanged, video1)
		assert.Equal(t, executor.RunSucceeded, repA.Record.Status)
		l.requireAllClean()
		requireConsistent(t, l)
	})
}

// delayed runs the lab's generator after an extra delay per run and node,
// keyed "<run ID>/<node ID>".
func delayed(l *lab, extra map[string]time.Duration) executor.Generator {
	return executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if err := pause(ctx, extra[req.RunID+"/"+req.NodeID]); err != nil {
			return executor.Asset{}, err
		}
		return l.Generate(ctx, req)
	})
}

// Run C remakes narration 5, and keeps or remakes video 5, while run A
// waits to remake the narration; the user then edits it. A's new narration makes C's video
// stale. A is cancelled before it gets to the video: the video must not
// stay clean, so that the next run remakes it.
func TestStoryConcurrentRunsNewOutputDirtiesDependents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		extra := map[string]time.Duration{}
		var marksA []dirty.Mark
		for s := range 6 {
			id := graph.ID{Kind: graph.KindNarration, Segment: s}.String()
			if s < 4 { // they hold A's 4 narration slots until 93 s
				extra["A/"+id] = 90 * time.Second
			}
			if s != 4 {
				marksA = append(marksA, dirty.Mark{ID: id, Reason: dirty.ReasonForced})
			}
		}
		for s := range 3 { // they hold A's 3 video slots
			id := graph.ID{Kind: graph.KindVideo, Segment: s}.String()
			extra["A/"+id] = 90 * time.Second
			marksA = append(marksA, dirty.Mark{ID: id, Reason: dirty.ReasonForced})
		}
		e := l.executor(executor.Options{Generators: l.registry(delayed(l, extra))})
		_, err := l.run(e)
		require.NoError(t, err)
		narration5, video5 := "asset:narration:segment[5]", "asset:video:segment[5]"
		c, err := e.Start(context.Background(), executor.RunRequest{RunID: "C", GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: narration5, Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		a, err := e.Start(context.Background(), executor.RunRequest{RunID: "A", GraphKey: "lecture", Graph: l.g, Marks: marksA})
		require.NoError(t, err)
		_, err = c.Wait()
		require.NoError(t, err)
		require.Equal(t, dirty.StatusClean, l.snapshot().States[video5].Status, "C made the video clean again")
		time.Sleep(50 * time.Second)
		_, err = e.Edit(context.Background(), l.g, "lecture", narration5)
		require.NoError(t, err)
		time.Sleep(55 * time.Second) // A made narration 5 at its new revision at 96 s
		synctest.Wait()
		snap := l.snapshot()
		require.Equal(t, dirty.StatusClean, snap.States[narration5].Status)
		require.Equal(t, int64(1), snap.States[narration5].Rev)
		assert.Equal(t, dirty.StatusDirty, snap.States[video5].Status, "C's video is stale")
		a.Cancel()
		_, err = a.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Contains(t, rep.Generated, video5)
		l.requireAllClean()
		requireConsistent(t, l)
	})
}

// Run A's commit of its new video is applied, but the store reports an
// error; before A reloads, run B forces the video. A must recognize its
// commit as applied, and not commit its take again over B's force: B's
// take, forced after A's was stored, is the one kept.
func TestStoryAppliedCommitDoesNotUndoALaterForce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		_, err := l.run(l.executor(executor.Options{}))
		require.NoError(t, err)
		video1 := "asset:video:segment[1]"
		force := []dirty.Mark{{ID: video1, Reason: dirty.ReasonForced}}
		l.set(video1, func(_ context.Context, req executor.Request) ([]byte, error) {
			return []byte("take of " + req.RunID), nil
		})
		var e *executor.Executor
		var b *executor.Run
		states := &failsOnce{StateStore: l.states, applied: true,
			pick: func(cs []executor.Change) bool {
				return slices.ContainsFunc(cs, func(c executor.Change) bool {
					return c.ID == video1 && c.State.Status == dirty.StatusClean
				})
			},
			hook: func() {
				var err error
				b, err = e.Start(context.Background(), executor.RunRequest{RunID: "B", GraphKey: "lecture", Graph: l.g, Marks: force})
				require.NoError(t, err)
			}}
		e, err = executor.New(executor.Options{Generators: l.registry(l), States: states, Assets: l.assets, Runs: l.runs})
		require.NoError(t, err)
		a, err := e.Start(context.Background(), executor.RunRequest{RunID: "A", GraphKey: "lecture", Graph: l.g, Marks: force})
		require.NoError(t, err)
		repA, err := a.Wait()
		require.NoError(t, err)
		assert.Contains(t, repA.Generated, video1)
		repB, err := b.Wait()
		require.NoError(t, err)
		assert.Contains(t, repB.Generated, video1)
		got, err := l.assets.Get(context.Background(), l.snapshot().States[video1].AssetRef)
		require.NoError(t, err)
		assert.Equal(t, "take of B", string(got.Data))
		requireConsistent(t, l)
		require.NoError(t, e.Close(context.Background()))
	})
}

// slowOne is a bulk generator for images, honouring its context, in which
// one image takes far longer than the others: at the end of the call's
// context it returns what it has made, and its context's error for the
// slow one. ignore makes it ignore its context instead, returning only
// after the slow image is done.
type slowOne struct {
	*lab
	slow   string
	ignore bool
}

func (b *slowOne) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	out := make([]executor.Outcome, len(reqs))
	b.mu.Lock()
	for _, r := range reqs {
		b.calls[r.NodeID]++
	}
	b.mu.Unlock()
	for i, r := range reqs {
		out[i].Asset = executor.Asset{Data: defaultData(r)}
		if r.NodeID != b.slow {
			continue
		}
		if b.ignore {
			time.Sleep(time.Hour)
			continue
		}
		select {
		case <-time.After(time.Hour):
		case <-ctx.Done():
			out[i] = executor.Outcome{Err: ctx.Err()}
		}
	}
	return out
}

// TestStoryBulkTimeoutKeepsFinishedOutcomes: one slow image in a bulk call
// that honours its context does not throw its batch's finished images
// away at the kind's timeout, to be made (and billed) again one by one:
// the call's context ends, the call returns in its grace, the finished
// images are kept, and the slow one alone is retried, as timed out. A
// bulk call that ignores its context is still abandoned after its grace,
// and every node of it retried alone.
func TestStoryBulkTimeoutKeepsFinishedOutcomes(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprint("ignore=", ignore), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				slow := "asset:image:segment[1]"
				b := &slowOne{lab: l, slow: slow, ignore: ignore}
				reg := l.registry(l)
				reg[graph.KindImage] = b
				e := l.executor(executor.Options{Generators: reg, Kinds: map[string]executor.KindOptions{
					graph.KindImage: {Timeout: time.Minute},
				}})
				rep, err := l.run(e)
				require.NoError(t, err)
				assert.Len(t, rep.Generated, l.g.Len())
				l.mu.Lock()
				defer l.mu.Unlock()
				// Each image was in the bulk call; the slow one was then
				// retried alone with Generate (the lab's, which is quick).
				assert.Equal(t, 2, l.calls[slow], "the bulk call, then one alone")
				for _, id := range ids(l, graph.KindImage, 0, 2) {
					if ignore {
						assert.Equal(t, 2, l.calls[id], "%s: abandoned with its call, then retried alone", id)
					} else {
						assert.Equal(t, 1, l.calls[id], "%s: kept from the bulk call, not made again", id)
					}
				}
				var retries []string
				for _, ev := range l.events {
					if ev.Type == progress.NodeRetrying {
						retries = append(retries, ev.Node+": "+ev.Error)
					}
				}
				want := []string{slow + ": executor: attempt timed out after 1m0s"}
				if ignore {
					want = sorted(ids(l, graph.KindImage, 0, 1, 2)...)
					for i := range want {
						want[i] += ": executor: attempt timed out after 1m0s"
					}
					slices.Sort(retries)
				}
				assert.Equal(t, want, retries)
				l.requireAllClean()
			})
		})
	}
}
