package sse_test

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// A server that accepts the request and never answers it (its handler is
// stuck, or a proxy holds it) ends Follow after HeaderTimeout with an
// error wrapping ErrHeaderTimeout, as a proxy's 504 Gateway Timeout
// would end it. Before, the wait for the response's headers had no bound
// but ctx: Follow returned only at the test's deadline.
func TestClientGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	gone := make(chan struct{}) // ends the stuck handler when the test does
	var requests atomic.Int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		<-gone // not a header, not a byte
	}))
	t.Cleanup(server.Close)
	t.Cleanup(func() { close(gone) }) // before Close, which waits for the handler

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{HeaderTimeout: 200 * time.Millisecond, Retry: time.Millisecond})
	err := c.Follow(ctx, func(progress.Event) error {
		t.Error("an event from a server that sent nothing")
		return nil
	})
	require.ErrorIs(t, err, sse.ErrHeaderTimeout)
	assert.NoError(t, ctx.Err(), "Follow returned at the test's deadline")
	assert.ErrorContains(t, err, "200ms")
	assert.Equal(t, int32(1), requests.Load(), "requests made")
	assert.Zero(t, c.Connects(), "streams opened")
}

// HeaderTimeout bounds the wait for a response's headers alone: by
// default 90s, above the EmptyRunTimeout that a Handler holds them back
// for (kept below a proxy's 60s); a set value; none when negative. A
// response that comes in time opens the stream, however long the stream
// then stays open.
func TestClientHeaderTimeout(t *testing.T) {
	const event = "id: 1\ndata: {\"runId\":\"r1\",\"seq\":1,\"type\":\"run.finished\"}\n\n"
	tests := []struct {
		name    string
		opts    sse.ClientOptions
		answer  time.Duration // when the server answers; 0: never
		timeout bool          // else Follow takes the event, or ends at the test's deadline
		want    time.Duration // when Follow returns
	}{
		{"the default, no answer", sse.ClientOptions{}, 0, true, 90 * time.Second},
		{"the default, an answer at 80s", sse.ClientOptions{}, 80 * time.Second, false, 80 * time.Second},
		{"10s, no answer", sse.ClientOptions{HeaderTimeout: 10 * time.Second}, 0, true, 10 * time.Second},
		{"10s, an answer at 9s", sse.ClientOptions{HeaderTimeout: 10 * time.Second}, 9 * time.Second, false, 9 * time.Second},
		{"off, no answer", sse.ClientOptions{HeaderTimeout: -1}, 0, false, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
				defer cancel()
				opts := tt.opts
				opts.IdleTimeout = -1 // the stream's time is not the headers'
				opts.HTTPClient = &http.Client{Transport: slowAnswer{after: tt.answer, body: event}}
				start := time.Now()
				err := sse.NewClient("http://sse.test/runs/r1", opts).Follow(ctx, func(progress.Event) error { return nil })
				switch {
				case tt.timeout:
					require.ErrorIs(t, err, sse.ErrHeaderTimeout)
				case tt.answer > 0:
					require.NoError(t, err)
				default:
					require.ErrorIs(t, err, context.DeadlineExceeded)
				}
				assert.Equal(t, tt.want, time.Since(start), "when Follow returned")
			})
		})
	}
}

// slowAnswer is a server that answers each request with body after after,
// or never if after is 0.
type slowAnswer struct {
	after time.Duration
	body  string
}

func (s slowAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	var answer <-chan time.Time
	if s.after > 0 {
		answer = time.After(s.after)
	}
	select {
	case <-answer:
	case <-req.Context().Done():
		return nil, context.Cause(req.Context())
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       io.NopCloser(strings.NewReader(s.body)),
		Request:    req,
	}, nil
}

