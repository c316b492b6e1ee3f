package executor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// hookedRuns is a run store whose GetRun of one run ID runs hook, once,
// after reading the record and before returning it.
type hookedRuns struct {
	*executor.MemoryRuns
	id   string
	done atomic.Bool
	hook func()
}

func (h *hookedRuns) GetRun(ctx context.Context, id string) (executor.Record, error) {
	rec, err := h.MemoryRuns.GetRun(ctx, id)
	if id == h.id && h.hook != nil && h.done.CompareAndSwap(false, true) {
		h.hook()
	}
	return rec, err
}

// A Resume or RerunFailed that read the record of a run still running,
// while an Abandon of the run in the same executor then recorded it as
// abandoned before the Resume had taken the run, started a run that
// resumed the abandoned run: its record named the run in Resumes while
// the run's record said that no run resumes it, as the refusal of an
// abandoned run is meant to prevent. It is now refused as a Resume of an
// abandoned run is, and nothing is started.
func TestResumeOfARunAbandonedAsItsRecordIsReadIsRefused(t *testing.T) {
	for _, rs := range resumers {
		t.Run(rs.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				sink := progress.NewMemory(progress.MemoryOptions{})
				rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				runs := &hookedRuns{MemoryRuns: l.runs, id: rec.ID}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
					Runs: runs, Sink: sink})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
				runs.hook = func() {
					// The Resume's read is done: the run is abandoned now.
					assert.NoError(t, e.Abandon(ctx, rec.ID, "template podcast-v1 was retired"))
				}

				r, err := rs.call(e, ctx, l.g, rec.ID)
				if r != nil {
					_, _ = r.Wait()
				}
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				assert.Nil(t, r)
				assert.Contains(t, err.Error(), "the run was abandoned")
				recs, err := l.runs.ListRuns(ctx, "lecture")
				require.NoError(t, err)
				require.Len(t, recs, 1, "no run was started")
				got, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				assert.Equal(t, executor.RunInterrupted, got.Status)
				assert.Contains(t, got.Error, "not resumed: template podcast-v1 was retired")
			})
		})
	}
}
