package executor_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// A run's start that lost its plan's commit to a busy key 65 times (its
// pauses between, d92a351) fails with ErrConflict alone, its record
// failed and its ID free again; one whose ctx ended in a pause is
// cancelled, its record cancelled, and names the conflict too. Either
// way the executor holds nothing for it: a later start of the key, the
// key no longer busy, runs, and Close returns.
func TestRunStartThatLostItsPlanCommitLeavesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		s := &editOutage{MemoryStates: l.states}
		runs := executor.NewMemoryRuns()
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: s, Assets: l.assets, Runs: runs,
			Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		req := executor.RunRequest{GraphKey: "lecture", Graph: l.g}

		loseEveryCommit(s)
		req.RunID = "gave-up"
		_, err = e.Run(t.Context(), req)
		require.ErrorIs(t, err, executor.ErrConflict)
		assert.NotErrorIs(t, err, executor.ErrCancelled)
		rec, err := runs.GetRun(t.Context(), "gave-up")
		require.NoError(t, err)
		assert.Equal(t, executor.RunFailed, rec.Status)
		assert.False(t, rec.EndedAt.IsZero())

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		req.RunID = "cancelled"
		go func() { _, err := e.Run(ctx, req); done <- err }()
		synctest.Wait() // in a pause
		cancel()
		err = <-done
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.ErrorIs(t, err, context.Canceled)
		rec, err = runs.GetRun(t.Context(), "cancelled")
		require.NoError(t, err)
		assert.Equal(t, executor.RunCancelled, rec.Status)

		s.mu.Lock()
		s.failAll = false
		s.mu.Unlock()
		req.RunID = "later"
		_, err = e.Run(t.Context(), req)
		require.NoError(t, err)
		l.requireAllClean()
		require.NoError(t, e.Close(t.Context()))
	})
}

// A Resume whose start lost its plan's commit to a busy key 65 times
// fails with ErrConflict and holds nothing: the run it resumed is still
// to resume, and a Resume of it once the key is no longer busy is taken,
// not refused as busy.
func TestResumeThatLostItsPlanCommitMayBeRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		sink := progress.NewMemory(progress.MemoryOptions{})
		crashed := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		s := &editOutage{MemoryStates: l.states}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: s, Assets: l.assets, Runs: l.runs,
			Sink: sink, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)

		// An asset lost since: the resume commits its node dirty.
		script := l.snapshot().States[l.g.NodeID(0)]
		require.True(t, l.assets.Delete(script.AssetRef))

		loseEveryCommit(s)
		_, err = e.Resume(t.Context(), l.g, crashed.ID)
		require.ErrorIs(t, err, executor.ErrConflict)
		assert.NotErrorIs(t, err, executor.ErrBusy)

		s.mu.Lock()
		s.failAll = false
		s.mu.Unlock()
		r, err := e.Resume(t.Context(), l.g, crashed.ID)
		require.NoError(t, err, "taken, not refused")
		_, err = r.Wait()
		require.NoError(t, err)
		l.requireAllClean()
		require.NoError(t, e.Close(t.Context()))
	})
}
