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

func TestCursor(t *testing.T) {
	all := sinktest.Events("r", 1, 20)
	pick := func(seqs ...uint64) []progress.Event {
		var out []progress.Event
		for _, s := range seqs {
			out = append(out, all[s-1])
		}
		return out
	}
	tests := []struct {
		name        string
		after       uint64
		history     []progress.Event // nil: no History
		feed        []progress.Event
		fill        bool // call FillFromHistory at the end
		want        []uint64
		wantSkipped uint64
	}{
		{"in order", 0, nil, pick(1, 2, 3), false, []uint64{1, 2, 3}, 0},
		{"duplicates and old events dropped", 2, nil, pick(1, 2, 3, 3, 2, 4), false, []uint64{3, 4}, 0},
		{"gap without history skipped", 0, nil, pick(1, 2, 6, 7), false, []uint64{1, 2, 6, 7}, 3},
		{"gap filled from history", 0, pick(3, 4, 5), pick(1, 2, 6, 7), false, []uint64{1, 2, 3, 4, 5, 6, 7}, 0},
		{"history beyond the gap not delivered early", 0, pick(2, 3, 4, 5, 6, 7, 8), pick(1, 4, 5), false, []uint64{1, 2, 3, 4, 5}, 0},
		{"partial fill counts the rest", 0, pick(3), pick(1, 6), false, []uint64{1, 3, 6}, 3},
		{"fill after the end", 0, pick(1, 2, 3, 4, 5), pick(1, 2), true, []uint64{1, 2, 3, 4, 5}, 0},
		{"fill with nothing to feed", 10, all, nil, true, sinktest.Span(11, 20), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			var h progress.History
			if tt.history != nil {
				mh := progress.NewMemoryHistory()
				require.NoError(t, mh.Append(ctx, tt.history...))
				h = mh
			}
			var got []uint64
			c := progress.NewCursor("r", tt.after, h, func(e progress.Event) error {
				got = append(got, e.Seq)
				return nil
			})
			var hooked uint64
			c.OnSkip(func(first, last uint64) {
				// Called as the cursor jumps: right after the event before the gap.
				prev := tt.after
				if len(got) > 0 {
					prev = got[len(got)-1]
				}
				assert.Equal(t, prev+1, first, "OnSkip's first Seq follows the last delivered")
				assert.LessOrEqual(t, first, last)
				hooked += last - first + 1
			})
			for _, e := range tt.feed {
				require.NoError(t, c.Deliver(ctx, e))
			}
			if tt.fill {
				require.NoError(t, c.FillFromHistory(ctx))
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantSkipped, c.Skipped(), "Skipped")
			assert.Equal(t, tt.wantSkipped, hooked, "the Seqs OnSkip was told of")
			if len(tt.want) > 0 {
				assert.Equal(t, tt.want[len(tt.want)-1], c.Last(), "Last")
			}
		})
	}
}

func TestCursorErrors(t *testing.T) {
	ctx := context.Background()
	stop := errors.New("client gone")
	var got []uint64
	c := progress.NewCursor("r", 0, nil, func(e progress.Event) error {
		if e.Seq == 2 {
			return stop
		}
		got = append(got, e.Seq)
		return nil
	})
	require.NoError(t, c.Deliver(ctx, sinktest.Events("r", 1, 1)[0]))
	assert.ErrorIs(t, c.Deliver(ctx, sinktest.Events("r", 2, 2)[0]), stop)
	assert.Equal(t, uint64(1), c.Last(), "a failed delivery does not advance the cursor")
	assert.ErrorIs(t, c.Deliver(ctx, sinktest.Events("other", 3, 3)[0]), progress.ErrInvalidEvent)

	broken := historyReplayFunc(func() error { return errors.New("db down") })
	c = progress.NewCursor("r", 0, broken, func(progress.Event) error { return nil })
	assert.EqualError(t, c.Deliver(ctx, sinktest.Events("r", 5, 5)[0]), "history: db down")
}

func TestCursorFinal(t *testing.T) {
	c := progress.NewCursor("r", 0, nil, func(progress.Event) error { return nil })
	require.NoError(t, c.Deliver(context.Background(), progress.Event{RunID: "r", Seq: 1, Type: progress.RunStarted}))
	assert.False(t, c.Final())
	require.NoError(t, c.Deliver(context.Background(), progress.Event{RunID: "r", Seq: 2, Type: progress.RunFailed}))
	assert.True(t, c.Final())
}

type historyReplayFunc func() error

func (historyReplayFunc) Append(context.Context, ...progress.Event) error { return nil }

func (f historyReplayFunc) Replay(context.Context, string, uint64, func(progress.Event) error) error {
	return f()
}

// FillContiguous delivers the archived events up to the first gap and
// skips nothing; FillFromHistory then passes over the gap.
func TestCursorFillContiguous(t *testing.T) {
	ctx := context.Background()
	events := sinktest.Events("r", 1, 6)
	h := progress.NewMemoryHistory()
	require.NoError(t, h.Append(ctx, events[1], events[2], events[4], events[5])) // 2, 3, 5, 6
	var got []uint64
	c := progress.NewCursor("r", 1, h, func(e progress.Event) error {
		got = append(got, e.Seq)
		return nil
	})
	require.NoError(t, c.FillContiguous(ctx))
	assert.Equal(t, []uint64{2, 3}, got)
	assert.Zero(t, c.Skipped())
	require.NoError(t, c.FillContiguous(ctx))
	assert.Equal(t, []uint64{2, 3}, got, "still at the gap")
	require.NoError(t, c.FillFromHistory(ctx))
	assert.Equal(t, []uint64{2, 3, 5, 6}, got)
	assert.Equal(t, uint64(1), c.Skipped())

	none := progress.NewCursor("r", 0, nil, func(progress.Event) error { return errors.New("called") })
	assert.NoError(t, none.FillContiguous(ctx), "no History: nothing to do")
}
