package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
)

// TestShutdownWarnsOnlyOfEventsLost: since b8bd886 a Buffered rides a
// short outage out and loses nothing, but the shutdown warned "progress
// events were not all delivered" whenever a Publish had failed, so that
// a blip of Redis looked like lost events in the log. It warns only of
// events that reached no sink; and still does of those.
func TestShutdownWarnsOnlyOfEventsLost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fails int64 // the Publish calls that fail before one succeeds
		warn  bool
	}{
		{"no outage", 0, false},
		{"an outage ridden out", 3, false},
		{"an outage past the shutdown", 1 << 40, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			var calls atomic.Int64
			sink := progress.SinkFunc(func(context.Context, ...progress.Event) error {
				if calls.Add(1) <= tc.fails {
					return errors.New("redis: connection refused")
				}
				return nil
			})
			s := &service{logger: logger, cancelRuns: func(error) {}}
			s.toRedis = progress.NewBuffered(sink, progress.BufferedOptions{Logger: logger, RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond})
			ev := progress.Event{RunID: "r1", Seq: 1, Type: progress.NodeSucceeded, Node: "script", Time: time.Unix(1, 0)}
			require.NoError(t, s.toRedis.Publish(t.Context(), ev))
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			err := s.shutdown(ctx)
			assert.Equal(t, tc.warn, err != nil, "shutdown: %v", err)
			assert.Equal(t, tc.warn, bytes.Contains(logs.Bytes(), []byte("not all delivered")), "logs:\n%s", logs.String())
		})
	}
}
