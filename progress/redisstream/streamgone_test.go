package redisstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A reader that follows a run without a History, whose final event never
// reached Redis (an outage at the run's end), ends with ErrStreamGone
// once the run's stream goes from Redis: IdleTTL expires it, or it is
// deleted. Before, it waited for good, for an event that could no longer
// come; and a reader that had replayed the stream itself (it connected
// after the run's last event reached Redis, so that the run's shared
// reader had an empty window) did not even notice that the stream was
// gone.
func TestAFollowerEndsWhenItsStreamIsGone(t *testing.T) {
	tests := []struct {
		name  string
		after uint64 // where the reader starts
		gone  string // "expired" or "deleted"
	}{
		{"from the start, expired", 0, "expired"},
		{"from the start, deleted", 0, "deleted"},
		{"at the run's newest event, expired", 3, "expired"},
		{"at the run's newest event, deleted", 3, "deleted"},
		{"between, deleted", 1, "deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			opts := redisstream.Options{FinishedTTL: time.Hour, IdleTTL: time.Hour}
			if tt.gone == "expired" {
				opts.IdleTTL = time.Second
			}
			s, r := newStream(t, opts)
			run := sinktest.RunID(t)
			require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 3)...)) // seq 4, final, is lost

			var mu sync.Mutex
			var got []uint64
			done := make(chan error, 1)
			go func() {
				done <- s.Tail(testenv.Context(t, 30*time.Second), run, tt.after, func(e progress.Event) error {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, e.Seq)
					return nil
				})
			}()
			if tt.gone == "deleted" {
				require.Eventually(t, func() bool {
					mu.Lock()
					defer mu.Unlock()
					st := s.Stats()
					return st.Readers == 1 && st.Runs == 1 && len(got) == int(3-tt.after)
				}, 10*time.Second, 10*time.Millisecond, "the reader follows the run, with its events")
				require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err())
			}
			select {
			case err := <-done:
				require.ErrorIs(t, err, redisstream.ErrStreamGone)
				assert.ErrorContains(t, err, s.Key(run))
			case <-time.After(10 * time.Second):
				t.Fatal("the reader still waits, 10s after its stream went")
			}
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, sinktest.Span(tt.after+1, 3), got, "the events delivered")
		})
	}
}

// With a History too, a reader that follows a run whose stream expired
// after IdleTTL without the run's final event, which the History lacks
// too (its process was killed, and the run is never resumed), ends with
// ErrStreamGone: the run has had no event for IdleTTL, the silence after
// which IdleTTL takes a run for dead. Before, the run's shared reader
// polled the History for good, and the reader waited with it.
func TestAFollowerWithAHistoryEndsWhenItsIdleStreamExpires(t *testing.T) {
	ctx := context.Background()
	hist := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: hist, FinishedTTL: time.Hour, IdleTTL: time.Second,
		HistoryPoll: 100 * time.Millisecond})
	run := sinktest.RunID(t)
	events := sinktest.Events(run, 1, 3) // then the process is killed
	require.NoError(t, s.Publish(ctx, events...))
	require.NoError(t, hist.Append(ctx, events...))

	var mu sync.Mutex
	var got []uint64
	done := make(chan error, 1)
	go func() {
		done <- s.Tail(testenv.Context(t, 30*time.Second), run, 0, func(e progress.Event) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, e.Seq)
			return nil
		})
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, redisstream.ErrStreamGone)
	case <-time.After(10 * time.Second):
		t.Fatal("the reader still waits, 10s after its stream expired")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []uint64{1, 2, 3}, got, "the events delivered")
}
