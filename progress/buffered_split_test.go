package progress_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// One event that the sink refuses, in a batch of 16, is warned of once,
// naming it, however many times the batch is halved to find it: the
// halving itself is logged at debug level. Each halving used to warn, so
// an operator saw five warnings for one bad event.
func TestBufferedSplitWarnsOncePerRefusedEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		events := sinktest.Events("ok", 1, 16)
		events[11] = sinktest.Events("bad", 1, 1)[0]
		var logs bytes.Buffer // read after Close
		fb, fallback := collectIDs()
		down := &invalidFor{bad: "bad", err: fmt.Errorf("run ID too long: %w", progress.ErrInvalidEvent)}
		b := progress.NewBuffered(down, progress.BufferedOptions{
			Logger:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Fallback:  fb,
			BatchSize: 16,
		})
		require.NoError(t, b.Publish(ctx, events...))
		require.NoError(t, b.Close(ctx))
		assert.Equal(t, []string{"bad/1"}, fallback())
		assert.Len(t, down.seqs(), 15)
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		require.Len(t, lines, 1, "one warning for one refused event:\n%s", logs.String())
		assert.Contains(t, lines[0], "refused")
		assert.Contains(t, lines[0], "runID=bad")
		assert.Contains(t, lines[0], "firstSeq=1")
	})
}

// collectIDs returns a Sink that records "run/seq" of every event it
// takes, and a func that returns what it recorded.
func collectIDs() (progress.Sink, func() []string) {
	var mu sync.Mutex
	var ids []string
	sink := progress.SinkFunc(func(_ context.Context, events ...progress.Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			ids = append(ids, fmt.Sprintf("%s/%d", e.RunID, e.Seq))
		}
		return nil
	})
	return sink, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ids)
	}
}
