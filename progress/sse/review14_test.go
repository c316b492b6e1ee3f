package sse_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/sse"
)

// A refusal whose body stalls (a proxy's 502 that sends its headers and
// part of its body, then nothing) ends Stream once nothing came for
// IdleTimeout, as a silent stream does, rather than wait for ctx.
func TestClientRefusalWithAStalledBody(t *testing.T) {
	for _, code := range []int{http.StatusBadGateway, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			release := make(chan struct{})
			var requests atomic.Int32
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				w.Header().Set("Content-Length", "100")
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(code)
				_, _ = w.Write([]byte("stall"))
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			defer server.Close()
			defer close(release)

			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c := sse.NewClient(server.URL, sse.ClientOptions{IdleTimeout: 50 * time.Millisecond, MaxBackoff: time.Millisecond})
			if code == http.StatusServiceUnavailable {
				// A 503 is waited out: Stream reconnects, so it makes a
				// second connection, which needs the first's body read.
				var err error
				done := make(chan struct{})
				go func() { defer close(done); err = c.Stream(ctx, func(sse.Message) error { return nil }) }()
				waitFor(t, "a second request after the stalled 503", func() bool { return requests.Load() >= 2 })
				cancel()
				<-done
				assert.ErrorIs(t, err, context.Canceled)
				return
			}
			err := c.Stream(ctx, func(sse.Message) error { return nil })
			var se *sse.StatusError
			require.True(t, errors.As(err, &se), "got %v, want the 502's StatusError", err)
			assert.Equal(t, code, se.StatusCode)
			assert.Equal(t, "stall", se.Body)
			require.NoError(t, ctx.Err(), "Stream waited for ctx")
		})
	}
}
