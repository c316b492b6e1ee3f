package sse_test

import (
	"context"
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

// heartbeatLines are the lines of one keep-alive with KeepAliveEvent
// "heartbeat", exactly as HandlerOptions.KeepAliveEvent documents them.
var heartbeatLines = []string{"event: heartbeat", "data: {}", ""}

// frames reads the stream's next n frames (each up to its blank
// line).
func (s *rawStream) frames(t *testing.T, n int) [][]string {
	t.Helper()
	var out [][]string
	for range n {
		var f []string
		for {
			line := s.lines(t, 1)[0]
			f = append(f, line)
			if line == "" {
				break
			}
		}
		out = append(out, f)
	}
	return out
}

// EventSource never shows a comment line to JavaScript, so a page could
// not tell a quiet stream from one that a proxy stalls without closing
// (a page stuck at 71 events of 559, showing "running" for ever). With
// KeepAliveEvent each keep-alive is an event the page can listen to:
// exactly "event: <name>", "data: {}" and a blank line, with no id field,
// so that it never changes the browser's last event ID, and a reconnect
// resumes right after the last real event.
func TestHandlerKeepAliveEvent(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{KeepAlive: 20 * time.Millisecond, KeepAliveEvent: "heartbeat"})
	all := sinktest.Events("r1", 1, 4)
	f.publish(t, all[:2]...)

	s := openRaw(t, f.url("r1"), nil)
	got := s.frames(t, 5)
	want := [][]string{{"retry: 3000", ""}, frame(t, all[0]), frame(t, all[1]), heartbeatLines, heartbeatLines}
	require.Equal(t, want, got, "the stream's frames")

	// A browser reads the frames so: the heartbeats are events of their
	// own type, and leave the last event ID at the last real event's.
	d := sse.NewDecoder(strings.NewReader(wire(append([][]string{{"retry: 3000", ""}, frame(t, all[0]), frame(t, all[1])}, got[3:]...))))
	var msgs []sse.Message
	for {
		m, err := d.Next()
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	require.Len(t, msgs, 4)
	for _, m := range msgs[2:] {
		assert.Equal(t, sse.Message{ID: "2", Type: "heartbeat", Data: "{}"}, m)
	}
	assert.Equal(t, "2", d.LastEventID(), "the heartbeats changed the last event ID")

	// A live event after heartbeats is framed as before.
	f.publish(t, all[2])
	for {
		fr := s.frames(t, 1)[0]
		if assert.ObjectsAreEqual(heartbeatLines, fr) {
			continue
		}
		require.Equal(t, frame(t, all[2]), fr)
		break
	}

	// A reconnect with that last event ID resumes right after it, and
	// its heartbeats carry no id either.
	f.publish(t, all[3])
	r := openRaw(t, f.url("r1"), http.Header{"Last-Event-ID": {d.LastEventID()}})
	require.Equal(t, [][]string{{"retry: 3000", ""}, frame(t, all[2]), frame(t, all[3]), heartbeatLines},
		r.frames(t, 4), "the reconnect's frames")
}

// wire joins frames as the stream carries them.
func wire(frames [][]string) string {
	var b strings.Builder
	for _, f := range frames {
		for _, line := range f {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// Without KeepAliveEvent the keep-alive stays a comment line.
func TestHandlerKeepAliveIsACommentByDefault(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{KeepAlive: 20 * time.Millisecond})
	s := openRaw(t, f.url("r1"), nil)
	assert.Equal(t, [][]string{{"retry: 3000", ""}, {": keep-alive", ""}}, s.frames(t, 2))
}

// A KeepAliveEvent that would break the frame, or that onmessage would
// take for a progress event, or onerror or onopen for the EventSource's
// own (an event of a stream named "error" is dispatched as an error
// event), is refused with what is allowed.
func TestNewHandlerRefusesBadKeepAliveEvents(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	for _, name := range []string{"message", "error", "open", "heart beat", " heartbeat", "heart\nbeat", "heart\rbeat", "a\x00b", "\xff"} {
		t.Run(name, func(t *testing.T) {
			_, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, KeepAliveEvent: name})
			require.ErrorIs(t, err, sse.ErrInvalidOptions)
			assert.ErrorContains(t, err, "KeepAliveEvent")
		})
	}
	for _, name := range []string{"heartbeat", "keep-alive", "regen.heartbeat", "ping_1"} {
		_, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, KeepAliveEvent: name})
		assert.NoError(t, err, "KeepAliveEvent %q", name)
	}
}

// A Client reading a handler with KeepAliveEvent gets each heartbeat as a
// message of that type, not a progress event: Events and Follow skip it,
// as a page's onmessage does, rather than fail on its "{}" with
// progress.ErrInvalidJSON. Before, Follow ended at the first heartbeat.
func TestClientSkipsHeartbeats(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, Logger: quiet(),
		KeepAlive: time.Millisecond, KeepAliveEvent: "heartbeat"})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)
	events := sinktest.Events("r1", 1, 3)
	events[2].Type = progress.RunFinished
	require.NoError(t, mem.Publish(context.Background(), events[0]))

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []uint64
	var raw []string
	c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Retry: time.Hour})
	err = c.Follow(ctx, func(e progress.Event) error {
		got = append(got, e.Seq)
		if e.Seq == 1 {
			// Heartbeats come once a stream has been quiet for
			// KeepAlive: let a few pass, on this stream and on
			// Follow's (opened before it), before the rest.
			r := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{Retry: time.Hour})
			_ = r.Stream(ctx, func(m sse.Message) error {
				raw = append(raw, m.Type)
				if len(raw) == 4 {
					return errStop
				}
				return nil
			})
			require.NoError(t, mem.Publish(ctx, events[1:]...))
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, sinktest.Span(1, 3), got)
	assert.Equal(t, []string{"message", "heartbeat", "heartbeat", "heartbeat"}, raw, "the stream's messages, as Stream gives them")
}
