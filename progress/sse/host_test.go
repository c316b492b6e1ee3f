package sse_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
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
