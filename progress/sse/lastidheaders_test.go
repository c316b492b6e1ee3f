package sse_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// A request with Last-Event-ID headers that disagree (a proxy or a client
// library that adds its own beside the browser's) gets 400 naming both:
// the handler cannot tell which event the client saw last. Before, it
// resumed after the first, without a word: a client whose first was
// ahead of what it had seen lost the events between the two. Headers
// that agree are one.
func TestHandlerRefusesLastEventIDsThatDisagree(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	f.publish(t, sinktest.Events("r1", 1, 10)...)
	t.Run("disagree", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, f.url("r1"), nil)
		require.NoError(t, err)
		req.Header["Last-Event-ID"] = []string{"7", "3"}
		resp, err := (&http.Client{Timeout: wait}).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, string(body), `sse: malformed last event ID: 2 Last-Event-ID headers that disagree ("7", "3"); send one`)
	})
	t.Run("agree", func(t *testing.T) {
		s := openRaw(t, f.url("r1"), http.Header{"Last-Event-ID": {"5", "5"}})
		require.Equal(t, http.StatusOK, s.resp.StatusCode)
		assert.Equal(t, "id: 6", s.lines(t, 3)[2])
	})
}
