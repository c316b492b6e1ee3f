package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// Resume's doc says that a run Abandon recorded is refused with
// ErrInvalidRequest, for good, and ErrBusy's that the request it refuses
// was good. A Resume or RerunFailed of an abandoned run while another
// Resume of its graph key was under way was refused with ErrBusy: the
// host retried it later, as told, and was then refused as bad input. It
// is refused as abandoned at once, and the record is left as it is.
func TestAnAbandonedRunIsBadInputEvenWhileBusy(t *testing.T) {
	for _, resume := range resumers {
		t.Run(resume.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 60)
				sink := progress.NewMemory(progress.MemoryOptions{})
				crashed := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				e := l.withSink(executor.Options{}, sink)
				require.NoError(t, e.Abandon(ctx, crashed.ID, "template podcast-v1 was retired"))
				abandoned, err := l.runs.GetRun(ctx, crashed.ID)
				require.NoError(t, err)

				// A run of the key that makes everything again, cancelled.
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
					Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonForced}}})
				require.NoError(t, err)
				time.Sleep(time.Second)
				r.Cancel()
				_, err = r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				first, err := e.Resume(ctx, l.g, r.ID())
				require.NoError(t, err)
				time.Sleep(time.Second)

				_, err = resume.call(e, ctx, l.g, crashed.ID)
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				assert.NotErrorIs(t, err, executor.ErrBusy)
				assert.ErrorContains(t, err, "the run was abandoned")
				got, err := l.runs.GetRun(ctx, crashed.ID)
				require.NoError(t, err)
				assert.Equal(t, abandoned, got, "the refusal changed the record")

				_, err = first.Wait()
				require.NoError(t, err)
			})
		})
	}
}
