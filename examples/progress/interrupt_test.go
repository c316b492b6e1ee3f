package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// TestInterruptedRunEndsItsStream: Ctrl-C during the run cancels it, and
// the command's own client still receives the run's final event, a
// run.cancelled: it once stopped with the signal, before that event, and
// the command said "The SSE client's stream is not right: the last event
// is node.started", as if the stream had lost events.
func TestInterruptedRunEndsItsStream(t *testing.T) {
	t.Setenv("REGEN_REDIS_URL", "redis://127.0.0.1:1/0") // nothing listens on port 1: the in-memory stream
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &output{when: "curl -N", ready: make(chan struct{})}
	ready := out.ready
	var errOut bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-addr", "127.0.0.1:0", "-linger", "1h", "-latency", "1h", "-duration", "60"}, out, &errOut)
	}()
	<-ready
	// Once the run has begun: its first event is out.
	url := regexp.MustCompile(`curl -N (\S+)`).FindStringSubmatch(out.String())[1]
	fctx, stop := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang
	defer stop()
	errBegun := errors.New("begun")
	err := sse.NewClient(url, sse.ClientOptions{}).Events(fctx, func(progress.Event) error { return errBegun })
	require.ErrorIs(t, err, errBegun)
	cancel() // the signal
	select {
	case c := <-code:
		assert.Equal(t, 1, c, "a cancelled run")
	case <-time.After(time.Minute): // a bound against a hang, not a timing assertion
		t.Fatal("the command did not exit")
	}
	assert.Contains(t, out.String(), "cancelled")
	assert.Contains(t, out.String(), "ending with run.cancelled", "stdout:\n%s\nstderr:\n%s", out, errOut.String())
	assert.NotContains(t, out.String(), "not right")
}
