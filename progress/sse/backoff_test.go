package sse_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/sse"
)

// reply is what fakeServer answers one request with.
type reply struct {
	err  error         // a network error, in place of a response
	body string        // the stream; "" ends at once, with no event
	hold time.Duration // how long the stream stays open before it ends
	// open keeps the stream open after body, until the request's context
	// ends, as a live server's: body then comes one event (up to a blank
	// line) per read, and after it a comment line every keepAlive if that
	// is positive, else not a byte more.
	open      bool
	keepAlive time.Duration
}

// fakeServer is an http.RoundTripper for a Client inside a synctest
// bubble: request i gets replies[i], or the last reply once they run out,
// and the start and end of each connection are recorded in the bubble's
// time. Request number stop cancels the context with errEnough instead.
type fakeServer struct {
	replies []reply
	stop    int // 0: none
	cancel  context.CancelCauseFunc

	mu           sync.Mutex
	starts, ends []time.Time
}

var errEnough = errors.New("enough connections")

func (s *fakeServer) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.starts)
	s.starts = append(s.starts, time.Now())
	if n+1 == s.stop {
		s.cancel(errEnough)
		return nil, context.Cause(req.Context())
	}
	r := s.replies[min(n, len(s.replies)-1)]
	if r.err != nil {
		s.ends = append(s.ends, time.Now())
		return nil, r.err
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       &fakeBody{s: s, reply: r, ctx: req.Context(), r: strings.NewReader(r.body)},
		Request:    req,
	}, nil
}

// connections returns how many requests s has had.
func (s *fakeServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.starts)
}

// waits returns the pause before each reconnection: from the end of one
// connection to the start of the next.
func (s *fakeServer) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var w []time.Duration
	for i := 1; i < len(s.starts); i++ {
		w = append(w, s.starts[i].Sub(s.ends[i-1]))
	}
	return w
}

type fakeBody struct {
	s     *fakeServer
	reply reply
	ctx   context.Context // the request's
	r     *strings.Reader
}

func (b *fakeBody) Read(p []byte) (int, error) {
	if b.reply.hold > 0 {
		time.Sleep(b.reply.hold) // the bubble's time: no real wait
		b.reply.hold = 0
	}
	if !b.reply.open {
		return b.r.Read(p)
	}
	if err := context.Cause(b.ctx); err != nil {
		return 0, err // as net/http's body, once the request is cancelled
	}
	if b.r.Len() > 0 {
		// One event per read, as a server flushes them.
		rest := b.reply.body[len(b.reply.body)-b.r.Len():]
		if i := strings.Index(rest, "\n\n"); i >= 0 && i+2 <= len(p) {
			p = p[:i+2]
		}
		return b.r.Read(p)
	}
	var tick <-chan time.Time
	if b.reply.keepAlive > 0 {
		t := time.NewTimer(b.reply.keepAlive)
		defer t.Stop()
		tick = t.C
	}
	select {
	case <-tick:
		return copy(p, ": keep-alive\n"), nil
	case <-b.ctx.Done():
		return 0, context.Cause(b.ctx)
	}
}

func (b *fakeBody) Close() error {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	b.s.ends = append(b.s.ends, time.Now())
	return nil
}

// followFake runs a Client with opts on a fakeServer of replies until
// connection number stop, and returns the waits between its connections.
func followFake(t *testing.T, opts sse.ClientOptions, stop int, replies ...reply) []time.Duration {
	t.Helper()
	return followFakeDrawing(t, opts, nil, stop, replies...)
}

// followFakeDrawing is followFake with a client whose jitter draws come
// from draw (math/rand if nil).
func followFakeDrawing(t *testing.T, opts sse.ClientOptions, draw func() float64, stop int, replies ...reply) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s := &fakeServer{replies: replies, stop: stop, cancel: cancel}
	opts.HTTPClient = &http.Client{Transport: s}
	c := sse.NewClient("http://sse.test/runs/r1", opts)
	if draw != nil {
		sse.SetRand(c, draw)
	}
	err := c.Stream(ctx, func(sse.Message) error { return nil })
	require.ErrorIs(t, err, errEnough)
	require.Equal(t, stop, s.connections())
	return s.waits()
}

// fresh returns n replies, each of which is body and then an event of
// its own (id: 1 for the first, id: 2 for the next, ...), as a server
// sends new events after each reconnection.
func fresh(body string, n int) []reply {
	r := make([]reply, n)
	for i := range r {
		r[i] = reply{body: fmt.Sprintf("%sid: %d\ndata: {}\n\n", body, i+1)}
	}
	return r
}

