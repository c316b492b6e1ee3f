package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// The count of what a crashed run did ends at the start of the key's next
// run, whose commits are not the crashed run's; the record of a Start
// whose plan commit failed (a run of another graph, refused by the state
// store while the first run went on) counted as that next run, though it
// committed nothing: the crashed run's record then left out every node
// it had committed after that Start, and read "0 generated" for a run
// that had made the whole lecture. A record of a run that ended without
// committing any node (its counts say none generated, unchanged, failed
// or cancelled) no longer ends the count.
func TestTallyIgnoresAStartThatCommittedNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 60)
		g4, err := graph.Build(graph.Lecture(), 40)
		require.NoError(t, err)
		f := &failingStart{StateStore: l.states, RunStore: l.runs, how: "commit"}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: f, Assets: l.assets, Runs: f})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(ctx)) }()

		a, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "a"})
		require.NoError(t, err)
		time.Sleep(time.Second) // run A's scripts take 20 s: it has committed no node yet
		_, err = e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g4, RunID: "refused"})
		require.Error(t, err)
		refused, err := l.runs.GetRun(ctx, "refused")
		require.NoError(t, err)
		require.Equal(t, executor.RunFailed, refused.Status)
		rep, err := a.Wait()
		require.NoError(t, err)
		full := rep.Record.Counts
		require.NotZero(t, full.Generated)

		// Run A's process died before it recorded its outcome.
		rec := rep.Record
		rec.Status, rec.EndedAt, rec.Error = executor.RunRunning, time.Time{}, ""
		rec.Counts, rec.Failed = executor.Counts{}, nil
		require.NoError(t, l.runs.PutRun(ctx, rec))
		time.Sleep(time.Minute)
		require.NoError(t, e.Abandon(ctx, "a", "the host is retired"))

		got, err := l.runs.GetRun(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, executor.RunInterrupted, got.Status)
		// No Sink says the last event: Planned is the nodes counted.
		want := executor.Counts{Planned: full.Generated, Generated: full.Generated}
		assert.Empty(t, cmp.Diff(want, got.Counts), "the crashed run's counts (-want +got)")
	})
}
