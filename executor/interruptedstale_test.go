package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A run whose process crashed, then a run of another graph on its key
// (the lecture made longer, by another process): a Resume or RerunFailed
// of the crashed run is refused with ErrGraphReplaced, as it must be, but
// its record said running for good, so that RunsByStatus listed it at
// every start-up of a host that resumes what it finds running, and its
// stream never ended. Refused so, the run is now recorded as interrupted
// all the same, its Error saying that it was not resumed and why, and its
// stream gets its final event, naming no resuming run.
func TestCrashedRunOfAReplacedGraphIsRecordedInterrupted(t *testing.T) {
	for _, how := range []string{"Resume", "RerunFailed"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				sink := progress.NewMemory(progress.MemoryOptions{})
				rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				longer, err := graph.Build(graph.Lecture(), 60)
				require.NoError(t, err)
				e := newExecutor(t, l, sink)
				_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: longer})
				require.NoError(t, err)

				resume := e.Resume
				if how == "RerunFailed" {
					resume = e.RerunFailed
				}
				_, err = resume(ctx, l.g, rec.ID)
				require.ErrorIs(t, err, executor.ErrGraphReplaced)
				require.ErrorIs(t, err, executor.ErrInvalidRequest)

				got, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				assert.Equal(t, executor.RunInterrupted, got.Status)
				assert.Contains(t, got.Error, "not resumed")
				assert.False(t, got.EndedAt.IsZero())
				running, err := l.runs.RunsByStatus(ctx, executor.RunRunning)
				require.NoError(t, err)
				assert.Empty(t, running, "a run that no one can resume is still listed as running")
				events := replay(t, sink, rec.ID)
				require.Len(t, events, 6, "the stream's final event")
				last := events[len(events)-1]
				assert.Equal(t, progress.RunCancelled, last.Type)
				assert.Empty(t, last.ResumedBy)
				assert.Equal(t, got.Error, last.Message)

				// Another try changes nothing more, and is refused the same.
				_, err = resume(ctx, l.g, rec.ID)
				require.ErrorIs(t, err, executor.ErrGraphReplaced)
				assert.Len(t, replay(t, sink, rec.ID), 6)
			})
		})
	}
}
