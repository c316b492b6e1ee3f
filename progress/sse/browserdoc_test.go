//go:build linux

package sse_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// docSnippet returns the package doc's browser snippet: the lines of
// doc.go's code block from its "const url" line to its "follow();" line.
func docSnippet(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	var lines []string
	for line := range strings.SplitSeq(string(doc), "\n") {
		code, ok := strings.CutPrefix(line, "//\t")
		if !ok || (len(lines) == 0 && !strings.HasPrefix(code, "const url = ")) {
			continue
		}
		lines = append(lines, code)
		if code == "follow();" {
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("doc.go holds no browser snippet from %q to %q", "const url = ", "follow();")
	return ""
}

// snippetPage runs the package doc's snippet, with a render and a stopped
// that post what the page received, and why it stopped, to /result: on
// the run's final event, once the snippet's own handler has run, or when
// the snippet calls stopped.
const snippetPage = `<!doctype html>
<meta charset="utf-8">
<title>regen progress</title>
<script>
const got = [];
const report = (stopped) => fetch("/result", {method: "POST", body: JSON.stringify({got: got, stopped: stopped})});
function render(e) {
  got.push(e.seq);
  if (%s.includes(e.type)) setTimeout(() => report(0), 0);
}
function stopped(status) { report(status); }
</script>
<script>
%s
</script>`

// pageRequest is a request of the page for the run's events, as the
// handler answered it.
type pageRequest struct {
	Method, LastEventID, Query string
	Status                     int
}

// statusOf records the status a handler answers with.
type statusOf struct {
	http.ResponseWriter
	record func(status int)
}

func (s *statusOf) WriteHeader(code int) {
	s.record(code)
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusOf) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type requestIndex struct{}

// dropAfter fails every write after the first n events, as a dropped
// connection does: the handler's stream ends, and EventSource
// reconnects.
type dropAfter struct {
	http.ResponseWriter
	n, events int
}

func (d *dropAfter) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, []byte("id:")) {
		if d.events == d.n {
			return 0, errors.New("dropped")
		}
		d.events++
	}
	return d.ResponseWriter.Write(p)
}

