package sse_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// The handler's 204 answers a request's Last-Event-ID (past the run's
// end) or the moment (a run without events within EmptyRunTimeout), and
// tells EventSource to stop for good. A 204 is cacheable by default (RFC
// 9110, 15.3.5), so a shared cache in front (Varnish keeps one for two
// minutes by default) could give it to other requests of the URL, such
// as a page reloaded with a new EventSource and no Last-Event-ID, whose
// stream would then never open. Before, the 204 carried no Cache-Control;
// now it says no-store, as the stream does.
func TestHandlerNoContentIsNotStored(t *testing.T) {
	all := sinktest.Events("r1", 1, 3)
	all[2].Type = progress.RunFinished
	tests := []struct {
		name        string
		path        string
		lastEventID string
	}{
		{"past the end", "r1", "3"},
		{"a run without events", "r2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sse.HandlerOptions{CloseOnFinal: true, EmptyRunTimeout: 10 * time.Millisecond})
			f.publish(t, all...)
			header := http.Header{}
			if tt.lastEventID != "" {
				header.Set("Last-Event-ID", tt.lastEventID)
			}
			s := openRaw(t, f.url(tt.path), header)
			require.Equal(t, http.StatusNoContent, s.resp.StatusCode)
			assert.Equal(t, "no-store", s.resp.Header.Get("Cache-Control"))
		})
	}
}

// A stream holds one user's events, and its request is often
// authenticated by a cookie, which a shared cache does not key its
// entries by. Before, the stream said Cache-Control no-cache, which lets
// a cache store the response (and only revalidate it before reuse); now
// it says no-store, as every other answer of the handler does.
func TestHandlerStreamIsNotStored(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	f.publish(t, sinktest.Events("r1", 1, 1)...)
	s := openRaw(t, f.url("r1"), http.Header{"Cookie": {"session=s1"}})
	require.Equal(t, http.StatusOK, s.resp.StatusCode)
	assert.Equal(t, []string{"no-store"}, s.resp.Header.Values("Cache-Control"))
}
