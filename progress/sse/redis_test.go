package sse_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// The whole path against the real Redis: the executor's sink, the Redis
// stream with its archive, the handler and the Go client, with events
// published while the client replays.
func TestEndToEndRedis(t *testing.T) {
	r := testenv.NewRedis(t)
	hist := progress.NewMemoryHistory()
	stream, err := redisstream.New(r.Client, redisstream.Options{
		KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, History: hist, BlockTime: 100 * time.Millisecond, Logger: quiet(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { stream.Close() })
	sink := progress.NewFanout(progress.NewArchive(hist), stream)
	h, err := sse.NewHandler(stream, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true, Retry: 10 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)

	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 300)
	all[299].Type = progress.RunFinished
	ctx := context.Background()
	require.NoError(t, sink.Publish(ctx, all[:200]...))
	// Trim the stream: the first part now comes from the archive.
	require.NoError(t, r.Client.XTrimMaxLen(ctx, stream.Key(run), 50).Err())

	done := make(chan error, 1)
	go func() {
		for _, e := range all[200:] {
			if err := sink.Publish(ctx, e); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var got []progress.Event
	cctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c := sse.NewClient(server.URL+"/runs/"+run, sse.ClientOptions{LastEventID: "10"})
	require.NoError(t, c.Events(cctx, func(e progress.Event) error {
		got = append(got, e)
		return nil
	}), "ends with the final event and a 204 on reconnect")
	require.NoError(t, <-done)
	if diff := sinktest.Diff(all[10:], got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// A browser stays connected while Redis dies and comes back empty: the
// handler's source retries, the archive fills what was lost, and the
// client sees every event once.
func TestEndToEndRedisRestart(t *testing.T) {
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	opts.MaxRetries = -1
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	hist := progress.NewMemoryHistory()
	stream, err := redisstream.New(client, redisstream.Options{History: hist, BlockTime: 100 * time.Millisecond, RetryDelay: 20 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { stream.Close() })
	buffered := progress.NewBuffered(stream, progress.BufferedOptions{Logger: quiet(), RetryDelay: time.Millisecond, Attempts: 2})
	t.Cleanup(func() { buffered.Close(context.Background()) })
	sink := progress.NewFanout(progress.NewArchive(hist), buffered)
	h, err := sse.NewHandler(stream, sse.HandlerOptions{Authorize: byPath, Logger: quiet()})
	require.NoError(t, err)
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)

	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 90)
	cctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c := sse.NewClient(hs.URL+"/runs/"+run, sse.ClientOptions{Retry: 10 * time.Millisecond})
	require.NoError(t, sink.Publish(ctx, all[:30]...))
	var got []progress.Event
	err = c.Events(cctx, func(e progress.Event) error {
		got = append(got, e)
		switch e.Seq {
		case 30:
			server.Kill()
			require.NoError(t, sink.Publish(ctx, all[30:60]...))
			require.NoError(t, buffered.Flush(ctx))
			server.Restart()
			require.NoError(t, sink.Publish(ctx, all[60:]...))
		case 90:
			return errStop
		}
		return nil
	})
	require.ErrorIs(t, err, errStop)
	if diff := sinktest.Diff(all, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	require.Positive(t, stream.Stats().ReadErrors, "the handler's reader saw the outage")
}

// countingHistory counts the events its Replay delivers; it keeps
// MemoryHistory's LastEvent.
type countingHistory struct {
	*progress.MemoryHistory
	replayed atomic.Int64
}

func (h *countingHistory) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return h.MemoryHistory.Replay(ctx, run, after, func(e progress.Event) error {
		h.replayed.Add(1)
		return fn(e)
	})
}

// With CloseOnFinal, a last event ID at or past the end of a long run is
// answered 204 after a lookup, whether the stream still has the run or
// only the archive does: no XRANGE of the stream, no replay of the
// archive.
func TestCloseOnFinalPastTheEndRedis(t *testing.T) {
	for _, gone := range []bool{false, true} {
		t.Run(fmt.Sprint("stream gone ", gone), func(t *testing.T) {
			r := testenv.NewRedis(t)
			hist := &countingHistory{MemoryHistory: progress.NewMemoryHistory()}
			stream, err := redisstream.New(r.Client, redisstream.Options{
				KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, History: hist, Logger: quiet(),
			})
			require.NoError(t, err)
			t.Cleanup(func() { stream.Close() })
			h, err := sse.NewHandler(stream, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true, Logger: quiet()})
			require.NoError(t, err)
			server := httptest.NewServer(h)
			t.Cleanup(server.Close)

			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, 3000)
			all[2999].Type = progress.RunFinished
			require.NoError(t, progress.NewFanout(progress.NewArchive(hist), stream).Publish(ctx, all...))
			if gone {
				require.NoError(t, r.Client.Del(ctx, stream.Key(run)).Err())
			}
			cmds := testenv.CountCommands(r.Client)
			for _, id := range []string{"3000", "5000"} {
				resp, err := http.DefaultClient.Do(mustRequest(t, server.URL+"/runs/"+run, id))
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, http.StatusNoContent, resp.StatusCode, "Last-Event-ID %s", id)
			}
			assert.Zero(t, cmds.Count("xrange"), "XRANGEs to answer 204")
			assert.Zero(t, hist.replayed.Load(), "archived events replayed to answer 204")
		})
	}
}

func mustRequest(t *testing.T, url, lastEventID string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Last-Event-ID", lastEventID)
	return req
}

// With EmptyRunTimeout, a run that is gone entirely, its stream expired
// and its archive empty (or a run ID never used), is answered 204; with
// CloseOnFinal, as is a last event ID past the end of a run that only the
// archive still has.
func TestGoneRunRedis(t *testing.T) {
	r := testenv.NewRedis(t)
	hist := progress.NewMemoryHistory()
	stream, err := redisstream.New(r.Client, redisstream.Options{
		KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, History: hist, BlockTime: 100 * time.Millisecond, Logger: quiet(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { stream.Close() })
	h, err := sse.NewHandler(stream, sse.HandlerOptions{
		Authorize: byPath, CloseOnFinal: true, EmptyRunTimeout: 20 * time.Millisecond, Logger: quiet(),
	})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)

	ctx := context.Background()
	gone, archived := sinktest.RunID(t)+"-gone", sinktest.RunID(t)+"-archived"
	for _, run := range []string{gone, archived} {
		all := sinktest.Events(run, 1, 5)
		all[4].Type = progress.RunFinished
		sink := progress.Sink(stream)
		if run == archived {
			sink = progress.NewFanout(progress.NewArchive(hist), stream)
		}
		require.NoError(t, sink.Publish(ctx, all...))
		require.NoError(t, r.Client.Del(ctx, stream.Key(run)).Err()) // expired
	}
	tests := []struct {
		run, lastID string
		want        int
	}{
		{gone, "", http.StatusNoContent},
		{gone, "3", http.StatusNoContent},
		{sinktest.RunID(t) + "-never", "", http.StatusNoContent},
		{archived, "9", http.StatusNoContent},
		{archived, "3", http.StatusOK},
	}
	for _, tt := range tests {
		resp, err := http.DefaultClient.Do(mustRequest(t, server.URL+"/runs/"+tt.run, tt.lastID))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, tt.want, resp.StatusCode, "run %s, Last-Event-ID %q", tt.run, tt.lastID)
	}
}

// With CloseOnFinal, a client whose last event ID is ahead of a run on
// Redis, under way or not started, has its stream ended when the run ends
// below that ID, and its reconnect answered 204; the run's shared reader
// stops.
func TestCloseOnFinalAheadOfTheRunRedis(t *testing.T) {
	for _, stored := range []uint64{0, 3} {
		t.Run(fmt.Sprint("stored ", stored), func(t *testing.T) {
			r := testenv.NewRedis(t)
			stream, err := redisstream.New(r.Client, redisstream.Options{
				KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, BlockTime: 50 * time.Millisecond, Logger: quiet(),
			})
			require.NoError(t, err)
			t.Cleanup(func() { stream.Close() })
			h, err := sse.NewHandler(stream, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true, Retry: time.Millisecond, Logger: quiet()})
			require.NoError(t, err)
			server := httptest.NewServer(h)
			t.Cleanup(server.Close)

			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, 5)
			all[4].Type = progress.RunCancelled
			if stored > 0 {
				require.NoError(t, stream.Publish(ctx, all[:stored]...))
			}
			cctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			c := sse.NewClient(server.URL+"/runs/"+run, sse.ClientOptions{LastEventID: "9"})
			done := make(chan error, 1)
			go func() { done <- c.Stream(cctx, func(sse.Message) error { return fmt.Errorf("no event expected") }) }()
			waitFor(t, "the client to follow the run", func() bool { return stream.Stats().Runs == 1 })
			require.NoError(t, stream.Publish(ctx, all[stored:]...))
			require.NoError(t, <-done, "the run ended below the client's last event ID; its stream must end with a 204")
			assert.Equal(t, 1, c.Connects())
			waitFor(t, "the run's shared reader to stop", func() bool { return stream.Stats().Runs == 0 })
		})
	}
}

