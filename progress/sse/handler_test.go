package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

const wait = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// byPath authorizes every request for the run named by the path
// "/runs/{run}".
func byPath(r *http.Request) (string, error) {
	run, ok := strings.CutPrefix(r.URL.Path, "/runs/")
	if !ok || run == "" {
		return "", fmt.Errorf("%w: no run in path %q", sse.ErrForbidden, r.URL.Path)
	}
	return run, nil
}

type fixture struct {
	mem     *progress.Memory
	handler *sse.Handler
	server  *httptest.Server
}

func newFixture(t *testing.T, opts sse.HandlerOptions) *fixture {
	t.Helper()
	return newFixtureOf(t, opts, false)
}

// newFixtureOf is newFixture, whose handler reads the Memory through
// Replay and Tail alone if replayOnly: as a source that does not
// implement progress.LastEventReader.
func newFixtureOf(t *testing.T, opts sse.HandlerOptions, replayOnly bool) *fixture {
	t.Helper()
	f := &fixture{mem: progress.NewMemory(progress.MemoryOptions{})}
	if opts.Authorize == nil {
		opts.Authorize = byPath
	}
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	var src progress.Source = f.mem
	if replayOnly {
		src = struct{ progress.Source }{f.mem}
	}
	var err error
	f.handler, err = sse.NewHandler(src, opts)
	require.NoError(t, err)
	f.server = httptest.NewServer(f.handler)
	t.Cleanup(f.server.Close)
	return f
}

func (f *fixture) publish(t *testing.T, events ...progress.Event) {
	t.Helper()
	require.NoError(t, f.mem.Publish(context.Background(), events...))
}

func (f *fixture) url(run string) string { return f.server.URL + "/runs/" + run }

// rawStream is a plain HTTP reader of the wire format.
type rawStream struct {
	resp *http.Response
	r    *bufio.Reader
}

func openRaw(t *testing.T, url string, header http.Header) *rawStream {
	t.Helper()
	return openRawWith(t, http.DefaultClient, url, header)
}

// openRawWith is openRaw with the given client.
func openRawWith(t *testing.T, client *http.Client, url string, header http.Header) *rawStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return &rawStream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// lines reads n lines, failing the test if they do not come in time.
func (s *rawStream) lines(t *testing.T, n int) []string {
	t.Helper()
	type result struct {
		lines []string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		var out []string
		for range n {
			line, err := s.r.ReadString('\n')
			if err != nil {
				ch <- result{out, err}
				return
			}
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
		ch <- result{out, nil}
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err, "after lines %q", r.lines)
		return r.lines
	case <-time.After(wait):
		s.resp.Body.Close()
		r := <-ch
		t.Fatalf("read %d of %d lines in %v: %q", len(r.lines), n, wait, r.lines)
		return nil
	}
}

func frame(t *testing.T, e progress.Event) []string {
	data, err := e.MarshalJSON()
	require.NoError(t, err)
	return []string{fmt.Sprintf("id: %d", e.Seq), "data: " + string(data), ""}
}

