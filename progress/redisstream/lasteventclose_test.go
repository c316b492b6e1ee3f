package redisstream_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Close ends at once, with ErrClosed, a LastEvent that looks the run's
// final event up in the History for a Redis outage while the History
// does not answer either, as it ends a Tail or a Replay that reads the
// History so (see TestCloseWhileTheHistoryHangsInAnOutage): both at the
// outage's first failed read (the lookup after Redis's) and once a read
// has failed (the lookup before Redis). Before, the lookup waited with
// the caller's context alone, and LastEvent went on after Close until
// the History answered or the caller gave up; and a LastEvent whose
// context ended meanwhile returned Redis's error, not the context's
// cause.
func TestLastEventEndsWhileTheHistoryHangsInAnOutage(t *testing.T) {
	for _, tc := range []struct {
		name string
		// failed makes a read of Redis fail first, so that LastEvent asks
		// the History before Redis.
		failed bool
		// cancel ends LastEvent's context, with a cause, in place of
		// Close.
		cancel bool
	}{
		{name: "closed at the outage's first failed read"},
		{name: "closed once a read has failed", failed: true},
		{name: "its context ends at the outage's first failed read", cancel: true},
		{name: "its context ends once a read has failed", failed: true, cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, hist, run := hangingInAnOutage(t)
			if tc.failed {
				hist.hang.Store(false)
				_, _, err := s.LastEvent(context.Background(), run) // Redis fails; the History has no final event
				require.Error(t, err)
				hist.hang.Store(true)
			}
			endWhileTheHistoryHangs(t, s, hist, tc.cancel, "LastEvent", func(ctx context.Context) error {
				_, _, err := s.LastEvent(ctx, run)
				return err
			})
		})
	}
}
