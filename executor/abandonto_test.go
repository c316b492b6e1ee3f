package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// Two runs of one key left running (a recovery that died between its
// Resume's start of the new run and its record of the old one): the host
// resumes the newest, and ends the older with Abandon, whose final event
// named no run, so that a viewer of the older run that follows ResumedBy
// did not jump to the run that took over. AbandonTo records the older
// run as a resume by that run would, and its final event names it.
func TestAbandonToNamesTheRunThatTookOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		sink := progress.NewMemory(progress.MemoryOptions{})
		old := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		newest := crashRun(t, l, sink, 3, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		e := newExecutor(t, l, sink)
		r, err := e.Resume(ctx, l.g, newest.ID, executor.ResumeOptions{})
		require.NoError(t, err)
		_, err = r.Wait()
		require.NoError(t, err)

		require.NoError(t, e.AbandonTo(ctx, old.ID, r.ID()))
		got, err := l.runs.GetRun(ctx, old.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, got.Status)
		assert.Equal(t, "interrupted: it ended without recording its outcome; resumed by run "+r.ID(), got.Error,
			"the record says what a resume by that run would")
		assert.False(t, got.EndedAt.IsZero())
		assert.Empty(t, got.CancelledBy)
		assert.Equal(t, 12, got.Counts.Planned, "its stream's last Total")
		events := replay(t, sink, old.ID)
		require.Len(t, events, 6, "the stream's final event")
		last := events[5]
		assert.Equal(t, progress.RunCancelled, last.Type)
		assert.Equal(t, r.ID(), last.ResumedBy, "a viewer that follows ResumedBy jumps to the run that took over")
		assert.Equal(t, got.Error, last.Message)

		// Again: nothing changes, and the stream keeps one final event.
		require.NoError(t, e.AbandonTo(ctx, old.ID, r.ID()))
		again, err := l.runs.GetRun(ctx, old.ID)
		require.NoError(t, err)
		assert.Equal(t, got, again)
		assert.Len(t, replay(t, sink, old.ID), 6)
	})
}

func TestAbandonToRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		sink := progress.NewMemory(progress.MemoryOptions{})
		old := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		other := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "podcast", Graph: l.g})
		e := newExecutor(t, l, sink)

		for _, tc := range []struct {
			name, id, by, want string
		}{
			{"no run ID", "", "x", "the run ID is empty"},
			{"no run that took over", old.ID, "", "the run that took over is empty"},
			{"itself", old.ID, old.ID, "is the run itself"},
			{"a bad ID", old.ID, "bad\x00id", "the run that took over"},
			{"an unknown run", old.ID, "nope", "no run"},
			{"a run of another key", old.ID, other.ID, "is a run of graph key"},
		} {
			err := e.AbandonTo(ctx, tc.id, tc.by) // no t.Run in a bubble
			require.ErrorIs(t, err, executor.ErrInvalidRequest, tc.name)
			assert.ErrorContains(t, err, tc.want, tc.name)
		}
		require.ErrorIs(t, e.AbandonTo(ctx, "nope", other.ID), executor.ErrNotFound)
		got, err := l.runs.GetRun(ctx, old.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunRunning, got.Status, "left as it was")
		assert.Len(t, replay(t, sink, old.ID), 5)
	})
}

func TestAbandonToAfterCloseIsClosed(t *testing.T) {
	ctx := context.Background()
	e, err := executor.New(executor.Options{Generators: lectureRegistry()})
	require.NoError(t, err)
	require.NoError(t, e.Close(ctx))
	require.ErrorIs(t, e.AbandonTo(ctx, "old", "new"), executor.ErrClosed)
}
