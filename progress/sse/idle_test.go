package sse_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// A stream that goes silent without ending (the server's host gone, a
// NAT that forgot the connection: no FIN and no RST reach the client) is
// dropped after IdleTimeout, and the client reconnects with the last
// event ID it took, and gets the rest of the run, each event once. The
// server here sends three events, then holds the connection without a
// byte more and without watching it, as a host that is gone. Before, the
// client's read waited until TCP gave up, and Follow never reconnected:
// it returned only at the test's deadline, with the first three events.
func TestClientReconnectsAfterASilentStream(t *testing.T) {
	events := sinktest.Events("r1", 1, 5)
	events[4].Type = progress.RunFinished
	gone := make(chan struct{}) // ends the silent handler when the test does
	var mu sync.Mutex
	var lastIDs []string
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last := r.Header.Get("Last-Event-ID")
		mu.Lock()
		lastIDs = append(lastIDs, last)
		first := len(lastIDs) == 1
		mu.Unlock()
		from := 0
		if last != "" {
			n, err := strconv.Atoi(last)
			if !assert.NoError(t, err) {
				return
			}
			from = n
		}
		to := len(events)
		if first {
			to = 3
		}
		writeStream(t, w, events[from:to])
		if first {
			<-gone
			return
		}
		<-r.Context().Done()
	}))
	t.Cleanup(server.Close)
	t.Cleanup(func() { close(gone) }) // before Close, which waits for the handler

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{IdleTimeout: 200 * time.Millisecond, Retry: time.Millisecond})
	var got []uint64
	err := c.Follow(ctx, func(e progress.Event) error {
		got = append(got, e.Seq)
		return nil
	})
	require.NoError(t, err, "Follow did not reconnect after the stream went silent; it got %v", got)
	assert.Equal(t, sinktest.Span(1, 5), got)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"", "3"}, lastIDs, "the Last-Event-ID of each request")
	assert.Equal(t, 2, c.Connects())
}

// IdleTimeout counts the time the client waits for a byte of an open
// stream: any byte, a keep-alive comment too, starts it again, and the
// time the callback takes does not count. The default fits the handler's
// default keep-alive of 15s, and a negative value turns it off.
func TestClientIdleTimeout(t *testing.T) {
	const event = "id: 1\ndata: {}\n\n"
	tests := []struct {
		name      string
		opts      sse.ClientOptions
		reply     reply
		slow      time.Duration // how long the callback takes for each message
		reconnect bool          // else the connection stays open until the test's deadline
		want      time.Duration // how long the first connection is open
	}{
		{"the default, silent after an event", sse.ClientOptions{}, reply{body: event, open: true}, 0, true, 45 * time.Second},
		{"10s, silent after an event", sse.ClientOptions{IdleTimeout: 10 * time.Second}, reply{body: event, open: true}, 0, true, 10 * time.Second},
		{"10s, silent from the start", sse.ClientOptions{IdleTimeout: 10 * time.Second}, reply{open: true}, 0, true, 10 * time.Second},
		{"the default, with the handler's default keep-alive", sse.ClientOptions{}, reply{body: event, open: true, keepAlive: 15 * time.Second}, 0, false, time.Hour},
		{"10s, with keep-alives every 15s", sse.ClientOptions{IdleTimeout: 10 * time.Second}, reply{body: event, open: true, keepAlive: 15 * time.Second}, 0, true, 10 * time.Second},
		{"off, silent after an event", sse.ClientOptions{IdleTimeout: -1}, reply{body: event, open: true}, 0, false, time.Hour},
		{"a slow callback", sse.ClientOptions{}, reply{body: event + event + event, open: true}, 2 * time.Minute, true, 6*time.Minute + 45*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				stopped, stop := context.WithCancelCause(context.Background())
				defer stop(nil)
				ctx, cancel := context.WithTimeout(stopped, time.Hour)
				defer cancel()
				s := &fakeServer{replies: []reply{tt.reply}, stop: 2, cancel: stop} // the reconnection ends the test
				opts := tt.opts
				opts.HTTPClient = &http.Client{Transport: s}
				messages := 0
				err := sse.NewClient("http://sse.test/runs/r1", opts).Stream(ctx, func(sse.Message) error {
					messages++
					time.Sleep(tt.slow)
					return nil
				})
				if tt.reconnect {
					require.ErrorIs(t, err, errEnough, "the client did not reconnect")
				} else {
					require.ErrorIs(t, err, context.DeadlineExceeded, "the client reconnected")
				}
				assert.Equal(t, strings.Count(tt.reply.body, "data:"), messages)
				s.mu.Lock()
				defer s.mu.Unlock()
				require.NotEmpty(t, s.ends)
				assert.Equal(t, tt.want, s.ends[0].Sub(s.starts[0]), "how long the first connection was open")
			})
		})
	}
}

// A positive IdleTimeout below 1ms is a number given without its unit
// (45, meant as 45s): the client would drop every stream at once. Stream
// refuses it before it connects.
func TestClientRefusesAnIdleTimeoutWithoutItsUnit(t *testing.T) {
	for _, d := range []time.Duration{1, 45, time.Millisecond - 1} {
		t.Run(d.String(), func(t *testing.T) {
			checkRefused(t, sse.ClientOptions{Retry: time.Millisecond, IdleTimeout: d}, fmt.Sprintf("IdleTimeout %v is below 1ms", d))
		})
	}
}

