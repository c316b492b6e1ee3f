package sse_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/sse"
)

// A Header's Host, in any spelling, is the host every request asks for,
// as it is for curl -H: a host reaches a virtual host behind an address
// that serves several, the reconnection as the first request. Before,
// the Client copied it into the request's Header, where net/http ignores
// it (it sends Request.Host, else the URL's host): the server got the
// URL's host, and the host no error.
func TestClientSendsTheHeadersHost(t *testing.T) {
	for _, key := range []string{"Host", "host", "HOST"} {
		t.Run(key, func(t *testing.T) {
			var mu sync.Mutex
			var hosts []string
			var inHeader []string
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				hosts = append(hosts, r.Host)
				inHeader = append(inHeader, r.Header.Values("Host")...)
				n := len(hosts)
				mu.Unlock()
				if n > 1 {
					w.WriteHeader(http.StatusNoContent) // the stream is over
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "id: 1\ndata: x\n\n") // then the connection ends: a reconnection
			}))
			t.Cleanup(server.Close)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Retry: time.Millisecond,
				Header: http.Header{key: {"runs.example:8080"}, "Authorization": {"Bearer x"}}})
			require.NoError(t, c.Stream(ctx, func(sse.Message) error { return nil }))
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, []string{"runs.example:8080", "runs.example:8080"}, hosts, "the Host of each request")
			assert.Empty(t, inHeader, "a Host beside the request's")
		})
	}
}