// backoff returns the range [lo, hi) of each of n waits after as many
// failed connections in a row, from base, capped at ceiling (which is at
// least base): [d/2, d) for d = base·2^i capped, never below base.
func backoff(base, ceiling time.Duration, n int) [][2]time.Duration {
	var r [][2]time.Duration
	for d := base; len(r) < n; {
		d = min(2*d, ceiling)
		r = append(r, [2]time.Duration{max(d/2, base), d})
	}
	return r
}

// checkWaits fails unless each wait is within its range [lo, hi), or
// equal to lo when lo == hi.
func checkWaits(t *testing.T, want [][2]time.Duration, got []time.Duration) {
	t.Helper()
	require.Len(t, got, len(want), "waits %v", got)
	for i, w := range want {
		if w[0] == w[1] {
			assert.Equal(t, w[0], got[i], "wait %d of %v", i+1, got)
			continue
		}
		assert.True(t, got[i] >= w[0] && got[i] < w[1], "wait %d is %v, want it in [%v, %v); all waits: %v", i+1, got[i], w[0], w[1], got)
	}
}

// A connection that fails, or ends without an event, is followed by a
// wait that doubles (within its jitter) with each one in a row, up to
// MaxBackoff, and is never shorter than MinRetry: a retry of 0 or a
// server that ends every connection at once does not make the client
// loop. Before, the client reconnected at once after retry: 0.
func TestClientBacksOffFromFailingConnections(t *testing.T) {
	refused := errors.New("connection refused")
	tests := []struct {
		name  string
		opts  sse.ClientOptions
		reply reply
		want  [][2]time.Duration
	}{
		{"retry 0, ended at once", sse.ClientOptions{MaxBackoff: time.Second}, reply{body: "retry: 0\n\n"},
			backoff(sse.MinRetry, time.Second, 8)},
		{"retry 0 and comments, no event", sse.ClientOptions{MaxBackoff: time.Second}, reply{body: "retry: 0\n\n: keep-alive\n\n: keep-alive\n\n"},
			backoff(sse.MinRetry, time.Second, 8)},
		{"data without a blank line is no event", sse.ClientOptions{MaxBackoff: time.Second}, reply{body: "retry: 0\nid: 1\ndata: {}\n"},
			backoff(sse.MinRetry, time.Second, 8)},
		{"network errors, Retry below MinRetry", sse.ClientOptions{Retry: time.Millisecond, MaxBackoff: time.Second}, reply{err: refused},
			backoff(sse.MinRetry, time.Second, 8)},
		{"network errors, the defaults", sse.ClientOptions{}, reply{err: refused},
			backoff(3*time.Second, 30*time.Second, 8)},
		{"a negative MaxBackoff is the default", sse.ClientOptions{MaxBackoff: -time.Second}, reply{err: refused},
			backoff(3*time.Second, 30*time.Second, 8)},
		{"MaxBackoff below MinRetry", sse.ClientOptions{MaxBackoff: time.Millisecond}, reply{body: "retry: 0\n\n"},
			backoff(sse.MinRetry, sse.MinRetry, 8)},
		{"a Retry above MaxBackoff is waited in full", sse.ClientOptions{Retry: time.Minute, MaxBackoff: 30 * time.Second}, reply{err: refused},
			backoff(time.Minute, time.Minute, 8)},
		{"the server's retry above MaxBackoff counts as MaxBackoff", sse.ClientOptions{MaxBackoff: 30 * time.Second}, reply{body: "retry: 60000\n\n"},
			backoff(30*time.Second, 30*time.Second, 8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkWaits(t, tt.want, followFake(t, tt.opts, len(tt.want)+1, tt.reply))
			})
		})
	}
}