// Retry and MaxBackoff written without their unit (Retry: 3, MaxBackoff:
// 30, meant as seconds) are refused as IdleTimeout is. Before, Retry 3ns
// was raised to MinRetry, so the client waited 100 ms where 3 s was meant,
// and MaxBackoff 30ns capped the backoff at MinRetry: a client retried a
// server that was down 10 times a second for as long as it stayed down.
func TestClientRefusesDurationsWithoutTheirUnit(t *testing.T) {
	tests := []struct {
		opts sse.ClientOptions
		want string
	}{
		{sse.ClientOptions{Retry: 3}, "Retry 3ns is below 1ms"},
		{sse.ClientOptions{Retry: time.Millisecond - 1}, "Retry 999.999µs is below 1ms"},
		{sse.ClientOptions{MaxBackoff: 30}, "MaxBackoff 30ns is below 1ms"},
		{sse.ClientOptions{MaxBackoff: time.Millisecond - 1}, "MaxBackoff 999.999µs is below 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			checkRefused(t, tt.opts, tt.want)
		})
	}
}

// checkRefused checks that a Client with opts refuses to stream, with an
// error wrapping ErrInvalidOptions that holds want, without connecting.
func checkRefused(t *testing.T, opts sse.ClientOptions, want string) {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s := &fakeServer{replies: []reply{{body: "id: 1\ndata: {}\n\n"}}, stop: 2, cancel: cancel}
	opts.HTTPClient = &http.Client{Transport: s}
	c := sse.NewClient("http://sse.test/runs/r1", opts)
	err := c.Stream(ctx, func(sse.Message) error { return nil })
	require.ErrorIs(t, err, sse.ErrInvalidOptions)
	assert.ErrorContains(t, err, want)
	assert.Zero(t, s.connections(), "the client connected")
}

// cutConn is a client's connection that a network cut can silence: from
// then on, what the client writes is lost and nothing more reaches it,
// without a FIN or a RST, until the client closes it.
type cutConn struct {
	net.Conn
	cut    *atomic.Bool
	closed chan struct{}
	once   sync.Once
}

func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.cut.Load() && err == nil {
		<-c.closed // what came is lost, and nothing more comes
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.cut.Load() {
		return len(p), nil // lost
	}
	return c.Conn.Write(p)
}

func (c *cutConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// After a network cut, the stream's connection is dead though neither
// end closed it, over HTTP/1.1 as over HTTP/2. The client drops it after
// IdleTimeout and reconnects on a new connection, with the last event ID.
// Over HTTP/2, cancelling the request reset only its stream, and the
// reconnection went out on the same dead connection, where it waited for
// its response's headers for good. So it did after a redirect (to the
// same origin, as a server behind a proxy writes its Location, for each
// request): net/http made the redirected request without Request.Close,
// so that the stream's connection took the reconnection, which waited
// for its headers until HeaderTimeout ended Follow.
func TestClientReconnectsAfterANetworkCut(t *testing.T) {
	for _, tt := range []struct {
		proto    string
		redirect bool
	}{{"HTTP/1.1", false}, {"HTTP/2.0", false}, {"HTTP/1.1", true}, {"HTTP/2.0", true}} {
		name := tt.proto
		if tt.redirect {
			name += ", redirected"
		}
		t.Run(name, func(t *testing.T) {
			proto := tt.proto
			events := sinktest.Events("r1", 1, 5)
			events[4].Type = progress.RunFinished
			var mu sync.Mutex
			var lastIDs []string
			var server *httptest.Server
			server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, proto, r.Proto)
				if tt.redirect && r.URL.Path == "/runs/r1" {
					http.Redirect(w, r, server.URL+"/streams/r1", http.StatusTemporaryRedirect)
					return
				}
				last := r.Header.Get("Last-Event-ID")
				mu.Lock()
				lastIDs = append(lastIDs, last)
				first := len(lastIDs) == 1
				mu.Unlock()
				from, to := 0, len(events)
				if last == "3" {
					from = 3
				}
				if first {
					to = 3
				}
				writeStream(t, w, events[from:to])
				<-r.Context().Done()
			}))
			server.EnableHTTP2 = proto == "HTTP/2.0"
			server.StartTLS()
			defer server.Close()
			var cut atomic.Bool // set for the connections dialled before it
			var conns []*cutConn
			defer func() {
				// A connection left dead would hold the server's Close.
				mu.Lock()
				defer mu.Unlock()
				for _, c := range conns {
					c.Close()
				}
			}()
			tr := server.Client().Transport.(*http.Transport).Clone()
			defer tr.CloseIdleConnections()
			dial := tr.DialContext
			if dial == nil {
				dial = (&net.Dialer{}).DialContext
			}
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := dial(ctx, network, addr)
				if err != nil || cut.Load() {
					return conn, err
				}
				c := &cutConn{Conn: conn, cut: &cut, closed: make(chan struct{})}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				return c, nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{HTTPClient: &http.Client{Transport: tr},
				IdleTimeout: 200 * time.Millisecond, HeaderTimeout: wait / 2, Retry: time.Millisecond})
			var got []uint64
			err := c.Follow(ctx, func(e progress.Event) error {
				got = append(got, e.Seq)
				if e.Seq == 3 {
					cut.Store(true)
				}
				return nil
			})
			require.NoError(t, err, "Follow did not get the rest of the run after the cut; it got %v", got)
			assert.Equal(t, sinktest.Span(1, 5), got)
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, []string{"", "3"}, lastIDs, "the Last-Event-ID of each request the server got")
		})
	}
}

// writeStream opens an event stream on w and writes events to it, as the
// handler frames them, flushed.
func writeStream(t *testing.T, w http.ResponseWriter, events []progress.Event) {
	t.Helper()
	w.Header().Set("Content-Type", "text/event-stream")
	for _, e := range events {
		fmt.Fprint(w, strings.Join(frame(t, e), "\n")+"\n")
	}
	w.(http.Flusher).Flush()
}
