package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// Close waits for an Abandon under way, as for a Resume, since Abandon
// calls the stores, and an Abandon after Close returns ErrClosed; Close's
// doc named neither.
func TestCloseWaitsForAnAbandon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		sink := progress.NewMemory(progress.MemoryOptions{})
		rec, e, runs := crashedAndHeld(t, l, sink)

		abandoned := make(chan error, 1)
		go func() { abandoned <- e.Abandon(context.Background(), rec.ID, "template podcast-v1 was retired") }()
		<-runs.held // the Abandon writes the record
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.ErrorIs(t, e.Close(ctx), context.DeadlineExceeded, "Close waits for the Abandon")
		require.ErrorIs(t, e.Abandon(context.Background(), rec.ID, "again"), executor.ErrClosed)
		runs.free()
		require.NoError(t, <-abandoned)
		require.NoError(t, e.Close(context.Background()))
		got, err := l.runs.GetRun(context.Background(), rec.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, got.Status)
		assert.Len(t, replay(t, sink, rec.ID), 6, "the stream's final event, published before Close returned")
	})
}
