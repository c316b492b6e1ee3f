package sse_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// serveData answers every request with one message whose data is data.
func serveData(t *testing.T, data string) string {
	t.Helper()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: 7\ndata: %s\n\n", data)
	}))
	t.Cleanup(server.Close)
	return server.URL
}

func TestClientEventsRefusesNonEvents(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantMsg string // part of the error's text
	}{
		{"malformed JSON", "{not json", "invalid character"},
		{"not JSON at all", "hello", "is not a JSON object"},
		{"null", "null", `data "null" is not a JSON object`},
		{"null with spaces", "  null ", "is not a JSON object"},
		{"a number", "42", "is not a JSON object"},
		{"an array", `[{"seq":1}]`, "is not a JSON object"},
		{"a string", `"event"`, "is not a JSON object"},
		{"empty data", "", `data "" is not a JSON object`},
		{"trailing garbage", `{"seq":1} x`, "invalid character"},
		{"wrong field type", `{"seq":"1"}`, "seq"},
		{"bad time", `{"seq":1,"time":"yesterday"}`, `time "yesterday" is not RFC 3339`},
		{"long data is clipped", strings.Repeat("x", 500), `"` + strings.Repeat("x", 64) + `..."`},
		{"an empty object", `{}`, "empty run ID"},
		{"an object of other keys", `{"bogus":1,"seq":3}`, "empty run ID"},
		{"no seq", `{"runId":"r1"}`, "seq is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait) // a regression would reconnect forever
			defer cancel()
			calls := 0
			err := sse.NewClient(serveData(t, tt.data), sse.ClientOptions{Retry: time.Millisecond}).Events(ctx, func(progress.Event) error {
				calls++
				return nil
			})
			require.ErrorIs(t, err, progress.ErrInvalidJSON)
			assert.ErrorContains(t, err, `sse: event id "7": progress: invalid event JSON: `)
			assert.ErrorContains(t, err, tt.wantMsg)
			assert.Zero(t, calls, "fn called for data that is not an event")
		})
	}
}

func TestClientEventsDecodes(t *testing.T) {
	want := sinktest.Events("r1", 1, 4)[3]
	data, err := want.MarshalJSON()
	require.NoError(t, err)
	var got []progress.Event
	err = sse.NewClient(serveData(t, " "+string(data)), sse.ClientOptions{}).Events(context.Background(), func(e progress.Event) error {
		got = append(got, e)
		return errStop
	})
	require.ErrorIs(t, err, errStop)
	assert.Empty(t, sinktest.Diff([]progress.Event{want}, got))
}

// Follow returns once fn took the run's final event, without waiting to
// reconnect (the retry here is an hour), and delivers everything before.
func TestClientFollowStopsAtTheFinalEvent(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, Logger: quiet()})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)
	events := sinktest.Events("r1", 1, 5)
	events[4].Type = progress.RunFinished
	require.NoError(t, mem.Publish(context.Background(), events...))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []uint64
	err = sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Retry: time.Hour}).Follow(ctx, func(e progress.Event) error {
		got = append(got, e.Seq)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, sinktest.Span(1, 5), got)
	// fn's own error still ends it, as with Events.
	err = sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{}).Follow(ctx, func(progress.Event) error { return errStop })
	assert.ErrorIs(t, err, errStop)
}