// The backoff starts again from the base delay after a connection that
// delivers an event, or stays open for MaxBackoff (a quiet stream that a
// proxy ends), and only then.
func TestClientBackoffResets(t *testing.T) {
	const maxBackoff = 10 * time.Second
	empty := reply{body: "retry: 0\n\n"}
	base := [2]time.Duration{sse.MinRetry, sse.MinRetry * 3 / 2}
	grow := backoff(sse.MinRetry, maxBackoff, 4)
	tests := []struct {
		name    string
		replies []reply
		want    [][2]time.Duration
	}{
		{"an event", []reply{empty, empty, empty, {body: "retry: 0\nid: 1\ndata: {}\n\n"}, empty},
			append(grow[:3:3], base, grow[0], grow[1], grow[2])},
		{"open for MaxBackoff", []reply{empty, empty, empty, {body: "retry: 0\n\n", hold: maxBackoff}, empty},
			append(grow[:3:3], base, grow[0], grow[1], grow[2])},
		{"open for less than MaxBackoff", []reply{empty, empty, empty, {body: "retry: 0\n\n", hold: maxBackoff - time.Millisecond}, empty},
			backoff(sse.MinRetry, maxBackoff, 7)},
		{"new events on every connection", fresh("retry: 0\n", 4),
			[][2]time.Duration{base, base, base, base}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkWaits(t, tt.want, followFake(t, sse.ClientOptions{MaxBackoff: maxBackoff}, len(tt.want)+1, tt.replies...))
			})
		})
	}
}

// The wait after a connection that delivered events is the base plus a
// random extra of up to half of it, drawn anew each time, so that the
// clients that a server's restart drops together do not all reconnect at
// the same instant; the draw never makes it shorter than the base (the
// server's retry) nor longer than 1.5 times it. Before, it was the base
// exactly, for every client.
func TestClientJittersTheReconnectAfterEvents(t *testing.T) {
	almost1 := math.Nextafter(1, 0)
	tests := []struct {
		name  string
		opts  sse.ClientOptions
		body  string // before each connection's new event
		draws []float64
		want  []time.Duration
	}{
		{"the server's retry", sse.ClientOptions{}, "retry: 2000\n",
			[]float64{0, 0.5, almost1, 0.1}, []time.Duration{2 * time.Second, 2500 * time.Millisecond, 3*time.Second - 1, 2100 * time.Millisecond}},
		{"ClientOptions.Retry", sse.ClientOptions{Retry: time.Second}, "",
			[]float64{0.5, 0}, []time.Duration{1250 * time.Millisecond, time.Second}},
		{"a retry below MinRetry", sse.ClientOptions{}, "retry: 0\n",
			[]float64{0, almost1}, []time.Duration{sse.MinRetry, sse.MinRetry*3/2 - 1}},
		{"a retry above MaxBackoff counts as MaxBackoff", sse.ClientOptions{MaxBackoff: time.Second}, "retry: 60000\n",
			[]float64{0.5}, []time.Duration{1250 * time.Millisecond}},
		{"a Retry above MaxBackoff", sse.ClientOptions{Retry: time.Minute, MaxBackoff: time.Second}, "",
			[]float64{0.5}, []time.Duration{75 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				draws := tt.draws
				draw := func() float64 {
					u := draws[0]
					draws = draws[1:]
					return u
				}
				got := followFakeDrawing(t, tt.opts, draw, len(tt.want)+1, fresh(tt.body, len(tt.want))...)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("waits (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// The waits of a client that keeps failing are spread at random over
// their range, so that clients dropped together come back apart.
func TestClientBackoffJitters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		waits := followFake(t, sse.ClientOptions{MaxBackoff: time.Second}, 21, reply{body: "retry: 0\n\n"})
		atCap := waits[4:] // each in [500ms, 1s)
		distinct := map[time.Duration]bool{}
		for _, w := range atCap {
			distinct[w] = true
		}
		assert.Greater(t, len(distinct), 1, "%d waits at the cap are all %v", len(atCap), atCap[0])
	})
}

// A cancelled context ends the wait before a reconnection at once, with
// its cause.
func TestClientStreamCancelledWhileWaiting(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply reply
		fails int // connections before the cancel
	}{
		{"the first wait, after a network error", reply{err: errors.New("connection refused")}, 1},
		{"a wait at the cap", reply{err: errors.New("connection refused")}, 6},
		{"the wait after an event", reply{body: "id: 1\ndata: {}\n\n"}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancelCause(context.Background())
				s := &fakeServer{replies: []reply{tt.reply}}
				c := sse.NewClient("http://sse.test/runs/r1", sse.ClientOptions{HTTPClient: &http.Client{Transport: s}})
				done := make(chan error, 1)
				go func() { done <- c.Stream(ctx, func(sse.Message) error { return nil }) }()
				for s.connections() < tt.fails {
					time.Sleep(time.Second)
				}
				synctest.Wait() // the client waits to reconnect
				require.Equal(t, tt.fails, s.connections())
				cancelled := time.Now()
				cause := errors.New("the user left")
				cancel(cause)
				err := <-done
				assert.ErrorIs(t, err, cause)
				assert.Zero(t, time.Since(cancelled), "Stream returned after the wait, not at the cancel")
				assert.Equal(t, tt.fails, s.connections(), "a connection after the cancel")
			})
		})
	}
}

