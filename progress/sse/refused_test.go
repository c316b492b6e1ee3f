package sse_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// requestLog is an http.RoundTripper for a Client inside a synctest
// bubble, over a real Transport made in the bubble without keep-alives
// (an idle connection's reader, in network I/O, would keep the bubble's
// clock from moving). It records each request's Last-Event-ID and its
// response's status, and the bubble's time when it was sent and
// answered: as time moves in the bubble only while every goroutine in it
// waits on the bubble's timers and channels (not on the network), the
// time from one answer to the next request is the client's wait.
type requestLog struct {
	next http.RoundTripper

	mu   sync.Mutex
	reqs []loggedRequest
}

type loggedRequest struct {
	lastEventID    string
	status         int
	sent, answered time.Time
}

func newRequestLog() *requestLog {
	return &requestLog{next: &http.Transport{DisableKeepAlives: true}}
}

func (l *requestLog) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := l.next.RoundTrip(req)
	r := loggedRequest{lastEventID: req.Header.Get("Last-Event-ID"), sent: sent, answered: time.Now()}
	if err == nil {
		r.status = resp.StatusCode
	}
	l.mu.Lock()
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
	return resp, err
}

// statuses returns each request's response status.
func (l *requestLog) statuses() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []int
	for _, r := range l.reqs {
		s = append(s, r.status)
	}
	return s
}

// lastEventIDs returns the Last-Event-ID that each request sent.
func (l *requestLog) lastEventIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []string
	for _, r := range l.reqs {
		s = append(s, r.lastEventID)
	}
	return s
}

// waits returns the time from each answer to the next request.
func (l *requestLog) waits() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var w []time.Duration
	for i := 1; i < len(l.reqs); i++ {
		w = append(w, l.reqs[i].sent.Sub(l.reqs[i-1].answered))
	}
	return w
}

// draws returns a jitter source that returns u each time.
func draws(u float64) func() float64 { return func() float64 { return u } }

// The story: a Go client of our own Handler, at its MaxStreams, gets 503
// with Retry-After. It waits that long (plus its jitter, at most half as
// much again) and reconnects with the same Last-Event-ID, and follows the
// stream once a slot is free. Before, Stream ended with the 503's
// *StatusError: a Go consumer gave up under load.
func TestClientWaitsOutAFullHandler(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{MaxStreams: 1, Retry: 2 * time.Second}) // Retry-After: 2
	f.publish(t, sinktest.Events("r1", 1, 3)...)

	// Another stream holds the one slot until the test frees it, outside
	// the bubble, in real time.
	hold, release := context.WithCancel(context.Background())
	defer release()
	req, err := http.NewRequestWithContext(hold, http.MethodGet, f.url("r2"), nil)
	require.NoError(t, err)
	holder, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer holder.Body.Close()
	require.Equal(t, http.StatusOK, holder.StatusCode)
	freeSlot, slotFree := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(slotFree)
		<-freeSlot
		release()
		for deadline := time.Now().Add(wait); f.handler.Stats().Active > 0 && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond) // polling real I/O, bounded by the deadline
		}
	}()

	synctest.Test(t, func(t *testing.T) {
		log := newRequestLog()
		c := sse.NewClient(f.url("r1"), sse.ClientOptions{HTTPClient: &http.Client{Transport: log},
			LastEventID: "1", Retry: sse.MinRetry})
		sse.SetRand(c, draws(0.5))
		done, got := make(chan error, 1), []string(nil)
		go func() {
			done <- c.Stream(context.Background(), func(m sse.Message) error {
				got = append(got, m.ID)
				if m.ID == "3" {
					return errStop
				}
				return nil
			})
		}()
		synctest.Wait() // the client has its answer, and waits (or has ended)
		require.Equal(t, []int{http.StatusServiceUnavailable}, log.statuses())
		close(freeSlot)
		<-slotFree // a channel from outside the bubble: its clock stands still
		require.Zero(t, f.handler.Stats().Active, "the held stream has not ended")

		require.ErrorIs(t, <-done, errStop)
		assert.Equal(t, []string{"2", "3"}, got)
		assert.Equal(t, []int{http.StatusServiceUnavailable, http.StatusOK}, log.statuses())
		assert.Equal(t, []string{"1", "1"}, log.lastEventIDs(), "the reconnect resumes where the client was")
		// Retry-After 2 s, and a draw of 0.5 adds a quarter of it; the
		// backoff after one failure from a base of MinRetry is shorter.
		assert.Equal(t, []time.Duration{2500 * time.Millisecond}, log.waits())
		assert.Equal(t, 1, c.Connects())
	})
	assert.Equal(t, uint64(1), f.handler.Stats().Rejected)
}

