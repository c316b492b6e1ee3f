package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/progress"
)

// Of two runs of one key left running, ResumeLeftRunning resumes the
// newest and records the older one interrupted with Executor.Abandon,
// whose final event named no run (its record's reason named the run
// that took over, in words): a viewer of the older run that follows
// ResumedBy, as it does after a resume, did not jump to the run that
// took over. The older run's record and final event now name it, as a
// resume by that run would.
func TestResumeLeftRunningNamesTheRunThatTookOver(t *testing.T) {
	t.Parallel() // its own schema
	ctx, s, e, sink := leftTwoRunning(t)

	recs, err := s.ResumeLeftRunning(ctx, e, lectureOf, executor.ResumeOptions{})
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, pgstore.SkippedSuperseded, recs[0].Outcome, "orig: %v", recs[0].Err)
	require.Equal(t, pgstore.Resumed, recs[1].Outcome, "again: %v", recs[1].Err)
	took := recs[1].Run.ID()
	_, err = recs[1].Wait()
	require.NoError(t, err)

	for _, id := range []string{"orig", "again"} {
		rec, err := s.GetRun(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, rec.Status, "run %s", id)
		assert.Equal(t, "interrupted: it ended without recording its outcome; resumed by run "+took, rec.Error,
			"run %s's record names the run that took over, as a resume does", id)
		last, ok, err := sink.LastEvent(ctx, id)
		require.NoError(t, err)
		require.True(t, ok, "run %s's stream has an event", id)
		assert.Equal(t, progress.RunCancelled, last.Type, "run %s", id)
		assert.Equal(t, took, last.ResumedBy, "a viewer of run %s follows ResumedBy to the run that took over", id)
	}
	assert.Equal(t, "interrupted: it ended without recording its outcome; resumed by run "+took, recs[0].Record.Error,
		"the Recovery's record is the record so written")
}
