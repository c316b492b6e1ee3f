package sse_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// wireEvent is one dispatch of a replayServer's stream: an id field if
// id is not nil, and a data field if data is not "".
type wireEvent struct {
	id   *string
	data string
}

func idOf(s string) *string { return &s }

// replayServer serves events as a stream that resumes after the event
// whose id is the request's Last-Event-ID (from the start without one),
// then stays open; it records the Last-Event-ID of each request.
func replayServer(t *testing.T, events []wireEvent) (url string, lastIDs func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last := r.Header.Get("Last-Event-ID")
		mu.Lock()
		seen = append(seen, last)
		mu.Unlock()
		from := 0
		for i, e := range events {
			if last != "" && e.id != nil && *e.id == last {
				from = i + 1
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		var b strings.Builder
		for _, e := range events[from:] {
			if e.id != nil {
				fmt.Fprintf(&b, "id: %s\n", *e.id)
			}
			if e.data != "" {
				fmt.Fprintf(&b, "data: %s\n", e.data)
			}
			b.WriteString("\n")
		}
		fmt.Fprint(w, b.String())
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(server.Close)
	return server.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// An event that fn returns an error for is not counted in the last event
// ID: a new Stream of the same client, or a new client that starts from
// LastEventID(), delivers it again. An event without an id field keeps
// the ID before it, and an id field without data (no event) still moves
// the ID on. Before, the ID counted the failed event, and resuming
// skipped it.
func TestClientRedeliversTheEventFnRefused(t *testing.T) {
	tests := []struct {
		name     string
		events   []wireEvent
		fail     string // the data of the event fn refuses
		wantID   string // LastEventID after the refusal
		wantNext []string
	}{
		{"an event with an id",
			[]wireEvent{{idOf("1"), "a"}, {idOf("2"), "b"}, {idOf("3"), "c"}, {idOf("4"), "d"}},
			"c", "2", []string{"c", "d"}},
		{"the first event",
			[]wireEvent{{idOf("1"), "a"}, {idOf("2"), "b"}},
			"a", "", []string{"a", "b"}},
		{"an event without an id",
			[]wireEvent{{idOf("1"), "a"}, {nil, "b"}, {idOf("3"), "c"}},
			"b", "1", []string{"b", "c"}},
		{"an event with an id after one without",
			[]wireEvent{{idOf("1"), "a"}, {nil, "b"}, {idOf("3"), "c"}, {idOf("4"), "d"}},
			"c", "1", []string{"b", "c", "d"}}, // the stream cannot resume between b and c
		{"after an id without data",
			[]wireEvent{{idOf("1"), "a"}, {idOf("2"), ""}, {idOf("3"), "c"}},
			"c", "2", []string{"c"}},
	}
	for _, tt := range tests {
		for _, fresh := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/new client %v", tt.name, fresh), func(t *testing.T) {
				url, lastIDs := replayServer(t, tt.events)
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				refused := fmt.Errorf("fn refused %q", tt.fail)
				c := sse.NewClient(url, sse.ClientOptions{})
				var first []string
				err := c.Stream(ctx, func(m sse.Message) error {
					if m.Data == tt.fail {
						return refused
					}
					first = append(first, m.Data)
					return nil
				})
				require.ErrorIs(t, err, refused)
				require.Equal(t, tt.wantID, c.LastEventID())

				if fresh {
					c = sse.NewClient(url, sse.ClientOptions{LastEventID: c.LastEventID()})
				}
				var next []string
				err = c.Stream(ctx, func(m sse.Message) error {
					next = append(next, m.Data)
					if len(next) == len(tt.wantNext) {
						return errStop
					}
					return nil
				})
				require.ErrorIs(t, err, errStop)
				if diff := cmp.Diff(tt.wantNext, next); diff != "" {
					t.Errorf("the events after the refusal (-want +got):\n%s", diff)
				}
				assert.Equal(t, []string{"", tt.wantID}, lastIDs(), "the Last-Event-ID of each request")
			})
		}
	}
}

// Events and Follow over the package's Handler: an event fn refuses is
// delivered again by the next call; the final event that ends Follow is
// taken.
func TestClientEventsRedeliverOverTheHandler(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	all := sinktest.Events("r1", 1, 4)
	all[3].Type = progress.RunFinished
	f.publish(t, all...)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c := sse.NewClient(f.url("r1"), sse.ClientOptions{})
	var got []uint64
	err := c.Events(ctx, func(e progress.Event) error {
		if e.Seq == 3 {
			return errStop
		}
		got = append(got, e.Seq)
		return nil
	})
	require.ErrorIs(t, err, errStop)
	assert.Equal(t, "2", c.LastEventID())
	require.NoError(t, c.Follow(ctx, func(e progress.Event) error {
		got = append(got, e.Seq)
		return nil
	}))
	assert.Equal(t, sinktest.Span(1, 4), got)
	assert.Equal(t, "4", c.LastEventID(), "Follow took the final event")
}

// A message that Events cannot decode as an event ends it, and is not
// taken either: the last event ID stays before it.
func TestClientEventsDoesNotTakeANonEvent(t *testing.T) {
	url, _ := replayServer(t, []wireEvent{{idOf("1"), `{"runId":"r1","seq":1,"type":"run.started"}`}, {idOf("2"), "null"}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c := sse.NewClient(url, sse.ClientOptions{})
	var got []uint64
	err := c.Events(ctx, func(e progress.Event) error {
		got = append(got, e.Seq)
		return nil
	})
	require.ErrorIs(t, err, progress.ErrInvalidJSON)
	assert.Equal(t, []uint64{1}, got)
	assert.Equal(t, "1", c.LastEventID())
}

// To stop right after an event it takes, fn cancels the context and
// returns nil: the event counts in the last event ID, and fn is not
// called again, even for the events already read with it.
func TestClientStopsWhenFnCancels(t *testing.T) {
	url, _ := replayServer(t, []wireEvent{{idOf("1"), "a"}, {idOf("2"), "b"}, {idOf("3"), "c"}})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	c := sse.NewClient(url, sse.ClientOptions{})
	var got []string
	err := c.Stream(ctx, func(m sse.Message) error {
		got = append(got, m.Data)
		if m.Data == "b" {
			cancel(errStop)
		}
		return nil
	})
	require.ErrorIs(t, err, errStop)
	assert.Equal(t, []string{"a", "b"}, got)
	assert.Equal(t, "2", c.LastEventID())
}