// Text from generators and hosts (a note, an error, a graph key) cannot
// forge an SSE line: line ends of every kind, NUL, U+2028 and field names
// stay inside the data line's JSON string, so each event is one id line
// and one data line, and a client decodes exactly the events published.
func TestHandlerTextCannotForgeEvents(t *testing.T) {
	hostile := []string{
		"\n\ndata: x", "\r\rid: 999\r\r", "\r\nevent: forged\r\n\r\n", "a\x00b", "\u2028\u2029\u0085",
		"retry: 1\n", ": comment\n\n", "\xff\xfe invalid UTF-8", "</script><script>x</script>",
	}
	f := newFixture(t, sse.HandlerOptions{CloseOnFinal: true})
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var events []progress.Event
	for i, h := range hostile {
		events = append(events, progress.Event{RunID: "r1", GraphKey: "g" + h, Seq: uint64(i + 1), Time: t0, Type: progress.Message,
			Node: "n" + h, Stage: progress.NoStage, Message: h, Reasoning: h, Error: h, PreviewURL: "https://x/" + h})
	}
	final := progress.Event{RunID: "r1", Seq: uint64(len(hostile) + 1), Time: t0, Type: progress.RunFinished, Stage: progress.NoStage, Message: hostile[0]}
	events = append(events, final)
	f.publish(t, events...)

	resp, err := http.Get(f.url("r1"))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body) // CloseOnFinal ends it after the final event
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	require.Equal(t, []string{"retry: 3000", ""}, lines[:2])
	lines = lines[2:]
	require.Len(t, lines, 3*len(events), "one id line, one data line and a blank line per event")
	for i, e := range events {
		assert.Equal(t, fmt.Sprintf("id: %d", e.Seq), lines[3*i])
		assert.True(t, strings.HasPrefix(lines[3*i+1], "data: {"), "line %q", lines[3*i+1])
		assert.Empty(t, lines[3*i+2])
	}
	assert.NotContains(t, string(body), "\r", "no CR, which a decoder takes for a line end")

	d := sse.NewDecoder(strings.NewReader(string(body)))
	for _, want := range events {
		m, err := d.Next()
		require.NoError(t, err)
		assert.Equal(t, sse.Message{ID: fmt.Sprint(want.Seq), Type: "message", Data: m.Data}, m)
		var got progress.Event
		require.NoError(t, json.Unmarshal([]byte(m.Data), &got))
		// JSON keeps valid text as it is; an invalid byte reads back as U+FFFD.
		for _, s := range []*string{&want.GraphKey, &want.Node, &want.Message, &want.Reasoning, &want.Error, &want.PreviewURL} {
			*s = strings.ReplaceAll(*s, "\xff\xfe", "\uFFFD\uFFFD")
		}
		assert.Equal(t, want, got)
	}
	_, err = d.Next()
	assert.ErrorIs(t, err, io.EOF, "no event beyond those published")
}

func TestHandlerHeadersAndWireFormat(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{Retry: 1500 * time.Millisecond})
	all := sinktest.Events("r1", 1, 3)
	f.publish(t, all[:2]...)
	s := openRaw(t, f.url("r1"), nil)
	assert.Equal(t, http.StatusOK, s.resp.StatusCode)
	assert.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", s.resp.Header.Get("Cache-Control"), "a stream holds one user's events: no cache may store it")
	assert.Equal(t, "no", s.resp.Header.Get("X-Accel-Buffering"))
	want := []string{"retry: 1500", ""}
	want = append(want, frame(t, all[0])...)
	want = append(want, frame(t, all[1])...)
	assert.Equal(t, want, s.lines(t, len(want)))
	f.publish(t, all[2])
	assert.Equal(t, frame(t, all[2]), s.lines(t, 3), "a live event is flushed at once")
}

func TestHandlerKeepAlive(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{KeepAlive: 20 * time.Millisecond})
	s := openRaw(t, f.url("r1"), nil)
	assert.Equal(t, []string{"retry: 3000", "", ": keep-alive", "", ": keep-alive", ""}, s.lines(t, 6))
	f.publish(t, sinktest.Events("r1", 1, 1)...)
	got := s.lines(t, 3)
	for got[0] == ": keep-alive" { // a comment may precede the event
		got = append(got[2:], s.lines(t, 2)...)
	}
	assert.Equal(t, "id: 1", got[0])
}

// A server WriteTimeout shorter than the stream must not cut it.
func TestHandlerClearsWriteDeadline(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, KeepAlive: 30 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	server := httptest.NewUnstartedServer(h)
	server.Config.WriteTimeout = 50 * time.Millisecond
	server.Start()
	t.Cleanup(server.Close) // after the stream's own cleanup closes the connection
	s := openRaw(t, server.URL+"/runs/r1", nil)
	s.lines(t, 2+2*6) // six keep-alives: well past the WriteTimeout
	require.NoError(t, mem.Publish(context.Background(), sinktest.Events("r1", 1, 1)...))
	var got []string
	for len(got) == 0 || got[0] != "id: 1" {
		got = s.lines(t, 1)
	}
}

