package sse_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/sse"
)

// redirectRig is two servers on 127.0.0.1, on two ports: two origins, on
// one host name. Each records the headers of each request it gets, and
// redirects a path found in locations, or else answers 204 (the stream is
// over).
type redirectRig struct {
	origin, other *httptest.Server

	mu        sync.Mutex
	got       []redirected
	locations map[string]func() string // where a path redirects to
}

// redirected is a request as a server of a redirectRig got it.
type redirected struct {
	server string // "origin" or "other"
	path   string
	header http.Header
	user   string // the basic credentials' user and password, "" for none
}

func newRedirectRig(t *testing.T) *redirectRig {
	rig := &redirectRig{}
	serve := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			rig.mu.Lock()
			s := redirected{server: name, path: r.URL.Path, header: r.Header.Clone()}
			if u, p, ok := r.BasicAuth(); ok {
				s.user = u + ":" + p
			}
			rig.got = append(rig.got, s)
			to, ok := rig.locations[name+" "+r.URL.Path]
			rig.mu.Unlock()
			if ok {
				http.Redirect(w, r, to(), http.StatusTemporaryRedirect)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}
	rig.origin = httptest.NewServer(serve("origin"))
	t.Cleanup(rig.origin.Close)
	rig.other = httptest.NewServer(serve("other"))
	t.Cleanup(rig.other.Close)
	return rig
}

// follow streams url with opts through the redirects of locations (keyed
// by "origin /path" or "other /path") and returns the requests made.
func (rig *redirectRig) follow(t *testing.T, url string, opts sse.ClientOptions, locations map[string]func() string) []redirected {
	t.Helper()
	rig.mu.Lock()
	rig.got, rig.locations = nil, locations
	rig.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, sse.NewClient(url, opts).Stream(ctx, func(sse.Message) error { return nil }))
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return rig.got
}

// A Header's credentials (an X-Api-Key, an Authorization, a Cookie: any
// key the host sets) go to the Client's URL's origin alone: a redirect to
// another origin (another scheme, host or port), and every request after
// it in the chain, goes without them, while a redirect within the origin
// keeps them. Before, net/http sent every custom header (X-Api-Key) to
// wherever the server redirected, and kept Authorization and Cookie on a
// redirect to another port or scheme of the same host name, or to a
// subdomain: a server (or anyone who could set its Location) got the
// host's credentials for another origin. The Client's own headers
// (Accept, Cache-Control, Last-Event-ID) go everywhere, as the stream
// needs them.
func TestClientKeepsTheHeaderToItsOrigin(t *testing.T) {
	rig := newRedirectRig(t)
	header := http.Header{"X-Api-Key": {"k1"}, "authorization": {"Bearer t1"}, "Cookie": {"session=s1"}, "User-Agent": {"host/1"}}
	hostKeys := []string{"X-Api-Key", "Authorization", "Cookie"}
	tests := []struct {
		name      string
		locations map[string]func() string
		keeps     []bool // whether each request has the host's keys
	}{
		{"relative, the same origin",
			map[string]func() string{"origin /runs/r1": func() string { return "/streams/r1" }},
			[]bool{true, true}},
		{"absolute, the same origin",
			map[string]func() string{"origin /runs/r1": func() string { return rig.origin.URL + "/streams/r1" }},
			[]bool{true, true}},
		{"another port of the same host",
			map[string]func() string{"origin /runs/r1": func() string { return rig.other.URL + "/streams/r1" }},
			[]bool{true, false}},
		{"another host name",
			map[string]func() string{"origin /runs/r1": func() string {
				return "http://localhost:" + rig.other.URL[strings.LastIndexByte(rig.other.URL, ':')+1:] + "/streams/r1"
			}},
			[]bool{true, false}},
		{"another origin, then relative there",
			map[string]func() string{
				"origin /runs/r1":   func() string { return rig.other.URL + "/streams/r1" },
				"other /streams/r1": func() string { return "/streams/r1/" },
			},
			[]bool{true, false, false}},
		{"another origin, then back",
			map[string]func() string{
				"origin /runs/r1":   func() string { return rig.other.URL + "/streams/r1" },
				"other /streams/r1": func() string { return rig.origin.URL + "/streams/r1/" },
			},
			[]bool{true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rig.follow(t, rig.origin.URL+"/runs/r1", sse.ClientOptions{Header: header, LastEventID: "7"}, tt.locations)
			require.Len(t, got, len(tt.keeps), "requests")
			for i, r := range got {
				for _, k := range hostKeys {
					if tt.keeps[i] {
						assert.NotEmpty(t, r.header.Values(k), "request %d (%s %s): %s", i, r.server, r.path, k)
					} else {
						assert.Empty(t, r.header.Values(k), "request %d (%s %s): %s", i, r.server, r.path, k)
					}
				}
				if !tt.keeps[i] {
					assert.NotEqual(t, "host/1", r.header.Get("User-Agent"), "request %d (%s %s): the Header's User-Agent", i, r.server, r.path)
				}
				assert.Equal(t, "text/event-stream", r.header.Get("Accept"), "request %d (%s %s)", i, r.server, r.path)
				assert.Equal(t, "no-cache", r.header.Get("Cache-Control"), "request %d (%s %s)", i, r.server, r.path)
				assert.Equal(t, "7", r.header.Get("Last-Event-ID"), "request %d (%s %s)", i, r.server, r.path)
			}
		})
	}
}

