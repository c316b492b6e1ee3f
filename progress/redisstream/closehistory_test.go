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

			cause := errors.New("the client left")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			done := make(chan error, 1)
			ignore := func(progress.Event) error { return nil }
			go func() {
				if tc.tail {
					done <- s.Tail(ctx, run, 0, ignore)
				} else {
					done <- s.Replay(ctx, run, 0, ignore)
				}
			}()
			require.Eventually(t, func() bool { return hist.entered.Load() > 0 }, 10*time.Second, time.Millisecond,
				"the reader fills the gap from the History")
			want := redisstream.ErrClosed
			if tc.cancel {
				cancel(cause)
				want = cause
			} else {
				go s.Close()
			}
			select {
			case err := <-done:
				assert.ErrorIs(t, err, want)
			case <-time.After(hangBound):
				t.Errorf("the reader did not end within %v", hangBound)
			}
		})
	}
}