func (d *dropAfter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// stallAfter swallows every write after the first n events, as a proxy
// that stalls a connection without closing it: the handler's writes,
// its heartbeats too, succeed, and the browser gets none of them.
type stallAfter struct {
	http.ResponseWriter
	n, events int
}

func (s *stallAfter) Write(p []byte) (int, error) {
	if s.events == s.n {
		return len(p), nil
	}
	if bytes.HasPrefix(p, []byte("id:")) {
		s.events++
	}
	return s.ResponseWriter.Write(p)
}

func (s *stallAfter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// The package doc's browser snippet, run in a real browser, stops where
// it should: it closes its EventSource on the run's final event (without
// CloseOnFinal the stream stays open until the page closes it), stops
// when the handler answers 204 or refuses the request, and rides out a
// 503, or the 429 of MaxStreamsPerKey, with a new EventSource that
// resumes from the last event it got.
// A page from another origin does the same through the doc's CORS
// wrapper. Its watchdog reopens a stream that a proxy stalls without
// closing (no event and no heartbeat for three keep-alives) from the
// last event, and leaves a quiet stream with heartbeats alone. The old advice (open a new EventSource on every error, once CLOSED)
// reopened for good after a run's last 204, and the old snippet never
// closed its stream.
func TestBrowserFollowsThePackageDocSnippet(t *testing.T) {
	browser := testenv.FindChromium(t)
	// The page reopens after 100ms rather than 3s, so that the test
	// waits less for a reopen that should not come.
	snippet := docSnippet(t)
	const delay = "setTimeout(follow, 3000)"
	require.Equal(t, 1, strings.Count(snippet, delay), "the snippet reopens with %s", delay)
	snippet = strings.Replace(snippet, delay, "setTimeout(follow, 100)", 1)
	// Its watchdog reopens after 3s of silence rather than 45s; the
	// handler's heartbeats come every 50ms.
	const keepAlive = "const keepAlive = 15000;"
	require.Equal(t, 1, strings.Count(snippet, keepAlive), "the snippet's keep-alive is %s", keepAlive)
	snippet = strings.Replace(snippet, keepAlive, "const keepAlive = 1000;", 1)
	final, err := json.Marshal([]progress.Type{progress.RunFinished, progress.RunFailed, progress.RunCancelled})
	require.NoError(t, err)
	all := sinktest.Events("r1", 1, 5)
	all[4].Type = progress.RunFinished
	seqs := []uint64{1, 2, 3, 4, 5}
	outage := errors.New("session store: connection refused")
	tests := []struct {
		name   string
		opts   sse.HandlerOptions
		events []progress.Event
		refuse map[int]error // by the request's index
		// crowd holds the requests (by index) of a StreamKey whose one
		// slot (MaxStreamsPerKey 1) a stream opened before the page's
		// holds: they get 429.
		crowd map[int]bool
		cut   int // events after which the first stream drops, if not 0
		stall int // events after which the first stream stalls, if not 0
		// later are published once the page has had events[:] for
		// longer than its watchdog waits.
		later []progress.Event
		// crossOrigin serves the page from another origin than the
		// events, whose answers carry Access-Control-Allow-Origin.
		crossOrigin bool
		got         []uint64
		stopped     int // the status the page stopped on; 0 for the final event
		want        []pageRequest
	}{
		{
			name: "the final event closes the stream", events: all, got: seqs,
			want: []pageRequest{{"GET", "", "", 200}},
		},
		{
			name: "a 204 for a run without events stops it", opts: sse.HandlerOptions{EmptyRunTimeout: 50 * time.Millisecond},
			stopped: 204, want: []pageRequest{{"GET", "", "", 204}, {"HEAD", "", "", 204}},
		},
		{
			name: "a refusal stops it", events: all, refuse: map[int]error{0: sse.ErrForbidden, 1: sse.ErrForbidden},
			stopped: 403, want: []pageRequest{{"GET", "", "", 403}, {"HEAD", "", "", 403}},
		},
		{
			name: "a 503 is ridden out", events: all, refuse: map[int]error{0: outage, 1: outage}, got: seqs,
			want: []pageRequest{{"GET", "", "", 503}, {"HEAD", "", "", 503}, {"GET", "", "", 200}},
		},
		{
			name: "a 503 mid-run is ridden out from the last event", events: all, cut: 3, refuse: map[int]error{1: outage}, got: seqs,
			want: []pageRequest{{"GET", "", "", 200}, {"GET", "3", "", 503}, {"HEAD", "", "3", 200}, {"GET", "", "3", 200}},
		},
		{
			name: "a page from another origin rides out a 503 mid-run", events: all, cut: 3, refuse: map[int]error{1: outage},
			crossOrigin: true, got: seqs,
			want: []pageRequest{{"GET", "", "", 200}, {"GET", "3", "", 503}, {"HEAD", "", "3", 200}, {"GET", "", "3", 200}},
		},
		{
			name: "a 429 is ridden out", events: all, crowd: map[int]bool{0: true, 1: true}, got: seqs,
			want: []pageRequest{{"GET", "", "", 429}, {"HEAD", "", "", 429}, {"GET", "", "", 200}},
		},
		{
			name: "heartbeats keep a quiet stream open", events: all[:3], later: all[3:], got: seqs,
			want: []pageRequest{{"GET", "", "", 200}},
		},
		{
			name: "a stalled stream is reopened from the last event", events: all, stall: 3, got: seqs,
			want: []pageRequest{{"GET", "", "", 200}, {"GET", "", "3", 200}},
		},
		{
			name: "a page from another origin stops on a 204", opts: sse.HandlerOptions{EmptyRunTimeout: 50 * time.Millisecond},
			crossOrigin: true, stopped: 204, want: []pageRequest{{"GET", "", "", 204}, {"HEAD", "", "", 204}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := progress.NewMemory(progress.MemoryOptions{})
			require.NoError(t, mem.Publish(context.Background(), tt.events...))
			opts := tt.opts
			opts.Retry, opts.Logger = 50*time.Millisecond, quiet()
			opts.KeepAlive, opts.KeepAliveEvent = 50*time.Millisecond, "heartbeat" // as the snippet expects
			opts.Authorize = func(r *http.Request) (string, error) {
				if err := tt.refuse[r.Context().Value(requestIndex{}).(int)]; err != nil {
					return "", err
				}
				return r.PathValue("run"), nil
			}
			if tt.crowd != nil {
				opts.MaxStreamsPerKey = 1
				opts.StreamKey = func(r *http.Request, _ string) string {
					if i := r.Context().Value(requestIndex{}).(int); i >= 0 && !tt.crowd[i] {
						return strconv.Itoa(i)
					}
					return "crowd"
				}
			}
			h, err := sse.NewHandler(mem, opts)
			require.NoError(t, err)
			release := func() {}
			if tt.crowd != nil {
				// The crowd's slot, taken by a stream of index -1.
				ctx, cancel := context.WithCancel(context.WithValue(context.Background(), requestIndex{}, -1))
				done := make(chan struct{})
				go func() {
					defer close(done)
					req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/runs/r1/events", nil)
					req.SetPathValue("run", "r1")
					h.ServeHTTP(httptest.NewRecorder(), req)
				}()
				release = func() {
					cancel()
					<-done
				}
				defer release()
				waitFor(t, "the crowd's stream", func() bool { return h.Stats().Active == 1 })
			}

			var (
				mu         sync.Mutex
				seen       []pageRequest
				pageOrigin string // set once both servers run
				eventsURL  = "/runs/r1/events"
				result     = make(chan []byte, 1)
			)
			mux := http.NewServeMux()
			mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				mu.Lock()
				page := strings.Replace(snippet, `"/runs/r1/events"`, `"`+eventsURL+`"`, 1)
				mu.Unlock()
				fmt.Fprintf(w, snippetPage, final, page)
			})
			mux.HandleFunc("GET /runs/{run}/events", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				i := len(seen)
				seen = append(seen, pageRequest{Method: r.Method, LastEventID: r.Header.Get("Last-Event-ID"),
					Query: r.URL.Query().Get("lastEventId")})
				origin := pageOrigin
				mu.Unlock()
				if tt.crossOrigin {
					// The package doc's CORS wrapper.
					w.Header().Set("Access-Control-Allow-Origin", origin)
				}
				rw := &statusOf{ResponseWriter: w, record: func(status int) {
					mu.Lock()
					seen[i].Status = status
					mu.Unlock()
				}}
				ctx := context.WithValue(r.Context(), requestIndex{}, i)
				if i == 0 && tt.cut > 0 {
					h.ServeHTTP(&dropAfter{ResponseWriter: rw, n: tt.cut}, r.WithContext(ctx))
					return
				}
				if i == 0 && tt.stall > 0 {
					h.ServeHTTP(&stallAfter{ResponseWriter: rw, n: tt.stall}, r.WithContext(ctx))
					return
				}
				h.ServeHTTP(rw, r.WithContext(ctx))
			})
			mux.HandleFunc("POST /result", testenv.PostResult(result))
			mux.HandleFunc("GET /favicon.ico", http.NotFound)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			pageServer := srv
			if tt.crossOrigin {
				pageServer = httptest.NewServer(mux)
				defer pageServer.Close()
				mu.Lock()
				pageOrigin, eventsURL = pageServer.URL, srv.URL+eventsURL
				mu.Unlock()
			}

			c := testenv.StartChromium(t, browser, pageServer.URL+"/page")
			defer c.Stop()
			if len(tt.later) > 0 {
				// Chromium may take a while to start: wait as for the result.
				for deadline := time.Now().Add(time.Minute); h.Stats().Events < uint64(len(tt.events)); {
					require.True(t, time.Now().Before(deadline), "the page got no stream in a minute")
					time.Sleep(10 * time.Millisecond)
				}
				time.Sleep(4 * time.Second) // longer than the watchdog's 3s: the heartbeats must keep it quiet
				require.NoError(t, mem.Publish(context.Background(), tt.later...))
			}
			var body []byte
			select {
			case body = <-result:
			case <-c.Exited:
				t.Fatalf("Chromium exited before the page posted its result; its stderr:\n%s", c.Stderr(30))
			case <-time.After(time.Minute):
				mu.Lock()
				got := append([]pageRequest(nil), seen...)
				mu.Unlock()
				c.Stop()
				t.Fatalf("the page posted no result in a minute; its %d requests, the last ones: %+v; Chromium's stderr:\n%s",
					len(got), got[max(0, len(got)-6):], c.Stderr(30))
			}
			var page struct {
				Got     []uint64 `json:"got"`
				Stopped int      `json:"stopped"`
			}
			require.NoError(t, json.Unmarshal(body, &page))
			if diff := cmp.Diff(tt.got, page.Got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("the page's events (-want +got):\n%s", diff)
			}
			require.Equal(t, tt.stopped, page.Stopped, "the status the page stopped on")
			release()
			// A page that went on would reconnect after the retry delay
			// or reopen after its own (50ms, 100ms): give it the time to.
			time.Sleep(time.Second)
			waitFor(t, "the page to close its stream", func() bool { return h.Stats().Active == 0 })
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(tt.want, seen); diff != "" {
				t.Errorf("the page's requests (-want +got):\n%s", diff)
			}
		})
	}
}

