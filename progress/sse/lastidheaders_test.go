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
// library that adds its own beside the browser's) resumes after the
// smallest: the handler cannot tell which event the client saw last, and
// one ahead of it would skip events, where one behind sends a few again.
// Before e06d90e it resumed after the first without a word, losing the
// events between the two when the first was ahead; its 400 since ended a
// browser's EventSource for good. "05" is 5. A malformed one is a 400.
// An empty element of a comma-joined header ("5,", a proxy's join of a
// header with nothing) is ignored, as HTTP says of an empty list element,
// and is no 0: since 3c0c2c6 it read as 0, the smallest, so the handler
// replayed the whole run to a client that had seen 5 events. A header
// that is empty, or holds empty elements alone, is 0 as an empty header
// always was.
func TestHandlerResumesAfterTheSmallestLastEventID(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	f.publish(t, sinktest.Events("r1", 1, 10)...)
	for _, tc := range []struct {
		name string
		ids  []string
		want string
	}{
		{"disagree, the first ahead", []string{"7", "3"}, "id: 4"},
		{"disagree, the first behind", []string{"3", "7"}, "id: 4"},
		{"agree", []string{"5", "5"}, "id: 6"},
		{"the same number written twice", []string{"05", "5"}, "id: 6"},
		{"joined into one by a proxy", []string{"5, 5"}, "id: 6"},
		{"joined, disagreeing", []string{"7,3", "9"}, "id: 4"},
		{"trailing comma", []string{"5,"}, "id: 6"},
		{"leading comma", []string{",5"}, "id: 6"},
		{"empty between", []string{"7, ,5"}, "id: 6"},
		{"an empty header", []string{""}, "id: 1"},
		{"a comma alone", []string{","}, "id: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openRaw(t, f.url("r1"), http.Header{"Last-Event-ID": tc.ids})
			require.Equal(t, http.StatusOK, s.resp.StatusCode)
			assert.Equal(t, tc.want, s.lines(t, 3)[2])
		})
	}
	t.Run("one malformed", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, f.url("r1"), nil)
		require.NoError(t, err)
		req.Header["Last-Event-ID"] = []string{"7", "x"}
		resp, err := (&http.Client{Timeout: wait}).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, string(body), "malformed last event ID")
	})
}
