package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// A run's report was kept (GET /runs/{run} showed it ended, with its
// report) before its lecture was freed: while the run's lock was given
// up, a new run of the lecture was refused, 409 "a run of this lecture is
// going on", though none was (TestRunIsCancelledWhenItsLockIsLost failed
// so, now and then). A request now waits while the lock is given up.
func TestLectureIsFreeOnceItsRunHasEnded(t *testing.T) {
	h := startService(t, time.Millisecond)
	for round := range 30 {
		var e map[string]string // the answer, an error's or a run's
		status := h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &e)
		require.Equal(t, http.StatusAccepted, status, "round %d: %s", round, e["error"])
		h.getRun(e["runId"]) // its report is kept: the run has ended
	}
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// An edit that gave up waiting for its turn (another request of its
// lecture took or held the lecture's lock longer than the edit's bound)
// was answered 500 "starting the run failed", as if a server had failed:
// it is now answered 503 with Retry-After, nothing saved, as an edit
// past -max-runs is.
func TestEditThatGivesUpWaitingForItsTurnIs503(t *testing.T) {
	h := startService(t, time.Millisecond)
	idleLecture(t, h, "l")
	defer func(d time.Duration) { editTimeout = d }(editTimeout)
	// Long enough for the edit's reads before it waits (the lecture's
	// length), which on a busy machine under -race took over 100 ms and
	// were answered 500.
	editTimeout = time.Second
	h.s.mu.Lock()
	h.s.beginLocking("l") // another request's turn, which does not end
	h.s.mu.Unlock()

	req, err := http.NewRequest("POST", h.base+"/lectures/l/edits", strings.NewReader(`{"node": "script", "params": {"topic": "b"}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var e map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, e["error"])
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.Contains(t, e["error"], "nothing was saved")
	params, err := h.s.params.get(t.Context(), "l", "script")
	require.NoError(t, err)
	assert.NotContains(t, string(params), `"b"`, "the edit's parameters")

	h.s.mu.Lock()
	h.s.endLocking("l")
	h.s.mu.Unlock()
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A panic while a run request started its run (net/http recovers it)
// left the lecture's turn taken for good, since the turn was ended
// without a defer: every later request of the lecture waited for it as
// long as its client did. The turn now ends on every path, the lock
// taken is given up and the lecture freed, and the next request starts
// its run.
func TestPanicWhileARunStartsEndsItsTurn(t *testing.T) {
	h := startService(t, time.Millisecond)
	var panicked atomic.Bool
	startHook = func(string) {
		if panicked.CompareAndSwap(false, true) {
			panic("the test's start hook")
		}
	}
	defer func() { startHook = nil }()
	post := func(ctx context.Context) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", h.base+"/lectures/l/runs", strings.NewReader(`{"seconds": 10}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		return h.hc.Do(req)
	}
	_, err := post(t.Context())
	require.Error(t, err, "the handler panicked: net/http closes the connection")
	require.True(t, panicked.Load())

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a bound against a hang, not a timing assertion
	defer cancel()
	resp, err := post(ctx)
	require.NoError(t, err, "the next request of the lecture")
	defer resp.Body.Close()
	var e map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	assert.Equal(t, http.StatusAccepted, resp.StatusCode, e["error"])
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A run request took the lecture's lock, and waited for its turn, on the
// request's own context, which has no deadline: with Postgres stalled
// (no connection to be had), it and the lecture's other requests waited
// as long as their clients did. It is now bounded by runTimeout, and
// answered 503 with Retry-After when the bound passes, as an edit that
// gives up is, having changed nothing.
func TestRunRequestThatCannotTakeTheLockIs503(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall func(t *testing.T, h *harness) (undo func())
	}{
		{"Postgres stalls", func(t *testing.T, h *harness) func() {
			var conns []*pgxpool.Conn // every connection of the service's pool, held
			for range h.s.pool.Stat().MaxConns() {
				c, err := h.s.pool.Acquire(t.Context())
				require.NoError(t, err)
				conns = append(conns, c)
			}
			return func() {
				for _, c := range conns {
					c.Release()
				}
			}
		}},
		{"another request's turn does not end", func(t *testing.T, h *harness) func() {
			h.s.mu.Lock()
			h.s.beginLocking("l")
			h.s.mu.Unlock()
			return func() {
				h.s.mu.Lock()
				h.s.endLocking("l")
				h.s.mu.Unlock()
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startService(t, time.Millisecond)
			defer func(d time.Duration) { runTimeout = d }(runTimeout)
			runTimeout = time.Second
			undo := sync.OnceFunc(tc.stall(t, h))
			defer undo()

			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a bound against a hang, not a timing assertion
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "POST", h.base+"/lectures/l/runs", strings.NewReader(`{"seconds": 10}`))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := h.hc.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var e map[string]string
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, e["error"])
			assert.NotEmpty(t, resp.Header.Get("Retry-After"))

			undo()
			var s started
			require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &s), "once it passed")
			require.NoError(t, h.shutdown())
			goleak.VerifyNone(t, h.leaks)
		})
	}
}