func TestHandlerResume(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	f.publish(t, sinktest.Events("r1", 1, 10)...)
	tests := []struct {
		name   string
		header []string // Last-Event-ID values; nil: no header
		query  string
		first  string
	}{
		{"from the start", nil, "", "id: 1"},
		{"header", []string{"5"}, "", "id: 6"},
		{"query for a first connect", nil, "?lastEventId=7", "id: 8"},
		{"header wins over query", []string{"3"}, "?lastEventId=7", "id: 4"},
		{"empty header means the start", []string{""}, "?lastEventId=7", "id: 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != nil {
				h["Last-Event-ID"] = tt.header
			}
			s := openRaw(t, f.url("r1")+tt.query, h)
			got := s.lines(t, 3)
			assert.Equal(t, tt.first, got[2])
		})
	}
}

func TestHandlerMalformedID(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	// (A header's surrounding spaces are trimmed by net/http, so " 5" is a
	// valid header but not a valid query parameter.)
	hc := &http.Client{Timeout: wait}
	for _, id := range []string{"abc", "-1", "1.5", "5 x", "%20", "99999999999999999999", strings.Repeat("9", 300), "0-5"} {
		for _, where := range []string{"header", "query"} {
			t.Run(where+" "+id[:min(len(id), 20)], func(t *testing.T) {
				req, err := http.NewRequest(http.MethodGet, f.url("r1"), nil)
				require.NoError(t, err)
				if where == "header" {
					req.Header.Set("Last-Event-ID", id)
				} else {
					q := req.URL.Query()
					q.Set("lastEventId", id)
					req.URL.RawQuery = q.Encode()
				}
				resp, err := hc.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
				assert.Contains(t, string(body), "sse: malformed last event ID")
				assert.Contains(t, string(body), "want the decimal sequence number")
			})
		}
	}
}

// A refusal of the Authorize hook answers its status with the hook's
// text; any other error of the hook (its session store is down for a
// moment) is no refusal, and is answered 503 with Retry-After, which
// Client waits out (TestClientWaitsOutAFailingAuthorize), where it was
// 500, which ends Client.Stream for good. A hook's bug stays a 500.
func TestHandlerAuthorize(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		runID        string
		wantCode     int
		wantBody     string
		retryAfter   string // the Retry-After expected, "" for none
		cacheControl string // the Cache-Control expected
	}{
		{"no credentials", fmt.Errorf("%w: sign in to watch this run", sse.ErrUnauthorized), "", 401, "sse: unauthorized: sign in to watch this run\n", "", "no-store"},
		{"not allowed", fmt.Errorf("%w: run r1 belongs to another course", sse.ErrForbidden), "", 403, "sse: forbidden: run r1 belongs to another course\n", "", "no-store"},
		{"no such run", fmt.Errorf("%w: no run r1", sse.ErrNotFound), "", 404, "sse: not found: no run r1\n", "", "no-store"},
		{"a refusal wrapped twice", fmt.Errorf("check session: %w", fmt.Errorf("%w: run r1 belongs to another course", sse.ErrForbidden)), "", 403,
			"check session: sse: forbidden: run r1 belongs to another course\n", "", "no-store"},
		{"session store down: retry, text hidden", errors.New("sessions: dial tcp 10.0.0.7:6379: connection refused"), "", 503,
			"sse: authorization is unavailable; retry later\n", "3", "no-store"},
		{"timed out: retry", fmt.Errorf("load session: %w", context.DeadlineExceeded), "", 503,
			"sse: authorization is unavailable; retry later\n", "3", "no-store"},
		{"refusal and failure joined: the refusal", errors.Join(errors.New("audit log down"), sse.ErrForbidden), "", 403,
			"audit log down\nsse: forbidden\n", "", "no-store"},
		{"empty run ID: the hook's bug", nil, "", 500, "sse: authorization failed; try again later\n", "", "no-store"},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				var logs strings.Builder
				var mu sync.Mutex
				logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
					mu.Lock()
					defer mu.Unlock()
					return logs.Write(p)
				}), nil))
				f := newFixture(t, sse.HandlerOptions{Logger: logger,
					Authorize: func(*http.Request) (string, error) { return tt.runID, tt.err }})
				req, err := http.NewRequest(method, f.url("r1"), nil)
				require.NoError(t, err)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				assert.Equal(t, tt.wantCode, resp.StatusCode)
				if method == http.MethodGet {
					assert.Equal(t, tt.wantBody, string(body))
				}
				assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
				assert.Equal(t, tt.retryAfter, resp.Header.Get("Retry-After"))
				assert.Equal(t, tt.cacheControl, resp.Header.Get("Cache-Control"))
				mu.Lock()
				defer mu.Unlock()
				if tt.wantCode >= 500 {
					assert.Contains(t, logs.String(), "level=ERROR", "a failure of the hook is logged")
					if tt.err != nil {
						assert.Contains(t, logs.String(), tt.err.Error())
					}
				} else {
					assert.Empty(t, logs.String(), "a refusal is not logged")
				}
			})
		}
	}
}

