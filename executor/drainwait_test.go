package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// A video held back by its BatchWindow has no call under way: a drain
// starts no bulk call for it, nor for the videos that become ready as the
// images under way end, and the run ends once those images have, not at
// the window's end.
func TestDrainDuringABatchWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, b, reg := windowLab(t)
		e := l.executor(windowOptions(reg, executor.Dataflow, time.Hour))
		start := time.Now()
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(28500 * time.Millisecond) // the first video waits for its window
		require.Empty(t, b.sizes())
		require.NotEmpty(t, l.activeAll())
		r.Drain(nil)
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrDrained)
		assert.Equal(t, executor.CancelledByDrain, rep.Record.CancelledBy)
		assert.Empty(t, b.sizes(), "a bulk call started after the drain")
		assert.Less(t, time.Since(start), time.Minute, "the drain waited for the window")
		assert.NotEmpty(t, rep.Generated)
	})
}

// A run that starts while Executor.Drain waits is drained at once: it
// makes no call, and ends cancelled with the drain's code; Drain waits
// for it too.
func TestStartDuringExecutorDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		r1, err := e.Start(ctx, executor.RunRequest{GraphKey: "a", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(time.Second)
		before := l.calledIDs()
		require.NotEmpty(t, before)
		drained := make(chan error, 1)
		go func() { drained <- e.Drain(ctx, executor.CancelCode("shutdown", nil)) }()
		synctest.Wait()
		r2, err := e.Start(ctx, executor.RunRequest{GraphKey: "b", Graph: l.g})
		require.NoError(t, err)
		rep2, err := r2.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, "shutdown", rep2.Record.CancelledBy)
		assert.Empty(t, rep2.Generated)
		require.NoError(t, <-drained)
		rep1, err := r1.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, "shutdown", rep1.Record.CancelledBy)
		assert.Equal(t, before, l.calledIDs(), "a call started after the drain")
		require.NoError(t, e.Close(ctx))
	})
}