// A 503 or a 429 is waited out: as long as its Retry-After asks (a
// delay-seconds, or an HTTP-date less the response's Date, or less the
// client's clock without one), capped at MaxBackoff, plus the jitter, but
// never less than the backoff, which a refusal counts in as a failed
// connection; without a usable Retry-After, the backoff alone. Then the
// client reconnects with the same Last-Event-ID.
func TestClientWaitsOutRetryAfter(t *testing.T) {
	date := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC) // neither the client's clock nor the server's
	const ms = time.Millisecond
	short := sse.ClientOptions{Retry: sse.MinRetry} // a backoff of 100 ms, 200 ms, ... with a draw of 0
	tests := []struct {
		name     string
		status   int
		header   func(now time.Time) http.Header // now: the client's clock
		opts     sse.ClientOptions
		refusals int
		u        float64
		want     []time.Duration
	}{
		{name: "503, delay-seconds", status: 503, header: retryAfterIs("5"), opts: short, refusals: 1,
			want: []time.Duration{5 * time.Second}},
		{name: "429, delay-seconds", status: 429, header: retryAfterIs("5"), opts: short, refusals: 1,
			want: []time.Duration{5 * time.Second}},
		{name: "the jitter adds up to half", status: 503, header: retryAfterIs("4"), opts: short, refusals: 1, u: 0.5,
			want: []time.Duration{5 * time.Second}},
		{name: "an HTTP-date less the response's Date", status: 503, opts: short, refusals: 1,
			header: func(time.Time) http.Header {
				return http.Header{"Date": {date.Format(http.TimeFormat)}, "Retry-After": {date.Add(7 * time.Second).Format(http.TimeFormat)}}
			},
			want: []time.Duration{7 * time.Second}},
		{name: "an HTTP-date less the client's clock without a Date", status: 429, opts: short, refusals: 1,
			header: func(now time.Time) http.Header {
				return http.Header{"Date": nil, "Retry-After": {now.Add(9 * time.Second).Format(http.TimeFormat)}}
			},
			want: []time.Duration{9 * time.Second}},
		{name: "a date past: the backoff", status: 503, opts: short, refusals: 1,
			header: func(time.Time) http.Header {
				return http.Header{"Date": {date.Format(http.TimeFormat)}, "Retry-After": {date.Add(-time.Minute).Format(http.TimeFormat)}}
			},
			want: []time.Duration{100 * ms}},
		{name: "no Retry-After: the backoff", status: 503, header: retryAfterIs(""), opts: short, refusals: 1,
			want: []time.Duration{100 * ms}},
		{name: "Retry-After 0: the backoff", status: 503, header: retryAfterIs("0"), opts: short, refusals: 1,
			want: []time.Duration{100 * ms}},
		{name: "an unparsable Retry-After: the backoff", status: 503, header: retryAfterIs("soon"), opts: short, refusals: 1,
			want: []time.Duration{100 * ms}},
		{name: "a fraction of seconds is unparsable", status: 429, header: retryAfterIs("1.5"), opts: short, refusals: 1,
			want: []time.Duration{100 * ms}},
		{name: "a Retry-After over MaxBackoff waits MaxBackoff", status: 503, header: retryAfterIs("3600"),
			opts: sse.ClientOptions{Retry: sse.MinRetry, MaxBackoff: 10 * time.Second}, refusals: 1,
			want: []time.Duration{10 * time.Second}},
		{name: "... plus the jitter", status: 503, header: retryAfterIs("3600"),
			opts: sse.ClientOptions{Retry: sse.MinRetry, MaxBackoff: 10 * time.Second}, refusals: 1, u: 0.5,
			want: []time.Duration{12500 * ms}},
		{name: "a Retry-After too long for a Duration waits MaxBackoff", status: 503, header: retryAfterIs("99999999999999999999999"),
			opts: sse.ClientOptions{Retry: sse.MinRetry, MaxBackoff: 10 * time.Second}, refusals: 1,
			want: []time.Duration{10 * time.Second}},
		{name: "a Retry-After below the backoff: the backoff", status: 503, header: retryAfterIs("1"),
			opts: sse.ClientOptions{Retry: 3 * time.Second}, refusals: 1,
			want: []time.Duration{3 * time.Second}},
		{name: "refusals in a row back off past a short Retry-After", status: 503, header: retryAfterIs("1"), opts: short, refusals: 5,
			want: []time.Duration{time.Second, time.Second, time.Second, time.Second, 1600 * ms}},
		{name: "refusals in a row without Retry-After back off", status: 429, header: retryAfterIs(""), opts: short, refusals: 4,
			want: []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var now atomic.Pointer[time.Time] // the client's clock at the start, set in the bubble
			var requests atomic.Int32
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if int(requests.Add(1)) <= tt.refusals {
					for k, v := range tt.header(*now.Load()) {
						w.Header()[k] = v
					}
					http.Error(w, "busy", tt.status)
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "id: 2\ndata: {}\n\n")
			}))
			defer server.Close()
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				now.Store(&start)
				log := newRequestLog()
				opts := tt.opts
				opts.HTTPClient, opts.LastEventID = &http.Client{Transport: log}, "1"
				c := sse.NewClient(server.URL, opts)
				sse.SetRand(c, draws(tt.u))
				var got []string
				err := c.Stream(context.Background(), func(m sse.Message) error {
					got = append(got, m.ID)
					return errStop
				})
				require.ErrorIs(t, err, errStop)
				assert.Equal(t, []string{"2"}, got)
				if diff := cmp.Diff(tt.want, log.waits()); diff != "" {
					t.Errorf("waits after each refusal (-want +got):\n%s", diff)
				}
				wantIDs := make([]string, tt.refusals+1)
				for i := range wantIDs {
					wantIDs[i] = "1"
				}
				assert.Equal(t, wantIDs, log.lastEventIDs())
			})
		})
	}
}

