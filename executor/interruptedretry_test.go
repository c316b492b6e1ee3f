package executor_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// downSink is a progress.Memory whose LastEvent, or Publish, fails while
// the test says its server is down.
type downSink struct {
	*progress.Memory
	lastDown, publishDown atomic.Bool
}

var errSinkDown = errors.New("redis: down")

func (s *downSink) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	if s.lastDown.Load() {
		return progress.Event{}, false, errSinkDown
	}
	return s.Memory.LastEvent(ctx, runID)
}

func (s *downSink) Publish(ctx context.Context, events ...progress.Event) error {
	if s.publishDown.Load() {
		return errSinkDown
	}
	return s.Memory.Publish(ctx, events...)
}

// crashedOnDownSink makes a crashed run of l's lecture whose stream got
// left events (crashRun), and an executor over l's stores whose sink is
// a downSink over that stream, its warnings discarded, closed at the
// test's end.
func crashedOnDownSink(t *testing.T, l *lab, left int) (*downSink, executor.Record, *executor.Executor) {
	t.Helper()
	sink := &downSink{Memory: progress.NewMemory(progress.MemoryOptions{})}
	rec := crashRun(t, l, sink.Memory, left, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
	e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
		Runs: l.runs, Sink: sink, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	return sink, rec, e
}

// A Resume that found a crashed run recorded it as interrupted, and then
// failed to end its stream, its sink down: every later Resume or
// RerunFailed found the record interrupted already and published
// nothing, so the run's viewers waited forever. A later one now ends the
// stream, once, when its newest event is not final: with the record's
// text, naming the run that found it interrupted, as the first would
// have.
func TestCrashedRunsStreamEndsAfterTheSinkFailedTheFirstResume(t *testing.T) {
	const crashAfter = 6
	for _, down := range []struct {
		name string
		set  func(s *downSink, down bool)
	}{
		{"LastEvent fails", func(s *downSink, down bool) { s.lastDown.Store(down) }},
		{"Publish fails", func(s *downSink, down bool) { s.publishDown.Store(down) }},
	} {
		for _, first := range resumers {
			for _, then := range resumers {
				t.Run(down.name+"/"+first.name+" then "+then.name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						ctx := context.Background()
						l := newLab(t, 30)
						sink, rec, e := crashedOnDownSink(t, l, crashAfter)
						before := replay(t, sink.Memory, rec.ID)
						require.Len(t, before, crashAfter)

						down.set(sink, true)
						resumed, err := first.call(e, ctx, l.g, rec.ID)
						require.NoError(t, err, "the sink never fails the Resume")
						_, err = resumed.Wait()
						require.NoError(t, err)
						rec, err = l.runs.GetRun(ctx, rec.ID)
						require.NoError(t, err)
						require.Equal(t, executor.RunInterrupted, rec.Status)
						assert.Empty(t, cmp.Diff(before, replay(t, sink.Memory, rec.ID)), "no final event yet (-before +after)")

						down.set(sink, false)
						again, err := then.call(e, ctx, l.g, rec.ID)
						require.NoError(t, err)
						_, err = again.Wait()
						require.NoError(t, err)
						want := progress.Event{RunID: rec.ID, GraphKey: "lecture", Seq: crashAfter + 1, Time: rec.EndedAt,
							Type: progress.RunCancelled, Stage: progress.NoStage, Message: rec.Error,
							Error: `executor: run cancelled: run "` + rec.ID + `": interrupted`,
							Done:  before[crashAfter-1].Done, Total: before[crashAfter-1].Total,
							ResumedBy: resumed.ID()}
						assert.Equal(t, "interrupted: it ended without recording its outcome; resumed by run "+resumed.ID(), rec.Error)
						got := replay(t, sink.Memory, rec.ID)
						assert.Empty(t, cmp.Diff(append(before, want), got), "the run's stream (-want +got)")
						after, err := l.runs.GetRun(ctx, rec.ID)
						require.NoError(t, err)
						assert.Equal(t, rec, after, "the record still names the run that found it interrupted")

						// Once only.
						third, err := then.call(e, ctx, l.g, rec.ID)
						require.NoError(t, err)
						_, err = third.Wait()
						require.NoError(t, err)
						assert.Empty(t, cmp.Diff(got, replay(t, sink.Memory, rec.ID)), "after a third one (-before +after)")
					})
				})
			}
		}
	}
}

// The later Resume names, in ResumedBy, the run that the record names;
// when the record's text names none whole (the first resuming run's ID
// was so long that the text was cut), it names itself, and the event's
// Message is still the record's text.
func TestCrashedRunsLateFinalEventWhenTheRecordsTextWasCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		sink, rec, e := crashedOnDownSink(t, l, 3)

		sink.publishDown.Store(true)
		long := strings.Repeat("r", executor.MaxEventText)
		first, err := e.Resume(ctx, l.g, rec.ID, executor.ResumeOptions{RunID: long})
		require.NoError(t, err)
		_, err = first.Wait()
		require.NoError(t, err)
		sink.publishDown.Store(false)
		again, err := e.Resume(ctx, l.g, rec.ID)
		require.NoError(t, err)
		_, err = again.Wait()
		require.NoError(t, err)

		rec, err = l.runs.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		require.Contains(t, rec.Error, "[cut from")
		got := replay(t, sink.Memory, rec.ID)
		require.Len(t, got, 4)
		assert.Equal(t, progress.RunCancelled, got[3].Type)
		assert.Equal(t, rec.Error, got[3].Message, "the record and the stream say the same")
		assert.Equal(t, again.ID(), got[3].ResumedBy, "a run a view can follow")
	})
}