// A Header's Host that net/http would not send as it is given is refused:
// Stream returns an error wrapping ErrInvalidOptions that names the key
// and says what is allowed, without connecting. A request has one host,
// so a Host with two values (in one key, or in two spellings of it) is
// refused, as an empty one (which would send the URL's host) and one with
// a byte net/http does not send in a Host (which it replaces with an
// empty Host, without an error).
func TestClientRefusesAHostNetHTTPWouldNotSend(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"two values", http.Header{"Host": {"a.example", "b.example"}},
			`Header "Host" has 2 values (over every spelling of its key); a request has one host: give one, or leave Host out to send the URL's`},
		{"two spellings", http.Header{"host": {"a.example"}, "Host": {"b.example"}},
			`Header "Host" has 2 values (over every spelling of its key); a request has one host: give one, or leave Host out to send the URL's`},
		{"an empty value", http.Header{"host": {""}},
			`Header "host" is empty; give the host to ask for, or leave Host out to send the URL's`},
		{"a path", http.Header{"Host": {"runs.example/r1"}},
			`Header "Host" value "runs.example/r1" is not a host net/http sends; a host is letters, digits and any of`},
		{"a space", http.Header{"Host": {"runs example"}},
			`Header "Host" value "runs example" is not a host net/http sends`},
		{"not ASCII", http.Header{"Host": {"läufe.example"}},
			`Header "Host" value "läufe.example" is not a host net/http sends; a host is letters, digits and any of !$%&'()*+,-.:;=[]_~ (an international name in its ASCII form, xn--)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkRefused(t, sse.ClientOptions{Header: tt.header}, tt.want)
			})
		})
	}
}

// A Header's Host goes with each redirect to the origin (scheme, host and
// port) of the Client's URL, relative or absolute, and with none to
// another origin, where it would name a host that server does not serve:
// a request there asks for the URL's own host. Before, net/http kept the
// Host over a relative redirect alone, so that an absolute redirect to the
// same origin (as a server behind a proxy writes its Location) asked the
// server for its address's host, not the virtual host.
func TestClientKeepsTheHostOverARedirectToItsOrigin(t *testing.T) {
	const host = "runs.example:8080"
	var mu sync.Mutex
	var got []string // path and Host of each request, in order
	var origin, other *httptest.Server
	record := func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.URL.Path+" "+r.Host)
	}
	locations := map[string]func() string{} // where a path redirects to
	serve := func(w http.ResponseWriter, r *http.Request) {
		record(r)
		if to, ok := locations[r.URL.Path]; ok {
			http.Redirect(w, r, to(), http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusNoContent) // the stream is over
	}
	origin = httptest.NewServer(http.HandlerFunc(serve))
	t.Cleanup(origin.Close)
	other = httptest.NewServer(http.HandlerFunc(serve))
	t.Cleanup(other.Close)
	originHost, otherHost := origin.Listener.Addr().String(), other.Listener.Addr().String()
	tests := []struct {
		name      string
		locations map[string]func() string
		want      []string
	}{
		{"relative",
			map[string]func() string{"/runs/r1": func() string { return "/streams/r1" }},
			[]string{"/runs/r1 " + host, "/streams/r1 " + host}},
		{"absolute, the same origin",
			map[string]func() string{"/runs/r1": func() string { return origin.URL + "/streams/r1" }},
			[]string{"/runs/r1 " + host, "/streams/r1 " + host}},
		{"absolute, the same origin spelt otherwise",
			map[string]func() string{"/runs/r1": func() string { return "HTTP://" + originHost + "/streams/r1" }},
			[]string{"/runs/r1 " + host, "/streams/r1 " + host}},
		{"another origin",
			map[string]func() string{"/runs/r1": func() string { return other.URL + "/streams/r1" }},
			[]string{"/runs/r1 " + host, "/streams/r1 " + otherHost}},
		{"another origin, then relative there",
			map[string]func() string{
				"/runs/r1":    func() string { return other.URL + "/streams/r1" },
				"/streams/r1": func() string { return "/streams/r1/" },
			},
			[]string{"/runs/r1 " + host, "/streams/r1 " + otherHost, "/streams/r1/ " + otherHost}},
		{"another origin, then back",
			map[string]func() string{
				"/runs/r1":    func() string { return other.URL + "/streams/r1" },
				"/streams/r1": func() string { return origin.URL + "/streams/r1/" },
			},
			[]string{"/runs/r1 " + host, "/streams/r1 " + otherHost, "/streams/r1/ " + host}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got, locations = nil, tt.locations
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c := sse.NewClient(origin.URL+"/runs/r1", sse.ClientOptions{Header: http.Header{"Host": {host}}})
			require.NoError(t, c.Stream(ctx, func(sse.Message) error { return nil }))
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tt.want, got, "the path and Host of each request")
		})
	}
}

// The HTTPClient's own CheckRedirect is still called on each redirect,
// and sees the request as it goes out, with its Host; the HTTPClient is
// left as it was given.
func TestClientKeepsTheHTTPClientsCheckRedirect(t *testing.T) {
	const host = "runs.example"
	var server *httptest.Server
	server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/runs/r1" {
			http.Redirect(w, r, server.URL+"/streams/r1", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(server.Close)
	var seen []string
	check := func(req *http.Request, via []*http.Request) error {
		seen = append(seen, req.URL.Path+" "+req.Host)
		return nil
	}
	hc := &http.Client{CheckRedirect: check}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{HTTPClient: hc, Header: http.Header{"Host": {host}}})
	require.NoError(t, c.Stream(ctx, func(sse.Message) error { return nil }))
	assert.Equal(t, []string{"/streams/r1 " + host}, seen, "the redirects the HTTPClient's CheckRedirect saw")
	assert.Equal(t, reflect.ValueOf(check).Pointer(), reflect.ValueOf(hc.CheckRedirect).Pointer(), "the HTTPClient's CheckRedirect")
}

// A redirect that the HTTPClient's CheckRedirect refuses (the host's
// own, or net/http's default after 10 redirects) ends Stream with its
// error, as a refusal by the server ends it: the same request would be
// refused again. Before, the Client took the refusal for a network error
// and reconnected, backing off, until ctx ended, and the host never
// learnt why its stream did not open. A CheckRedirect's
// http.ErrUseLastResponse still gives the redirect's response, which is
// no stream: a *StatusError.
func TestClientEndsOnARedirectRefused(t *testing.T) {
	refused := errors.New("no redirect to another path")
	tests := []struct {
		name     string
		check    func(*http.Request, []*http.Request) error
		want     error  // errors.Is
		contains string // in the error
		requests int32
	}{
		{"refused by the host's CheckRedirect", func(*http.Request, []*http.Request) error { return refused },
			refused, "no redirect to another path", 1},
		{"net/http's limit", nil, nil, "stopped after 10 redirects", 10},
		{"the host's CheckRedirect takes the redirect", func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			nil, "sse: server answered 307", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int32
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := requests.Add(1)
				http.Redirect(w, r, fmt.Sprintf("/runs/r1/%d", n), http.StatusTemporaryRedirect) // for ever
			}))
			t.Cleanup(server.Close)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Retry: time.Millisecond,
				HTTPClient: &http.Client{CheckRedirect: tt.check}})
			err := c.Stream(ctx, func(sse.Message) error { return nil })
			require.Error(t, err)
			assert.NoError(t, ctx.Err(), "Stream returned at the test's deadline")
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
			}
			assert.ErrorContains(t, err, tt.contains)
			assert.Equal(t, tt.requests, requests.Load(), "requests made")
		})
	}
}

// A redirect to a URL that net/http refuses to ask (another scheme than
// http and https, no host) or to a Location it cannot parse ends Stream
// with an error that names it, as a refusal by the server ends it: the
// server would redirect there again. Before, the Client took net/http's
// refusal for a network error and reconnected, backing off, until ctx
// ended, and the host never learnt why its stream did not open.
func TestClientEndsOnARedirectNetHTTPCannotFollow(t *testing.T) {
	tests := []struct {
		location string
		want     string
	}{
		{"ftp://sse.test/runs/r1", `Get "ftp://sse.test/runs/r1": unsupported protocol scheme "ftp"`},
		{"sse.test:8080/runs/r1", `Get "sse.test:8080/runs/r1": unsupported protocol scheme "sse.test"`},
		{"http:///runs/r1", `Get "http:///runs/r1": http: no Host in request URL`},
		{"http://[::1/runs/r1", `failed to parse Location header "http://[::1/runs/r1"`},
	}
	for _, tt := range tests {
		t.Run(tt.location, func(t *testing.T) {
			var requests atomic.Int32
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				w.Header().Set("Location", tt.location)
				w.WriteHeader(http.StatusTemporaryRedirect)
			}))
			t.Cleanup(server.Close)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Retry: time.Millisecond}).Stream(ctx, func(sse.Message) error { return nil })
			require.Error(t, err)
			assert.NoError(t, ctx.Err(), "Stream returned at the test's deadline")
			assert.ErrorContains(t, err, "sse: the server redirected to a URL that net/http cannot follow")
			assert.ErrorContains(t, err, tt.want)
			assert.Equal(t, int32(1), requests.Load(), "requests made")
		})
	}
}
