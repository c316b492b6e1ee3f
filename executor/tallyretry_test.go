package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// crashFailing runs l's lecture, whose narration of segment 1 fails, on
// an executor whose sink crashes after 8 events, and records the run as
// running again with the counts of its start, as a process that died
// before it recorded its outcome leaves it. It returns that record and
// the counts the run would have recorded.
func crashFailing(t *testing.T, l *lab, stream progress.Sink) (executor.Record, executor.Counts) {
	t.Helper()
	ctx := context.Background()
	l.set("asset:narration:segment[1]", fail(executor.Permanent(errors.New("tts: voice not found"))))
	old := newExecutor(t, l, &crashingSink{next: stream, left: 8})
	r, err := old.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
	require.NoError(t, err)
	_, err = r.Wait()
	require.ErrorAs(t, err, new(*executor.RunError))
	rec, err := l.runs.GetRun(ctx, r.ID())
	require.NoError(t, err)
	require.Equal(t, []string{"asset:narration:segment[1]"}, rec.Failed)
	full := rec.Counts
	rec.Status, rec.EndedAt, rec.Error = executor.RunRunning, time.Time{}, ""
	rec.Counts, rec.Failed = executor.Counts{}, nil
	require.NoError(t, l.runs.PutRun(ctx, rec))
	l.set("asset:narration:segment[1]", nil) // the voice is found again
	return rec, full
}

// The tally of what a crashed run did (the key's runs and states, read
// by a Resume, a RerunFailed or an Abandon that finds its record
// running) was not retried when its store call failed with an error that
// may pass, as every other store call of those calls is: one lost
// connection, and the run was recorded interrupted with "0 generated, 0
// failed" and no failed node, while Abandon returned nil, its doc
// saying that its store calls are retried; and RerunFailed, its marks
// made from that tally, forced none of the nodes that the run failed.
// The tally is now retried as the other store calls are.
func TestTallyOfACrashedRunIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(e *executor.Executor, l *lab, id string) (*executor.Run, error)
	}{
		{"Resume", func(e *executor.Executor, l *lab, id string) (*executor.Run, error) {
			return e.Resume(context.Background(), l.g, id)
		}},
		{"RerunFailed", func(e *executor.Executor, l *lab, id string) (*executor.Run, error) {
			return e.RerunFailed(context.Background(), l.g, id)
		}},
		{"Abandon", func(e *executor.Executor, _ *lab, id string) (*executor.Run, error) {
			return nil, e.Abandon(context.Background(), id, "template podcast-v1 was retired")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				stream := progress.NewMemory(progress.MemoryOptions{})
				rec, full := crashFailing(t, l, stream)
				last := replay(t, stream, rec.ID)[7]

				time.Sleep(time.Minute)
				// The tally's Load is the new executor's first.
				states := &editOutage{MemoryStates: l.states, err: errors.New("connection reset by peer"), loadFails: 1}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: states, Assets: l.assets,
					Runs: l.runs, Sink: stream})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
				r, err := tc.call(e, l, rec.ID)
				require.NoError(t, err)
				var rep *executor.Report
				if r != nil {
					rep, err = r.Wait()
					require.NoError(t, err)
				}

				got, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				require.Equal(t, executor.RunInterrupted, got.Status)
				want := executor.Counts{Planned: last.Total, Generated: full.Generated, Failed: full.Failed}
				assert.Empty(t, cmp.Diff(want, got.Counts), "the interrupted run's counts (-want +got)")
				assert.Equal(t, []string{"asset:narration:segment[1]"}, got.Failed)
				if tc.name == "RerunFailed" {
					marks := []dirty.Mark{{ID: "asset:narration:segment[1]", Reason: dirty.ReasonForced}}
					assert.Empty(t, cmp.Diff(marks, rep.Record.Marks), "the rerun's marks (-want +got)")
				}
			})
		})
	}
}