// A connection that carries only heartbeats (a Handler's KeepAliveEvent:
// an event of another type than "message", without an id) or nothing at
// all until IdleTimeout drops it made no progress: the backoff grows
// after it, as after a connection that ends without an event. Before, a
// heartbeat counted as an event, and a connection silent until the idle
// timeout counted as one that stayed open for MaxBackoff: each reset the
// backoff, so that a server that ended every stream after a heartbeat,
// or a proxy that took the request and then sent nothing, was asked
// again at the base delay for ever.
func TestClientBackoffIgnoresHeartbeats(t *testing.T) {
	const maxBackoff = 10 * time.Second
	base := [2]time.Duration{sse.MinRetry, sse.MinRetry * 3 / 2}
	grow := backoff(sse.MinRetry, maxBackoff, 6)
	event := reply{body: "retry: 0\nid: 1\ndata: {}\n\n"}
	tests := []struct {
		name    string
		opts    sse.ClientOptions
		replies []reply
		want    [][2]time.Duration
	}{
		{"a heartbeat, then the end", sse.ClientOptions{MaxBackoff: maxBackoff},
			[]reply{{body: "retry: 0\n\nevent: heartbeat\ndata: {}\n\n"}}, grow},
		{"heartbeats after an event", sse.ClientOptions{MaxBackoff: maxBackoff},
			[]reply{event, {body: "event: heartbeat\ndata: {}\n\nevent: heartbeat\ndata: {}\n\n"}},
			append([][2]time.Duration{base}, grow[:5]...)},
		{"an event of the host's own type with a new id resets", sse.ClientOptions{MaxBackoff: maxBackoff},
			[]reply{{body: "retry: 0\n\n"}, {body: "retry: 0\n\n"}, {body: "event: step\nid: 7\ndata: {}\n\n"}, {body: "retry: 0\n\n"}},
			[][2]time.Duration{grow[0], grow[1], base, grow[0], grow[1]}},
		{"an event without an id resets", sse.ClientOptions{MaxBackoff: maxBackoff},
			[]reply{{body: "retry: 0\n\n"}, {body: "retry: 0\n\n"}, {body: "data: {}\n\n"}, {body: "retry: 0\n\n"}},
			[][2]time.Duration{grow[0], grow[1], base, grow[0], grow[1]}},
		{"silent until IdleTimeout", sse.ClientOptions{MaxBackoff: maxBackoff, IdleTimeout: 2 * maxBackoff},
			[]reply{{body: "retry: 0\n\n", open: true}}, grow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkWaits(t, tt.want, followFake(t, tt.opts, len(tt.want)+1, tt.replies...))
			})
		})
	}
}

// A host's server that sends events of its own types ("progress", say)
// without ids makes progress with each of them: such an event resets the
// backoff, as one of type "message" does. Only a message that carries
// nothing (a Handler's KeepAliveEvent heartbeat, whose data is "{}", or
// one with empty data) of another type, leaving the last event ID as it
// was, is a heartbeat. Before, every message of another type without a
// new id counted as a heartbeat: a server that ends its streams now and
// then, and sends only events of its own types, was asked again with the
// growing backoff, up to MaxBackoff after a drop, losing what it sent
// meanwhile, which no id could resume.
func TestClientBackoffCountsEventsOfTheHostsOwnTypes(t *testing.T) {
	const maxBackoff = 10 * time.Second
	base := [2]time.Duration{sse.MinRetry, sse.MinRetry * 3 / 2}
	grow := backoff(sse.MinRetry, maxBackoff, 6)
	tests := []struct {
		name    string
		replies []reply
		want    [][2]time.Duration
	}{
		{"an event of the host's own type without an id resets",
			[]reply{{body: "retry: 0\n\n"}, {body: "retry: 0\n\n"}, {body: "event: progress\ndata: {\"step\":2}\n\n"}, {body: "retry: 0\n\n"}},
			[][2]time.Duration{grow[0], grow[1], base, grow[0], grow[1]}},
		{"a heartbeat with empty data, then the end",
			[]reply{{body: "retry: 0\n\nevent: ping\ndata\n\n"}}, grow},
		{"a Handler's heartbeat after an id, then the end",
			[]reply{{body: "retry: 0\nid: 7\n\nevent: heartbeat\ndata: {}\n\n"}}, grow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkWaits(t, tt.want, followFake(t, sse.ClientOptions{MaxBackoff: maxBackoff}, len(tt.want)+1, tt.replies...))
			})
		})
	}
}

