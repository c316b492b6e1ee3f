package sse_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// A stream of a finished run that the Memory evicted ends after the run's
// final event, which the Memory keeps, with the source's ErrEvicted: the
// run ended, as a host with many streams sees it every time a view of an
// old run opens, so it logs no warning per stream (MemoryStats counts
// the evictions, for the host to watch).
func TestHandlerStreamOfAnEvictedRunLogsNoWarning(t *testing.T) {
	for _, tc := range []struct {
		name       string
		replayOnly bool
		lastID     string
	}{
		{"from the start", false, ""},
		{"behind", false, "1"},
		{"replay only", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			mem := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1})
			events := sinktest.Events("a", 1, 3)
			events[2].Type = progress.RunFinished
			require.NoError(t, mem.Publish(ctx, events...))
			require.NoError(t, mem.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts a
			var src progress.Source = mem
			if tc.replayOnly {
				src = struct{ progress.Source }{mem}
			}
			logs := &logRecorder{}
			h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, Logger: slog.New(logs)})
			require.NoError(t, err)
			server := httptest.NewServer(h)
			t.Cleanup(server.Close)

			req, err := http.NewRequest(http.MethodGet, server.URL+"/runs/a", nil)
			require.NoError(t, err)
			if tc.lastID != "" {
				req.Header.Set("Last-Event-ID", tc.lastID)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body) // the stream ends
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, string(body), "id: 3\n", "the run's final event is sent")
			waitFor(t, "the stream to end", func() bool { return h.Stats().Active == 0 })
			assert.Contains(t, logs.lines(), "DEBUG sse: stream ended: the source evicted the run")
			for _, line := range logs.lines() {
				assert.False(t, strings.HasPrefix(line, "WARN") || strings.HasPrefix(line, "ERROR"), "logged: %s", line)
			}
		})
	}
}