// writerFunc adapts a function to an io.Writer.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestHandlerMethodNotAllowed(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	resp, err := http.Post(f.url("r1"), "text/plain", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
}

func TestNewHandlerRejectsBadOptions(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	_, err := sse.NewHandler(mem, sse.HandlerOptions{})
	assert.ErrorIs(t, err, sse.ErrInvalidOptions)
	assert.ErrorContains(t, err, "Authorize is required")
	_, err = sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, MaxStreams: -1})
	assert.ErrorIs(t, err, sse.ErrInvalidOptions)
	_, err = sse.NewHandler(nil, sse.HandlerOptions{Authorize: byPath})
	assert.ErrorIs(t, err, sse.ErrInvalidOptions)
	_, err = sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, EmptyRunTimeout: -time.Second})
	assert.ErrorIs(t, err, sse.ErrInvalidOptions)
	assert.ErrorContains(t, err, "EmptyRunTimeout is -1s")
}

// waitFor polls cond until it holds, failing the test at the deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling real I/O, bounded by the deadline
	}
}

func TestHandlerClientDisconnect(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Run("serve", func(t *testing.T) {
		f := newFixture(t, sse.HandlerOptions{})
		f.publish(t, sinktest.Events("r1", 1, 3)...)
		ctx, cancel := context.WithCancel(context.Background())
		c := sse.NewClient(f.url("r1"), sse.ClientOptions{})
		got := 0
		err := c.Stream(ctx, func(sse.Message) error {
			got++
			if got == 3 {
				cancel()
			}
			return nil
		})
		assert.ErrorIs(t, err, context.Canceled)
		waitFor(t, "the handler to return", func() bool { return f.handler.Stats().Active == 0 })
		http.DefaultClient.CloseIdleConnections()
	})
	goleak.VerifyNone(t, before)
}

func TestHandlerStreamLimit(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{MaxStreams: 2, Retry: 2 * time.Second})
	openRaw(t, f.url("a"), nil).lines(t, 2)
	openRaw(t, f.url("b"), nil).lines(t, 2)
	resp, err := http.Get(f.url("c"))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "2", resp.Header.Get("Retry-After"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "sse: too many streams (limit 2); retry later\n", string(body))
	st := f.handler.Stats()
	assert.Equal(t, 2, st.Active)
	assert.Equal(t, uint64(1), st.Rejected)
	// The Go client waits out this 503: TestClientWaitsOutAFullHandler.
}

func TestHandlerCloseOnFinal(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{CloseOnFinal: true, Retry: time.Millisecond})
	all := sinktest.Events("r1", 1, 5)
	all[4].Type = progress.RunFinished
	f.publish(t, all...)
	c := sse.NewClient(f.url("r1"), sse.ClientOptions{})
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := c.Stream(ctx, func(m sse.Message) error {
		got = append(got, m.ID)
		return nil
	})
	require.NoError(t, err, "the reconnect after the final event is answered 204, which ends the stream")
	assert.Equal(t, []string{"1", "2", "3", "4", "5"}, got)
	assert.Equal(t, 1, c.Connects())

	// Resuming before the final event still gets it, then the end.
	c = sse.NewClient(f.url("r1"), sse.ClientOptions{LastEventID: "3"})
	got = nil
	require.NoError(t, c.Stream(ctx, func(m sse.Message) error {
		got = append(got, m.ID)
		return nil
	}))
	assert.Equal(t, []string{"4", "5"}, got)
}

