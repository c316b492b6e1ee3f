package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The service's doc says its errors are JSON, {"error": ...}, but its
// 405s (the mux's) were plain text, as were the answers of the events
// endpoint's SSE handler to a request without a token (401, without
// WWW-Authenticate), with another token, with a malformed Last-Event-ID,
// or of an unknown run, and an
// unknown path got the mux's plain 404. They are JSON now, a 405 with
// Allow and a 401 with WWW-Authenticate.
func TestErrorsAreJSON(t *testing.T) {
	h := startService(t, 2*time.Millisecond)
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	h.follow(run.RunID, "")
	for _, tc := range []struct {
		name, token, method, path string
		want                      int
		header, value             string
	}{
		{"PUT of runs", token, "PUT", "/lectures/l/runs", http.StatusMethodNotAllowed, "Allow", "GET, HEAD, POST"},
		{"PUT of edits", token, "PUT", "/lectures/l/edits", http.StatusMethodNotAllowed, "Allow", "POST"},
		{"DELETE of a run", token, "DELETE", "/runs/" + run.RunID, http.StatusMethodNotAllowed, "Allow", "GET, HEAD"},
		{"POST of events", token, "POST", "/runs/" + run.RunID + "/events", http.StatusMethodNotAllowed, "Allow", "GET, HEAD"},
		{"an unknown path", token, "GET", "/nope", http.StatusNotFound, "", ""},
		{"events without a token", "", "GET", "/runs/" + run.RunID + "/events", http.StatusUnauthorized, "WWW-Authenticate", "Bearer"},
		{"events with another token", "nope", "GET", "/runs/" + run.RunID + "/events", http.StatusForbidden, "", ""},
		{"events of an unknown run", token, "GET", "/runs/run-unknown/events", http.StatusNotFound, "", ""},
		{"events after a malformed ID", token, "GET", "/runs/" + run.RunID + "/events?lastEventId=x", http.StatusBadRequest, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, h.base+tc.path, strings.NewReader(""))
			require.NoError(t, err)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := h.hc.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.want, resp.StatusCode, "%s", b)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var e map[string]string
			require.NoError(t, json.Unmarshal(b, &e), "%s", b)
			assert.NotEmpty(t, e["error"])
			if tc.header != "" {
				assert.Equal(t, tc.value, resp.Header.Get(tc.header))
			}
		})
	}
	require.NoError(t, h.shutdown())
}