// Many browser tabs that open one run without any event (not started, or
// unknown), with EmptyRunTimeout and CloseOnFinal so that each request
// probes the run, cost Redis what the first costs: its probe and replay.
// The others are answered by the run's shared reader.
func TestManyClientsOfAnEmptyRunRedis(t *testing.T) {
	const clients = 20
	for _, lastID := range []string{"", "7"} {
		t.Run(fmt.Sprintf("Last-Event-ID %q", lastID), func(t *testing.T) {
			r := testenv.NewRedis(t)
			stream, err := redisstream.New(r.Client, redisstream.Options{
				KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, BlockTime: 50 * time.Millisecond, Logger: quiet(),
			})
			require.NoError(t, err)
			t.Cleanup(func() { stream.Close() })
			h, err := sse.NewHandler(stream, sse.HandlerOptions{
				Authorize: byPath, CloseOnFinal: true, EmptyRunTimeout: time.Minute, Logger: quiet(),
			})
			require.NoError(t, err)
			server := httptest.NewServer(h)
			t.Cleanup(server.Close)

			run := sinktest.RunID(t)
			cmds := testenv.CountCommands(r.Client)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, clients)
			connect := func() {
				c := sse.NewClient(server.URL+"/runs/"+run, sse.ClientOptions{LastEventID: lastID})
				go func() { done <- c.Stream(ctx, func(sse.Message) error { return nil }) }()
			}
			connect()
			waitFor(t, "the first client to follow the run", func() bool { return stream.Stats().Runs == 1 })
			for range clients - 1 {
				connect()
			}
			waitFor(t, "every client to follow the run", func() bool { return stream.Stats().Readers == clients })
			assert.Equal(t, 1, cmds.Count("xrange"), "XRANGEs for %d clients of an empty run", clients)
			assert.Equal(t, 1, cmds.Count("xrevrange"), "XREVRANGEs for %d clients of an empty run", clients)
			assert.Equal(t, 1, stream.Stats().Runs)
			cancel()
			for range clients {
				assert.ErrorIs(t, <-done, context.Canceled)
			}
		})
	}
}