// A connection's time up counts to the last byte that came as the client
// waited for the stream, not the time its callback took: a byte read
// after a slow callback may have come long before, as the server that
// sent a heartbeat and a comment and then went silent sent it. So a
// callback that blocks for MaxBackoff on a heartbeat does not make such
// a connection healthy, and the backoff still grows. Before, the byte was
// stamped when it was read, after the callback: the connection counted
// as open for MaxBackoff, and the server was asked again at the base
// delay for ever.
func TestClientBackoffIgnoresTheCallbacksTime(t *testing.T) {
	const maxBackoff = 10 * time.Second
	tests := []struct {
		name  string
		reply reply
		want  [][2]time.Duration
	}{
		{"a slow callback on a heartbeat, then a comment and silence",
			reply{body: "retry: 0\n\nevent: heartbeat\ndata: {}\n\n: bye\n\n", open: true},
			backoff(sse.MinRetry, maxBackoff, 5)},
		{"a slow callback, and a byte that came MaxBackoff after the stream opened",
			reply{body: "retry: 0\n\nevent: heartbeat\ndata: {}\n\n: bye\n\n", open: true, hold: maxBackoff},
			[][2]time.Duration{{sse.MinRetry, sse.MinRetry * 3 / 2}, {sse.MinRetry, sse.MinRetry * 3 / 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancelCause(context.Background())
				defer cancel(nil)
				s := &fakeServer{replies: []reply{tt.reply}, stop: len(tt.want) + 1, cancel: cancel}
				c := sse.NewClient("http://sse.test/runs/r1", sse.ClientOptions{HTTPClient: &http.Client{Transport: s},
					MaxBackoff: maxBackoff, IdleTimeout: maxBackoff + time.Second})
				err := c.Stream(ctx, func(m sse.Message) error {
					if m.Type == "heartbeat" {
						time.Sleep(2 * maxBackoff) // the bubble's time
					}
					return nil
				})
				require.ErrorIs(t, err, errEnough)
				checkWaits(t, tt.want, s.waits())
			})
		})
	}
}

// A connection that brings only what the last one that brought events
// brought (the same messages, ids and all, in the same order: a server
// that replays the same id-less event on each connection, or that
// ignores Last-Event-ID and replays its events from the start) makes no
// progress: the backoff grows, as after a connection without events,
// until one brings something new or stays open for MaxBackoff. Before,
// each replay reset the backoff, so such a server was asked again at the
// base delay for ever (every MinRetry, 10 times a second, with retry: 0),
// and the callback got the same events each time.
func TestClientBacksOffFromAReplay(t *testing.T) {
	const maxBackoff = 10 * time.Second
	base := [2]time.Duration{sse.MinRetry, sse.MinRetry * 3 / 2}
	grow := backoff(sse.MinRetry, maxBackoff, 6)
	same := reply{body: "retry: 0\nevent: status\ndata: {\"state\":\"waiting\"}\n\n"}
	other := reply{body: "retry: 0\nevent: status\ndata: {\"state\":\"running\"}\n\n"}
	tests := []struct {
		name    string
		replies []reply
		want    [][2]time.Duration
	}{
		{"the same event without an id on each connection",
			[]reply{same}, append([][2]time.Duration{base}, grow[:5]...)},
		{"the same events with their ids from the start on each connection",
			[]reply{{body: "retry: 0\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n"}}, append([][2]time.Duration{base}, grow[:5]...)},
		{"the replay of an event after a failed connection",
			[]reply{same, {}, same, {}}, [][2]time.Duration{base, grow[0], grow[1], grow[2], grow[3]}},
		{"an event that changes resets",
			[]reply{same, same, same, other}, [][2]time.Duration{base, grow[0], grow[1], base, grow[0], grow[1]}},
		{"new events with ids reset",
			[]reply{{body: "retry: 0\nid: 1\ndata: a\n\n"}, {body: "id: 2\ndata: a\n\n"}, {body: "id: 3\ndata: a\n\n"}},
			[][2]time.Duration{base, base, base, grow[0], grow[1]}},
		{"a replay that comes MaxBackoff after the stream opened resets",
			[]reply{{body: same.body, hold: maxBackoff}}, [][2]time.Duration{base, base, base}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkWaits(t, tt.want, followFake(t, sse.ClientOptions{MaxBackoff: maxBackoff}, len(tt.want)+1, tt.replies...))
			})
		})
	}
}
