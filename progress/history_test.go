package progress_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

func TestMemoryHistoryAppend(t *testing.T) {
	ctx := context.Background()
	all := sinktest.Events("r", 1, 10)
	tests := []struct {
		name    string
		batches [][]progress.Event
		want    []uint64
	}{
		{"in order", [][]progress.Event{all}, sinktest.Span(1, 10)},
		{"duplicates ignored", [][]progress.Event{all[:5], all[:5], all[3:]}, sinktest.Span(1, 10)},
		{"out of order kept sorted", [][]progress.Event{all[5:], all[:2], {all[3], all[2], all[4]}}, sinktest.Span(1, 10)},
		{"gaps kept", [][]progress.Event{{all[0], all[4], all[9]}}, []uint64{1, 5, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := progress.NewMemoryHistory()
			for _, b := range tt.batches {
				require.NoError(t, h.Append(ctx, b...))
			}
			var got []uint64
			require.NoError(t, h.Replay(ctx, "r", 0, func(e progress.Event) error {
				got = append(got, e.Seq)
				return nil
			}))
			assert.Equal(t, tt.want, got)
			assert.Equal(t, len(tt.want), h.Len("r"))
		})
	}
}

func TestMemoryHistoryReplay(t *testing.T) {
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	require.NoError(t, h.Append(ctx, sinktest.Events("r", 1, 600)...))
	var got []uint64
	stop := errors.New("stop")
	err := h.Replay(ctx, "r", 250, func(e progress.Event) error {
		got = append(got, e.Seq)
		if e.Seq == 580 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, sinktest.Span(251, 580), got, "pages across the internal batch size, stops at fn's error")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, h.Replay(cctx, "r", 0, func(progress.Event) error { return nil }), context.Canceled)

	h.Delete("r")
	assert.Zero(t, h.Len("r"))
	assert.ErrorIs(t, h.Append(ctx, progress.Event{RunID: "r"}), progress.ErrInvalidEvent)
}

func TestArchive(t *testing.T) {
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	a := progress.NewArchive(h)
	require.NoError(t, a.Publish(ctx, sinktest.Events("r", 1, 3)...))
	assert.Equal(t, 3, h.Len("r"))
	assert.ErrorIs(t, a.Publish(ctx, progress.Event{Seq: 4}), progress.ErrInvalidEvent)

	failing := historyFunc(func(context.Context, ...progress.Event) error { return errors.New("db down") })
	err := progress.NewArchive(failing).Publish(ctx, sinktest.Events("r", 1, 1)...)
	assert.EqualError(t, err, "archive: db down")
}

type historyFunc func(ctx context.Context, events ...progress.Event) error

func (f historyFunc) Append(ctx context.Context, events ...progress.Event) error {
	return f(ctx, events...)
}

func (f historyFunc) Replay(context.Context, string, uint64, func(progress.Event) error) error {
	return nil
}

func TestMemoryHistoryLastEvent(t *testing.T) {
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	_, ok, err := h.LastEvent(ctx, "r")
	require.NoError(t, err)
	assert.False(t, ok, "a run never archived")
	all := sinktest.Events("r", 1, 10)
	require.NoError(t, h.Append(ctx, all[7], all[2], all[4]))
	e, ok, err := h.LastEvent(ctx, "r")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Empty(t, sinktest.Diff([]progress.Event{all[7]}, []progress.Event{e}), "the highest Seq, whatever the order of appending")
}

// replayOnly is a History without a LastEvent method.
type replayOnly struct{ progress.History }

func TestLastArchived(t *testing.T) {
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	all := sinktest.Events("r", 1, 10)
	require.NoError(t, h.Append(ctx, all[:8]...))
	for name, hist := range map[string]progress.History{"LastEventReader": h, "replay only": replayOnly{h}} {
		t.Run(name, func(t *testing.T) {
			tests := []struct {
				run   string
				after uint64
				want  uint64 // 0: none
			}{
				{"r", 0, 8},
				{"r", 5, 8},
				{"r", 7, 8},
				{"r", 8, 0},
				{"r", 20, 0},
				{"other", 0, 0},
			}
			for _, tt := range tests {
				e, ok, err := progress.LastArchived(ctx, hist, tt.run, tt.after)
				require.NoError(t, err)
				assert.Equal(t, tt.want != 0, ok, "LastArchived(%s, %d)", tt.run, tt.after)
				assert.Equal(t, tt.want, e.Seq, "LastArchived(%s, %d)", tt.run, tt.after)
			}
		})
	}
	broken := errors.New("db down")
	_, _, err := progress.LastArchived(ctx, failingHistory{broken}, "r", 0)
	assert.ErrorIs(t, err, broken)
}

// failingHistory fails every call with err.
type failingHistory struct{ err error }

func (f failingHistory) Append(context.Context, ...progress.Event) error { return f.err }

func (f failingHistory) Replay(context.Context, string, uint64, func(progress.Event) error) error {
	return f.err
}
