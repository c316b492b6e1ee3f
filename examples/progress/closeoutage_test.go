package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
)

// TestCloseDuringARedisOutageEnds: since b8bd886 a Buffered rides a
// Redis outage out until its Close's ctx ends, and the example closed
// its backend with context.Background(), so that a Redis that went down
// at the run's end held the command for good. closeBackend bounds it by
// shutdownGrace.
func TestCloseDuringARedisOutageEnds(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	t.Setenv("REGEN_REDIS_URL", srv.URL)
	logger := slog.New(slog.DiscardHandler)
	be := pickBackend(t.Context(), logger, "closeoutage:", time.Minute)
	require.Contains(t, be.name, "Redis Streams")
	srv.Kill()
	ev := progress.Event{RunID: "r1", Seq: 1, Type: progress.RunFinished, Time: time.Unix(1, 0)}
	require.NoError(t, be.sink.Publish(t.Context(), ev))

	defer func(g time.Duration) { shutdownGrace = g }(shutdownGrace)
	shutdownGrace = 500 * time.Millisecond
	done := make(chan struct{})
	go func() {
		defer close(done)
		closeBackend(be)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("closing the backend during a Redis outage did not end")
	}
}
