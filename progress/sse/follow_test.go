package sse_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// Follow returns nil only once fn took the run's final event. Every other
// ending is an error a caller tells apart with errors.Is and errors.As: a
// 204 before the final event (a run unknown, expired or with no event
// within EmptyRunTimeout, or a last event ID at or past its end) wraps
// ErrNoFinalEvent, which Follow returned as nil, the same as the run's
// completion; a refusal is a *StatusError that errors.Is matches with the
// handler's sentinel for its status (401, 403, 404); a stream that ends
// without the final event is no ending (Follow reconnects, and the answer
// to the reconnection decides). The handler reads a real Redis.
func TestFollowEndings(t *testing.T) {
	r := testenv.NewRedis(t)
	stream, err := redisstream.New(r.Client, redisstream.Options{
		KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, BlockTime: 100 * time.Millisecond, Logger: quiet(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { stream.Close() })
	h, err := sse.NewHandler(stream, sse.HandlerOptions{
		Authorize: func(r *http.Request) (string, error) {
			run, _ := strings.CutPrefix(r.URL.Path, "/runs/")
			switch run {
			case "unauthorized":
				return "", fmt.Errorf("%w: no credentials", sse.ErrUnauthorized)
			case "forbidden":
				return "", fmt.Errorf("%w: run %s is not yours", sse.ErrForbidden, run)
			case "missing":
				return "", fmt.Errorf("%w: no run %s", sse.ErrNotFound, run)
			}
			return run, nil
		},
		CloseOnFinal: true, EmptyRunTimeout: 50 * time.Millisecond, Retry: time.Millisecond, Logger: quiet(),
	})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)
	ctx := context.Background()

	finished := sinktest.RunID(t) + "-finished"
	all := sinktest.Events(finished, 1, 5)
	all[4].Type = progress.RunFinished
	require.NoError(t, stream.Publish(ctx, all...))
	// A run that published three events, then expired: its stream is gone.
	expired := sinktest.RunID(t) + "-expired"
	require.NoError(t, stream.Publish(ctx, sinktest.Events(expired, 1, 3)...))
	require.NoError(t, r.Client.Del(ctx, stream.Key(expired)).Err())
	// A server whose stream ends after two events, without the final one,
	// and answers the reconnection 204.
	var requests atomic.Int32
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range sinktest.Events("r1", 1, 2) {
			data, err := e.MarshalJSON()
			assert.NoError(t, err)
			fmt.Fprintf(w, "retry: 1\nid: %d\ndata: %s\n\n", e.Seq, data)
		}
	}))
	t.Cleanup(cut.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database down", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)

	sentinels := []error{sse.ErrNoFinalEvent, sse.ErrNotFound, sse.ErrForbidden, sse.ErrUnauthorized}
	for _, tt := range []struct {
		name    string
		url     string
		lastID  string
		want    error  // the sentinel errors.Is finds, nil for none
		status  int    // the *StatusError's, 0 for none
		text    string // in the error's text
		seqs    []uint64
		finalID string // LastEventID once Follow returned
	}{
		{name: "final event", url: server.URL + "/runs/" + finished, seqs: sinktest.Span(1, 5), finalID: "5"},
		{name: "unknown run", url: server.URL + "/runs/" + sinktest.RunID(t) + "-never", want: sse.ErrNoFinalEvent,
			text: "sse: no final event: the server answered 204 No Content before any event"},
		{name: "expired run, resumed", url: server.URL + "/runs/" + expired, lastID: "3", want: sse.ErrNoFinalEvent,
			text: `sse: no final event: the server answered 204 No Content after event id "3"`, finalID: "3"},
		{name: "last event ID past the final", url: server.URL + "/runs/" + finished, lastID: "5", want: sse.ErrNoFinalEvent,
			text: `after event id "5"`, finalID: "5"},
		{name: "stream ended without the final event, then 204", url: cut.URL, want: sse.ErrNoFinalEvent,
			text: `after event id "2"`, seqs: sinktest.Span(1, 2), finalID: "2"},
		{name: "404", url: server.URL + "/runs/missing", want: sse.ErrNotFound, status: http.StatusNotFound, text: "no run missing"},
		{name: "403", url: server.URL + "/runs/forbidden", want: sse.ErrForbidden, status: http.StatusForbidden},
		{name: "401", url: server.URL + "/runs/unauthorized", want: sse.ErrUnauthorized, status: http.StatusUnauthorized},
		{name: "400", url: server.URL + "/runs/" + finished, lastID: "x", status: http.StatusBadRequest, text: "malformed last event ID", finalID: "x"},
		{name: "500", url: broken.URL, status: http.StatusInternalServerError, text: "database down"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, wait) // a bound against a hang
			defer cancel()
			c := sse.NewClient(tt.url, sse.ClientOptions{LastEventID: tt.lastID, Retry: time.Millisecond})
			var seqs []uint64
			err := c.Follow(cctx, func(e progress.Event) error {
				seqs = append(seqs, e.Seq)
				return nil
			})
			assert.Equal(t, tt.seqs, seqs)
			assert.Equal(t, tt.finalID, c.LastEventID())
			if tt.want == nil && tt.status == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err, "Follow must not end as after the final event")
			assert.NotErrorIs(t, err, context.DeadlineExceeded)
			for _, s := range sentinels {
				assert.Equal(t, s == tt.want, errors.Is(err, s), "errors.Is(%v, %v)", err, s)
			}
			var se *sse.StatusError
			if assert.Equal(t, tt.status != 0, errors.As(err, &se), "a *StatusError: %v", err) && se != nil {
				assert.Equal(t, tt.status, se.StatusCode)
			}
			assert.Contains(t, err.Error(), tt.text)
		})
	}
}