// A positive HeaderTimeout below 1ms is a number given without its unit
// (90, meant as 90s): every request would time out at once. Stream
// refuses it before it connects, as it refuses such an IdleTimeout.
func TestClientRefusesAHeaderTimeoutWithoutItsUnit(t *testing.T) {
	for _, d := range []time.Duration{1, 90, time.Millisecond - 1} {
		t.Run(d.String(), func(t *testing.T) {
			checkRefused(t, sse.ClientOptions{Retry: time.Millisecond, HeaderTimeout: d}, fmt.Sprintf("HeaderTimeout %v is below 1ms", d))
		})
	}
}

// A Handler without EmptyRunTimeout holds back no response header: the
// stream of a run without any event opens at once, and waits for the
// run's events as an open stream, its keep-alives going out. So a Client's
// HeaderTimeout, however short, never ends a stream of it. (HeaderTimeout's
// doc said that such a Handler held the headers for as long as the run had
// no event, and told its clients to turn the bound off.)
func TestHandlerWithoutEmptyRunTimeoutSendsItsHeadersAtOnce(t *testing.T) {
	for _, closeOnFinal := range []bool{false, true} {
		t.Run(fmt.Sprintf("CloseOnFinal %v", closeOnFinal), func(t *testing.T) {
			f := newFixture(t, sse.HandlerOptions{KeepAlive: 10 * time.Millisecond, KeepAliveEvent: "heartbeat", CloseOnFinal: closeOnFinal})
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			heard := errors.New("heard a heartbeat")
			c := sse.NewClient(f.url("never-started"), sse.ClientOptions{HeaderTimeout: 200 * time.Millisecond, LastEventID: "5"})
			err := c.Stream(ctx, func(m sse.Message) error {
				if m.Type == "heartbeat" {
					cancel(heard)
				}
				return nil
			})
			require.ErrorIs(t, err, heard, "the stream of a run without events")
			assert.Equal(t, 1, c.Connects(), "streams opened")
		})
	}
}

// A Header that holds Last-Event-ID, in any spelling, is refused: the
// Client sends its own (ClientOptions.LastEventID, then the last event it
// saw), and a second value beside it left the server to pick one, so that
// a stream could resume from the wrong event, or start over. Before, a key
// spelt otherwise than "Last-Event-Id" was sent beside the Client's, and
// one spelt so replaced it, or was sent on a first request that was to
// start from the beginning.
func TestClientRefusesALastEventIDHeader(t *testing.T) {
	for _, key := range []string{"Last-Event-ID", "Last-Event-Id", "last-event-id", "LAST-EVENT-ID"} {
		t.Run(key, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := sse.ClientOptions{Header: http.Header{"Authorization": {"Bearer x"}, key: {"5"}}}
				checkRefused(t, opts, fmt.Sprintf("Header %q is the Last-Event-ID, which the Client sends itself; "+
					"set ClientOptions.LastEventID to resume after an event", key))
			})
		})
	}
}

// The Header's other keys are sent, and the Last-Event-ID is the
// Client's alone.
func TestClientSendsItsHeaderAndOneLastEventID(t *testing.T) {
	got := make(chan http.Header, 1)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(server.Close)
	c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{LastEventID: "7",
		Header: http.Header{"Authorization": {"Bearer x"}, "x-tenant": {"a", "b"}}})
	require.NoError(t, c.Stream(context.Background(), func(sse.Message) error { return nil }))
	h := <-got
	assert.Equal(t, []string{"Bearer x"}, h.Values("Authorization"))
	assert.Equal(t, []string{"a", "b"}, h.Values("X-Tenant"))
	assert.Equal(t, []string{"7"}, h.Values("Last-Event-ID"))
}

// The Client's own headers, Accept and Cache-Control, go out once, with
// the Client's values, however the Header spells their keys, and a
// Header's keys spelt two ways go out as one. Before, the Header's keys
// were copied as they were spelt: a key in lower case ("accept") went out
// beside the Client's Accept, so the server got two Accept headers
// (text/html beside text/event-stream) and could answer with a page.
func TestClientSendsItsOwnHeadersOnce(t *testing.T) {
	got := make(chan http.Header, 1)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(server.Close)
	c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Header: http.Header{
		"accept": {"text/html"}, "CACHE-CONTROL": {"max-age=60"}, "Accept": {"application/json"},
		"x-tenant": {"a"}, "X-Tenant": {"b"},
	}})
	require.NoError(t, c.Stream(context.Background(), func(sse.Message) error { return nil }))
	h := <-got
	assert.Equal(t, []string{"text/event-stream"}, h.Values("Accept"))
	assert.Equal(t, []string{"no-cache"}, h.Values("Cache-Control"))
	assert.Equal(t, []string{"b", "a"}, h.Values("X-Tenant"), "the canonical key's values first, then the others' by key")
}