// leavingPage runs the package doc's snippet, and once it has three
// events reloads, and the second time follows a link to /next, which
// posts to /result.
const leavingPage = `<!doctype html>
<meta charset="utf-8">
<title>regen progress</title>
<script>
let got = 0;
function render(e) {
  if (++got !== 3) return;
  if (sessionStorage.getItem("reloaded")) {
    location.href = "/next";
  } else {
    sessionStorage.setItem("reloaded", "1");
    location.reload();
  }
}
function stopped(status) {}
</script>
<script>
%s
</script>`

// A page that reloads closes its EventSource, and Chromium fires its
// error event, with readyState CLOSED, after beforeunload and before
// pagehide: the old snippet took that for a refusal or a 204 and sent a
// HEAD request on every reload (a HEAD that with EmptyRunTimeout can
// hold a MaxStreams slot up to the bound). The snippet now ignores the
// errors of a page that is leaving.
func TestBrowserSnippetAsksNothingWhenThePageLeaves(t *testing.T) {
	browser := testenv.FindChromium(t)
	mem := progress.NewMemory(progress.MemoryOptions{})
	require.NoError(t, mem.Publish(context.Background(), sinktest.Events("r1", 1, 3)...)) // no final event
	h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, Logger: quiet(), KeepAliveEvent: "heartbeat"})
	require.NoError(t, err)
	var (
		mu     sync.Mutex
		seen   []string
		result = make(chan []byte, 1)
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, leavingPage, strings.Replace(docSnippet(t), `"/runs/r1/events"`, `"/runs/r1"`, 1))
	})
	mux.HandleFunc("GET /next", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>next</title><script>fetch("/result", {method: "POST", body: "{}"});</script>`)
	})
	mux.HandleFunc("GET /runs/{run}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method)
		mu.Unlock()
		h.ServeHTTP(w, r)
	})
	mux.HandleFunc("POST /result", testenv.PostResult(result))
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := testenv.StartChromium(t, browser, srv.URL+"/page")
	defer c.Stop()
	select {
	case <-result:
	case <-c.Exited:
		t.Fatalf("Chromium exited before the next page posted; its stderr:\n%s", c.Stderr(30))
	case <-time.After(time.Minute):
		t.Fatalf("the next page posted nothing in a minute; Chromium's stderr:\n%s", c.Stderr(30))
	}
	time.Sleep(time.Second) // the old snippet's HEAD came right after the page left
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"GET", "GET"}, seen, "the page's requests for the run's events")
}