// retryAfterIs returns a header of Retry-After v, or none if v is "".
func retryAfterIs(v string) func(time.Time) http.Header {
	return func(time.Time) http.Header {
		if v == "" {
			return nil
		}
		return http.Header{"Retry-After": {v}}
	}
}

// Every status but 200, 204, 503 and 429 ends Stream at once with a
// *StatusError, 5xx included (as EventSource ends), whose RetryAfter is
// the response's Retry-After, parsed and uncapped, for a host that calls
// Stream again.
func TestClientEndsOnOtherStatuses(t *testing.T) {
	date := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		status     int
		header     http.Header
		retryAfter time.Duration
	}{
		{status: 500, header: http.Header{"Retry-After": {"120"}}, retryAfter: 2 * time.Minute},
		{status: 502},
		{status: 504, header: http.Header{"Date": {date.Format(http.TimeFormat)}, "Retry-After": {date.Add(30 * time.Second).Format(http.TimeFormat)}},
			retryAfter: 30 * time.Second},
		{status: 500, header: http.Header{"Retry-After": {"tomorrow"}}},
		{status: 400},
		{status: 401, header: http.Header{"Retry-After": {"3600"}}, retryAfter: time.Hour},
		{status: 403},
		{status: 404},
		{status: 302, header: http.Header{"Retry-After": {"99999999999999999999"}}, retryAfter: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status, " ", tt.header), func(t *testing.T) {
			var requests atomic.Int32
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				http.Error(w, "no\nway", tt.status) // a 302 without Location is not followed
			}))
			defer server.Close()
			ctx, cancel := context.WithTimeout(context.Background(), wait) // a regression would retry until then
			defer cancel()
			err := sse.NewClient(server.URL, sse.ClientOptions{Retry: time.Millisecond}).Stream(ctx, func(sse.Message) error { return nil })
			var se *sse.StatusError
			require.True(t, errors.As(err, &se), "%v", err)
			assert.Equal(t, tt.status, se.StatusCode)
			assert.Equal(t, tt.retryAfter, se.RetryAfter)
			assert.Equal(t, int32(1), requests.Load(), "the client retried")
			assert.Equal(t, fmt.Sprintf(`sse: server answered %d (text/plain; charset=utf-8): "no\nway"`, tt.status), se.Error())
			assert.False(t, strings.Contains(se.Error(), "\n"))
		})
	}
}
