package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// output is stdout for a run in the background: it says when a line
// holding a given text was written.
type output struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	when  string
	ready chan struct{}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.buf.Write(p)
	if o.ready != nil && strings.Contains(o.buf.String(), o.when) {
		close(o.ready)
		o.ready = nil
	}
	return n, err
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// lingering is the command run in the background with args, once it
// serves its run: its stdout and stderr, and its exit status when it
// exits (cancel ctx to stop it).
type lingering struct {
	out    *output
	errOut *bytes.Buffer
	code   chan int
}

// startLingering runs the command with args in the background and
// returns once it says it serves the run; it fails the test if the
// command exits before.
func startLingering(t *testing.T, ctx context.Context, args ...string) lingering {
	t.Helper()
	l := lingering{out: &output{when: "Serving for", ready: make(chan struct{})}, errOut: new(bytes.Buffer), code: make(chan int, 1)}
	ready := l.out.ready
	go func() { l.code <- run(ctx, args, l.out, l.errOut) }()
	select {
	case <-ready:
	case c := <-l.code:
		t.Fatalf("exited %d before lingering; stdout:\n%s\nstderr:\n%s", c, l.out, l.errOut.String())
	}
	return l
}

// TestLateCurlReplaysTheWholeRun: while the command lingers, a client
// that connects from the start receives the whole run, as the command's
// doc says, whatever the run's size. A run of more than 10,000 events
// (6,003 nodes) lost its first events from the in-memory stream, whose
// ring keeps 10,000 a run: the late client started at a later seq, and
// the command's own client, when it fell behind, found a gap and exited 1.
func TestLateCurlReplaysTheWholeRun(t *testing.T) {
	for _, tt := range []struct {
		name, redisURL string
	}{
		{"memory", "redis://127.0.0.1:1/0"}, // nothing listens on port 1
		{"redis", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.redisURL
			if url == "" {
				url = testenv.RedisURL()
				testenv.RequireReachable(t, "Redis", url)
			}
			t.Setenv("REGEN_REDIS_URL", url)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l := startLingering(t, ctx, "-addr", "127.0.0.1:0", "-linger", "1h", "-latency", "0", "-duration", "20000")
			out, errOut, code := l.out, l.errOut, l.code
			assert.Contains(t, out.String(), "succeeded: 6003 nodes generated")
			assert.Contains(t, out.String(), "The SSE client received all", "the command's own client")

			m := regexp.MustCompile(`curl -N (\S+)`).FindStringSubmatch(out.String())
			require.NotNil(t, m, "a curl command in:\n%s", out)
			var got []progress.Event
			errDone := errors.New("final event")
			err := sse.NewClient(m[1], sse.ClientOptions{}).Events(ctx, func(e progress.Event) error {
				got = append(got, e)
				if e.Type.Final() {
					return errDone
				}
				return nil
			})
			require.ErrorIs(t, err, errDone)
			require.NotEmpty(t, got)
			assert.Equal(t, uint64(1), got[0].Seq, "the late client starts at the run's first event")
			assert.NoError(t, checkStream(got), "the late client's stream")

			cancel()
			assert.Equal(t, 0, <-code, "stderr:\n%s", errOut.String())
		})
	}
}

// TestInterruptEndsOpenStreams: Ctrl-C exits at once, even while a client
// waits on a run that does not exist here (a browser tab on a run of an
// earlier invocation, whose EventSource reconnects): the server's
// shutdown waited for that stream, which never ends on its own, for its
// whole grace period (5 s, then the command exited anyway). The grace is
// made an hour here, so that the bug shows as a stream that does not end.
func TestInterruptEndsOpenStreams(t *testing.T) {
	defer func(g time.Duration) { shutdownGrace = g }(shutdownGrace)
	shutdownGrace = time.Hour
	t.Setenv("REGEN_REDIS_URL", "redis://127.0.0.1:1/0") // nothing listens on port 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := startLingering(t, ctx, "-addr", "127.0.0.1:0", "-linger", "1h", "-latency", "0", "-duration", "30")
	out, errOut, code := l.out, l.errOut, l.code
	m := regexp.MustCompile(`curl -N (http://[^/]+)/`).FindStringSubmatch(out.String())
	require.NotNil(t, m, "a curl command in:\n%s", out)

	// A guard against a hang, not a measure: the stream ends at once
	// with the fix, and never without it.
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, m[1]+"/runs/no-such-run/events", nil)
	require.NoError(t, err)
	// The request is in the handler once its connection is accepted and
	// read; a second request on another connection, answered, says the
	// server has read the first.
	conn, err := net.Dial("tcp", strings.TrimPrefix(m[1], "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, req.Write(conn))
	resp, err := http.Get(m[1] + "/nothing")
	require.NoError(t, err)
	resp.Body.Close()

	cancel() // Ctrl-C
	require.NoError(t, conn.SetDeadline(time.Now().Add(time.Minute)))
	_, err = io.Copy(io.Discard, conn)
	require.NoError(t, err, "the waiting stream ends when the command stops")
	assert.Equal(t, 0, <-code, "stderr:\n%s", errOut.String())
}
