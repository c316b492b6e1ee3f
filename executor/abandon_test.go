package executor_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// A run whose process crashed, which the host will not resume (its
// graph's template was dropped in a deploy, so GraphOf fails): Abandon
// records it as interrupted, not resumed, with the host's reason, and
// ends its stream, so that RunsByStatus stops listing it at every
// start-up. There was no call for it: the host had to write the record
// itself.
func TestAbandonRecordsACrashedRunInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		sink := progress.NewMemory(progress.MemoryOptions{})
		rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		e := newExecutor(t, l, sink)

		require.NoError(t, e.Abandon(ctx, rec.ID, "template podcast-v1 was retired"))
		got, err := l.runs.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, got.Status)
		assert.Equal(t, "interrupted: it ended without recording its outcome; not resumed: template podcast-v1 was retired", got.Error)
		assert.False(t, got.EndedAt.IsZero())
		assert.Equal(t, 12, got.Counts.Planned, "its stream's last Total")
		running, err := l.runs.RunsByStatus(ctx, executor.RunRunning)
		require.NoError(t, err)
		assert.Empty(t, running)
		events := replay(t, sink, rec.ID)
		require.Len(t, events, 6, "the stream's final event")
		last := events[5]
		assert.Equal(t, progress.RunCancelled, last.Type)
		assert.Empty(t, last.ResumedBy)
		assert.Equal(t, got.Error, last.Message)

		// Again: the record no longer says running, and nothing changes.
		require.NoError(t, e.Abandon(ctx, rec.ID, "again"))
		again, err := l.runs.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		assert.Equal(t, got, again)
		assert.Len(t, replay(t, sink, rec.ID), 6)
	})
}

func TestAbandonRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		e := newExecutor(t, l, nil)

		err := e.Abandon(ctx, "nope", "gone")
		require.ErrorIs(t, err, executor.ErrNotFound)
		require.ErrorIs(t, e.Abandon(ctx, "", "gone"), executor.ErrInvalidRequest)
		require.ErrorIs(t, e.Abandon(ctx, "x", "bad\x00reason"), executor.ErrInvalidRequest)
		// An empty reason would leave a record saying "not resumed: ",
		// and why not, nowhere.
		err = e.Abandon(ctx, "x", "")
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.Contains(t, err.Error(), "the reason is empty")

		// A run going on in this executor is refused, and left as it is.
		r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}})
		require.NoError(t, err)
		time.Sleep(time.Second)
		err = e.Abandon(ctx, r.ID(), "mine")
		require.ErrorIs(t, err, executor.ErrBusy)
		assert.True(t, strings.Contains(err.Error(), "still running in this executor"), err.Error())
		rep, err := r.Wait()
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	})
}

// lostReply is a run store whose first PutRun of an interrupted record
// goes through and then fails, as when the connection drops before the
// reply arrives.
type lostReply struct {
	*executor.MemoryRuns
	lost atomic.Bool
}

func (s *lostReply) PutRun(ctx context.Context, rec executor.Record) error {
	if err := s.MemoryRuns.PutRun(ctx, rec); err != nil {
		return err
	}
	if rec.Status == executor.RunInterrupted && s.lost.CompareAndSwap(false, true) {
		return errors.New("connection reset by peer")
	}
	return nil
}

// An Abandon whose record went through, its reply lost, is retried, and
// the retry finds the record interrupted: the stream must still get its
// final event, which only the first try would have published.
func TestAbandonAfterALostReplyEndsTheStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		sink := progress.NewMemory(progress.MemoryOptions{})
		rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		runs := &lostReply{MemoryRuns: l.runs}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
			Runs: runs, Sink: sink})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })

		require.NoError(t, e.Abandon(ctx, rec.ID, "template podcast-v1 was retired"))
		require.True(t, runs.lost.Load(), "the reply was lost")
		got, err := l.runs.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, got.Status)
		events := replay(t, sink, rec.ID)
		require.Len(t, events, 6, "the stream's final event")
		assert.Equal(t, progress.RunCancelled, events[5].Type)
		assert.Equal(t, got.Error, events[5].Message)
	})
}

// A Resume of a run that an Abandon is recording as interrupted was
// taken: both had found the record running, the Resume's run finished
// the crashed run's work, and the Abandon then recorded that no run
// resumed it. A Resume or RerunFailed of the run is now refused while an
// Abandon of it is under way, as Abandon refuses one under a Resume.
func TestResumeRefusedDuringAbandon(t *testing.T) {
	for _, second := range resumers {
		t.Run(second.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				sink := progress.NewMemory(progress.MemoryOptions{})
				rec, e, runs := crashedAndHeld(t, l, sink)

				abandoned := make(chan error, 1)
				go func() { abandoned <- e.Abandon(ctx, rec.ID, "template podcast-v1 was retired") }()
				<-runs.held
				r, err := second.call(e, ctx, l.g, rec.ID)
				if r != nil {
					_, _ = r.Wait()
				}
				runs.free()
				require.ErrorIs(t, err, executor.ErrBusy, "taken while an Abandon of the run is under way")
				assert.Contains(t, err.Error(), "being abandoned")
				require.NoError(t, <-abandoned)

				// Once the Abandon has returned, the run is abandoned: a
				// Resume is refused, as it was abandoned.
				r, err = second.call(e, ctx, l.g, rec.ID)
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				require.Nil(t, r)
				assert.Contains(t, err.Error(), "the run was abandoned")
				got, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				assert.Equal(t, "interrupted: it ended without recording its outcome; not resumed: template podcast-v1 was retired", got.Error)
			})
		})
	}
}

// An Abandon whose sink was down left the run's stream without its final
// event; a later Resume of the run (the host changed its mind) published
// it with the record's text, "not resumed: ...", but naming the resuming
// run as ResumedBy, which the text denies and the Abandon would not
// have. The event is now the one the Abandon would have published, and
// the Resume, of a run abandoned, is refused.
func TestResumeEndsAnAbandonedRunsStreamAsAbandonWould(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		sink := &downSink{Memory: progress.NewMemory(progress.MemoryOptions{})}
		rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		e := newExecutor(t, l, sink)

		sink.publishDown.Store(true)
		require.NoError(t, e.Abandon(ctx, rec.ID, "template podcast-v1 was retired"))
		sink.publishDown.Store(false)
		require.Len(t, replay(t, sink.Memory, rec.ID), 5, "no final event yet")

		_, err := e.Resume(ctx, l.g, rec.ID)
		require.ErrorIs(t, err, executor.ErrInvalidRequest, "a run abandoned is not resumed")
		got, err := l.runs.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		events := replay(t, sink.Memory, rec.ID)
		require.Len(t, events, 6, "the stream's final event")
		assert.Equal(t, progress.RunCancelled, events[5].Type)
		assert.Equal(t, got.Error, events[5].Message)
		assert.Empty(t, events[5].ResumedBy, "the record says that no run resumed it")
	})
}
