package executor_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// finalsSink is a progress.Memory that also keeps every final event it is
// offered, duplicates included (Memory drops an event whose Seq it holds
// already, as a Redis stream does, and so would hide a second one).
type finalsSink struct {
	*progress.Memory
	mu     sync.Mutex
	finals []progress.Event
}

func (s *finalsSink) Publish(ctx context.Context, events ...progress.Event) error {
	s.mu.Lock()
	for _, e := range events {
		if e.Type.Final() {
			s.finals = append(s.finals, e)
		}
	}
	s.mu.Unlock()
	return s.Memory.Publish(ctx, events...)
}

// finalsOf returns the final events of run id offered so far.
func (s *finalsSink) finalsOf(id string) []progress.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []progress.Event
	for _, e := range s.finals {
		if e.RunID == id {
			out = append(out, e)
		}
	}
	return out
}

// A Resume or RerunFailed of a crashed run whose graph is no longer the
// key's is refused, and records the run as interrupted, not resumed; it
// did so after it had let go of the run, so that an Abandon of the run
// meanwhile found nothing under way, read the record running too, and
// wrote it and published a final event as well: the stream was offered
// two final events, and the record ended up with the refused Resume's
// text while the stream's final event had the Abandon's. The two are now
// exclusive: the Abandon is refused while the refused Resume writes the
// record, and one final event is published.
func TestRefusedResumeAndAbandonEndTheStreamOnce(t *testing.T) {
	for _, first := range resumers {
		t.Run(first.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				sink := &finalsSink{Memory: progress.NewMemory(progress.MemoryOptions{})}
				rec, e, runs := crashedAndHeld(t, l, sink)
				longer, err := graph.Build(graph.Lecture(), 60)
				require.NoError(t, err)
				_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: longer})
				require.NoError(t, err)

				refused := make(chan error, 1)
				go func() {
					_, err := first.call(e, ctx, l.g, rec.ID)
					refused <- err
				}()
				<-runs.held // the refused call is writing the record
				abandonErr := e.Abandon(ctx, rec.ID, "template podcast-v1 was retired")
				runs.free()
				require.ErrorIs(t, <-refused, executor.ErrGraphReplaced)

				got, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				assert.Equal(t, executor.RunInterrupted, got.Status)
				finals := sink.finalsOf(rec.ID)
				assert.Len(t, finals, 1, "final events offered to the run's stream")
				events := replay(t, sink.Memory, rec.ID)
				require.Len(t, events, 6, "the stream's final event")
				assert.Equal(t, got.Error, events[5].Message, "the record and the stream say the same")
				require.ErrorIs(t, abandonErr, executor.ErrBusy, "taken while the refused call wrote the record")
				assert.ErrorContains(t, abandonErr, "being recorded as interrupted, not resumed, by a Resume or RerunFailed of it that was refused")
				assert.ErrorContains(t, abandonErr, "returns nil")

				// Once that call has returned, an Abandon finds the record
				// interrupted, and changes nothing.
				require.NoError(t, e.Abandon(ctx, rec.ID, "template podcast-v1 was retired"))
				again, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				assert.Equal(t, got, again)
				assert.Len(t, sink.finalsOf(rec.ID), 1)
			})
		})
	}
}
