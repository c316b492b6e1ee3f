package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A run that Abandon recorded as interrupted, not resumed, could still be
// resumed: the new run named it in Record.Resumes while its record went
// on saying that no run resumed it. A Resume or RerunFailed of it is now
// refused, saying that it was abandoned and why, and what to do instead;
// nothing is started, and the record is left as Abandon wrote it. The
// refusal still ends the run's stream when the Sink failed the Abandon's
// final event, as an Abandon again would: one final event, naming no
// resuming run.
func TestResumeOfAnAbandonedRunIsRefused(t *testing.T) {
	const crashAfter = 5
	for _, rs := range resumers {
		for _, sinkDown := range []bool{false, true} {
			name := rs.name
			if sinkDown {
				name += "/the Abandon's final event failed"
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ctx := context.Background()
					l := newLab(t, 30)
					sink, rec, e := crashedOnDownSink(t, l, crashAfter)
					before := replay(t, sink.Memory, rec.ID)
					require.Len(t, before, crashAfter)

					sink.publishDown.Store(sinkDown)
					require.NoError(t, e.Abandon(ctx, rec.ID, "template podcast-v1 was retired"))
					sink.publishDown.Store(false)
					abandoned, err := l.runs.GetRun(ctx, rec.ID)
					require.NoError(t, err)
					if sinkDown {
						require.Len(t, replay(t, sink.Memory, rec.ID), crashAfter, "no final event yet")
					}

					r, err := rs.call(e, ctx, l.g, rec.ID)
					require.ErrorIs(t, err, executor.ErrInvalidRequest)
					require.Nil(t, r)
					assert.NotErrorIs(t, err, executor.ErrGraphReplaced)
					assert.Contains(t, err.Error(), `run "`+rec.ID+`": the run was abandoned`)
					assert.Contains(t, err.Error(), `(Executor.Abandon, with the reason "template podcast-v1 was retired")`)
					assert.Contains(t, err.Error(), "a new run of its graph (Executor.Start or Run) makes")

					runs, err := l.runs.ListRuns(ctx, "lecture")
					require.NoError(t, err)
					require.Len(t, runs, 1, "no run was started")
					after, err := l.runs.GetRun(ctx, rec.ID)
					require.NoError(t, err)
					assert.Equal(t, abandoned, after, "the record is left as Abandon wrote it")

					want := progress.Event{RunID: rec.ID, GraphKey: "lecture", Seq: crashAfter + 1, Time: abandoned.EndedAt,
						Type: progress.RunCancelled, Stage: progress.NoStage, Message: abandoned.Error,
						Error: `executor: run cancelled: run "` + rec.ID + `": interrupted`,
						Done:  before[crashAfter-1].Done, Total: before[crashAfter-1].Total}
					got := replay(t, sink.Memory, rec.ID)
					assert.Empty(t, cmp.Diff(append(before, want), got), "one final event (-want +got)")

					// Refused again, and the stream keeps its one final
					// event.
					_, err = rs.call(e, ctx, l.g, rec.ID)
					require.ErrorIs(t, err, executor.ErrInvalidRequest)
					assert.Empty(t, cmp.Diff(got, replay(t, sink.Memory, rec.ID)))

					// A new run of its graph makes what is not clean.
					_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
					require.NoError(t, err)
					l.requireAllClean()
				})
			})
		}
	}
}

// A run recorded as interrupted, not resumed, by a Resume refused as its
// graph was no longer the key's is no abandoned run: a later Resume is
// refused as before, with ErrGraphReplaced, while the key's graph is
// another, and taken once a run of its graph has made it the key's again.
func TestResumeOfARunNotResumedForItsGraphIsNotRefusedAsAbandoned(t *testing.T) {
	for _, rs := range resumers {
		t.Run(rs.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				sink := progress.NewMemory(progress.MemoryOptions{})
				rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				e := newExecutor(t, l, sink)
				longer, err := graph.Build(graph.Lecture(), 60)
				require.NoError(t, err)
				_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: longer})
				require.NoError(t, err)
				for range 2 {
					_, err = rs.call(e, ctx, l.g, rec.ID)
					require.ErrorIs(t, err, executor.ErrGraphReplaced)
					assert.NotContains(t, err.Error(), "abandoned")
				}
				got, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				require.Equal(t, executor.RunInterrupted, got.Status)
				require.Contains(t, got.Error, "not resumed: its graph is no longer the key's")

				_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				r, err := rs.call(e, ctx, l.g, rec.ID)
				require.NoError(t, err)
				_, err = r.Wait()
				require.NoError(t, err)
				l.requireAllClean()
			})
		})
	}
}
