package redisstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Close ends at once, with ErrClosed, a Tail that fills a gap of the
// stream from the History (its start trimmed or expired) while Redis
// answers and the History does not (a database that hangs), as Close's
// doc says of every Tail in progress; and a Replay so too, as it ends
// one that reads the History for a Redis outage. Before, only the reads
// of the History for an outage ended with the Stream (untilClosed): a
// gap's fill waited with the caller's context alone, and the Tail or
// the Replay went on after Close until the History answered or the
// caller gave up. The caller's own cause still ends them.
func TestCloseWhileTheHistoryHangsFillingAGap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tail   bool
		cancel bool // the caller's context ends, with a cause, in place of Close
	}{
		{name: "tail", tail: true},
		{name: "replay"},
		{name: "tail whose context ends", tail: true, cancel: true},
		{name: "replay whose context ends", cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hist := &hangingHistory{MemoryHistory: progress.NewMemoryHistory()}
			s, _ := newStream(t, redisstream.Options{History: hist})
			run := sinktest.RunID(t)
			all := sinktest.Events(run, 1, 5)
			require.NoError(t, hist.Append(context.Background(), all...))
			require.NoError(t, s.Publish(context.Background(), all[3:]...)) // Redis lost 1 to 3
			hist.hang.Store(true)

			ignore := func(progress.Event) error { return nil }
			endWhileTheHistoryHangs(t, s, hist, tc.cancel, "the reader", func(ctx context.Context) error {
				if tc.tail {
					return s.Tail(ctx, run, 0, ignore)
				}
				return s.Replay(ctx, run, 0, ignore)
			})
		})
	}
}

// endWhileTheHistoryHangs starts call, a read of s (who, in messages),
// with a context of its own, waits until it reads hist, which hangs, and
// ends it: by closing s, or, with cancel, by ending its context with a
// cause. call must then return ErrClosed, or the cause, within
// hangBound.
func endWhileTheHistoryHangs(t *testing.T, s *redisstream.Stream, hist *hangingHistory, cancel bool, who string, call func(context.Context) error) {
	t.Helper()
	cause := errors.New("the client left")
	ctx, cancelCtx := context.WithCancelCause(context.Background())
	defer cancelCtx(nil)
	done := make(chan error, 1)
	go func() { done <- call(ctx) }()
	require.Eventually(t, func() bool { return hist.entered.Load() > 0 }, 10*time.Second, time.Millisecond,
		"%s reads the History", who)
	want := redisstream.ErrClosed
	if cancel {
		cancelCtx(cause)
		want = cause
	} else {
		go s.Close()
	}
	select {
	case err := <-done:
		assert.ErrorIs(t, err, want)
	case <-time.After(hangBound):
		t.Errorf("%s did not end within %v", who, hangBound)
	}
}
