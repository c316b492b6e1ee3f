package sse_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// A HEAD request is answered as its GET would be, without a body and
// without holding a stream: the stream's headers (200 text/event-stream),
// or the GET's refusal or 204. net/http's ServeMux routes HEAD to a
// "GET /runs/{run}/events" pattern, as the package documents mounting
// the handler, and RFC 9110 requires a server to support HEAD wherever
// it supports GET (monitors and link checkers send it). Before, the
// handler answered 405 with "Allow: GET", which the mux contradicts.
func TestHandlerHead(t *testing.T) {
	all := sinktest.Events("r1", 1, 3)
	all[2].Type = progress.RunFinished
	tests := []struct {
		name        string
		path        string
		lastEventID string
		status      int
		contentType string
	}{
		{"a run with events", "/runs/r1", "", http.StatusOK, "text/event-stream"},
		{"a client mid-run", "/runs/r1", "1", http.StatusOK, "text/event-stream"},
		{"a run not started, without EmptyRunTimeout", "/runs/r2", "", http.StatusOK, "text/event-stream"},
		{"past the end, with CloseOnFinal", "/runs/r1", "3", http.StatusNoContent, ""},
		{"refused by Authorize", "/elsewhere", "", http.StatusForbidden, "text/plain; charset=utf-8"},
		{"a malformed Last-Event-ID", "/runs/r1", "x", http.StatusBadRequest, "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sse.HandlerOptions{CloseOnFinal: true})
			f.publish(t, all...)
			mux := http.NewServeMux()
			mux.Handle("GET /runs/{run}", f.handler)
			mux.Handle("GET /elsewhere", f.handler)
			server := httptest.NewServer(mux)
			defer server.Close()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodHead, server.URL+tt.path, nil)
			require.NoError(t, err)
			if tt.lastEventID != "" {
				req.Header.Set("Last-Event-ID", tt.lastEventID)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, tt.contentType, resp.Header.Get("Content-Type"))
			assert.Empty(t, body)
			if tt.status == http.StatusOK {
				assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
				assert.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
			}
			waitFor(t, "the HEAD request to give back its slot", func() bool { return f.handler.Stats().Active == 0 })
			assert.Zero(t, f.handler.Stats().Events, "no event is written for a HEAD request")
		})
	}
}

// With EmptyRunTimeout, a GET of a run without events gets no header
// until the run's first event: it is answered 204 if none comes in time
// (or if the first event it reads is at or below its last event ID and
// ends the run), 200 once one comes. Its HEAD waits the same and gets the same
// status. Before, a HEAD answered 200 text/event-stream at once, so that
// a page that asked with HEAD whether to reopen its EventSource was told
// yes for a run that its GET answers 204.
func TestHandlerHeadWaitsAsItsGetDoes(t *testing.T) {
	all := sinktest.Events("r1", 1, 3)
	all[2].Type = progress.RunFinished
	tests := []struct {
		name        string
		bound       time.Duration
		lastEventID string
		publish     []progress.Event // once the request waits
		status      int
	}{
		{"no event within EmptyRunTimeout", 20 * time.Millisecond, "", nil, http.StatusNoContent},
		{"no event within EmptyRunTimeout, with a last event ID", 20 * time.Millisecond, "9", nil, http.StatusNoContent},
		{"the run's first event comes", time.Hour, "", all[:1], http.StatusOK},
		{"the run's first event comes, at or below the last event ID, and ends it", time.Hour, "9", all[2:], http.StatusNoContent},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(tt.name+", "+method, func(t *testing.T) {
				f := newFixture(t, sse.HandlerOptions{CloseOnFinal: true, EmptyRunTimeout: tt.bound})
				req, err := http.NewRequestWithContext(t.Context(), method, f.url("r1"), nil)
				require.NoError(t, err)
				if tt.lastEventID != "" {
					req.Header.Set("Last-Event-ID", tt.lastEventID)
				}
				type answer struct {
					resp *http.Response
					err  error
				}
				answered := make(chan answer, 1)
				go func() {
					resp, err := http.DefaultClient.Do(req)
					answered <- answer{resp, err}
				}()
				if tt.publish != nil {
					waitFor(t, "the request to wait for the run", func() bool { return f.handler.Stats().Active == 1 })
					f.publish(t, tt.publish...)
				}
				var a answer
				select {
				case a = <-answered:
				case <-time.After(wait):
					t.Fatal("no answer")
				}
				require.NoError(t, a.err)
				defer a.resp.Body.Close()
				assert.Equal(t, tt.status, a.resp.StatusCode)
				if tt.status == http.StatusOK {
					assert.Equal(t, "text/event-stream", a.resp.Header.Get("Content-Type"))
				} else {
					assert.Equal(t, "no-store", a.resp.Header.Get("Cache-Control"))
				}
				if method == http.MethodHead {
					body, err := io.ReadAll(a.resp.Body)
					require.NoError(t, err)
					assert.Empty(t, body)
					waitFor(t, "the HEAD request to give back its slot", func() bool { return f.handler.Stats().Active == 0 })
					assert.Zero(t, f.handler.Stats().Events, "no event is written for a HEAD request")
				}
			})
		}
	}
}