// With CloseOnFinal, a client whose last event ID is at or past a final
// event gets 204; one past the stored events of a run still going (or
// not known yet) keeps its stream, and gets the next events.
func TestHandlerCloseOnFinalResumePoint(t *testing.T) {
	tests := []struct {
		name     string
		events   uint64 // seqs 1..events are published
		final    bool   // the last of them is final
		lastID   string
		wantCode int
	}{
		{"at the final event", 5, true, "5", http.StatusNoContent},
		{"past the final event", 5, true, "9", http.StatusNoContent},
		{"before the final event", 5, true, "4", http.StatusOK},
		{"past the last event of a run still going", 5, false, "9", http.StatusOK},
		{"at the last event of a run still going", 5, false, "5", http.StatusOK},
		{"unknown run", 0, false, "9", http.StatusOK},
	}
	for _, tt := range tests {
		for _, replayOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/replay-only source %v", tt.name, replayOnly), func(t *testing.T) {
				f := newFixtureOf(t, sse.HandlerOptions{CloseOnFinal: true}, replayOnly)
				all := sinktest.Events("r1", 1, tt.events)
				if tt.final {
					all[len(all)-1].Type = progress.RunFinished
				}
				if len(all) > 0 {
					f.publish(t, all...)
				}
				s := openRaw(t, f.url("r1"), http.Header{"Last-Event-ID": {tt.lastID}})
				require.Equal(t, tt.wantCode, s.resp.StatusCode)
				if tt.wantCode != http.StatusOK {
					return
				}
				assert.Equal(t, []string{"retry: 3000", ""}, s.lines(t, 2))
				if tt.final {
					assert.Equal(t, "id: 5", s.lines(t, 3)[0], "the final event, then the end")
					_, err := s.r.ReadString('\n')
					assert.ErrorIs(t, err, io.EOF)
					return
				}
				next := sinktest.Events("r1", 10, 10)
				f.publish(t, next...)
				assert.Equal(t, frame(t, next[0]), s.lines(t, 3), "the stream stays open for the next events")
			})
		}
	}
}

// replayCounter is a Memory source that counts the events its Replay
// delivers; it keeps Memory's LastEvent.
type replayCounter struct {
	*progress.Memory
	replayed atomic.Int64
}

func (c *replayCounter) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return c.Memory.Replay(ctx, run, after, func(e progress.Event) error {
		c.replayed.Add(1)
		return fn(e)
	})
}

// With CloseOnFinal, deciding that a last event ID past a long run's end
// gets 204 takes a lookup of the run's newest event when the source
// offers one (progress.LastEventReader), not a replay of the run.
func TestHandlerCloseOnFinalPastTheEndIsCheap(t *testing.T) {
	src := &replayCounter{Memory: progress.NewMemory(progress.MemoryOptions{})}
	h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true, Logger: quiet()})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)
	all := sinktest.Events("r1", 1, 3000)
	all[2999].Type = progress.RunFinished
	require.NoError(t, src.Publish(context.Background(), all...))
	for _, id := range []string{"3000", "5000"} {
		s := openRaw(t, server.URL+"/runs/r1", http.Header{"Last-Event-ID": {id}})
		assert.Equal(t, http.StatusNoContent, s.resp.StatusCode, "Last-Event-ID %s", id)
	}
	assert.Zero(t, src.replayed.Load(), "events replayed to answer 204")
}

