package sse_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// aheadCase is a client whose last event ID, 9, is ahead of its run: the
// run holds stored events (none if 0) when the client connects, and then
// ends at end.
type aheadCase struct {
	name          string
	stored, end   uint64
	emptyRunBound time.Duration
}

var aheadCases = []aheadCase{
	{"run under way", 3, 5, 0},
	{"run not started", 0, 5, 0},
	{"run not started, EmptyRunTimeout", 0, 5, time.Minute},
	{"run under way, EmptyRunTimeout", 3, 5, time.Minute},
}

// With CloseOnFinal, a client whose last event ID is ahead of its run (a
// run not started yet, or whose stream was lost) waits; when the run ends
// below that ID, the client is past the end, and is treated as one that
// reconnects there: its response ends, and its reconnect gets 204 (or the
// response, if it had not opened yet, is that 204). Before, the stream
// stayed open, silent, until the client left.
func TestHandlerCloseOnFinalAheadOfTheRun(t *testing.T) {
	for _, tt := range aheadCases {
		for _, replayOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/replay-only source %v", tt.name, replayOnly), func(t *testing.T) {
				f := newFixtureOf(t, sse.HandlerOptions{CloseOnFinal: true, Retry: time.Millisecond, EmptyRunTimeout: tt.emptyRunBound}, replayOnly)
				all := sinktest.Events("r1", 1, tt.end)
				all[tt.end-1].Type = progress.RunFinished
				if tt.stored > 0 {
					f.publish(t, all[:tt.stored]...)
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				c := sse.NewClient(f.url("r1"), sse.ClientOptions{LastEventID: "9"})
				done, got := streamIDs(ctx, c)
				opened := 1
				if tt.stored == 0 && tt.emptyRunBound > 0 {
					// The response waits for the run's first event, which
					// opens it though it is below the client's ID.
					opened = 0
				}
				// Active counts the request from its start, before the
				// handler has looked the run up: a run that ended before
				// that lookup is answered 204 at once.
				waitFor(t, "the client to wait for the run", func() bool {
					return f.handler.Stats().Active == 1 && c.Connects() == opened
				})
				f.publish(t, all[tt.stored:]...)
				require.NoError(t, <-done, "the run ended below the client's last event ID; its stream must end with a 204")
				assert.Empty(t, *got, "events at or below the client's last event ID")
				if opened == 0 {
					// Nothing tells when the handler has looked the run up:
					// if it did after the run ended, it answered 204 at
					// once, without a stream; otherwise the run's first
					// event opened one, ended at the final event.
					assert.LessOrEqual(t, c.Connects(), 1, "at most one stream, ended at the run's final event")
				} else {
					assert.Equal(t, 1, c.Connects(), "one stream, ended at the run's final event")
				}
				assert.Equal(t, "9", c.LastEventID())
				s := openRaw(t, f.url("r1"), http.Header{"Last-Event-ID": {"9"}})
				assert.Equal(t, http.StatusNoContent, s.resp.StatusCode, "a reconnect past the end")
			})
		}
	}
}

// A client ahead of its run that the run overtakes gets the events past
// its last event ID, then the end.
func TestHandlerCloseOnFinalRunOvertakesTheClient(t *testing.T) {
	for _, stored := range []uint64{0, 3} {
		for _, replayOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("stored %d, replay-only source %v", stored, replayOnly), func(t *testing.T) {
				f := newFixtureOf(t, sse.HandlerOptions{CloseOnFinal: true, Retry: time.Millisecond}, replayOnly)
				all := sinktest.Events("r1", 1, 12)
				all[11].Type = progress.RunFinished
				if stored > 0 {
					f.publish(t, all[:stored]...)
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				c := sse.NewClient(f.url("r1"), sse.ClientOptions{LastEventID: "9"})
				done, got := streamIDs(ctx, c)
				waitFor(t, "the client to wait for the run", func() bool { return f.handler.Stats().Active == 1 })
				for _, e := range all[stored:] {
					f.publish(t, e)
				}
				require.NoError(t, <-done)
				assert.Equal(t, []string{"10", "11", "12"}, *got)
			})
		}
	}
}

// flakyLast is a source whose LastEvent fails its first calls, as a
// Redis down for a moment does.
type flakyLast struct {
	*progress.Memory
	fails atomic.Int32
}

func (f *flakyLast) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	if f.fails.Add(-1) >= 0 {
		return progress.Event{}, false, errors.New("connection refused")
	}
	return f.Memory.LastEvent(ctx, runID)
}

