package progress_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// gatedMemory is a Memory whose Publish waits at a gate (or for ctx): a
// downstream sink that answers LastEvent while a Buffered's batch is
// held on its way to it.
type gatedMemory struct {
	*progress.Memory
	gate chan struct{}
}

func (g *gatedMemory) Publish(ctx context.Context, events ...progress.Event) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Memory.Publish(ctx, events...)
}

// lastEventSink is a Sink whose LastEvent returns what it is told.
type lastEventSink struct {
	progress.SinkFunc
	last  progress.Event
	found bool
	err   error
}

func (s lastEventSink) LastEvent(context.Context, string) (progress.Event, bool, error) {
	return s.last, s.found, s.err
}

// panickyReader is a Sink whose LastEvent panics.
type panickyReader struct{ panicky }

func (panickyReader) LastEvent(context.Context, string) (progress.Event, bool, error) {
	panic("reader bug")
}

// noLastEvent is a History without LastEvent.
type noLastEvent struct{ progress.History }

func memoryWith(t *testing.T, events ...progress.Event) *progress.Memory {
	t.Helper()
	m := progress.NewMemory(progress.MemoryOptions{})
	require.NoError(t, m.Publish(context.Background(), events...))
	return m
}

// A Buffered answers LastEvent with the newest event of the run it was
// given: one still waiting in its queue, or being handed downstream,
// is newer than what the downstream sink holds, and wins over its
// answer (the executor numbers an interrupted run's final event after
// it). Without waiting events of the run, the sink answers.
func TestBufferedLastEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &gatedMemory{Memory: progress.NewMemory(progress.MemoryOptions{}), gate: make(chan struct{})}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Timeout: 1 << 40})
		all := sinktest.Events("r", 1, 5)
		lastSeq := func(run string) uint64 {
			t.Helper()
			e, found, err := b.LastEvent(ctx, run)
			require.NoError(t, err)
			if !found {
				return 0
			}
			assert.Equal(t, run, e.RunID)
			return e.Seq
		}

		assert.Zero(t, lastSeq("r"), "nothing published")
		require.NoError(t, b.Publish(ctx, all[0]))
		synctest.Wait() // the worker holds seq 1 at the gate
		assert.Equal(t, uint64(1), lastSeq("r"), "the batch on its way downstream")
		require.NoError(t, b.Publish(ctx, all[1:3]...))
		require.NoError(t, b.Publish(ctx, sinktest.Events("other", 1, 9)...))
		assert.Equal(t, uint64(3), lastSeq("r"), "the queue's newest event of the run, not another run's")
		assert.Equal(t, uint64(9), lastSeq("other"))

		close(down.gate)
		require.NoError(t, b.Flush(ctx))
		assert.Equal(t, uint64(3), lastSeq("r"), "the downstream sink's answer once the queue is empty")
		require.NoError(t, b.Close(ctx))
		assert.Equal(t, uint64(3), lastSeq("r"), "after Close")
	})
}

// A Buffered over a sink without LastEvent, or one that cannot say,
// cannot say either, even while events of the run wait in its queue; a
// failing sink's error is passed on.
func TestBufferedLastEventUnsupported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &recorder{gate: make(chan struct{})}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet()})
		require.NoError(t, b.Publish(ctx, sinktest.Events("r", 1, 3)...))
		_, found, err := b.LastEvent(ctx, "r")
		require.ErrorIs(t, err, progress.ErrUnsupported)
		assert.False(t, found)
		close(down.gate)
		require.NoError(t, b.Close(ctx))

		down = &recorder{gate: make(chan struct{})}
		b = progress.NewBuffered(progress.NewFanout(down), progress.BufferedOptions{Logger: quiet()})
		require.NoError(t, b.Publish(ctx, sinktest.Events("r", 1, 3)...))
		_, found, err = b.LastEvent(ctx, "r")
		require.ErrorIs(t, err, progress.ErrUnsupported, "a Fanout of sinks without LastEvent")
		assert.False(t, found)
		close(down.gate)
		require.NoError(t, b.Close(ctx))

		failing := lastEventSink{SinkFunc: func(context.Context, ...progress.Event) error { return nil }, err: errors.New("redis: down")}
		b = progress.NewBuffered(failing, progress.BufferedOptions{Logger: quiet()})
		_, _, err = b.LastEvent(ctx, "r")
		assert.EqualError(t, err, "buffered sink: redis: down")
		require.NoError(t, b.Close(ctx))
	})
}