// A run of which the source holds no event at all, never created or
// gone (expired and not archived), is answered 204 once EmptyRunTimeout
// has passed without an event, with or without a last event ID, which
// stops EventSource; the Go client's Stream returns nil.
func TestHandlerEmptyRunTimeout(t *testing.T) {
	for _, closeOnFinal := range []bool{false, true} {
		for _, lastID := range []string{"", "9"} {
			for _, replayOnly := range []bool{false, true} {
				t.Run(fmt.Sprintf("CloseOnFinal %v, last event ID %q, replay-only source %v", closeOnFinal, lastID, replayOnly), func(t *testing.T) {
					f := newFixtureOf(t, sse.HandlerOptions{EmptyRunTimeout: 20 * time.Millisecond, CloseOnFinal: closeOnFinal}, replayOnly)
					s := openRaw(t, f.url("r1"), http.Header{"Last-Event-ID": {lastID}})
					assert.Equal(t, http.StatusNoContent, s.resp.StatusCode)
					ctx, cancel := context.WithTimeout(context.Background(), wait)
					defer cancel()
					c := sse.NewClient(f.url("r1"), sse.ClientOptions{LastEventID: lastID})
					require.NoError(t, c.Stream(ctx, func(sse.Message) error { return nil }))
					assert.Zero(t, c.Connects(), "a 204 opens no stream")
				})
			}
		}
	}
}

// A run that starts while its first request waits gets its stream: the
// response opens with its first event.
func TestHandlerEmptyRunStarts(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{EmptyRunTimeout: time.Minute, CloseOnFinal: true})
	opened := make(chan *rawStream, 1)
	go func() { opened <- openRaw(t, f.url("r1"), nil) }()
	waitFor(t, "the request to wait for the run", func() bool { return f.handler.Stats().Active == 1 })
	all := sinktest.Events("r1", 1, 3)
	f.publish(t, all[0])
	var s *rawStream
	select {
	case s = <-opened:
	case <-time.After(wait):
		t.Fatal("the response did not open with the run's first event")
	}
	require.Equal(t, http.StatusOK, s.resp.StatusCode)
	assert.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
	assert.Equal(t, append([]string{"retry: 3000", ""}, frame(t, all[0])...), s.lines(t, 5))
	f.publish(t, all[1:]...)
	assert.Equal(t, append(frame(t, all[1]), frame(t, all[2])...), s.lines(t, 6))
}

// EmptyRunTimeout bounds only a run without any event: a stream whose run
// has events, and is merely quiet, stays open past it.
func TestHandlerEmptyRunTimeoutSparesQuietRuns(t *testing.T) {
	for _, replayOnly := range []bool{false, true} {
		t.Run(fmt.Sprint("replay-only source ", replayOnly), func(t *testing.T) {
			f := newFixtureOf(t, sse.HandlerOptions{EmptyRunTimeout: 10 * time.Millisecond, CloseOnFinal: true}, replayOnly)
			all := sinktest.Events("r1", 1, 6)
			f.publish(t, all[:5]...)
			for _, lastID := range []string{"", "5", "9"} {
				s := openRaw(t, f.url("r1"), http.Header{"Last-Event-ID": {lastID}})
				require.Equal(t, http.StatusOK, s.resp.StatusCode, "Last-Event-ID %q", lastID)
				assert.Equal(t, []string{"retry: 3000", ""}, s.lines(t, 2))
			}
			s := openRaw(t, f.url("r1"), http.Header{"Last-Event-ID": {"5"}})
			s.lines(t, 2)
			time.Sleep(50 * time.Millisecond) // ordering only: five bounds pass
			f.publish(t, all[5])
			assert.Equal(t, frame(t, all[5]), s.lines(t, 3))
		})
	}
}

// A client that leaves while its request waits for a run's first event
// ends the request, a GET or a HEAD.
func TestHandlerEmptyRunClientLeaves(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		t.Run(method, func(t *testing.T) {
			f := newFixture(t, sse.HandlerOptions{EmptyRunTimeout: time.Hour})
			ctx, cancel := context.WithCancel(t.Context())
			req, err := http.NewRequestWithContext(ctx, method, f.url("r1"), nil)
			require.NoError(t, err)
			done := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			waitFor(t, "the request to wait for the run", func() bool { return f.handler.Stats().Active == 1 })
			cancel()
			assert.ErrorIs(t, <-done, context.Canceled)
			waitFor(t, "the handler to return", func() bool { return f.handler.Stats().Active == 0 })
		})
	}
}

// failingSource holds no event and fails every Tail.
type failingSource struct{ err error }

func (failingSource) Replay(context.Context, string, uint64, func(progress.Event) error) error {
	return nil
}

func (f failingSource) Tail(context.Context, string, uint64, func(progress.Event) error) error {
	return f.err
}

