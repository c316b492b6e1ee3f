package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

const (
	appOrigin   = "http://localhost:5173"
	otherOrigin = "https://evil.example"
)

// corsOf returns a response's CORS headers, and Vary.
func corsOf(resp *http.Response) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age", "Vary"} {
		if v := resp.Header.Values(k); len(v) > 0 {
			out[k] = strings.Join(v, ", ")
		}
	}
	return out
}

// With -cors-origin, a page of that origin follows a run with
// EventSource(url, {withCredentials: true}): the events route answers
// it with its exact origin, and credentials allowed, and so does POST
// /session, which the page calls first (after a preflight, for its
// Authorization header). Another origin gets no CORS header, and every
// answer varies by Origin.
func TestCORSOrigins(t *testing.T) {
	h := startServiceWith(t, 2*time.Millisecond, func(c *config) {
		c.corsOrigins = []string{"https://app.example.com", appOrigin}
	})
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	browser := h.browser()
	cookie := h.login(browser)
	requireWholeRun(t, run.RunID, h.follow(run.RunID, ""))

	allowed := map[string]string{"Access-Control-Allow-Origin": appOrigin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
	preflight := map[string]string{"Access-Control-Allow-Origin": appOrigin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin",
		"Access-Control-Allow-Methods": "GET, HEAD, POST, DELETE", "Access-Control-Allow-Headers": "Authorization, Content-Type, Last-Event-ID, Cache-Control",
		"Access-Control-Max-Age": "600"}
	refused := map[string]string{"Vary": "Origin"}
	bearer := "Bearer " + token
	for _, tc := range []struct {
		name, method, path string
		header             http.Header
		status             int
		want               map[string]string
	}{
		{"events, with the cookie", "GET", run.Events, http.Header{"Origin": {appOrigin}, "Cookie": {cookie.String()}}, http.StatusOK, allowed},
		{"events, HEAD", "HEAD", run.Events, http.Header{"Origin": {appOrigin}, "Cookie": {cookie.String()}}, http.StatusOK, allowed},
		{"events, without the cookie", "GET", run.Events, http.Header{"Origin": {appOrigin}}, http.StatusUnauthorized, allowed},
		{"events, after the final event", "GET", run.Events, http.Header{"Origin": {appOrigin}, "Cookie": {cookie.String()}, "Last-Event-ID": {"1000"}}, http.StatusNoContent, allowed},
		{"a session", "POST", "/session", http.Header{"Origin": {appOrigin}, "Authorization": {bearer}}, http.StatusOK, allowed},
		{"a session's preflight", "OPTIONS", "/session", http.Header{"Origin": {appOrigin},
			"Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"authorization"}}, http.StatusNoContent, preflight},
		{"a fetch of the events' preflight", "OPTIONS", run.Events, http.Header{"Origin": {appOrigin},
			"Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"last-event-id"}}, http.StatusNoContent, preflight},
		{"a create", "POST", "/lectures/l/runs", http.Header{"Origin": {appOrigin}, "Authorization": {bearer}}, http.StatusBadRequest, allowed},
		{"another origin's events", "GET", run.Events, http.Header{"Origin": {otherOrigin}, "Cookie": {cookie.String()}}, http.StatusOK, refused},
		{"another origin's session", "POST", "/session", http.Header{"Origin": {otherOrigin}, "Authorization": {bearer}}, http.StatusOK, refused},
		{"another origin's preflight", "OPTIONS", "/session", http.Header{"Origin": {otherOrigin},
			"Access-Control-Request-Method": {"POST"}}, http.StatusForbidden, refused},
		{"the origin's name in another case", "GET", run.Events, http.Header{"Origin": {strings.ToUpper(appOrigin)}, "Cookie": {cookie.String()}}, http.StatusOK, refused},
		{"a null origin", "GET", run.Events, http.Header{"Origin": {"null"}, "Cookie": {cookie.String()}}, http.StatusOK, refused},
		{"no origin", "GET", run.Events, http.Header{"Cookie": {cookie.String()}}, http.StatusOK, refused},
		{"an OPTIONS that is no preflight", "OPTIONS", run.Events, http.Header{"Origin": {appOrigin}}, http.StatusMethodNotAllowed, allowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.send(h.hc, tc.method, tc.path, tc.header)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, tc.want, corsOf(resp))
		})
	}
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// Without -cors-origin, no answer has a CORS header, nor varies by
// Origin, and an OPTIONS is answered 405 as before.
func TestNoCORSByDefault(t *testing.T) {
	h := startService(t, 2*time.Millisecond)
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	cookie := h.login(h.browser())
	requireWholeRun(t, run.RunID, h.follow(run.RunID, ""))
	for _, tc := range []struct {
		name, method, path string
		header             http.Header
		status             int
	}{
		{"events", "GET", run.Events, http.Header{"Origin": {appOrigin}, "Cookie": {cookie.String()}}, http.StatusOK},
		{"a session", "POST", "/session", http.Header{"Origin": {appOrigin}, "Authorization": {"Bearer " + token}}, http.StatusOK},
		{"a preflight", "OPTIONS", "/session", http.Header{"Origin": {appOrigin}, "Access-Control-Request-Method": {"POST"}}, http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.send(h.hc, tc.method, tc.path, tc.header)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Empty(t, corsOf(resp))
		})
	}
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

func TestCORSOriginFlag(t *testing.T) {
	getenv := func(string) string { return "" }
	c, err := parse([]string{"-cors-origin", "https://app.example.com", "-cors-origin", "http://localhost:5173",
		"-cors-origin", "http://[::1]:3000", "-cors-origin", "https://app.example.com"}, getenv)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://app.example.com", "http://localhost:5173", "http://[::1]:3000"}, c.corsOrigins, "repeatable, each once")
	c, err = parse(nil, getenv)
	require.NoError(t, err)
	assert.Empty(t, c.corsOrigins, "none by default")

	for _, tc := range []struct{ value, want string }{
		{"*", `want an origin such as https://app.example.com (scheme http or https, a host, a port if not the scheme's default, nothing more); "*" cannot go with the cookie: name each origin`},
		{"null", `want an origin such as https://app.example.com (scheme http or https, a host, a port if not the scheme's default, nothing more)`},
		{"", `want an origin such as https://app.example.com (scheme http or https, a host, a port if not the scheme's default, nothing more)`},
		{"app.example.com", `want an origin such as https://app.example.com (scheme http or https, a host, a port if not the scheme's default, nothing more)`},
		{"ftp://app.example.com", `want an origin such as https://app.example.com (scheme http or https, a host, a port if not the scheme's default, nothing more)`},
		{"https://app.example.com/", `want "https://app.example.com", as a browser sends it`},
		{"https://App.Example.com", `want "https://app.example.com", as a browser sends it`},
		{"HTTPS://app.example.com", `want "https://app.example.com", as a browser sends it`},
		{"https://app.example.com:443", `want "https://app.example.com", as a browser sends it`},
		{"http://localhost:80", `want "http://localhost", as a browser sends it`},
		{"https://app.example.com/page?x=1", `want "https://app.example.com", as a browser sends it`},
		{"https://user@app.example.com", `want "https://app.example.com", as a browser sends it`},
		{"https://app.example.com:99999", `want an origin such as https://app.example.com (scheme http or https, a host, a port if not the scheme's default, nothing more)`},
		{"https://", `want an origin such as https://app.example.com (scheme http or https, a host, a port if not the scheme's default, nothing more)`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			_, err := parse([]string{"-cors-origin", tc.value}, getenv)
			require.Error(t, err)
			assert.Equal(t, `invalid value "`+tc.value+`" for flag -cors-origin: `+tc.want, err.Error())
		})
	}
	code, out, errOut := runCommand(t, nil, "-h")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "  -cors-origin ORIGIN\n    \t", "-h describes -cors-origin")
}
