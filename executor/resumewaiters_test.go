package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// Resumes and RerunFaileds that wait for the end of a run whose record
// says it ended (its Done not closed yet): of many, one is taken and the
// others are refused as busy, naming the run it started; a Close
// meanwhile waits for them, and they get ErrClosed, nothing started; one
// whose ctx ends returns at once, and another one waits on and is taken.
// (Pins; they passed before.)
func TestResumesWaitingForARunsEnd(t *testing.T) {
	type result struct {
		run *executor.Run
		err error
	}
	t.Run("many waiters", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 30)
			e, r := endingRun(t, l)
			results := make(chan result, 4)
			for i := range 4 {
				go func() {
					resume := resumers[i%2]
					run, err := resume.call(e, ctx, l.g, r.ID())
					results <- result{run, err}
				}()
			}
			var taken []*executor.Run
			for range 4 {
				got := <-results
				if got.err != nil {
					requireBusy(t, got.err, "already being finished by run")
					continue
				}
				taken = append(taken, got.run)
			}
			require.Len(t, taken, 1)
			_, err := taken[0].Wait()
			require.NoError(t, err)
			l.requireAllClean()
		})
	})
	t.Run("Close meanwhile", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 30)
			e, r := endingRun(t, l)
			results := make(chan result, 2)
			for _, resume := range resumers {
				go func() {
					run, err := resume.call(e, ctx, l.g, r.ID())
					results <- result{run, err}
				}()
			}
			synctest.Wait()
			require.NoError(t, e.Close(ctx))
			for range 2 {
				got := <-results
				require.ErrorIs(t, got.err, executor.ErrClosed)
				assert.Nil(t, got.run)
			}
			runs, err := l.runs.ListRuns(ctx, "lecture")
			require.NoError(t, err)
			assert.Len(t, runs, 1, "nothing started")
		})
	})
	t.Run("a waiter whose ctx ends, beside one that waits on", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			e, r := endingRun(t, l)
			ctx, cancel := context.WithCancelCause(context.Background())
			results := make(chan result, 2)
			go func() {
				run, err := e.Resume(ctx, l.g, r.ID())
				results <- result{run, err}
			}()
			go func() {
				run, err := e.RerunFailed(context.Background(), l.g, r.ID())
				results <- result{run, err}
			}()
			synctest.Wait()
			cause := context.Canceled
			cancel(cause)
			got := <-results
			require.ErrorIs(t, got.err, executor.ErrCancelled, "the Resume whose ctx ended, at once")
			require.ErrorIs(t, got.err, cause)
			got = <-results
			require.NoError(t, got.err)
			_, err := got.run.Wait()
			require.NoError(t, err)
		})
	})
}
