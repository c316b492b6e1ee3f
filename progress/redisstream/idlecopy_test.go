package redisstream_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// The story: a worker is killed with events still queued for the
// archive, though they reached Redis (the README's production wiring),
// and its run is resumed only after IdleTTL, or never. Before, IdleTTL
// expired the run's stream, and with it the events that only it held:
// the resume's copy into the History found nothing left, and readers
// skipped those events. Now any Stream with a History and IdleTTL (here
// another server's) copies a stream idle for half IdleTTL, without its
// run's final event, into the History before it expires; a run that
// ended is copied only if the History lacks its final event (before, it
// never was: the worker killed after its final event reached Redis, with
// 6..8 still queued for the archive, lost them).
func TestIdleStreamIsCopiedBeforeItExpires(t *testing.T) {
	const idleTTL = 4 * time.Second // a sweep every second, a window of two
	tests := []struct {
		name       string
		template   string // the KeyTemplate after the test's prefix, if not "{runId}"
		final      bool   // the run published its final event
		archived   int    // the History holds 1..archived before, if not 5
		wantCopied uint64 // the History holds 1..wantCopied in the end
	}{
		{"a crashed run", "", false, 0, 8},
		{"a run that ended, killed before its archive had its end", "", true, 0, 8},
		{"a run that ended, archived", "", true, 8, 8},
		// SCAN MATCH gives these a meaning: they are escaped.
		{"a key template with glob characters and a suffix", `a*[b]?\{runId}:s`, false, 0, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &callCounter{MemoryHistory: progress.NewMemoryHistory()}
			logs := &testenv.LogBuffer{}
			// A negative FinishedTTL: a finished run's stream expires
			// with IdleTTL too, so that the sweep has a window to copy it.
			opts := redisstream.Options{History: h, IdleTTL: idleTTL, FinishedTTL: -1, Logger: slog.New(slog.NewTextHandler(logs, nil))}
			r := testenv.NewRedis(t)
			opts.KeyTemplate = r.Prefix + redisstream.RunIDPlaceholder
			if tt.template != "" {
				opts.KeyTemplate = r.Prefix + tt.template
			}
			worker, _ := newStream(t, opts)
			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, 8)
			if tt.final {
				all[7].Type, all[7].Stage = progress.RunFinished, progress.NoStage
			}
			// The killed worker: 1..8 reached Redis, 1..5 the History.
			archived := 5
			if tt.archived != 0 {
				archived = tt.archived
			}
			require.NoError(t, worker.Publish(ctx, all...))
			require.NoError(t, h.Append(ctx, all[:archived]...))
			require.NoError(t, worker.Close())
			appends := h.appends.Load()

			// Another server's Stream, reading the same streams.
			opts.BlockTime = 100 * time.Millisecond
			server, err := redisstream.New(r.Client, opts)
			require.NoError(t, err)
			t.Cleanup(func() { server.Close() })

			wait := testenv.Context(t, 3*idleTTL)
			for r.Client.Exists(ctx, worker.Key(run)).Val() == 1 {
				require.NoError(t, wait.Err(), "the stream never expired")
				time.Sleep(20 * time.Millisecond) // polling Redis's expiry, bounded by wait
			}
			assert.Equal(t, int(tt.wantCopied), h.Len(run), "events in the History once the stream expired")
			if tt.archived == 8 {
				assert.Equal(t, appends, h.appends.Load(), "a run that ended, archived, is not copied")
				return
			}
			assert.Empty(t, sinktest.Diff(all, sinktest.Replay(t, server, run, 0)), "a reader after the expiry")
			assert.Zero(t, server.Stats().Skipped)
			assert.Zero(t, server.Stats().CopyErrors)
			assert.Contains(t, logs.String(), "copied the idle stream of a run to the history, before IdleTTL expires it")
		})
	}
}
