package sse_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

func ExampleHandler() {
	ctx := context.Background()
	mem := progress.NewMemory(progress.MemoryOptions{})
	h, _ := sse.NewHandler(mem, sse.HandlerOptions{
		Authorize: func(r *http.Request) (string, error) {
			if r.Header.Get("Authorization") != "Bearer demo" {
				return "", fmt.Errorf("%w: send a bearer token", sse.ErrUnauthorized)
			}
			return r.PathValue("run"), nil
		},
		CloseOnFinal: true,
		Retry:        10 * time.Millisecond,
	})
	mux := http.NewServeMux()
	mux.Handle("GET /runs/{run}/events", h)
	server := httptest.NewServer(mux)
	defer server.Close()

	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	_ = mem.Publish(ctx,
		progress.Event{RunID: "r1", Seq: 1, Time: t0, Type: progress.RunStarted, Stage: progress.NoStage, Total: 1},
		progress.Event{RunID: "r1", Seq: 2, Time: t0, Type: progress.NodeSucceeded, Node: "script/0", Stage: 0, Attempt: 1, Done: 1, Total: 1},
		progress.Event{RunID: "r1", Seq: 3, Time: t0, Type: progress.RunFinished, Stage: progress.NoStage, Done: 1, Total: 1},
	)

	// The wire format, resuming after seq 1 as a reconnecting browser would.
	req, _ := http.NewRequest("GET", server.URL+"/runs/r1/events", nil)
	req.Header.Set("Authorization", "Bearer demo")
	req.Header.Set("Last-Event-ID", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Header.Get("Content-Type"))
	_, _ = io.Copy(os.Stdout, resp.Body) // CloseOnFinal: the response ends after run.finished

	// Unauthorized.
	resp2, err := http.Get(server.URL + "/runs/r1/events")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp2.Body.Close()
	_, _ = io.Copy(os.Stdout, resp2.Body)
	// Output:
	// text/event-stream
	// retry: 10
	//
	// id: 2
	// data: {"runId":"r1","seq":2,"time":"2025-01-02T03:04:05Z","type":"node.succeeded","node":"script/0","stage":0,"attempt":1,"done":1,"total":1}
	//
	// id: 3
	// data: {"runId":"r1","seq":3,"time":"2025-01-02T03:04:05Z","type":"run.finished","done":1,"total":1}
	//
	// sse: unauthorized: send a bearer token
}

func ExampleClient() {
	mem := progress.NewMemory(progress.MemoryOptions{})
	h, _ := sse.NewHandler(mem, sse.HandlerOptions{
		Authorize: func(r *http.Request) (string, error) { return "r1", nil },
	})
	server := httptest.NewServer(h)
	defer server.Close()
	for seq := uint64(1); seq <= 4; seq++ {
		_ = mem.Publish(context.Background(), progress.Event{RunID: "r1", Seq: seq, Type: progress.Message, Message: fmt.Sprint("step ", seq)})
	}

	c := sse.NewClient(server.URL, sse.ClientOptions{})
	// An error from fn ends Events, and leaves its event untaken.
	failed := errors.New("cannot render")
	err := c.Events(context.Background(), func(e progress.Event) error {
		if e.Seq == 3 {
			return failed
		}
		fmt.Println(e.Seq, e.Message)
		return nil
	})
	fmt.Println(errors.Is(err, failed), "resume after", c.LastEventID())

	// So the next call delivers it again. To stop right after an event
	// taken, cancel the context with a cause, and return nil.
	ctx, stop := context.WithCancelCause(context.Background())
	enough := errors.New("seen enough")
	err = c.Events(ctx, func(e progress.Event) error {
		fmt.Println(e.Seq, e.Message)
		if e.Seq >= 3 {
			stop(enough)
		}
		return nil
	})
	fmt.Println(errors.Is(err, enough), "resume after", c.LastEventID())
	// Output:
	// 1 step 1
	// 2 step 2
	// true resume after 2
	// 3 step 3
	// true resume after 3
}

func ExampleDecoder() {
	wire := "\ufeff: a comment\r\nretry: 5000\r\nid: 7\r\ndata: line one\r\ndata: line two\r\n\r\n"
	d := sse.NewDecoder(strings.NewReader(wire))
	m, _ := d.Next()
	retry, _ := d.Retry()
	fmt.Printf("%q %q %q %v\n", m.ID, m.Type, m.Data, retry)
	// Output: "7" "message" "line one\nline two" 5s
}

func ExampleParseLastEventID() {
	for _, id := range []string{"", "42", "abc"} {
		seq, err := sse.ParseLastEventID(id)
		fmt.Println(seq, err)
	}
	// Output:
	// 0 <nil>
	// 42 <nil>
	// 0 sse: malformed last event ID "abc": not all digits; want the decimal sequence number of the last event received
}

// A status that ends Stream comes back as a *StatusError, with the
// response's Retry-After parsed, for a host that calls Stream again
// later. (A 503 or a 429 does not end Stream: the client waits it out.)
func ExampleStatusError() {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		http.Error(w, "maintenance", http.StatusBadGateway)
	}))
	defer server.Close()

	err := sse.NewClient(server.URL, sse.ClientOptions{}).Stream(context.Background(), func(sse.Message) error { return nil })
	var se *sse.StatusError
	if errors.As(err, &se) {
		fmt.Println(se.StatusCode, se.RetryAfter)
	}
	fmt.Println(err)
	// Output:
	// 502 2m0s
	// sse: server answered 502 (text/plain; charset=utf-8): maintenance
}

// Follow returns nil only once the run's final event is taken. A run the
// handler has no event of (unknown, expired, or not started within
// EmptyRunTimeout) is answered 204, which Follow returns as
// ErrNoFinalEvent; a run that Authorize refuses as unknown, a
// *StatusError that errors.Is matches with ErrNotFound.
func ExampleClient_Follow() {
	mem := progress.NewMemory(progress.MemoryOptions{})
	h, _ := sse.NewHandler(mem, sse.HandlerOptions{
		Authorize: func(r *http.Request) (string, error) {
			if r.PathValue("run") == "r404" {
				return "", fmt.Errorf("%w: no run r404", sse.ErrNotFound)
			}
			return r.PathValue("run"), nil
		},
		EmptyRunTimeout: 10 * time.Millisecond,
	})
	mux := http.NewServeMux()
	mux.Handle("GET /runs/{run}/events", h)
	server := httptest.NewServer(mux)
	defer server.Close()
	_ = mem.Publish(context.Background(),
		progress.Event{RunID: "r1", Seq: 1, Type: progress.RunStarted, Stage: progress.NoStage, Total: 1},
		progress.Event{RunID: "r1", Seq: 2, Type: progress.RunFinished, Stage: progress.NoStage, Done: 1, Total: 1})

	for _, run := range []string{"r1", "r2", "r404"} {
		err := sse.NewClient(server.URL+"/runs/"+run+"/events", sse.ClientOptions{}).Follow(context.Background(),
			func(e progress.Event) error {
				fmt.Println(run, e.Seq, e.Type)
				return nil
			})
		switch {
		case err == nil:
			fmt.Println(run, "ended")
		case errors.Is(err, sse.ErrNoFinalEvent):
			fmt.Println(run, "has no event: look at its record")
		case errors.Is(err, sse.ErrNotFound):
			fmt.Println(run, "is unknown")
		default:
			fmt.Println(run, err)
		}
	}
	// Output:
	// r1 1 run.started
	// r1 2 run.finished
	// r1 ended
	// r2 has no event: look at its record
	// r404 is unknown
}