// A Header that net/http cannot send (a key that is no HTTP token, a
// value with a control character) is refused: Stream returns an error
// wrapping ErrInvalidOptions that names the key, without connecting.
// Before, net/http refused every request the Client made with it, and
// the Client took each refusal for a network error: it reconnected,
// backing off, until ctx ended, and a host saw nothing of why.
func TestClientRefusesAHeaderNetHTTPCannotSend(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"a value with a line break", http.Header{"X-Token": {"a\r\nX-Admin: 1"}},
			`Header "X-Token" has a value with a control character`},
		{"a value with NUL", http.Header{"X-Token": {"ok", "a\x00b"}},
			`Header "X-Token" has a value with a control character`},
		{"a key with a space", http.Header{"X Token": {"a"}}, `Header key "X Token" is not an HTTP token`},
		{"a key with a colon", http.Header{"X-Token:": {"a"}}, `Header key "X-Token:" is not an HTTP token`},
		{"an empty key", http.Header{"": {"a"}}, `Header key "" is not an HTTP token`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkRefused(t, sse.ClientOptions{Header: tt.header}, tt.want)
			})
		})
	}
	// What net/http does with such a Header, each time: the request is
	// not sent.
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(server.Close)
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodGet, server.URL, nil)
		require.NoError(t, err)
		req.Header = tt.header
		_, err = server.Client().Do(req)
		assert.Error(t, err, tt.name)
	}
}

