package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// appendHangingHistory is a hangingHistory whose Appends hang too.
type appendHangingHistory struct{ *hangingHistory }

func (h appendHangingHistory) Append(ctx context.Context, events ...progress.Event) error {
	if h.hang.Load() {
		h.entered.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}
	return h.MemoryHistory.Append(ctx, events...)
}

// Close ends at once the copy into the History that a Publish of an
// interrupted run's final event makes (copyInterrupted), while the
// History does not answer, and returns: a Publish whose context has no
// end (a host that publishes without a Buffered) held it. Before, the
// copy waited with the Publish's context alone, and Close waited for
// its write, until the History answered, though Close's doc bounds its
// wait by a try of a copy only for a History that does not honour its
// context. The Publish returns nil then: its final event was written.
func TestCloseEndsTheCopyOfAnInterruptedRun(t *testing.T) {
	hist := appendHangingHistory{&hangingHistory{MemoryHistory: progress.NewMemoryHistory()}}
	s, _ := newStream(t, redisstream.Options{History: hist})
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the copy that Close did not end
	require.NoError(t, s.Publish(ctx, all...))
	hist.hang.Store(true)
	published := make(chan error, 1)
	go func() { published <- s.Publish(ctx, interruptedEnd(all[2], "resumer")) }()
	require.Eventually(t, func() bool { return hist.entered.Load() > 0 }, 10*time.Second, time.Millisecond,
		"the Publish copies the interrupted run's stream into the History")
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		assert.NoError(t, <-published, "the final event was written")
	case <-time.After(hangBound):
		t.Errorf("Close did not end within %v", hangBound)
		cancel()
		<-closed
	}
}
