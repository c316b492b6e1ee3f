package pgstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// ResumeLeftRunning resumed a run under its key's lock even when the
// lock had been lost since it was taken (its session ended while graphOf
// built the graph, or while the record was read again): another process
// could take the lock then, and resume the run too. The run it resumed
// was cancelled by the lock's guard, but only after it had started, and
// had recorded the run left running as interrupted. The lock is checked
// with the server just before Resume: a lost one leaves the run not
// resumed, with an error wrapping ErrLockLost, and untouched, for a later
// call to resume.
func TestResumeLeftRunningChecksTheLockBeforeResuming(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	key := testenv.UniqueName(t)
	leftRunning(t, ctx, s, "r", key, g, time.Now().Add(-time.Hour).Truncate(time.Second))
	p := newProvider()
	e := newExecutor(t, s, p.registry())
	lose := true
	graphOf := func(rec executor.Record) (*graph.Graph, error) {
		if lose { // an administrator, a failover: the lock's session ends
			lose = false
			endLockSession(t, ctx, pg, s, key)
		}
		return lectureOf(rec)
	}

	got, err := s.ResumeLeftRunning(ctx, e, graphOf, executor.ResumeOptions{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, pgstore.NotResumed, got[0].Outcome, "the run was resumed under a lock lost")
	assert.ErrorIs(t, got[0].Err, pgstore.ErrLockLost)
	assert.Nil(t, got[0].Run)
	assert.Empty(t, p.called(), "nodes generated")
	runs, err := s.ListRuns(ctx, key)
	require.NoError(t, err)
	require.Len(t, runs, 1, "runs recorded")
	assert.Equal(t, executor.RunRunning, runs[0].Status, "the record of the run left running")

	// Postgres frees the ended session's lock a moment after: until
	// then, a later call finds the key locked, and skips it.
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		got, err = s.ResumeLeftRunning(ctx, e, graphOf, executor.ResumeOptions{})
		require.NoError(t, err)
		require.Len(t, got, 1)
		return got[0].Outcome != pgstore.SkippedLocked
	}, 20*time.Second, 20*time.Millisecond, "the key stayed locked")
	require.Equal(t, pgstore.Resumed, got[0].Outcome, "a later call: %v", got[0].Err)
	_, err = got[0].Wait()
	require.NoError(t, err)
	rec, err := s.GetRun(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, executor.RunInterrupted, rec.Status)
}
