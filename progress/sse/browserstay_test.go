package sse_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// stayingPage runs the package doc's snippet, and once it has three
// events follows a link to /download, a file: Chromium fires
// beforeunload, and the page stays. It posts to /result on the final
// event.
const stayingPage = `<!doctype html>
<meta charset="utf-8">
<title>regen progress</title>
<script>
let got = 0;
function render(e) {
  if (++got === 3) location.href = "/download";
  if (e.type === "run.finished") fetch("/result", {method: "POST", body: "{}"});
}
function stopped(status) {}
</script>
<script>
%s
</script>`

// A navigation that begins and does not happen (a link to a download, a
// beforeunload prompt the user answers "Stay") fires beforeunload but
// neither pagehide nor pageshow: a snippet whose leaving flag only
// pageshow cleared ignored every later error of the page, so a stream
// refused with 503 after it was never asked about nor reopened, and the
// page showed the run going on for ever.
func TestBrowserSnippetFollowsOnWhenThePageStays(t *testing.T) {
	browser := testenv.FindChromium(t)
	mem := progress.NewMemory(progress.MemoryOptions{})
	all := sinktest.Events("r1", 1, 5)
	all[4].Type = progress.RunFinished
	require.NoError(t, mem.Publish(context.Background(), all[:3]...))
	var (
		mu         sync.Mutex
		seen       []pageRequest
		downloaded = make(chan struct{})
		result     = make(chan []byte, 1)
	)
	h, err := sse.NewHandler(mem, sse.HandlerOptions{Logger: quiet(), KeepAliveEvent: "heartbeat", Retry: 50 * time.Millisecond,
		Authorize: func(r *http.Request) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 2 { // the reconnect after the download
				return "", fmt.Errorf("session store: connection refused")
			}
			return r.PathValue("run"), nil
		}})
	require.NoError(t, err)
	// The snippet keeps its delays: an error while leaving is looked at
	// again after as long as a reopen waits, and must not reopen twice.
	snippet := docSnippet(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, stayingPage, strings.Replace(snippet, `"/runs/r1/events"`, `"/runs/r1"`, 1))
	})
	var once sync.Once
	mux.HandleFunc("GET /download", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="run.csv"`)
		fmt.Fprint(w, "seq\n1\n")
		once.Do(func() { close(downloaded) })
	})
	mux.HandleFunc("GET /runs/{run}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i := len(seen)
		seen = append(seen, pageRequest{Method: r.Method, LastEventID: r.Header.Get("Last-Event-ID"),
			Query: r.URL.Query().Get("lastEventId")})
		mu.Unlock()
		rw := &statusOf{ResponseWriter: w, record: func(status int) {
			mu.Lock()
			seen[i].Status = status
			mu.Unlock()
		}}
		if i == 0 {
			// The first stream drops once the page has stayed.
			ctx, cancel := context.WithCancel(r.Context())
			go func() {
				defer cancel()
				select {
				case <-downloaded:
					time.Sleep(500 * time.Millisecond)
				case <-ctx.Done():
				}
			}()
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(rw, r)
		if i == 2 {
			require.NoError(t, mem.Publish(context.Background(), all[3:]...))
		}
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
		t.Fatalf("Chromium exited before the page posted; its stderr:\n%s", c.Stderr(30))
	case <-time.After(30 * time.Second):
		mu.Lock()
		got := append([]pageRequest(nil), seen...)
		mu.Unlock()
		c.Stop()
		t.Fatalf("the page did not get the final event in 30s; its requests: %+v; Chromium's stderr:\n%s", got, c.Stderr(30))
	}
	time.Sleep(4 * time.Second) // a second reopen would come within the snippet's 3s
	mu.Lock()
	defer mu.Unlock()
	want := []pageRequest{{"GET", "", "", 200}, {"GET", "3", "", 503}, {"HEAD", "", "3", 200}, {"GET", "", "3", 200}}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("the page's requests (-want +got):\n%s", diff)
	}
}
