package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// slowCall waits d, or until ctx is done, and returns ctx's error then.
func slowCall(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// slowRecord is a run store whose PutRun of an interrupted record takes
// took, within its context, before it stores the record.
type slowRecord struct {
	*executor.MemoryRuns
	took time.Duration
}

func (s *slowRecord) PutRun(ctx context.Context, r executor.Record) error {
	if r.Status == executor.RunInterrupted {
		if err := slowCall(ctx, s.took); err != nil {
			return err
		}
	}
	return s.MemoryRuns.PutRun(ctx, r)
}

// slowFinal is a progress.Memory whose Publish of a final event takes
// took, within its context, as a sink that talks to a server does.
type slowFinal struct {
	*progress.Memory
	took time.Duration
}

func (s *slowFinal) Publish(ctx context.Context, evs ...progress.Event) error {
	for _, ev := range evs {
		if ev.Type.Final() {
			if err := slowCall(ctx, s.took); err != nil {
				return err
			}
		}
	}
	return s.Memory.Publish(ctx, evs...)
}

// The final event of a run recorded as interrupted was published within
// the timeout that the sink's first call (its last event) had started,
// before the record's store calls, though the doc gives the sink's calls
// Options.StoreTimeout of their own: a record that took most of its
// StoreTimeout to store left the event too little, and the stream never
// ended (Abandon returned nil). The publish now gets a StoreTimeout of
// its own.
func TestFinalEventOfAnInterruptedRunGetsItsOwnTimeout(t *testing.T) {
	const timeout = 10 * time.Second
	for _, tc := range []struct {
		name string
		call func(e *executor.Executor, l *lab, id string) error
	}{
		{"Abandon", func(e *executor.Executor, _ *lab, id string) error {
			return e.Abandon(context.Background(), id, "template podcast-v1 was retired")
		}},
		{"Resume", func(e *executor.Executor, l *lab, id string) error {
			r, err := e.Resume(context.Background(), l.g, id)
			if err != nil {
				return err
			}
			_, err = r.Wait()
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				stream := progress.NewMemory(progress.MemoryOptions{})
				rec := crashRun(t, l, stream, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				sink := &slowFinal{Memory: stream, took: timeout / 5}
				runs := &slowRecord{MemoryRuns: l.runs, took: timeout * 9 / 10}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
					Runs: runs, Sink: sink, StoreTimeout: timeout})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })

				require.NoError(t, tc.call(e, l, rec.ID))
				got, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				require.Equal(t, executor.RunInterrupted, got.Status)
				events := replay(t, stream, rec.ID)
				require.Len(t, events, 6, "the stream's final event")
				assert.Equal(t, progress.RunCancelled, events[5].Type)
				assert.Equal(t, got.Error, events[5].Message)
			})
		})
	}
}