// The basic credentials of a URL with userinfo (http://user:pass@host/)
// go with each redirect within the URL's origin, relative or absolute,
// as they go with the first request, and never to another origin, nor
// back from it. Before, net/http kept them over a relative redirect
// alone: an absolute one to the same origin (as a server behind a proxy
// writes its Location) went without them, and the server refused it.
func TestClientKeepsTheURLsUserToItsOrigin(t *testing.T) {
	rig := newRedirectRig(t)
	const user = "ann:s3cret"
	tests := []struct {
		name      string
		locations map[string]func() string
		want      []string // the user of each request
	}{
		{"none",
			nil,
			[]string{user}},
		{"relative, the same origin",
			map[string]func() string{"origin /runs/r1": func() string { return "/streams/r1" }},
			[]string{user, user}},
		{"absolute, the same origin",
			map[string]func() string{"origin /runs/r1": func() string { return rig.origin.URL + "/streams/r1" }},
			[]string{user, user}},
		{"absolute, the same origin, twice",
			map[string]func() string{
				"origin /runs/r1":    func() string { return rig.origin.URL + "/streams/r1" },
				"origin /streams/r1": func() string { return "/streams/r1/" },
			},
			[]string{user, user, user}},
		{"another origin",
			map[string]func() string{"origin /runs/r1": func() string { return rig.other.URL + "/streams/r1" }},
			[]string{user, ""}},
		{"another origin, then back",
			map[string]func() string{
				"origin /runs/r1":   func() string { return rig.other.URL + "/streams/r1" },
				"other /streams/r1": func() string { return rig.origin.URL + "/streams/r1/" },
			},
			[]string{user, "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := "http://" + user + "@" + strings.TrimPrefix(rig.origin.URL, "http://") + "/runs/r1"
			got := rig.follow(t, url, sse.ClientOptions{}, tt.locations)
			users := make([]string, len(got))
			for i, r := range got {
				users[i] = r.user
			}
			assert.Equal(t, tt.want, users, "the basic credentials of each request")
		})
	}
}

// A redirect to another origin goes without a Referer: the URL that
// redirected (its path and query: a token that Authorize checks, as the
// package doc suggests for a page, or a run ID) is the Client's origin's
// business alone, as a browser's default policy sends another origin no
// more than the origin. Within the origin, net/http's Referer stays.
// Before, net/http sent the whole URL that redirected (without its
// userinfo) as the Referer to whatever origin the server named.
func TestClientSendsNoRefererToAnotherOrigin(t *testing.T) {
	rig := newRedirectRig(t)
	tests := []struct {
		name      string
		locations map[string]func() string
		want      []string // the Referer of each request
	}{
		{"the same origin",
			map[string]func() string{"origin /runs/r1": func() string { return rig.origin.URL + "/streams/r1" }},
			[]string{"", rig.origin.URL + "/runs/r1?token=s3cret"}},
		{"another origin",
			map[string]func() string{"origin /runs/r1": func() string { return rig.other.URL + "/streams/r1?t=2" }},
			[]string{"", ""}},
		{"another origin, then relative there",
			map[string]func() string{
				"origin /runs/r1":   func() string { return rig.other.URL + "/streams/r1?t=2" },
				"other /streams/r1": func() string { return "/streams/r1/" },
			},
			[]string{"", "", rig.other.URL + "/streams/r1?t=2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rig.follow(t, rig.origin.URL+"/runs/r1?token=s3cret", sse.ClientOptions{}, tt.locations)
			referers := make([]string, len(got))
			for i, r := range got {
				referers[i] = r.header.Get("Referer")
			}
			assert.Equal(t, tt.want, referers, "the Referer of each request")
		})
	}
}
