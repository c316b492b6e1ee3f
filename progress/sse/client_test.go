package sse_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// serveData answers every request with one message whose data is data.
func serveData(t *testing.T, data string) string {
	t.Helper()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: 7\ndata: %s\n\n", data)
	}))
	t.Cleanup(server.Close)
	return server.URL
}

func TestClientEventsRefusesNonEvents(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantMsg string // part of the error's text
	}{
		{"malformed JSON", "{not json", "invalid character"},
		{"not JSON at all", "hello", "is not a JSON object"},
		{"null", "null", `data "null" is not a JSON object`},
		{"null with spaces", "  null ", "is not a JSON object"},
		{"a number", "42", "is not a JSON object"},
		{"an array", `[{"seq":1}]`, "is not a JSON object"},
		{"a string", `"event"`, "is not a JSON object"},
		{"empty data", "", `data "" is not a JSON object`},
		{"trailing garbage", `{"seq":1} x`, "invalid character"},
		{"wrong field type", `{"seq":"1"}`, "seq"},
		{"bad time", `{"seq":1,"time":"yesterday"}`, `time "yesterday" is not RFC 3339`},
		{"long data is clipped", strings.Repeat("x", 500), `"` + strings.Repeat("x", 64) + `..."`},
		{"an empty object", `{}`, "empty run ID"},
		{"an object of other keys", `{"bogus":1,"seq":3}`, "empty run ID"},
		{"no seq", `{"runId":"r1"}`, "seq is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait) // a regression would reconnect forever
			defer cancel()
			calls := 0
			err := sse.NewClient(serveData(t, tt.data), sse.ClientOptions{Retry: time.Millisecond}).Events(ctx, func(progress.Event) error {
				calls++
				return nil
			})
			require.ErrorIs(t, err, progress.ErrInvalidJSON)
			assert.ErrorContains(t, err, `sse: event id "7": progress: invalid event JSON: `)
			assert.ErrorContains(t, err, tt.wantMsg)
			assert.Zero(t, calls, "fn called for data that is not an event")
		})
	}
}

