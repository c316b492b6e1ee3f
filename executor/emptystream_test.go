package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// A run whose process died before any of its events reached the sink
// (killed a moment after its start, its first events still in a
// Buffered) left a stream that viewers of the run wait on with nothing
// in it. The Resume, or the Abandon, that finds it interrupted gives that
// stream its final event all the same, as its first (Seq 1), so that the
// views end: before, it published nothing when the sink held no event of
// the run, and a browser that followed it waited for good unless its
// handler timed out empty runs. A second call publishes nothing more.
func TestAnInterruptedRunWithNoEventGetsItsFinalEvent(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(ctx context.Context, e *executor.Executor, l *lab) (by string)
	}{
		{"Resume", func(ctx context.Context, e *executor.Executor, l *lab) string {
			r, err := e.Resume(ctx, l.g, "crashed")
			require.NoError(t, err)
			_, err = r.Wait()
			require.NoError(t, err)
			return r.ID()
		}},
		{"Abandon", func(ctx context.Context, e *executor.Executor, l *lab) string {
			require.NoError(t, e.Abandon(ctx, "crashed", "its template is gone"))
			return ""
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 60)
				sink := progress.NewMemory(progress.MemoryOptions{})
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
					Runs: l.runs, Sink: sink})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				require.NoError(t, l.runs.PutRun(ctx, executor.Record{ID: "crashed", GraphKey: "lecture", Seconds: 60,
					Status: executor.RunRunning, StartedAt: time.Now().Add(-time.Hour)}))

				by := tt.end(ctx, e, l)
				var got []progress.Event
				require.NoError(t, sink.Replay(ctx, "crashed", 0, func(ev progress.Event) error {
					got = append(got, ev)
					return nil
				}))
				require.Len(t, got, 1, "one final event")
				assert.Equal(t, uint64(1), got[0].Seq)
				assert.Equal(t, progress.RunCancelled, got[0].Type)
				assert.Equal(t, by, got[0].ResumedBy)
				assert.Equal(t, "lecture", got[0].GraphKey)
				rec, err := l.runs.GetRun(ctx, "crashed")
				require.NoError(t, err)
				assert.Equal(t, executor.RunInterrupted, rec.Status)

				// Again: the stream has its final event, and gets no other.
				require.NoError(t, e.Abandon(ctx, "crashed", "its template is gone"))
				n := 0
				require.NoError(t, sink.Replay(ctx, "crashed", 0, func(progress.Event) error { n++; return nil }))
				assert.Equal(t, 1, n)
			})
		})
	}
}

// A run whose events never reached the sink, found interrupted by a
// Resume while the sink could not say its last event (Redis down at the
// host's start-up recovery: the Resume publishes nothing), gets its final
// event, at Seq 1, from a later Resume or RerunFailed once the sink
// answers, as a run with events does: a view of it waited for good,
// as the later calls published only after an event the sink held (an
// embedder trial found it).
func TestALaterCallEndsTheStreamOfARunWithNoEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 60)
		sink := &fakeStream{lastErr: errors.New("redis: down")}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
			Runs: l.runs, Sink: sink})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(ctx)) }()
		require.NoError(t, l.runs.PutRun(ctx, executor.Record{ID: "crashed", GraphKey: "lecture", Seconds: 60,
			Status: executor.RunRunning, StartedAt: time.Now().Add(-time.Hour)}))
		r, err := e.Resume(ctx, l.g, "crashed")
		require.NoError(t, err)
		_, err = r.Wait()
		require.NoError(t, err)
		sink.mu.Lock()
		require.Empty(t, sink.published, "the sink could not say the run's last event")
		sink.lastErr = nil // Redis is back, and holds no event of the run
		sink.mu.Unlock()

		again, err := e.RerunFailed(ctx, l.g, "crashed")
		require.NoError(t, err)
		_, err = again.Wait()
		require.NoError(t, err)
		sink.mu.Lock()
		defer sink.mu.Unlock()
		require.Len(t, sink.published, 1)
		assert.Equal(t, uint64(1), sink.published[0].Seq)
		assert.Equal(t, progress.RunCancelled, sink.published[0].Type)
		assert.Equal(t, r.ID(), sink.published[0].ResumedBy, "the event the Resume would have published")
	})
}