// A Fanout answers LastEvent with the highest Seq among the sinks that
// can say; it fails when one of them fails, since the others may be
// behind, and cannot say when none of them can.
func TestFanoutLastEvent(t *testing.T) {
	events := sinktest.Events("r", 1, 7)
	nop := progress.SinkFunc(func(context.Context, ...progress.Event) error { return nil })
	discard := progress.NewSlog(quiet(), progress.SlogOptions{})
	tests := []struct {
		name    string
		sinks   func(t *testing.T) []progress.Sink
		want    uint64 // the Seq found, 0 for none
		wantErr error  // errors.Is
		errText string
	}{
		{"the highest Seq wins, wherever it is", func(t *testing.T) []progress.Sink {
			return []progress.Sink{memoryWith(t, events[:4]...), memoryWith(t, events...), memoryWith(t, events[:2]...)}
		}, 7, nil, ""},
		{"sinks that cannot say are passed over", func(t *testing.T) []progress.Sink {
			unsupported := progress.NewBuffered(nop, progress.BufferedOptions{Logger: quiet()})
			t.Cleanup(func() { require.NoError(t, unsupported.Close(context.Background())) })
			return []progress.Sink{discard, unsupported, progress.NewArchive(noLastEvent{progress.NewMemoryHistory()}), memoryWith(t, events[:5]...)}
		}, 5, nil, ""},
		{"an Archive's History answers", func(t *testing.T) []progress.Sink {
			h := progress.NewMemoryHistory()
			require.NoError(t, h.Append(context.Background(), events[:6]...))
			return []progress.Sink{discard, progress.NewArchive(h)}
		}, 6, nil, ""},
		{"no sink holds the run", func(t *testing.T) []progress.Sink {
			return []progress.Sink{memoryWith(t, sinktest.Events("other", 1, 3)...)}
		}, 0, nil, ""},
		{"no sink can say", func(t *testing.T) []progress.Sink {
			return []progress.Sink{discard, nop}
		}, 0, progress.ErrUnsupported, ""},
		{"no sink at all", func(t *testing.T) []progress.Sink { return nil }, 0, progress.ErrUnsupported, ""},
		{"a failing sink fails the answer", func(t *testing.T) []progress.Sink {
			return []progress.Sink{memoryWith(t, events...), lastEventSink{SinkFunc: nop, err: errors.New("down")}}
		}, 0, nil, "sink 1: down"},
		{"a panicking sink fails the answer", func(t *testing.T) []progress.Sink {
			return []progress.Sink{panickyReader{}, memoryWith(t, events...)}
		}, 0, nil, "sink 0: sink panicked: reader bug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, found, err := progress.NewFanout(tt.sinks(t)...).LastEvent(context.Background(), "r")
			switch {
			case tt.wantErr != nil:
				require.ErrorIs(t, err, tt.wantErr)
				assert.False(t, found)
				return
			case tt.errText != "":
				require.EqualError(t, err, tt.errText)
				assert.False(t, found)
				return
			}
			require.NoError(t, err)
			if tt.want == 0 {
				assert.False(t, found, "found %+v", e)
				return
			}
			require.True(t, found)
			assert.Equal(t, "r", e.RunID)
			assert.Equal(t, tt.want, e.Seq)
		})
	}
}

// An Archive passes on its History's LastEvent, and cannot say without
// it.
func TestArchiveLastEvent(t *testing.T) {
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	require.NoError(t, h.Append(ctx, sinktest.Events("r", 1, 4)...))
	e, found, err := progress.NewArchive(h).LastEvent(ctx, "r")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, uint64(4), e.Seq)
	_, found, err = progress.NewArchive(h).LastEvent(ctx, "none")
	require.NoError(t, err)
	assert.False(t, found)
	_, _, err = progress.NewArchive(noLastEvent{h}).LastEvent(ctx, "r")
	assert.ErrorIs(t, err, progress.ErrUnsupported)
}
