package redisstream_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
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

// privateStream is a Stream on a private redis-server that the test kills
// and restarts, wired as a host would: the archive beside a Buffered Redis
// sink whose fallback is slog.
type privateStream struct {
	server   *testenv.RedisServer
	client   *redis.Client
	stream   *redisstream.Stream
	history  *progress.MemoryHistory
	buffered *progress.Buffered
	sink     progress.Sink
	logs     *testenv.LogBuffer
}

func newPrivateStream(t *testing.T, options ...func(*redisstream.Options)) *privateStream {
	t.Helper()
	p := &privateStream{server: testenv.StartRedisServer(t), history: progress.NewMemoryHistory(), logs: &testenv.LogBuffer{}}
	opts, err := redis.ParseURL(p.server.URL)
	require.NoError(t, err)
	opts.MaxRetries = -1 // fail fast while the server is down; Buffered and readers retry
	opts.DialTimeout = 500 * time.Millisecond
	p.client = testenv.NewRedisClient(opts)
	t.Cleanup(func() { p.client.Close() })
	sopts := redisstream.Options{
		History:    p.history,
		BlockTime:  100 * time.Millisecond,
		RetryDelay: 20 * time.Millisecond,
		Logger:     quiet(),
	}
	for _, o := range options {
		o(&sopts)
	}
	p.stream, err = redisstream.New(p.client, sopts)
	require.NoError(t, err)
	t.Cleanup(func() { p.stream.Close() })
	p.buffered = progress.NewBuffered(p.stream, progress.BufferedOptions{
		Logger:     slog.New(slog.NewTextHandler(p.logs, nil)),
		Timeout:    2 * time.Second,
		RetryDelay: 10 * time.Millisecond,
		Attempts:   2, // gives a batch up during an outage, as these tests' Flush needs
	})
	t.Cleanup(func() { p.buffered.Close(context.Background()) })
	p.sink = progress.NewFanout(progress.NewArchive(p.history), p.buffered)
	return p
}

// fakeRun publishes a run's events one by one, as the executor does, and
// reports whether any Publish failed the run.
func fakeRun(ctx context.Context, sink progress.Sink, events []progress.Event) error {
	for _, e := range events {
		if err := sink.Publish(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func TestRedisDownAtStart(t *testing.T) {
	p := newPrivateStream(t)
	p.server.Kill()
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 100)
	all[99].Type = progress.RunFinished

	require.NoError(t, fakeRun(ctx, p.sink, all), "the run must succeed with Redis down")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, p.buffered.Close(cctx), "Close flushes to the fallback")

	bs := p.buffered.Stats()
	assert.Positive(t, bs.Errors, "the error counter rose")
	assert.Equal(t, uint64(100), bs.Fallback, "every event reached the fallback sink")
	assert.Zero(t, bs.Published)
	assert.Contains(t, p.logs.String(), "msg=run.finished", "the slog fallback logged the run")
	assert.Positive(t, p.stream.Stats().PublishErrors)
	assert.Equal(t, 100, p.history.Len(run), "the archive has the whole run")

	// Redis comes up empty; a late reader gets the run from the archive.
	p.server.Restart()
	assert.Empty(t, sinktest.Diff(all, sinktest.Replay(t, p.stream, run, 0)))
}

func TestRedisRestartMidRun(t *testing.T) {
	p := newPrivateStream(t)
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 120)
	tl := sinktest.StartTail(t, p.stream, run, 0)

	require.NoError(t, fakeRun(ctx, p.sink, all[:50]))
	require.NoError(t, p.buffered.Flush(ctx))
	tl.Next(t, 50)

	p.server.Kill()
	require.NoError(t, fakeRun(ctx, p.sink, all[50:80]), "Publish never fails the run")
	require.NoError(t, p.buffered.Flush(ctx))
	assert.Positive(t, p.buffered.Stats().Fallback, "events went to the fallback while Redis was down")

	p.server.Restart()
	require.NoError(t, fakeRun(ctx, p.sink, all[80:]))
	require.NoError(t, p.buffered.Flush(ctx))
	assert.Equal(t, uint64(120), p.buffered.Stats().Published+p.buffered.Stats().Fallback)

	got := tl.Next(t, 120)
	tl.Stop(t, context.Canceled)
	if diff := sinktest.Diff(all, got); diff != "" {
		t.Fatalf("the reader resumed with a gap or a duplicate (-want +got):\n%s", diff)
	}
	st := p.stream.Stats()
	assert.Positive(t, st.ReadErrors, "the reader saw the outage")
	assert.Zero(t, st.Skipped, "the archive filled what Redis lost")

	// Publishing resumed: the new stream holds the events after the restart.
	n, err := p.client.XLen(ctx, p.stream.Key(run)).Result()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, int64(40))
	assert.True(t, strings.Contains(p.logs.String(), "downstream publish failed"))
}

