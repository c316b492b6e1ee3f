package sse_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// logRecorder is a slog.Handler that keeps each record as "LEVEL message".
type logRecorder struct {
	mu      sync.Mutex
	records []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Level.String()+" "+r.Message)
	return nil
}

// lines returns the records kept so far.
func (l *logRecorder) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.records...)
}

var protos = []string{"HTTP/1.1", "HTTP/2.0"}

// serve serves h over proto, HTTP/2 with TLS, and returns the server and
// a client for it.
func serve(t *testing.T, h http.Handler, proto string) (*httptest.Server, *http.Client) {
	t.Helper()
	server := httptest.NewUnstartedServer(h)
	if proto == "HTTP/2.0" {
		server.EnableHTTP2 = true
		server.StartTLS()
	} else {
		server.Start()
	}
	t.Cleanup(server.Close)
	return server, server.Client()
}

// A client that stays connected but stops reading has its stream ended
// after WriteTimeout, which frees its slot and its reader of the source.
func TestHandlerEndsStalledStream(t *testing.T) {
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			logs := &logRecorder{}
			mem := progress.NewMemory(progress.MemoryOptions{})
			h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, WriteTimeout: 100 * time.Millisecond, Logger: slog.New(logs)})
			require.NoError(t, err)
			server, client := serve(t, h, proto)

			// 25 MiB of events: far beyond what socket buffers and HTTP/2
			// flow control windows hold.
			big := strings.Repeat("x", 64<<10)
			for seq := uint64(1); seq <= 400; seq++ {
				require.NoError(t, mem.Publish(context.Background(), progress.Event{RunID: "r1", Seq: seq, Type: progress.Message, Message: big}))
			}
			if proto == "HTTP/2.0" {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, server.URL+"/runs/r1", nil)
				require.NoError(t, err)
				resp, err := client.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close() // never read
				require.Equal(t, 2, resp.ProtoMajor)
			} else {
				conn, err := net.Dial("tcp", server.Listener.Addr().String())
				require.NoError(t, err)
				defer conn.Close() // open, but never read
				_, err = fmt.Fprint(conn, "GET /runs/r1 HTTP/1.1\r\nHost: x\r\n\r\n")
				require.NoError(t, err)
			}
			waitFor(t, "the stream to open", func() bool { return h.Stats().Served == 1 })
			waitFor(t, "the stalled stream to end", func() bool { return h.Stats().Active == 0 })
			waitFor(t, "its reader of the source to stop", func() bool { return mem.Stats().Readers == 0 })
			assert.Less(t, h.Stats().Events, uint64(400), "every event was written to a client that read none")
			if proto == "HTTP/1.1" {
				assert.Contains(t, logs.lines(), "INFO sse: stream ended: the client read nothing for the write timeout")
			}
		})
	}
}

// The write deadline covers the writes, not the silences between them:
// a WriteTimeout shorter than KeepAlive leaves a reading client's stream
// alone (on HTTP/2 a deadline left set would reset it while idle, and on
// HTTP/1 one set once would fail the first write after it).
func TestHandlerWriteTimeoutSparesIdleStream(t *testing.T) {
	// The short timeout is still far beyond a write to a local client
	// that reads, even on a loaded machine.
	const keepAlive, short = 500 * time.Millisecond, 300 * time.Millisecond
	for _, proto := range protos {
		for _, timeout := range []time.Duration{0, short, -1} {
			t.Run(fmt.Sprintf("%s WriteTimeout %v", proto, timeout), func(t *testing.T) {
				t.Parallel()
				mem := progress.NewMemory(progress.MemoryOptions{})
				h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, KeepAlive: keepAlive, WriteTimeout: timeout, Logger: quiet()})
				require.NoError(t, err)
				server, client := serve(t, h, proto)
				s := openRawWith(t, client, server.URL+"/runs/r1", nil)
				require.Equal(t, proto, s.resp.Proto)
				// Two keep-alives: each after a silence longer than the
				// short WriteTimeout.
				assert.Equal(t, []string{"retry: 3000", "", ": keep-alive", "", ": keep-alive", ""}, s.lines(t, 6))
				all := sinktest.Events("r1", 1, 1)
				require.NoError(t, mem.Publish(context.Background(), all...))
				got := s.lines(t, 3)
				for got[0] == ": keep-alive" {
					got = append(got[2:], s.lines(t, 2)...)
				}
				assert.Equal(t, frame(t, all[0]), got)
			})
		}
	}
}

// noDeadline wraps a ResponseWriter as a plain middleware does, keeping
// Flush but hiding SetWriteDeadline.
type noDeadline struct{ http.ResponseWriter }

func (w noDeadline) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// noFlush hides all but Header, Write and WriteHeader.
type noFlush struct{ http.ResponseWriter }

// unwrapping hides everything too, but offers Unwrap, which
// http.ResponseController follows.
type unwrapping struct{ http.ResponseWriter }

func (w unwrapping) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestHandlerResponseWriterWrappers(t *testing.T) {
	tests := []struct {
		name     string
		wrap     func(http.ResponseWriter) http.ResponseWriter
		wantCode int
		wantBody string // for a refused request
		wantLogs []string
	}{
		{
			name:     "unwrap method",
			wrap:     func(w http.ResponseWriter) http.ResponseWriter { return unwrapping{w} },
			wantCode: http.StatusOK,
		},
		{
			name:     "no write deadline: streams, and warns once",
			wrap:     func(w http.ResponseWriter) http.ResponseWriter { return noDeadline{w} },
			wantCode: http.StatusOK,
			wantLogs: []string{"WARN sse: the ResponseWriter supports no write deadline, so a client that stops reading " +
				"keeps its stream until the connection fails, and a server WriteTimeout may cut streams; " +
				"give a middleware's ResponseWriter wrapper an Unwrap method"},
		},
		{
			name:     "no flush: refused, and logged each time",
			wrap:     func(w http.ResponseWriter) http.ResponseWriter { return noFlush{w} },
			wantCode: http.StatusInternalServerError,
			wantBody: "sse: this server cannot stream events: its response writer cannot flush\n",
			wantLogs: []string{
				"ERROR sse: the ResponseWriter cannot flush, so no event would reach the client; " +
					"a middleware's ResponseWriter wrapper must implement http.Flusher or have an Unwrap method",
				"ERROR sse: the ResponseWriter cannot flush, so no event would reach the client; " +
					"a middleware's ResponseWriter wrapper must implement http.Flusher or have an Unwrap method",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logRecorder{}
			mem := progress.NewMemory(progress.MemoryOptions{})
			all := sinktest.Events("r1", 1, 1)
			require.NoError(t, mem.Publish(context.Background(), all...))
			h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, Logger: slog.New(logs)})
			require.NoError(t, err)
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(tt.wrap(w), r)
			}))
			t.Cleanup(server.Close)
			for range 2 {
				if tt.wantCode == http.StatusOK {
					s := openRaw(t, server.URL+"/runs/r1", nil)
					require.Equal(t, http.StatusOK, s.resp.StatusCode)
					assert.Equal(t, append([]string{"retry: 3000", ""}, frame(t, all[0])...), s.lines(t, 5))
					continue
				}
				resp, err := http.Get(server.URL + "/runs/r1")
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				assert.Equal(t, tt.wantCode, resp.StatusCode)
				assert.Equal(t, tt.wantBody, string(body))
				assert.Equal(t, 0, h.Stats().Active)
				assert.Zero(t, h.Stats().Served)
			}
			assert.Equal(t, tt.wantLogs, logs.lines())
		})
	}
}
