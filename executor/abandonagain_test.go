package executor_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A crashed run recorded as interrupted, not resumed (by an Abandon, or
// by a Resume refused as its graph was no longer the key's), whose sink
// failed the final event: Abandon returned nil, the failure only logged,
// and a second Abandon, with the sink working, returned at once, the
// record no longer saying running, so the stream never ended (only a
// Resume would end it, and the run is one that no one resumes). The
// second Abandon now publishes the final event that the first would
// have, once: a third publishes nothing. The record keeps the first
// reason.
func TestAbandonAgainEndsTheStreamTheSinkFailed(t *testing.T) {
	const crashAfter = 5
	firsts := []struct {
		name string
		call func(t *testing.T, e *executor.Executor, l *lab, id string)
	}{
		{"Abandon", func(t *testing.T, e *executor.Executor, _ *lab, id string) {
			require.NoError(t, e.Abandon(context.Background(), id, "template podcast-v1 was retired"))
		}},
		{"refused Resume", func(t *testing.T, e *executor.Executor, l *lab, id string) {
			longer, err := graph.Build(graph.Lecture(), 60)
			require.NoError(t, err)
			// The sink fails this run's events too: they are not the
			// crashed run's, and Run does not return the sink's errors.
			_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: longer})
			require.NoError(t, err)
			_, err = e.Resume(context.Background(), l.g, id)
			require.ErrorIs(t, err, executor.ErrGraphReplaced)
		}},
	}
	downs := []struct {
		name string
		set  func(s *downSink, down bool)
	}{
		{"LastEvent fails", func(s *downSink, down bool) { s.lastDown.Store(down) }},
		{"Publish fails", func(s *downSink, down bool) { s.publishDown.Store(down) }},
	}
	for _, first := range firsts {
		for _, down := range downs {
			t.Run(first.name+"/"+down.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ctx := context.Background()
					l := newLab(t, 30)
					sink, rec, e := crashedOnDownSink(t, l, crashAfter)
					before := replay(t, sink.Memory, rec.ID)
					require.Len(t, before, crashAfter)

					down.set(sink, true)
					first.call(t, e, l, rec.ID)
					down.set(sink, false)
					recorded, err := l.runs.GetRun(ctx, rec.ID)
					require.NoError(t, err)
					require.Equal(t, executor.RunInterrupted, recorded.Status)
					require.Contains(t, recorded.Error, "not resumed: ")
					require.Empty(t, cmp.Diff(before, replay(t, sink.Memory, rec.ID)), "no final event yet (-before +after)")

					require.NoError(t, e.Abandon(ctx, rec.ID, "the host tries again"))
					want := progress.Event{RunID: rec.ID, GraphKey: "lecture", Seq: crashAfter + 1, Time: recorded.EndedAt,
						Type: progress.RunCancelled, Stage: progress.NoStage, Message: recorded.Error,
						Error: `executor: run cancelled: run "` + rec.ID + `": interrupted`,
						Done:  before[crashAfter-1].Done, Total: before[crashAfter-1].Total}
					got := replay(t, sink.Memory, rec.ID)
					assert.Empty(t, cmp.Diff(append(before, want), got), "the run's stream (-want +got)")
					after, err := l.runs.GetRun(ctx, rec.ID)
					require.NoError(t, err)
					assert.Equal(t, recorded, after, "the record is left as the first call wrote it")

					// Once only.
					require.NoError(t, e.Abandon(ctx, rec.ID, "and again"))
					assert.Empty(t, cmp.Diff(got, replay(t, sink.Memory, rec.ID)), "after a third call (-before +after)")
				})
			})
		}
	}
}

// heldLast is a downSink whose LastEvent, once armed, waits in its first
// call until the test frees it; later calls answer at once.
type heldLast struct {
	*downSink
	armed, taken  atomic.Bool
	held, release chan struct{}
}

func (s *heldLast) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	if s.armed.Load() && s.taken.CompareAndSwap(false, true) {
		close(s.held)
		<-s.release
	}
	return s.downSink.LastEvent(ctx, runID)
}

// An Abandon that ends the stream of a run recorded as not resumed holds
// the run as the first Abandon did: while a Resume of the run, refused as
// the run was abandoned, is ending the same stream, the Abandon is
// refused, so that the two do not both publish a final event; once the
// Resume has returned, an Abandon finds the final event there, and
// publishes nothing.
func TestAbandonAgainIsRefusedWhileAResumeEndsTheStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		sink := &heldLast{downSink: &downSink{Memory: progress.NewMemory(progress.MemoryOptions{})},
			held: make(chan struct{}), release: make(chan struct{})}
		rec := crashRun(t, l, sink.Memory, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
			Runs: l.runs, Sink: sink, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(ctx)) }()

		sink.publishDown.Store(true)
		require.NoError(t, e.Abandon(ctx, rec.ID, "template podcast-v1 was retired"))
		sink.publishDown.Store(false)
		require.Len(t, replay(t, sink.Memory, rec.ID), 5, "no final event yet")

		sink.armed.Store(true)
		resumed := make(chan error, 1)
		go func() {
			_, err := e.Resume(ctx, l.g, rec.ID)
			resumed <- err
		}()
		<-sink.held
		err = e.Abandon(ctx, rec.ID, "the host tries again")
		close(sink.release)
		require.ErrorIs(t, err, executor.ErrBusy, "taken while a Resume ends the same stream")
		assert.Contains(t, err.Error(), "refused as the run was abandoned")
		require.ErrorIs(t, <-resumed, executor.ErrInvalidRequest, "a run abandoned is not resumed")

		require.NoError(t, e.Abandon(ctx, rec.ID, "the host tries again"))
		events := replay(t, sink.Memory, rec.ID)
		require.Len(t, events, 6, "one final event")
		assert.Equal(t, progress.RunCancelled, events[5].Type)
		assert.Empty(t, events[5].ResumedBy, "the record says that no run resumed it")
	})
}
