package redisstream_test

import (
	"context"
	"errors"
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

// hangingHistory is a History whose reads, once hang is set, do not
// answer until their context ends (a database behind the same network
// fault as Redis, say); entered counts them.
type hangingHistory struct {
	*progress.MemoryHistory
	hang    atomic.Bool
	entered atomic.Int64
}

func (h *hangingHistory) Replay(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	if h.hang.Load() {
		h.entered.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}
	return h.MemoryHistory.Replay(ctx, runID, after, fn)
}

func (h *hangingHistory) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	if h.hang.Load() {
		h.entered.Add(1)
		<-ctx.Done()
		return progress.Event{}, false, ctx.Err()
	}
	return h.MemoryHistory.LastEvent(ctx, runID)
}

// Close ends at once, with ErrClosed, a Tail that reads the History
// while Redis is down, as the package doc says of every Tail in
// progress, also while the History does not answer either (it honours
// its context, not the Stream's): before, the reader's read of the
// History for the outage waited with the reader's context, and the Tail
// went on until the History answered or the caller gave up.
func TestCloseWhileTheHistoryHangsInAnOutage(t *testing.T) {
	s, hist, run := hangingInAnOutage(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends a Tail that Close did not end
	done := make(chan error, 1)
	go func() { done <- s.Tail(ctx, run, 0, func(progress.Event) error { return nil }) }()
	require.Eventually(t, func() bool { return hist.entered.Load() > 0 }, 10*time.Second, time.Millisecond,
		"the reader reads the History while Redis is down")
	s.Close()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, redisstream.ErrClosed)
	case <-time.After(hangBound):
		t.Errorf("the Tail was not ended by Close within %v", hangBound)
	}
}

// hangingInAnOutage returns a Stream whose Redis is down and whose
// History holds events 1 to 5 of run, and does not answer.
func hangingInAnOutage(t *testing.T) (*redisstream.Stream, *hangingHistory, string) {
	t.Helper()
	server := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(server.URL)
	require.NoError(t, err)
	opts.MaxRetries = -1
	opts.DialTimeout = 500 * time.Millisecond
	client := testenv.NewRedisClient(opts)
	t.Cleanup(func() { client.Close() })
	hist := &hangingHistory{MemoryHistory: progress.NewMemoryHistory()}
	s, err := redisstream.New(client, redisstream.Options{History: hist, BlockTime: 100 * time.Millisecond,
		RetryDelay: 20 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	run := sinktest.RunID(t)
	require.NoError(t, hist.Append(context.Background(), sinktest.Events(run, 1, 5)...))
	server.Kill()
	hist.hang.Store(true)
	return s, hist, run
}

// A Tail whose context ends while it reads the History for a Redis
// outage returns context.Cause, as progress.Source requires: before, it
// returned the History's context.Canceled, wrapped with "redisstream:
// tail", and a caller that cancels with a cause of its own (a handler
// telling a client's departure from its own shutdown) did not find it.
func TestTailReturnsTheCauseWhileTheHistoryHangsInAnOutage(t *testing.T) {
	s, hist, run := hangingInAnOutage(t)
	tl := sinktest.StartTail(t, s, run, 0)
	require.Eventually(t, func() bool { return hist.entered.Load() > 0 }, 10*time.Second, time.Millisecond,
		"the reader reads the History while Redis is down")
	cause := errors.New("the client left")
	assert.ErrorIs(t, tl.Stop(t, cause), cause)
}
