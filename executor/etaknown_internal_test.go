package executor

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
)

// A generator's note reads the run's ETA before it takes the emitter's
// lock: one read while no cost was known, published after a node's end
// made the ETA known, went out with an ETA of 0, unknown again, while
// nodes were left, as did a node's start or retry read so. The emitter
// now gives such an event the ETA it last sent, counted down, as it
// gives it the Done it last sent.
func TestLateEventKeepsTheKnownETA(t *testing.T) {
	sink := progress.NewMemory(progress.MemoryOptions{})
	em := &emitter{sink: sink, log: slog.New(slog.DiscardHandler), ctx: context.Background(), runID: "r", key: "k"}
	em.emit(progress.Event{Type: progress.RunStarted, Stage: progress.NoStage, Total: 3})
	em.emit(progress.Event{Type: progress.NodeSucceeded, Node: "script", Done: 1, Total: 3, ETA: 20 * time.Second})
	for _, typ := range []progress.Type{progress.Message, progress.NodeStarted, progress.NodeRetrying} {
		// Read before the node's end: no Done, no ETA.
		em.emit(progress.Event{Type: typ, Node: "asset:music", Total: 3})
	}
	em.emit(progress.Event{Type: progress.RunFinished, Stage: progress.NoStage, Done: 3, Total: 3})
	var evs []progress.Event
	require.NoError(t, sink.Replay(context.Background(), "r", 0, func(ev progress.Event) error {
		evs = append(evs, ev)
		return nil
	}))
	require.Len(t, evs, 6)
	for _, ev := range evs[2:5] {
		require.Equal(t, 1, ev.Done, "%s", ev.Type)
		require.Greater(t, ev.ETA, 19*time.Second, "%s: the ETA sent last, counted down", ev.Type)
		require.LessOrEqual(t, ev.ETA, 20*time.Second, "%s", ev.Type)
	}
	require.Zero(t, evs[5].ETA, "the final event")
}
