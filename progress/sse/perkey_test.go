package sse_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// byTenant lets a request read a run whose ID starts with its X-Tenant
// header and a dash.
func byTenant(r *http.Request) (string, error) {
	tenant, run := r.Header.Get("X-Tenant"), strings.TrimPrefix(r.URL.Path, "/runs/")
	if tenant == "" || !strings.HasPrefix(run, tenant+"-") {
		return "", fmt.Errorf("%w: run %q is not tenant %q's", sse.ErrForbidden, run, tenant)
	}
	return run, nil
}

func tenantKey(r *http.Request, _ string) string { return r.Header.Get("X-Tenant") }

// tenantGet opens the stream of run for tenant, and returns the response
// and a function that ends the request.
func tenantGet(t *testing.T, f *fixture, tenant, run string) (*http.Response, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url(run), nil)
	require.NoError(t, err)
	req.Header.Set("X-Tenant", tenant)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	end := func() {
		cancel()
		resp.Body.Close()
	}
	t.Cleanup(end)
	return resp, end
}

// The story (a security review's): MaxStreams is one pool for the whole
// process, and a stream of a run without events is held without a time
// limit by default, so one authorized tenant opened streams of run IDs
// of its own that never get an event until the pool was full, and every
// other tenant's request got 503. Now a host names each request's
// principal with StreamKey, and MaxStreamsPerKey bounds the streams of
// one key: a request beyond it gets 429 with Retry-After, and the other
// tenants keep their slots.
func TestHandlerStreamLimitPerKey(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{Authorize: byTenant, StreamKey: tenantKey,
		MaxStreams: 10, MaxStreamsPerKey: 3, Retry: 2 * time.Second})
	f.publish(t, progress.Event{RunID: "b-run", Seq: 1, Type: progress.RunStarted})
	var ends []func()
	for i := range 3 { // runs with no event at all
		resp, end := tenantGet(t, f, "a", fmt.Sprintf("a-nothing-%d", i))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		ends = append(ends, end)
	}
	resp, _ := tenantGet(t, f, "a", "a-nothing-3")
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s", body)
	assert.Equal(t, "2", resp.Header.Get("Retry-After"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "sse: too many streams of this user or tenant at once (limit 3); close one, or retry later\n", string(body))

	resp, _ = tenantGet(t, f, "b", "b-run")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another tenant keeps its slots")
	st := f.handler.Stats()
	assert.Equal(t, 4, st.Active)
	assert.Equal(t, uint64(1), st.RejectedPerKey)
	assert.Zero(t, st.Rejected, "Rejected counts MaxStreams's refusals")

	ends[0]() // a stream of tenant a ends: its slot is a's again
	waitFor(t, "the stream to give back its slot", func() bool { return f.handler.Stats().Active == 3 })
	resp, _ = tenantGet(t, f, "a", "a-nothing-3")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// A key's slots count within MaxStreams: a request that its key lets in
// still gets 503 when the handler is full, and gives its key's slot back.
func TestHandlerStreamLimitPerKeyWithinMaxStreams(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{Authorize: byTenant, StreamKey: tenantKey, MaxStreams: 2, MaxStreamsPerKey: 2})
	resp, _ := tenantGet(t, f, "a", "a-1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, end := tenantGet(t, f, "b", "b-1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = tenantGet(t, f, "a", "a-2")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	end()
	waitFor(t, "the stream to give back its slot", func() bool { return f.handler.Stats().Active == 1 })
	resp, _ = tenantGet(t, f, "a", "a-2")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the 503 gave tenant a's slot back")
	st := f.handler.Stats()
	assert.Equal(t, uint64(1), st.Rejected)
	assert.Zero(t, st.RejectedPerKey)
}

func TestNewHandlerRefusesHalfAPerKeyLimit(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	for _, tt := range []struct {
		name string
		opts sse.HandlerOptions
		want string
	}{
		{"no StreamKey", sse.HandlerOptions{Authorize: byTenant, MaxStreamsPerKey: 5},
			"MaxStreamsPerKey 5 needs a StreamKey"},
		{"no MaxStreamsPerKey", sse.HandlerOptions{Authorize: byTenant, StreamKey: tenantKey},
			"StreamKey is set but MaxStreamsPerKey is 0"},
		{"a negative MaxStreamsPerKey", sse.HandlerOptions{Authorize: byTenant, StreamKey: tenantKey, MaxStreamsPerKey: -1},
			"MaxStreamsPerKey -1 must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sse.NewHandler(mem, tt.opts)
			assert.ErrorIs(t, err, sse.ErrInvalidOptions)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
