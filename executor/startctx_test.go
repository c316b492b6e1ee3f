package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// Start's doc: its ctx is the run's lifetime, so a handler passes a
// context of its own, bounded by the request only until Start returns.
// The recipe it gives keeps the run going once the request has ended,
// and a request that ends first cancels the start, or the run if the
// start passed first.
func TestStartDocsRecipeBoundsTheStartAlone(t *testing.T) {
	start := func(e *executor.Executor, l *lab, reqCtx context.Context) (*executor.Run, bool, error) {
		runCtx, cancel := context.WithCancelCause(context.WithoutCancel(reqCtx))
		stop := context.AfterFunc(reqCtx, func() { cancel(context.Cause(reqCtx)) })
		run, err := e.Start(runCtx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		return run, stop(), err
	}
	t.Run("the request ends after the start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			e := l.executor(executor.Options{})
			reqCtx, endRequest := context.WithCancel(context.Background())
			run, stopped, err := start(e, l, reqCtx)
			require.NoError(t, err)
			require.True(t, stopped)
			endRequest() // the handler answered 202
			rep, err := run.Wait()
			require.NoError(t, err)
			require.Equal(t, executor.RunSucceeded, rep.Record.Status)
		})
	})
	t.Run("the request ended before", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			e := l.executor(executor.Options{})
			reqCtx, endRequest := context.WithCancel(context.Background())
			endRequest()
			run, stopped, err := start(e, l, reqCtx)
			require.False(t, stopped, "the cancel went out")
			if err == nil {
				// AfterFunc cancels in a goroutine of its own: the start
				// may have passed first, and the run is then cancelled.
				_, err = run.Wait()
			}
			require.ErrorIs(t, err, executor.ErrCancelled)
			require.ErrorIs(t, err, context.Canceled)
		})
	})
}
