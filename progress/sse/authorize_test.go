package sse_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// The story: a host's Authorize checks the session in a store that is
// down for a moment, and returns the store's error. Before, the handler
// answered 500, on which Client.Stream ended with a *StatusError, as a
// browser's EventSource ends: a Go consumer lost its stream to a blip of
// someone else's store. Now the answer is 503 with Retry-After, which
// the client waits out (plus its jitter, at most half as much again),
// reconnecting with the same Last-Event-ID until the store is back.
func TestClientWaitsOutAFailingAuthorize(t *testing.T) {
	errStoreDown := errors.New("sessions: dial tcp 127.0.0.1:1: connection refused")
	var calls atomic.Int32
	f := newFixture(t, sse.HandlerOptions{Retry: 2 * time.Second, // Retry-After: 2
		Authorize: func(r *http.Request) (string, error) {
			if calls.Add(1) <= 2 {
				return "", errStoreDown
			}
			return byPath(r)
		}})
	f.publish(t, sinktest.Events("r1", 1, 3)...)

	synctest.Test(t, func(t *testing.T) {
		log := newRequestLog()
		c := sse.NewClient(f.url("r1"), sse.ClientOptions{HTTPClient: &http.Client{Transport: log},
			LastEventID: "1", Retry: sse.MinRetry})
		sse.SetRand(c, draws(0.5))
		var got []string
		err := c.Stream(context.Background(), func(m sse.Message) error {
			got = append(got, m.ID)
			if m.ID == "3" {
				return errStop
			}
			return nil
		})
		require.ErrorIs(t, err, errStop, "the stream, once the store is back")
		assert.Equal(t, []string{"2", "3"}, got)
		assert.Equal(t, []int{http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusOK}, log.statuses())
		assert.Equal(t, []string{"1", "1", "1"}, log.lastEventIDs(), "each reconnect resumes where the client was")
		// Retry-After 2 s, and a draw of 0.5 adds a quarter of it; the
		// backoff from a base of MinRetry is shorter.
		assert.Equal(t, []time.Duration{2500 * time.Millisecond, 2500 * time.Millisecond}, log.waits())
	})
	assert.Equal(t, int32(3), calls.Load())
	assert.Zero(t, f.handler.Stats().Rejected, "Rejected counts the stream limit's refusals only")
}
