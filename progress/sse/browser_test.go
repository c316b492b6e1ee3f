//go:build linux

package sse_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// browserPage follows a run with EventSource, as a host's page would, and
// posts what it received to /result once the run's final event came.
const browserPage = `<!doctype html>
<meta charset="utf-8">
<title>regen progress</title>
<script>
const got = [];
let errors = 0;
const es = new EventSource("/runs/%s");
es.onerror = () => { errors++; };
es.onmessage = (m) => {
  const e = JSON.parse(m.data);
  got.push({id: m.lastEventId, seq: e.seq, type: e.type, done: e.done, total: e.total});
  if (%s.includes(e.type)) {
    es.close();
    fetch("/result", {method: "POST", body: JSON.stringify({got: got, errors: errors})});
  }
};
</script>`

// seen is one event as the page received it.
type seen struct {
	ID    string        `json:"id"`
	Seq   uint64        `json:"seq"`
	Type  progress.Type `json:"type"`
	Done  int           `json:"done"`
	Total int           `json:"total"`
}

// cutAfter drops a stream once it has flushed n events: the handler's
// request context is cancelled, so the response ends as a dropped
// connection does, and EventSource reconnects.
type cutAfter struct {
	http.ResponseWriter
	n, events int
	cancel    context.CancelFunc
}

func (c *cutAfter) Write(p []byte) (int, error) {
	for line := range bytes.SplitSeq(p, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("id:")) {
			c.events++
		}
	}
	return c.ResponseWriter.Write(p)
}

func (c *cutAfter) Flush() {
	_ = http.NewResponseController(c.ResponseWriter).Flush()
	if c.events >= c.n {
		c.cancel()
	}
}

func (c *cutAfter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// A real browser follows a run live with EventSource through progress/sse,
// from the executor's first event to its final one, across a dropped
// connection: it reconnects with Last-Event-ID by itself, and receives
// every event once, in order, with its sequence number as the event ID;
// from the in-memory stream, and from Redis Streams with an archive.
func TestBrowserFollowsARun(t *testing.T) {
	browser := testenv.FindChromium(t)
	for _, tc := range []struct {
		name    string
		backend func(t *testing.T) (progress.Sink, progress.Source)
	}{
		{"memory", func(*testing.T) (progress.Sink, progress.Source) {
			mem := progress.NewMemory(progress.MemoryOptions{})
			return mem, mem
		}},
		{"redis", func(t *testing.T) (progress.Sink, progress.Source) {
			r := testenv.NewRedis(t)
			hist := progress.NewMemoryHistory()
			stream, err := redisstream.New(r.Client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
				History: hist, BlockTime: 100 * time.Millisecond, Logger: quiet()})
			require.NoError(t, err)
			t.Cleanup(func() { stream.Close() })
			return progress.NewFanout(progress.NewArchive(hist), stream), stream
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink, src := tc.backend(t)
			followRun(t, browser, sink, src)
		})
	}
}

// followRun has the browser follow a run whose events go to sink and are
// served from src.
func followRun(t *testing.T, browser string, sink progress.Sink, src progress.Source) {
	runID := sinktest.RunID(t)
	const cut = 7
	h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, Retry: 50 * time.Millisecond,
		CloseOnFinal: true, Logger: quiet()})
	require.NoError(t, err)
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	f := fake.New(fake.Options{Seed: 1, Default: 20 * time.Millisecond})
	e, err := executor.New(executor.Options{Generators: f.Registry(), Sink: sink, Logger: quiet()})
	require.NoError(t, err)

	var (
		mu        sync.Mutex
		lastIDs   []string // the Last-Event-ID of each request for the run
		sent      int      // the events the first connection flushed
		runErr    error
		startOnce sync.Once
		ran       = make(chan struct{})
		result    = make(chan []byte, 1)
	)
	final, err := json.Marshal([]progress.Type{progress.RunFinished, progress.RunFailed, progress.RunCancelled})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, browserPage, runID, final)
	})
	mux.HandleFunc("GET /runs/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		first := len(lastIDs) == 1
		mu.Unlock()
		// The run starts once the browser listens, so that it follows
		// the run live rather than replaying it.
		startOnce.Do(func() {
			go func() {
				defer close(ran)
				_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: g, RunID: runID})
				mu.Lock()
				runErr = err
				mu.Unlock()
			}()
		})
		if first {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			c := &cutAfter{ResponseWriter: w, n: cut, cancel: cancel}
			h.ServeHTTP(c, r.WithContext(ctx))
			mu.Lock()
			sent = c.events
			mu.Unlock()
			return
		}
		h.ServeHTTP(w, r)
	})
	mux.HandleFunc("POST /result", testenv.PostResult(result))
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := testenv.StartChromium(t, browser, srv.URL+"/page")
	defer c.Stop()

	var body []byte
	select {
	case body = <-result:
	case <-c.Exited:
		t.Fatalf("Chromium exited before the page posted its result; its stderr:\n%s", c.Stderr(30))
	case <-time.After(2 * time.Minute):
		c.Stop() // so that its stderr is read after the last write
		t.Fatalf("the page posted no result in 2 minutes; Chromium's stderr:\n%s", c.Stderr(30))
	}
	<-ran
	mu.Lock()
	require.NoError(t, runErr)
	ids, flushed := append([]string(nil), lastIDs...), sent
	mu.Unlock()

	var page struct {
		Got    []seen `json:"got"`
		Errors int    `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(body, &page))
	var want []seen
	require.NoError(t, src.Replay(context.Background(), runID, 0, func(ev progress.Event) error {
		want = append(want, seen{ID: fmt.Sprint(ev.Seq), Seq: ev.Seq, Type: ev.Type, Done: ev.Done, Total: ev.Total})
		return nil
	}))
	require.Greater(t, len(want), cut, "the run has events after the cut")
	require.True(t, want[len(want)-1].Type.Final())
	if diff := cmp.Diff(want, page.Got); diff != "" {
		t.Errorf("the browser's events differ from the run's (-run +browser):\n%s", diff)
	}
	// The first connect has no ID; the reconnect after the cut resumes
	// from the last event the first connection delivered (the handler
	// may flush a few events at once, so the cut can come after more
	// than cut events).
	require.GreaterOrEqual(t, flushed, cut)
	require.Less(t, flushed, len(want), "the cut came before the run's end")
	require.Len(t, ids, 2, "one reconnect, after the cut; the final event then closed the page's stream")
	require.Equal(t, "", ids[0])
	require.Equal(t, fmt.Sprint(flushed), ids[1])
	require.GreaterOrEqual(t, page.Errors, 1, "EventSource saw the dropped connection")
}
