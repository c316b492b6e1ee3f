package executor_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// cancelAfterGet is a run store that calls cancel once its first GetRun
// of run id has returned: the caller's context ends there.
type cancelAfterGet struct {
	*executor.MemoryRuns
	id     string
	cancel context.CancelFunc
	once   sync.Once
}

func (s *cancelAfterGet) GetRun(ctx context.Context, id string) (executor.Record, error) {
	rec, err := s.MemoryRuns.GetRun(ctx, id)
	if id == s.id {
		s.once.Do(s.cancel)
	}
	return rec, err
}

// An Abandon whose context ended after it had read the run's record, while
// it counted what the run did, failed that count (the store honours the
// context), and recorded the run as interrupted all the same, with "0
// generated, 0 failed", and returned nil: the host, whose call was
// cancelled, read success, and the record said what the run did not. It
// now returns an error wrapping the context's cause, and leaves the
// record running, as it was.
func TestAbandonWhoseContextEndsLeavesTheRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		stream := progress.NewMemory(progress.MemoryOptions{})
		rec, _ := crashFailing(t, l, stream)
		time.Sleep(time.Minute)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		runs := &cancelAfterGet{MemoryRuns: l.runs, id: rec.ID, cancel: cancel}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
			Runs: runs, Sink: stream})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })

		err = e.Abandon(ctx, rec.ID, "template podcast-v1 was retired")
		require.ErrorIs(t, err, context.Canceled)
		got, err := l.runs.GetRun(context.Background(), rec.ID)
		require.NoError(t, err)
		assert.Equal(t, rec, got, "the record, left running")
		assert.Len(t, replay(t, stream, rec.ID), 8, "the stream, without a final event")

		// A retry, its context alive, records the run.
		require.NoError(t, e.Abandon(context.Background(), rec.ID, "template podcast-v1 was retired"))
		got, err = l.runs.GetRun(context.Background(), rec.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, got.Status)
		assert.NotZero(t, got.Counts.Generated)
	})
}
