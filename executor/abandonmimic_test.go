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

// An Abandon whose reason was the text that a Resume refused as the
// run's graph is no longer the key's records ("its graph is no longer
// the key's (...)") wrote a record that Resume could not tell from that
// one's: the abandoned run was then resumed, its record going on saying
// that no run resumed it. Abandon now refuses that reason, and records
// nothing.
func TestAbandonRefusesTheReasonOfARefusedResume(t *testing.T) {
	const mimic = "its graph is no longer the key's (a run of another graph started on the key since, or the graph was deleted)"
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		sink := progress.NewMemory(progress.MemoryOptions{})
		rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		e := newExecutor(t, l, sink)

		err := e.Abandon(ctx, rec.ID, mimic)
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.Contains(t, err.Error(), "the reason")
		assert.Contains(t, err.Error(), "is the text of a Resume refused as the run's graph is no longer the key's")
		got, err := l.runs.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunRunning, got.Status, "nothing is recorded")

		// Another reason is taken, and the run is then not resumed.
		require.NoError(t, e.Abandon(ctx, rec.ID, mimic+"."))
		_, err = e.Resume(ctx, l.g, rec.ID)
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.Contains(t, err.Error(), "the run was abandoned")
	})
}