// An event ID that an HTTP header cannot carry (a control character,
// which the WHATWG format allows in an id field) cannot be sent back as
// Last-Event-ID: net/http refuses the request each time, so the client
// ends with ErrBadLastEventID instead of reconnecting forever in silence.
func TestClientRefusesALastEventIDNoHeaderCarries(t *testing.T) {
	event := `{"runId":"r1","seq":1,"type":"run.started"}`
	tests := []struct {
		name     string
		serverID string // the id field the server sends
		optionID string // ClientOptions.LastEventID
		messages int
		requests int
		want     string
	}{
		{name: "server's ID with a control character", serverID: "a\x01b", messages: 1, requests: 1, want: `"a\x01b"`},
		{name: "server's ID with DEL", serverID: "7\x7f", messages: 1, requests: 1, want: `"7\x7f"`},
		{name: "server's ID with an escape sequence", serverID: "\x1b[2J", messages: 1, requests: 1, want: `"\x1b[2J"`},
		{name: "option's ID", optionID: "5\x00", messages: 0, requests: 0, want: `"5\x00"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int32
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprintf(w, "id: %s\ndata: %s\n\n", tt.serverID, event)
			}))
			defer server.Close()
			ctx, cancel := context.WithTimeout(context.Background(), wait) // a regression would reconnect until then
			defer cancel()
			messages := 0
			err := sse.NewClient(server.URL, sse.ClientOptions{Retry: time.Millisecond, LastEventID: tt.optionID}).Stream(ctx, func(m sse.Message) error {
				messages++
				assert.Equal(t, tt.serverID, m.ID)
				return nil
			})
			require.ErrorIs(t, err, sse.ErrBadLastEventID)
			assert.ErrorContains(t, err, tt.want)
			assert.ErrorContains(t, err, "a Last-Event-ID header cannot carry")
			assert.Equal(t, tt.messages, messages)
			assert.Equal(t, tt.requests, int(requests.Load()))
		})
	}
}

func TestClientEventsDecodes(t *testing.T) {
	want := sinktest.Events("r1", 1, 4)[3]
	data, err := want.MarshalJSON()
	require.NoError(t, err)
	var got []progress.Event
	err = sse.NewClient(serveData(t, " "+string(data)), sse.ClientOptions{}).Events(context.Background(), func(e progress.Event) error {
		got = append(got, e)
		return errStop
	})
	require.ErrorIs(t, err, errStop)
	assert.Empty(t, sinktest.Diff([]progress.Event{want}, got))
}

// Follow returns once fn took the run's final event, without waiting to
// reconnect (the retry here is an hour), and delivers everything before.
func TestClientFollowStopsAtTheFinalEvent(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, Logger: quiet()})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)
	events := sinktest.Events("r1", 1, 5)
	events[4].Type = progress.RunFinished
	require.NoError(t, mem.Publish(context.Background(), events...))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []uint64
	c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Retry: time.Hour})
	err = c.Follow(ctx, func(e progress.Event) error {
		got = append(got, e.Seq)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, sinktest.Span(1, 5), got)
	assert.Equal(t, "5", c.LastEventID(), "fn took the final event")
	// fn's own error still ends it, as with Events.
	err = sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{}).Follow(ctx, func(progress.Event) error { return errStop })
	assert.ErrorIs(t, err, errStop)
}

// A URL that net/http cannot make a request of, such as one without its
// scheme ("localhost:8080/runs/r1", whose scheme is then "localhost") or
// without a host, ends Stream at once with an error wrapping
// ErrInvalidOptions that says what is wrong and what is allowed, as an
// unparsable URL does. Before 19da1c0, net/http refused each
// request, which the Client took for a network error: it reconnected,
// backing off, until ctx ended, and a host never learnt why; and until
// now, neither error wrapped ErrInvalidOptions, with which the Client
// refuses every other option, so a host that branched on it took a URL
// refused for a failure of the server.
func TestClientRefusesAURLNetHTTPCannotAsk(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"localhost:8080/runs/r1", `sse: invalid options: URL "localhost:8080/runs/r1" has the scheme "localhost", which the HTTPClient's Transport does not serve; give an http:// or https:// URL, or a Transport that serves the scheme`},
		{"/runs/r1", `sse: invalid options: URL "/runs/r1" has the scheme "", which the HTTPClient's Transport does not serve; give an http:// or https:// URL, or a Transport that serves the scheme`},
		{"", `sse: invalid options: URL "" has the scheme "", which the HTTPClient's Transport does not serve; give an http:// or https:// URL, or a Transport that serves the scheme`},
		{"ftp://sse.test/runs/r1", `sse: invalid options: URL "ftp://sse.test/runs/r1" has the scheme "ftp", which the HTTPClient's Transport does not serve; give an http:// or https:// URL, or a Transport that serves the scheme`},
		{"http:///runs/r1", `sse: invalid options: URL "http:///runs/r1" has no host; give the server's, as in http://host:port/path`},
		{"http://[::1/runs/r1", `sse: invalid options: URL "http://[::1/runs/r1" does not parse: missing ']' in host; give an absolute URL, as in http://host:port/path`},
		{"http://sse.test/runs/r1\n", `sse: invalid options: URL "http://sse.test/runs/r1\n" does not parse: net/url: invalid control character in URL; give an absolute URL, as in http://host:port/path`},
		{"http://sse.test:port/runs/r1", `sse: invalid options: URL "http://sse.test:port/runs/r1" does not parse: invalid port ":port" after host; give an absolute URL, as in http://host:port/path`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			var requests atomic.Int32
			transport := &http.Transport{}
			t.Cleanup(transport.CloseIdleConnections)
			counting := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				requests.Add(1)
				return transport.RoundTrip(req)
			})
			err := sse.NewClient(tt.url, sse.ClientOptions{Retry: time.Millisecond, HTTPClient: &http.Client{Transport: counting}}).
				Stream(ctx, func(sse.Message) error { return nil })
			assert.NoError(t, ctx.Err(), "Stream returned at the test's deadline")
			assert.ErrorIs(t, err, sse.ErrInvalidOptions)
			assert.EqualError(t, err, tt.want)
			assert.LessOrEqual(t, requests.Load(), int32(1), "requests asked of the Transport")
		})
	}
}

