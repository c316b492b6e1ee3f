package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
)

// executor.Resume starts the new run, recorded running, before it
// records the run it resumes as interrupted: a recovery whose process
// died in between left two runs of one key recorded running, the
// original and its resume. ResumeLeftRunning resumed the original and
// refused the resume with ErrBusy ("call again"): a host that recovers
// at start-up only left that run running, its viewers waiting for a
// final event, until its next restart. One call now settles the key:
// the newest run is resumed, and the older one is recorded interrupted,
// naming the run that took over, its stream ended.
func TestResumeLeftRunningSettlesTwoRunsOfAKeyInOneCall(t *testing.T) {
	t.Parallel() // its own schema
	ctx, s, e, sink := leftTwoRunning(t)

	recs, err := s.ResumeLeftRunning(ctx, e, lectureOf, executor.ResumeOptions{})
	require.NoError(t, err)
	want := []outcome{{"orig", pgstore.SkippedSuperseded}, {"again", pgstore.Resumed}}
	if diff := cmp.Diff(want, outcomes(recs)); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	require.NoError(t, recs[0].Err)
	rep, err := recs[1].Wait()
	require.NoError(t, err)
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	assert.Equal(t, "again", rep.Record.Resumes, "the newest run is resumed")
	took := recs[1].Run.ID()

	running, err := s.RunsByStatus(ctx, executor.RunRunning)
	require.NoError(t, err)
	assert.Empty(t, running, "no run of the key is left running after one call")
	for _, id := range []string{"orig", "again"} {
		rec, err := s.GetRun(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, rec.Status, "run %s", id)
		assert.Contains(t, rec.Error, took, "run %s's record names the run that took over", id)
		last, ok, err := sink.LastEvent(ctx, id)
		require.NoError(t, err)
		require.True(t, ok, "run %s's stream has an event", id)
		assert.True(t, last.Type.Final(), "run %s's stream ended: its viewers stop waiting", id)
	}
	assert.Equal(t, recs[0].Record.Status, executor.RunInterrupted, "the record as recorded")

	// A second call finds nothing to do.
	recs, err = s.ResumeLeftRunning(ctx, e, lectureOf, executor.ResumeOptions{})
	require.NoError(t, err)
	assert.Empty(t, recs)
}

// leftTwoRunning returns a store in a schema of the test's own with two
// runs of one key left running: "orig", started an hour ago, and its
// resume "again", a second later, recorded running as it started by a
// recovery that died before it recorded "orig" as interrupted. It
// returns too an executor on the store whose events go to the memory
// sink it returns, and a context of a minute.
func leftTwoRunning(t *testing.T) (context.Context, *pgstore.Store, *executor.Executor, *progress.Memory) {
	t.Helper()
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	key := testenv.UniqueName(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	leftRunning(t, ctx, s, "orig", key, g, base)
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "again", GraphKey: key, Seconds: g.Segments() * graph.SegmentSeconds,
		Graph: executor.Fingerprint(g), TriggeredBy: "alice", Reason: "resume of run orig", Resumes: "orig",
		Status: executor.RunRunning, StartedAt: base.Add(time.Second)}))
	sink := progress.NewMemory(progress.MemoryOptions{})
	e := newExecutorOf(t, executor.Options{Generators: newProvider().registry(), States: s, Assets: s, Runs: s, Sink: sink})
	return ctx, s, e, sink
}