// A Header with a key that belongs to the connection, or to a request's
// body, which net/http manages itself (Connection, Keep-Alive,
// Proxy-Connection, Upgrade, TE, Transfer-Encoding, Content-Length,
// Trailer), or with two User-Agents, is refused: Stream returns an error
// wrapping ErrInvalidOptions that names the key, without connecting.
// Before, net/http dropped such a header without a word (Content-Length,
// Trailer, a second User-Agent; over HTTP/2 every connection header), or
// over HTTP/2 refused every request the Client made (a Connection but
// close or keep-alive, an Upgrade, a Transfer-Encoding), which the Client
// took for a network error and reconnected for, until ctx ended.
func TestClientRefusesAHeaderNetHTTPWouldNotSendAsGiven(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"Connection", http.Header{"Connection": {"Upgrade"}},
			`Header "Connection" is the connection's or a body's, which net/http manages itself, dropping or refusing it`},
		{"Connection keep-alive", http.Header{"connection": {"keep-alive"}}, `Header "connection" is the connection's`},
		{"Keep-Alive", http.Header{"Keep-Alive": {"timeout=60"}}, `Header "Keep-Alive" is the connection's`},
		{"Proxy-Connection", http.Header{"Proxy-Connection": {"keep-alive"}}, `Header "Proxy-Connection" is the connection's`},
		{"Upgrade", http.Header{"Upgrade": {"websocket"}}, `Header "Upgrade" is the connection's`},
		{"TE", http.Header{"TE": {"gzip"}}, `Header "TE" asks for a transfer coding, which net/http cannot read`},
		{"two TEs", http.Header{"TE": {"trailers"}, "te": {"trailers"}}, `Header "TE" asks for a transfer coding`},
		{"Transfer-Encoding", http.Header{"Transfer-Encoding": {"chunked"}}, `Header "Transfer-Encoding" is the connection's`},
		{"Content-Length", http.Header{"Content-Length": {"0"}}, `Header "Content-Length" is the connection's`},
		{"Trailer", http.Header{"trailer": {"X-Sum"}}, `Header "trailer" is the connection's`},
		{"two User-Agents", http.Header{"User-Agent": {"a/1"}, "user-agent": {"b/2"}},
			`Header "User-Agent" has 2 values (over every spelling of its key); net/http sends the first alone: give one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkRefused(t, sse.ClientOptions{Header: tt.header}, tt.want)
			})
		})
	}
	// What net/http does with such a Header over HTTP/2: the request is
	// not sent, or the header does not arrive as given.
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.Header {
			w.Header()["Got-"+k] = v
		}
	}))
	server.EnableHTTP2 = true
	server.StartTLS()
	t.Cleanup(server.Close)
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodGet, server.URL, nil)
		require.NoError(t, err)
		for _, k := range slices.Sorted(maps.Keys(tt.header)) { // as the Client would send it
			req.Header[http.CanonicalHeaderKey(k)] = append(req.Header[http.CanonicalHeaderKey(k)], tt.header[k]...)
		}
		resp, err := server.Client().Do(req)
		if err != nil {
			continue // refused
		}
		resp.Body.Close()
		for k, v := range req.Header {
			assert.NotEqual(t, v, resp.Header.Values("Got-"+k), "%s: %s arrived as given", tt.name, k)
		}
	}
}

// A Header's Accept-Encoding asking for a compressed stream is refused:
// with a request's own Accept-Encoding, net/http leaves the response as
// it came, so that a server (or a proxy) that compresses text/event-stream
// handed the Client a gzip stream, which it read as lines of garbage: no
// event, ever, and reconnections for ever. Without it, net/http asks for
// gzip itself and decodes it. "identity", which asks for no compression,
// is sent.
func TestClientRefusesAnAcceptEncoding(t *testing.T) {
	for _, key := range []string{"Accept-Encoding", "accept-encoding"} {
		t.Run(key, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkRefused(t, sse.ClientOptions{Header: http.Header{key: {"gzip, deflate"}}},
					fmt.Sprintf(`Header %q asks for a compressed stream, which net/http would then leave compressed for the Client to read; `+
						`leave it out (net/http asks for gzip, and decodes it, itself), or give "identity"`, key))
			})
		})
	}
	t.Run("identity", func(t *testing.T) {
		got := make(chan http.Header, 1)
		server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Clone()
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(server.Close)
		c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Header: http.Header{"Accept-Encoding": {"identity"}}})
		require.NoError(t, c.Stream(context.Background(), func(sse.Message) error { return nil }))
		assert.Equal(t, []string{"identity"}, (<-got).Values("Accept-Encoding"))
	})
	// What net/http does with a request's own Accept-Encoding: the body
	// comes compressed.
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		fmt.Fprint(zw, "id: 1\ndata: {}\n\n")
		zw.Close()
	}))
	t.Cleanup(server.Close)
	req, err := http.NewRequest(http.MethodGet, server.URL, nil)
	require.NoError(t, err)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.False(t, resp.Uncompressed)
	assert.NotContains(t, string(body), "id: 1", "the body net/http handed over")
}

// A Header with "TE: trailers", the one TE that HTTP/2 allows, which
// net/http sends as given over HTTP/1.1 and HTTP/2 alike, is sent. Before,
// NewClient refused every TE as a header net/http manages itself.
func TestClientSendsTETrailers(t *testing.T) {
	for _, http2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("HTTP/2 %v", http2), func(t *testing.T) {
			server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Values("Te"); len(got) != 1 || got[0] != "trailers" {
					http.Error(w, fmt.Sprintf("TE %q", got), http.StatusBadRequest)
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "id: 1\ndata: {}\n\n")
			}))
			server.EnableHTTP2 = http2
			server.StartTLS()
			t.Cleanup(server.Close)
			c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Header: http.Header{"te": {"trailers"}}, HTTPClient: server.Client()})
			err := c.Stream(context.Background(), func(sse.Message) error { return errStop })
			require.ErrorIs(t, err, errStop)
		})
	}
}