// A refused URL's password stays out of the error, which a host logs:
// the error quotes the URL with the password masked, as url.URL.Redacted
// does, whether the URL parses or not. Before, it quoted the URL as
// given, password and all.
func TestClientRefusesAURLWithoutItsPassword(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"ftp://ann:s3cret@sse.test/runs/r1", `URL "ftp://ann:xxxxx@sse.test/runs/r1" has the scheme "ftp"`},
		{"http://ann:s3cret@/runs/r1", `URL "http://ann:xxxxx@/runs/r1" has no host`},
		{"http://ann:s3cret@[::1/runs/r1", `URL "http://ann:xxxxx@[::1/runs/r1" does not parse: missing ']' in host`},
		{"http://ann:s3:cr@et@sse.test:port/r1?q=a@b", `URL "http://ann:xxxxx@sse.test:port/r1?q=a@b" does not parse: invalid port ":port" after host`},
		{"//ann:s3cret@sse.test/runs/r1", `URL "//ann:xxxxx@sse.test/runs/r1" has the scheme ""`},
		// A password with a '/', '?' or '#' left unencoded (a base64
		// secret, say) ends the authority before its '@': url.Parse
		// takes its start for a port, and quotes it.
		{"http://ann:s3c/ret+x@sse.test/runs/r1", `URL "http://ann:xxxxx@sse.test/runs/r1" does not parse: invalid port ":xxxxx" after host`},
		{"http://ann:s3cret?x@sse.test/runs/r1", `URL "http://ann:xxxxx@sse.test/runs/r1" does not parse: invalid port ":xxxxx" after host`},
		{"http://ann:s3c#ret@sse.test/runs/r1?q=1", `URL "http://ann:xxxxx@sse.test/runs/r1?q=1" does not parse: invalid port ":xxxxx" after host`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := sse.NewClient(tt.url, sse.ClientOptions{Retry: time.Millisecond}).Stream(ctx, func(sse.Message) error { return nil })
			require.ErrorIs(t, err, sse.ErrInvalidOptions)
			assert.ErrorContains(t, err, tt.want)
			assert.NotContains(t, err.Error(), "s3")
		})
	}
}

// unixTransport serves a URL of the scheme "http+unix" as
// github.com/peterbourgon/unixtransport and github.com/tv42/httpunix do,
// registered on an http.Transport with RegisterProtocol: over the Unix
// socket at sock, whatever the URL's host (none, in unixtransport's
// "http+unix:///path/to/socket:/request/path").
func unixTransport(sock string) http.RoundTripper {
	inner := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host = "http", "unix"
		return inner.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// A URL of another scheme than http and https, or without a host, is the
// HTTPClient's Transport's to serve: one that serves it (a protocol
// registered with http.Transport.RegisterProtocol, as unixtransport
// registers "http+unix" on http.DefaultTransport, or a RoundTripper of
// the host's own) gets the requests. Before, NewClient refused every URL
// but http:// and https:// with a host, whatever the Transport.
func TestClientAsksAURLItsTransportServes(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sse.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	var requests atomic.Int32
	server := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 {
			w.WriteHeader(http.StatusNoContent) // after the event: the end
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 1\ndata: hello\n\n")
	})}}
	server.Start()
	t.Cleanup(server.Close)
	registered := &http.Transport{}
	registered.RegisterProtocol("http+unix", unixTransport(sock))
	tests := []struct {
		name      string
		url       string
		transport http.RoundTripper
	}{
		{"registered, without a host", "http+unix://" + sock + ":/runs/r1", registered},
		{"registered, with a host", "http+unix://sse/runs/r1", registered},
		{"the host's RoundTripper", "http+unix://sse/runs/r1", unixTransport(sock)},
		{"the host's RoundTripper, http without a host", "http:///runs/r1", unixTransport(sock)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requests.Store(0)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			var got []string
			c := sse.NewClient(tt.url, sse.ClientOptions{Retry: time.Millisecond, HTTPClient: &http.Client{Transport: tt.transport}})
			err := c.Stream(ctx, func(m sse.Message) error {
				got = append(got, m.Data)
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, []string{"hello"}, got)
			assert.Equal(t, int32(2), requests.Load(), "requests")
		})
	}
}
