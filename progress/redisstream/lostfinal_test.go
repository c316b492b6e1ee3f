package redisstream_test

import (
	"context"
	"errors"
	"net"
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
)

// outage fails every command of a client while down is set, as a Redis
// that refuses connections does, without touching the server.
type outage struct{ down atomic.Bool }

var errOutage = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (o *outage) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (o *outage) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if o.down.Load() {
			cmd.SetErr(errOutage)
			return errOutage
		}
		return next(ctx, cmd)
	}
}

func (o *outage) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if o.down.Load() {
			for _, cmd := range cmds {
				cmd.SetErr(errOutage)
			}
			return errOutage
		}
		return next(ctx, cmds)
	}
}

// The trial that found the defaults wanting: a run's writer publishes
// through progress.Buffered, and Redis is down at the run's end, longer
// than the Buffered's retries, so that its final event goes to the
// fallback and never reaches Redis. With FinishedTTL set and IdleTTL
// left to its default, the run's stream still expires (here after a
// short IdleTTL), and a browser's Tail on another server, without a
// History, ends with ErrStreamGone rather than wait for good.
func TestARunWhoseFinalEventAnOutageLostExpiresAndEndsItsReaders(t *testing.T) {
	ctx := context.Background()
	r := testenv.NewRedis(t)
	opts := *r.Client.Options()
	writerClient := testenv.NewRedisClient(&opts)
	t.Cleanup(func() { writerClient.Close() })
	cut := &outage{}
	writerClient.AddHook(cut)
	key := r.Prefix + redisstream.RunIDPlaceholder

	// A TTL as short as the test allows; the defaults set the same expiry
	// 72h on (see TestAStreamWhoseFinalEventWasLostExpires).
	writer, err := redisstream.New(writerClient, redisstream.Options{KeyTemplate: key, FinishedTTL: time.Hour,
		IdleTTL: 2 * time.Second, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { writer.Close() })
	var fallback atomic.Uint64
	// Attempts 2: a Buffered that gives a batch up (the default rides
	// the outage out, and the final event would wait in its queue).
	buffered := progress.NewBuffered(writer, progress.BufferedOptions{Logger: quiet(), RetryDelay: 10 * time.Millisecond, Attempts: 2,
		Fallback: progress.SinkFunc(func(_ context.Context, events ...progress.Event) error {
			for _, e := range events {
				fallback.Store(e.Seq)
			}
			return nil
		})})
	reader, _ := newStream(t, redisstream.Options{KeyTemplate: key, Logger: quiet()})

	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 4)
	all[3].Type, all[3].Stage = progress.RunFinished, progress.NoStage
	require.NoError(t, buffered.Publish(ctx, all[:3]...))
	require.NoError(t, buffered.Flush(ctx))

	var seen atomic.Uint64
	done := make(chan error, 1)
	go func() {
		done <- reader.Tail(testenv.Context(t, 30*time.Second), run, 0, func(e progress.Event) error { seen.Store(e.Seq); return nil })
	}()
	require.Eventually(t, func() bool { return seen.Load() == 3 }, 10*time.Second, 10*time.Millisecond)

	cut.down.Store(true) // the outage, at the run's end
	require.NoError(t, buffered.Publish(ctx, all[3]))
	require.Eventually(t, func() bool { return fallback.Load() == 4 }, 10*time.Second, 10*time.Millisecond,
		"the final event goes to the fallback")
	cut.down.Store(false)
	require.NoError(t, buffered.Close(ctx))

	ttl, err := r.Client.PTTL(ctx, writer.Key(run)).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Duration(0), "the stream of a run whose final event was lost has an expiry")
	select {
	case err := <-done:
		require.ErrorIs(t, err, redisstream.ErrStreamGone)
	case <-time.After(15 * time.Second):
		t.Fatal("the reader still waits, 15s after the outage")
	}
	assert.Equal(t, uint64(3), seen.Load(), "the reader's last event")
	n, err := r.Client.Exists(ctx, writer.Key(run)).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the stream expired")
}