// With CloseOnFinal, a client ahead of its run whose first lookup of the
// run's newest event failed is read from its own ID; a later lookup, at
// a keep-alive, finds it ahead and ends its stream, so that it reconnects
// and is answered as a working lookup answers it: 204 past the run's end,
// or the events past its ID. Before, its stream stayed open and silent
// until it left.
func TestHandlerCloseOnFinalAheadAfterAFailedLookup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stored uint64 // events stored when the client connects; the run ends at 5 if stored is 5
		fails  int32  // failed lookups
		want   []string
	}{
		{"run ended below the client", 5, 1, nil},
		{"run ended below the client, two failed lookups", 5, 2, nil},
		{"run under way below the client", 3, 1, []string{"10", "11", "12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &flakyLast{Memory: progress.NewMemory(progress.MemoryOptions{})}
			src.fails.Store(tc.fails)
			h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true,
				Retry: time.Millisecond, KeepAlive: 10 * time.Millisecond, Logger: quiet()})
			require.NoError(t, err)
			server := httptest.NewServer(h)
			defer server.Close()
			end := uint64(12)
			if tc.stored == 5 {
				end = 5
			}
			all := sinktest.Events("r1", 1, end)
			all[end-1].Type = progress.RunFinished
			require.NoError(t, src.Publish(context.Background(), all[:tc.stored]...))

			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{LastEventID: "9"})
			done, got := streamIDs(ctx, c)
			if tc.stored < end {
				// The client reconnects once the lookup works, and is
				// then read from the run's newest event.
				waitFor(t, "the client to reconnect", func() bool { return c.Connects() >= 2 })
				waitFor(t, "the client to wait for the run", func() bool { return h.Stats().Active == 1 })
				require.NoError(t, src.Publish(context.Background(), all[tc.stored:]...))
			}
			require.NoError(t, <-done, "the stream must end, and the reconnect past the end get 204")
			assert.Equal(t, tc.want, *got)
		})
	}
}

// slowLast is a source whose LastEvent fails its first call, as a Redis
// down for a moment does, and whose later calls take a second to return
// once their context ends, as a call in flight on a connection does. It
// counts the calls in flight.
type slowLast struct {
	*progress.Memory
	calls    atomic.Int32
	inflight atomic.Int32
}

func (s *slowLast) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	if s.calls.Add(1) == 1 {
		return progress.Event{}, false, errors.New("connection refused")
	}
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	<-ctx.Done()
	time.Sleep(time.Second)
	return progress.Event{}, false, ctx.Err()
}

// The lookup that a keep-alive makes again after a failed one is the
// handler's own work: when the handler returns, it has ended, so that no
// goroutine of the request is left calling the source (which the host
// may close once its server has shut down). Before, ServeHTTP returned
// while that lookup was still in flight.
func TestHandlerReprobeEndsWithTheRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &slowLast{Memory: progress.NewMemory(progress.MemoryOptions{})}
		require.NoError(t, src.Publish(context.Background(), sinktest.Events("r1", 1, 3)...))
		h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true,
			KeepAlive: time.Second, Logger: quiet()})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/runs/r1", nil)
		req.Header.Set("Last-Event-ID", "9")
		served := make(chan struct{})
		go func() {
			defer close(served)
			h.ServeHTTP(httptest.NewRecorder(), req)
		}()
		time.Sleep(time.Second) // the keep-alive: the lookup is made again
		synctest.Wait()
		require.Equal(t, int32(1), src.inflight.Load(), "the second lookup")
		cancel() // the client leaves
		<-served
		assert.Zero(t, src.inflight.Load(), "lookups of the source still in flight after ServeHTTP returned")
		time.Sleep(2 * time.Second) // a lookup left behind ends before the bubble does
	})
}

// streamIDs follows c's stream in a goroutine, collecting the IDs of its
// events into got, which may be read once done has delivered Stream's
// result.
func streamIDs(ctx context.Context, c *sse.Client) (done <-chan error, got *[]string) {
	ch, ids := make(chan error, 1), new([]string)
	go func() {
		ch <- c.Stream(ctx, func(m sse.Message) error {
			*ids = append(*ids, m.ID)
			return nil
		})
	}()
	return ch, ids
}

// A client with no last event ID, of a run without events, whose lookup
// of the run fails (a Redis blip) gets an open stream (a lookup that
// failed says nothing of the run); the stream is still bounded by
// EmptyRunTimeout: it ends when no event came, and the reconnect, looked
// up again, is answered 204. A run whose first event comes in time is
// followed as usual.
func TestHandlerEmptyRunAfterAFailedLookup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events bool // the run's events come after the client connects
		want   []string
	}{
		{"run without events", false, nil},
		{"run whose events come", true, []string{"1", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &flakyLast{Memory: progress.NewMemory(progress.MemoryOptions{})}
			src.fails.Store(1)
			h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true,
				EmptyRunTimeout: 200 * time.Millisecond, Retry: time.Millisecond, KeepAlive: 10 * time.Millisecond, Logger: quiet()})
			require.NoError(t, err)
			server := httptest.NewServer(h)
			defer server.Close()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c := sse.NewClient(server.URL+"/runs/r1", sse.ClientOptions{})
			done, got := streamIDs(ctx, c)
			if tc.events {
				waitFor(t, "the client to wait for the run", func() bool { return h.Stats().Active == 1 })
				all := sinktest.Events("r1", 1, 2)
				all[1].Type = progress.RunFinished
				require.NoError(t, src.Publish(context.Background(), all...))
			}
			require.NoError(t, <-done, "the stream must end, and the reconnect get 204")
			assert.Equal(t, tc.want, *got)
			if !tc.events {
				assert.Equal(t, 1, c.Connects(), "one stream, ended by EmptyRunTimeout; the reconnect got 204")
			}
		})
	}
}
