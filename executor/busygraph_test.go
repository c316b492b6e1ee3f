package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// ErrBusy's doc says that the request it refuses was good, and that the
// same call made once what is under way has ended may be taken; Resume's
// says that a graph not the run's is refused with ErrInvalidRequest
// alone. A Resume or RerunFailed with a graph not the run's, of a run
// still going on or while another Resume of the key was under way, was
// refused with ErrBusy: the host retried it later, as told, and was then
// refused as bad input. It is refused as bad input at once.
func TestAWrongGraphIsBadInputEvenWhileBusy(t *testing.T) {
	for _, resume := range resumers {
		t.Run(resume.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 60)
				e := l.executor(executor.Options{})
				longer, err := graph.Build(graph.Lecture(), 90)
				require.NoError(t, err)
				requireBad := func(err error) {
					t.Helper()
					require.ErrorIs(t, err, executor.ErrInvalidRequest)
					assert.NotErrorIs(t, err, executor.ErrBusy)
					assert.ErrorContains(t, err, "build the run's graph again")
				}

				r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				time.Sleep(time.Second)
				_, err = resume.call(e, ctx, longer, r.ID())
				requireBad(err) // the run going on
				r.Cancel()
				_, err = r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)

				first, err := e.Resume(ctx, l.g, r.ID())
				require.NoError(t, err)
				time.Sleep(time.Second)
				_, err = resume.call(e, ctx, longer, r.ID())
				requireBad(err) // another Resume of the key under way
				first.Cancel()
				_, err = first.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
			})
		})
	}
}
