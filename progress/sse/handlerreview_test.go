package sse_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// EmptyRunTimeout bounds only a run without any event. A client whose
// last event ID is ahead of a run not started yet (a run ID used again)
// waits for the run's first event; once the run has events, at or below
// that ID, it is no longer a run without events: its response opens (as
// it does for the same client of a run that had events when it came),
// and is not answered 204, which would stop EventSource for good while
// the run goes on to the events the client has not seen. Before, the
// events at or below the ID neither opened the response nor stopped the
// bound, and the request got 204 at EmptyRunTimeout.
func TestHandlerEmptyRunTimeoutSparesAClientAheadOfAStartedRun(t *testing.T) {
	for _, closeOnFinal := range []bool{false, true} {
		for _, replayOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("CloseOnFinal %v, replay-only source %v", closeOnFinal, replayOnly), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					mem := progress.NewMemory(progress.MemoryOptions{})
					var src progress.Source = mem
					if replayOnly {
						src = struct{ progress.Source }{mem}
					}
					const bound = time.Minute
					h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, Logger: quiet(),
						EmptyRunTimeout: bound, CloseOnFinal: closeOnFinal, KeepAlive: time.Hour, WriteTimeout: -1})
					require.NoError(t, err)
					ctx, cancel := context.WithCancel(context.Background())
					req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/runs/r1", nil)
					req.Header.Set("Last-Event-ID", "9")
					w := httptest.NewRecorder()
					served := make(chan struct{})
					go func() {
						defer close(served)
						h.ServeHTTP(w, req)
					}()
					synctest.Wait() // the request waits for the run's first event
					all := sinktest.Events("r1", 1, 10)
					require.NoError(t, mem.Publish(context.Background(), all[:3]...))
					time.Sleep(2 * bound)
					synctest.Wait()
					require.Equal(t, http.StatusOK, w.Code, "the run has events; EmptyRunTimeout no longer applies")
					require.NoError(t, mem.Publish(context.Background(), all[3:]...))
					synctest.Wait()
					cancel()
					<-served
					data, err := all[9].MarshalJSON()
					require.NoError(t, err)
					assert.Equal(t, "retry: 3000\n\nid: 10\ndata: "+string(data)+"\n\n", w.Body.String(),
						"the retry field, then the first event past the client's last event ID")
					assert.True(t, strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream"))
				})
			})
		}
	}
}
