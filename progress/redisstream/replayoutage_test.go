package redisstream_test

import (
	"context"
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

// While Redis is down, Replay reads the History as Tail does: the events
// that directly follow its position, up to the first Seq that the
// History lacks. With the run's final event among them, or at or below
// its position, it returns nil without Redis; otherwise Redis's error,
// as Redis may hold newer events. Here on a client with ReadTimeout -1
// (none), whose reads fail only when Redis refuses them. Before, Replay
// returned Redis's error and delivered nothing, though the History held
// the run whole.
func TestReplayServesTheHistoryWhileRedisIsDown(t *testing.T) {
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	opts.ReadTimeout = -1
	opts.MaxRetries = -1 // fail fast while the server is down
	opts.DialTimeout = 500 * time.Millisecond
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	hist := progress.NewMemoryHistory()
	s, err := redisstream.New(client, redisstream.Options{History: hist, BlockTime: 100 * time.Millisecond,
		RetryDelay: 20 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	sink := progress.NewFanout(progress.NewArchive(hist), s)
	finished, live := sinktest.RunID(t)+"-finished", sinktest.RunID(t)+"-live"
	all := sinktest.Events(finished, 1, 46)
	all[45].Type = progress.RunFinished
	require.NoError(t, sink.Publish(ctx, all...))
	require.NoError(t, sink.Publish(ctx, sinktest.Events(live, 1, 30)...))
	server.Kill()

	for _, tc := range []struct {
		name    string
		run     string
		after   uint64
		want    []uint64
		wantErr bool
	}{
		{"finished run", finished, 0, sinktest.Span(1, 46), false},
		{"finished run, resumed inside", finished, 20, sinktest.Span(21, 46), false},
		{"finished run, resumed at its end", finished, 46, nil, false},
		{"live run", live, 10, sinktest.Span(11, 30), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint64
			err := s.Replay(ctx, tc.run, tc.after, func(e progress.Event) error {
				got = append(got, e.Seq)
				return nil
			})
			if tc.wantErr {
				assert.Error(t, err, "Redis may hold newer events")
			} else {
				assert.NoError(t, err)
			}
			assert.Equal(t, tc.want, got)
		})
	}
	assert.Zero(t, s.Stats().Skipped)
}

// While Redis hangs, once a read of it has failed, Replay does not wait
// for a read of its own either: it reads the History first, as a Tail
// does, and a finished run that the History holds whole is replayed
// without Redis; for a run going on, it waits for Redis at most readWait
// (a second), then returns Redis's failure, having delivered what the
// History holds. Before, it waited for its read of Redis to fail, at the
// client's ReadTimeout (never with a ReadTimeout of -1), and then
// returned that error, having delivered nothing.
func TestReplayDuringAHangServesTheHistory(t *testing.T) {
	for _, finished := range []bool{true, false} {
		name := "live run"
		if finished {
			name = "finished run"
		}
		t.Run(name, func(t *testing.T) {
			var (
				s     *redisstream.Stream
				reads *outageReads
				run   string
				want  = sinktest.Span(1, 30)
			)
			if finished {
				s, reads, run = finishedRunInOutage(t)
				want = sinktest.Span(1, 46)
			} else {
				s, reads, run = liveRunInOutage(t)
			}
			reads.mode.Store(1)
			_, _, _ = s.LastEvent(context.Background(), run) // its lookup in Redis fails
			reads.mode.Store(2)
			type answer struct {
				got []uint64
				err error
			}
			done := make(chan answer, 1)
			go func() {
				var got []uint64
				err := s.Replay(context.Background(), run, 0, func(e progress.Event) error {
					got = append(got, e.Seq)
					return nil
				})
				done <- answer{got, err}
			}()
			select {
			case a := <-done:
				assert.Equal(t, want, a.got)
				if finished {
					assert.NoError(t, a.err)
				} else {
					assert.Error(t, a.err, "Redis may hold newer events")
				}
			case <-time.After(hangBound):
				t.Fatalf("Replay waited for Redis over %v", hangBound)
			}
		})
	}
}
