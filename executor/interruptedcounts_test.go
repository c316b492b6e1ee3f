package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// The record of a run found interrupted kept the counts of its start, all
// zero, though the key's states showed the nodes it had committed and
// its stream's last event the size of its plan: a host listing the runs
// read "0 generated, 0 failed" for a run that had made most of the
// lecture, and RerunFailed of it had no failed nodes to force. The record
// now says what the states show (Generated, Failed and Cancelled, and the
// failed nodes' IDs), and Planned, the last event's Total, when the Sink
// can say it; the counts the states cannot say stay 0.
//
// Planned was 0 when the Sink could not say the last event, or held none
// of the run's events (its process stopped before any reached the Sink,
// or they expired): the record said that the run generated nodes of a
// plan of none, which no run can say. Planned is now at least the nodes
// counted: the run planned those.
func TestInterruptedRecordCountsWhatTheRunDid(t *testing.T) {
	const crashAfter = 8
	for _, tc := range []struct {
		name string
		// sink is the resuming executor's Sink, over the crashed run's
		// stream.
		sink func(stream *progress.Memory) progress.Sink
		// between is run between the crash and the resume; it takes
		// from the crashed run the nodes it makes.
		between                   func(t *testing.T, l *lab)
		lostGenerated, lostFailed int
		// lastTotal is whether Planned is the last event's Total; else
		// it is the nodes counted.
		lastTotal bool
	}{
		{name: "a sink that says the last event", sink: func(m *progress.Memory) progress.Sink { return m }, lastTotal: true},
		{name: "a sink that cannot say it", sink: func(m *progress.Memory) progress.Sink { return progress.SinkFunc(m.Publish) }},
		{name: "a sink that holds none of its events", sink: func(*progress.Memory) progress.Sink {
			return progress.NewMemory(progress.MemoryOptions{})
		}},
		{name: "another run of the key in between", sink: func(m *progress.Memory) progress.Sink { return m }, lastTotal: true,
			// It makes the music again, and fails the narration again:
			// the states no longer show what the crashed run did with them.
			between: func(t *testing.T, l *lab) {
				_, err := l.executor(executor.Options{}).Run(context.Background(), executor.RunRequest{GraphKey: "lecture",
					Graph: l.g, Marks: []dirty.Mark{{ID: "asset:music", Reason: dirty.ReasonForced}}})
				require.ErrorAs(t, err, new(*executor.RunError))
			},
			lostGenerated: 1, lostFailed: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				l.set("asset:narration:segment[1]", fail(executor.Permanent(errors.New("tts: voice not found"))))
				stream := progress.NewMemory(progress.MemoryOptions{})
				// crashRun, for a run that fails: its process died before it
				// recorded its outcome, and its record is as it started.
				old := newExecutor(t, l, &crashingSink{next: stream, left: crashAfter})
				r, err := old.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				_, err = r.Wait()
				require.ErrorAs(t, err, new(*executor.RunError))
				rec, err := l.runs.GetRun(ctx, r.ID())
				require.NoError(t, err)
				// What the run had recorded, had its process lived.
				full, wantFailed := rec.Counts, rec.Failed
				require.NotZero(t, full.Generated)
				require.Equal(t, []string{"asset:narration:segment[1]"}, wantFailed)
				rec.Status, rec.EndedAt, rec.Error = executor.RunRunning, time.Time{}, ""
				rec.Counts, rec.Failed = executor.Counts{}, nil
				require.NoError(t, l.runs.PutRun(ctx, rec))
				evs := replay(t, stream, rec.ID)
				require.Len(t, evs, crashAfter)
				if tc.between != nil {
					time.Sleep(time.Minute)
					tc.between(t, l)
				}

				time.Sleep(time.Minute)
				l.set("asset:narration:segment[1]", nil) // the voice is found again
				e := newExecutor(t, l, tc.sink(stream))
				resumed, err := e.Resume(ctx, l.g, rec.ID)
				require.NoError(t, err)
				_, err = resumed.Wait()
				require.NoError(t, err)
				got, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				require.Equal(t, executor.RunInterrupted, got.Status)

				want := executor.Counts{Generated: full.Generated - tc.lostGenerated, Failed: full.Failed - tc.lostFailed}
				want.Planned = want.Generated + want.Failed
				if tc.lastTotal {
					want.Planned = evs[crashAfter-1].Total
				}
				assert.Empty(t, cmp.Diff(want, got.Counts), "the interrupted run's counts (-want +got)")
				assert.LessOrEqual(t, got.Counts.Generated+got.Counts.Failed, got.Counts.Planned, "a run planned the nodes it made")
				if tc.lostFailed > 0 {
					wantFailed = nil
				}
				assert.Equal(t, wantFailed, got.Failed)
				listed, err := l.runs.ListRuns(ctx, "lecture")
				require.NoError(t, err)
				require.NotEmpty(t, listed)
				assert.Equal(t, got, listed[0], "ListRuns says the same")
			})
		})
	}
}

// RerunFailed of a run whose record still said running (its process
// crashed) built its marks from the record's Failed before the tally of
// the key's states filled it: the record then listed the failed nodes,
// but the rerun's Marks forced none of them, and its record read as a
// Resume's. It now forces the nodes that the tally found failed, as for
// a record that listed them already.
func TestRerunFailedOfACrashedRunForcesTheNodesItFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		stream := progress.NewMemory(progress.MemoryOptions{})
		rec, _ := crashFailing(t, l, stream) // the voice is found again since

		time.Sleep(time.Minute)
		e := newExecutor(t, l, stream)
		rerun, err := e.RerunFailed(ctx, l.g, rec.ID)
		require.NoError(t, err)
		rep, err := rerun.Wait()
		require.NoError(t, err)

		got, err := l.runs.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		require.Equal(t, executor.RunInterrupted, got.Status)
		require.Equal(t, []string{"asset:narration:segment[1]"}, got.Failed, "the tally")
		want := []dirty.Mark{{ID: "asset:narration:segment[1]", Reason: dirty.ReasonForced}}
		assert.Empty(t, cmp.Diff(want, rep.Record.Marks), "the rerun's marks (-want +got)")
		assert.Contains(t, rep.Generated, "asset:narration:segment[1]")
	})
}

// Abandon, which takes no graph, recorded a crashed run with the counts
// of its start, all zero but Planned, and no failed node, where a Resume
// of it recorded what the key's states show it did: a host that lists
// the runs read "0 generated, 0 failed" for a run that made most of the
// lecture. The states say it without the graph (the node IDs are in
// them): Abandon now records the same counts and failed nodes as a
// Resume would.
func TestAbandonCountsWhatTheRunDid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		stream := progress.NewMemory(progress.MemoryOptions{})
		rec, full := crashFailing(t, l, stream)
		require.NotZero(t, full.Generated)
		evs := replay(t, stream, rec.ID)
		require.Len(t, evs, 8)

		time.Sleep(time.Minute)
		e := newExecutor(t, l, stream)
		require.NoError(t, e.Abandon(ctx, rec.ID, "template podcast-v1 was retired"))
		got, err := l.runs.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		require.Equal(t, executor.RunInterrupted, got.Status)
		want := executor.Counts{Planned: evs[7].Total, Generated: full.Generated, Failed: full.Failed}
		assert.Empty(t, cmp.Diff(want, got.Counts), "the abandoned run's counts (-want +got)")
		assert.Equal(t, []string{"asset:narration:segment[1]"}, got.Failed)
	})
}