// A reader that connects while Redis is down waits, then resumes from its
// own last ID once Redis is back.
func TestReaderConnectsDuringOutage(t *testing.T) {
	p := newPrivateStream(t)
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 30)
	require.NoError(t, fakeRun(ctx, p.sink, all[:10]))
	require.NoError(t, p.buffered.Flush(ctx))
	p.server.Kill()

	tl := sinktest.StartTail(t, p.stream, run, 4)
	deadline := time.Now().Add(10 * time.Second)
	for p.stream.Stats().ReadErrors == 0 {
		require.True(t, time.Now().Before(deadline), "the reader never tried Redis")
		time.Sleep(5 * time.Millisecond) // polling real I/O, bounded by the deadline
	}
	p.server.Restart()
	require.NoError(t, fakeRun(ctx, p.sink, all[10:]))
	require.NoError(t, p.buffered.Flush(ctx))
	got := tl.Next(t, 26)
	tl.Stop(t, context.Canceled)
	assert.Equal(t, sinktest.Span(5, 30), sinktest.Seqs(got))
}

// The run ends while Redis is down: the archive has every event, Redis
// none of the last ones, and no later entry will reveal the gap. A reader
// that was tailing reads them from the archive as soon as Redis answers
// again (the poll is off here, so only that can deliver them).
func TestRunEndsDuringOutage(t *testing.T) {
	p := newPrivateStream(t, func(o *redisstream.Options) { o.HistoryPoll = time.Hour })
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 60)
	all[59].Type = progress.RunFinished
	tl := sinktest.StartTail(t, p.stream, run, 0)

	require.NoError(t, fakeRun(ctx, p.sink, all[:50]))
	require.NoError(t, p.buffered.Flush(ctx))
	tl.Next(t, 50)

	p.server.Kill()
	require.NoError(t, fakeRun(ctx, p.sink, all[50:]), "Publish never fails the run")
	require.NoError(t, p.buffered.Flush(ctx))
	require.Equal(t, 60, p.history.Len(run))
	p.server.Restart()

	got := tl.Next(t, 60)
	tl.Stop(t, context.Canceled)
	require.Equal(t, sinktest.Span(1, 60), sinktest.Seqs(got))
}

// A Redis user whose ACL refuses EVAL and PEXPIRE (without @scripting
// alone, Publish sets IdleTTL without the script:
// TestIdleTTLWithoutScriptingIsRenewedByEachPublish), or the EXPIRE and
// PEXPIRE that set a stream's expiry (@keyspace: a user allowed @stream and
// @scripting alone, as the docs once led one to give), cannot have the
// TTLs set: each Publish writes its events, counts none as dropped, and
// counts the refused expiry in Stats.ExpiryErrors, which it logs,
// rather than fail a call whose events are written (see
// TestAnExpiryRefusedAloneIsNoPublishError).
func TestIdleTTLWithoutScripting(t *testing.T) {
	for _, tc := range []struct {
		name string
		acl  []any
		want string
	}{
		{"without @scripting and PEXPIRE", []any{"+@all", "-@scripting", "-pexpire", "-expire"}, "NOPERM"},
		{"without @keyspace", []any{"+@stream", "+@scripting", "+@connection"}, "ACL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			server := testenv.StartRedisServer(t)
			admin := testenv.NewRedisClient(&redis.Options{Addr: server.Addr})
			t.Cleanup(func() { admin.Close() })
			require.NoError(t, admin.Do(ctx, append([]any{"ACL", "SETUSER", "limited", "on", ">pw", "~*"}, tc.acl...)...).Err())
			client := testenv.NewRedisClient(&redis.Options{Addr: server.Addr, Username: "limited", Password: "pw"})
			t.Cleanup(func() { client.Close() })
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			s, err := redisstream.New(client, redisstream.Options{IdleTTL: time.Hour, Logger: logger})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })

			run := sinktest.RunID(t)
			require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 3)...))
			n, err := admin.XLen(ctx, s.Key(run)).Result()
			require.NoError(t, err)
			assert.Equal(t, int64(3), n)
			st := s.Stats()
			assert.Equal(t, uint64(3), st.Published)
			assert.Equal(t, uint64(0), st.Dropped)
			assert.Equal(t, uint64(0), st.PublishErrors)
			assert.Equal(t, uint64(1), st.ExpiryErrors)
			assert.Contains(t, logs.String(), "ACL refuses the expiry")
			assert.Contains(t, logs.String(), tc.want)
		})
	}
}
