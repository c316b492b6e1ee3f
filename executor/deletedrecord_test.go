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

// A graph deleted during a run (MemoryStore.DeleteGraph, which deletes
// its states and its run records): the run stopped, with
// ErrGraphDeleted, and then wrote its record again at its end, so the
// host that deleted the lecture still held a record of it, and a Resume
// of the run returned ErrGraphDeleted, not the ErrNotFound that Resume's
// doc gives for a deleted graph. The run no longer writes a record that
// DeleteGraph deleted; its Report keeps it, and its stream still ends. A
// record that the deletion left (a store that deletes the states alone,
// or a record put after the deletion) is written as ever: it must not
// say running for good.
func TestRunOfADeletedGraphWritesNoRecordAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stores returns the executor's stores, and the hook that
		// deletes the graph while the run's first video is made (nil
		// for none).
		stores func(ms *executor.MemoryStore, l *lab) (executor.StateStore, executor.RunStore, func())
		kept   bool // the run's record is kept, ended
	}{
		{"MemoryStore", func(ms *executor.MemoryStore, _ *lab) (executor.StateStore, executor.RunStore, func()) {
			return ms, ms, func() {
				_, err := ms.DeleteGraph(context.Background(), "lecture")
				assert.NoError(t, err)
			}
		}, false},
		{"MemoryStates alone", func(_ *executor.MemoryStore, l *lab) (executor.StateStore, executor.RunStore, func()) {
			return l.states, l.runs, func() {
				_, err := l.states.DeleteGraph(context.Background(), "lecture")
				assert.NoError(t, err)
			}
		}, true},
		{"record put after the deletion", func(ms *executor.MemoryStore, _ *lab) (executor.StateStore, executor.RunStore, func()) {
			// A run puts its running record before it commits its
			// plan, so the record is put back after the deletion, as
			// a writer that raced the deletion would.
			return ms, ms, func() {
				ctx := context.Background()
				recs, err := ms.ListRuns(ctx, "lecture")
				require.NoError(t, err)
				require.Len(t, recs, 1)
				_, err = ms.DeleteGraph(ctx, "lecture")
				require.NoError(t, err)
				require.NoError(t, ms.PutRun(ctx, recs[0]))
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				ms := executor.NewMemoryStore()
				states, runs, hook := tc.stores(ms, l)
				gen := executor.Generator(l)
				if hook != nil {
					gen = l.onceAt("asset:video:segment[0]", hook)
				}
				sink := progress.NewMemory(progress.MemoryOptions{})
				e, err := executor.New(executor.Options{Generators: l.registry(gen), States: states, Assets: ms,
					Runs: runs, Sink: sink})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()

				rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.ErrorIs(t, err, executor.ErrGraphDeleted)
				id := rep.Record.ID
				assert.Equal(t, executor.RunCancelled, rep.Record.Status, "the Report keeps the record")
				assert.Contains(t, rep.Record.Error, "graph deleted")
				events := replay(t, sink, id)
				require.NotEmpty(t, events)
				assert.Equal(t, progress.RunCancelled, events[len(events)-1].Type, "the stream's final event")

				got, err := runs.GetRun(ctx, id)
				if !tc.kept {
					require.ErrorIs(t, err, executor.ErrNotFound, "the deleted graph's run record was written again: %+v", got)
					listed, err := runs.ListRuns(ctx, "lecture")
					require.NoError(t, err)
					assert.Empty(t, listed)
					_, err = e.Resume(ctx, l.g, id)
					require.ErrorIs(t, err, executor.ErrNotFound, "a Resume of a run of a deleted graph")
					return
				}
				require.NoError(t, err)
				assert.Equal(t, rep.Record, got, "the record left by the deletion is written, ended")
			})
		})
	}
}