// A source that fails while a request waits for a run's first event ends
// the request as a source that fails later ends a stream: an event
// stream that ends, which EventSource reconnects to.
func TestHandlerEmptyRunSourceFails(t *testing.T) {
	h, err := sse.NewHandler(failingSource{errors.New("redis: down")}, sse.HandlerOptions{
		Authorize: byPath, EmptyRunTimeout: time.Hour, Logger: quiet(),
	})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)
	s := openRaw(t, server.URL+"/runs/r1", nil)
	require.Equal(t, http.StatusOK, s.resp.StatusCode)
	assert.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
	assert.Equal(t, []string{"retry: 3000", ""}, s.lines(t, 2))
	_, err = s.r.ReadString('\n')
	assert.ErrorIs(t, err, io.EOF)
}

func TestClientReconnectsWithLastEventID(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	f := newFixture(t, sse.HandlerOptions{
		Retry: time.Millisecond,
		Authorize: func(r *http.Request) (string, error) {
			mu.Lock()
			seen = append(seen, r.Header.Get("Last-Event-ID"))
			mu.Unlock()
			return byPath(r)
		},
	})
	all := sinktest.Events("r1", 1, 20)
	f.publish(t, all[:10]...)
	c := sse.NewClient(f.url("r1"), sse.ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []progress.Event
	err := c.Events(ctx, func(e progress.Event) error {
		got = append(got, e)
		switch e.Seq {
		case 10:
			f.server.CloseClientConnections() // the network drops
			f.publish(t, all[10:]...)
		case 20:
			return errStop
		}
		return nil
	})
	require.ErrorIs(t, err, errStop)
	if diff := sinktest.Diff(all, got); diff != "" {
		t.Fatalf("events across a reconnect (-want +got):\n%s", diff)
	}
	assert.Equal(t, 2, c.Connects())
	assert.Equal(t, "19", c.LastEventID(), "fn refused 20: the client resumes before it")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"", "10"}, seen, "the reconnect sent the last ID")
}

var errStop = errors.New("stop")

func TestClientRetriesUnreachableServer(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	url := f.url("r1")
	f.server.Close() // nothing listens now
	c := sse.NewClient(url, sse.ClientOptions{Retry: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Stream(ctx, func(sse.Message) error { return nil })
	assert.ErrorIs(t, err, context.DeadlineExceeded, "keeps retrying until its context ends")
	assert.Zero(t, c.Connects())
}

func TestClientRejectsNonStream(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"error":"nope"}`)
	}))
	defer server.Close()
	var se *sse.StatusError
	err := sse.NewClient(server.URL, sse.ClientOptions{}).Stream(context.Background(), func(sse.Message) error { return nil })
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 200, se.StatusCode)
	assert.Equal(t, `{"error":"nope"}`, se.Body)
}

// Many clients, one run: every client gets every event once, in order.
func TestHandlerManyClients(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	const clients, events = 20, 200
	all := sinktest.Events("r1", 1, events)
	f.publish(t, all[:50]...)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var wg sync.WaitGroup
	results := make([][]uint64, clients)
	for i := range clients {
		wg.Go(func() {
			c := sse.NewClient(f.url("r1"), sse.ClientOptions{})
			_ = c.Events(ctx, func(e progress.Event) error {
				results[i] = append(results[i], e.Seq)
				if e.Seq == events {
					return errStop
				}
				return nil
			})
		})
	}
	for _, e := range all[50:] {
		f.publish(t, e)
	}
	wg.Wait()
	for i, got := range results {
		if diff := cmp.Diff(sinktest.Span(1, events), got); diff != "" {
			t.Errorf("client %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestClientStopsOnTooLargeEvent(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\n", strings.Repeat("x", sse.MaxEventSize+1))
	}))
	defer server.Close()
	c := sse.NewClient(server.URL, sse.ClientOptions{Retry: time.Millisecond})
	err := c.Stream(context.Background(), func(sse.Message) error { return nil })
	assert.ErrorIs(t, err, sse.ErrTooLarge, "no reconnect loop on an event it can never read")
	assert.Equal(t, 1, c.Connects())
}
