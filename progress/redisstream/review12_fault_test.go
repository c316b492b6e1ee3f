package redisstream_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// While a private Redis hangs (paused), the readers of a run going on
// get, with a History, the events published meanwhile from it, and
// LastEvent returns; once Redis answers again, both recover: each reader
// gets every event once, in order, those of the pause among them, and
// LastEvent answers from Redis. Without a History, the readers get the
// pause's events from Redis once it answers.
func TestPausedRedisReadersAndLastEventRecover(t *testing.T) {
	for _, withHistory := range []bool{true, false} {
		name := "without history"
		if withHistory {
			name = "with history"
		}
		t.Run(name, func(t *testing.T) {
			server := testenv.StartRedisServer(t)
			opts, err := redis.ParseURL(server.URL)
			require.NoError(t, err)
			opts.MaxRetries = -1
			opts.DialTimeout = 500 * time.Millisecond
			opts.ReadTimeout = time.Second
			client := testenv.NewRedisClient(opts)
			t.Cleanup(func() { client.Close() })
			sopts := redisstream.Options{BlockTime: 100 * time.Millisecond, RetryDelay: 20 * time.Millisecond,
				MaxBlockingReads: 2, HistoryPoll: 200 * time.Millisecond, Logger: quiet()}
			hist := progress.NewMemoryHistory()
			if withHistory {
				sopts.History = hist
			}
			s, err := redisstream.New(client, sopts)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			buffered := progress.NewBuffered(s, progress.BufferedOptions{
				Logger: slog.New(slog.DiscardHandler), Timeout: time.Minute, Attempts: 1000, RetryDelay: 10 * time.Millisecond})
			t.Cleanup(func() { buffered.Close(context.Background()) })
			var sink progress.Sink = buffered
			if withHistory {
				sink = progress.NewFanout(progress.NewArchive(hist), buffered)
			}
			t.Cleanup(server.Resume) // before the Stream's and the Buffered's Close
			ctx := context.Background()
			run := sinktest.RunID(t)
			all := sinktest.Events(run, 1, 20)
			all[19].Type = progress.RunFinished

			require.NoError(t, fakeRun(ctx, sink, all[:10]))
			require.NoError(t, buffered.Flush(ctx))
			a := sinktest.StartTail(t, s, run, 0)
			a.Expect(t, sinktest.Span(1, 10))

			server.Pause()
			require.NoError(t, fakeRun(ctx, sink, all[10:15]))
			b := sinktest.StartTail(t, s, run, 5)
			var lookups []chan error
			for range 3 {
				done := make(chan error, 1)
				lookups = append(lookups, done)
				go func() {
					_, _, err := s.LastEvent(ctx, run)
					done <- err
				}()
			}
			if withHistory {
				a.Expect(t, sinktest.Span(11, 15))
				b.Expect(t, sinktest.Span(6, 15))
			}
			for _, done := range lookups {
				select {
				case <-done: // an error, or the History's answer
				case <-time.After(10 * time.Second):
					t.Fatal("LastEvent waited for the paused Redis over 10s")
				}
			}

			server.Resume()
			require.NoError(t, fakeRun(ctx, sink, all[15:]))
			require.NoError(t, buffered.Flush(ctx))
			if withHistory {
				a.Expect(t, sinktest.Span(16, 20))
				b.Expect(t, sinktest.Span(16, 20))
			} else {
				a.Expect(t, sinktest.Span(11, 20))
				b.Expect(t, sinktest.Span(6, 20))
			}
			e, ok, err := s.LastEvent(ctx, run)
			require.NoError(t, err)
			require.True(t, ok)
			assert.Equal(t, uint64(20), e.Seq)
			a.Stop(t, context.Canceled)
			b.Stop(t, context.Canceled)
			assert.Zero(t, s.Stats().Skipped)
		})
	}
}
