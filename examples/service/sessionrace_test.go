package main

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// endSessionsOnRead makes the first read of an events request's sessions
// (see sessionsReadHook) end every session once it has read them, as a
// logout that comes right after the check does; it returns the error of
// that end, once the request has been answered.
func endSessionsOnRead(t *testing.T, h *harness) (ended func() error) {
	t.Helper()
	var once sync.Once
	var err error
	sessions := pgx.Identifier{h.pg.Schema, "service_sessions"}.Sanitize()
	sessionsReadHook = func([]string) {
		once.Do(func() { _, err = h.pg.Pool.Exec(context.Background(), `DELETE FROM `+sessions) })
	}
	return func() error { return err }
}

// An events request whose session ended between the service's check of
// its cookie and the SSE handler's (which read the session again) was
// answered 401 by the handler, in plain text and without
// WWW-Authenticate, which every other 401 of the service has. Every 401
// of the events route now carries it.
func TestSessionEndedWhileItsEventsRequestIsCheckedIsRefusedWithWWWAuthenticate(t *testing.T) {
	h := startService(t, time.Millisecond)
	defer func() { sessionsReadHook = nil }()
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	h.follow(run.RunID, "")
	for _, method := range []string{"GET", "HEAD"} {
		cookie := http.Header{"Cookie": {sessionCookie + "=" + h.login(h.browser()).Value}}
		ended := endSessionsOnRead(t, h)
		resp := h.send(h.hc, method, run.Events, cookie)
		require.NoError(t, ended())
		if resp.StatusCode == http.StatusUnauthorized {
			assert.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"), "%s: a 401 of the session ended meanwhile", method)
		} else {
			assert.Equal(t, http.StatusOK, resp.StatusCode, "%s: checked before its session ended", method)
		}
		again := h.send(h.hc, method, run.Events, cookie)
		assert.Equal(t, http.StatusUnauthorized, again.StatusCode, "%s: once the session has ended", method)
		assert.Equal(t, "Bearer", again.Header.Get("WWW-Authenticate"), method)
	}
	require.NoError(t, h.shutdown())
	sessionsReadHook = nil
	goleak.VerifyNone(t, h.leaks)
}

// An events request on a session cookie read its session twice: once
// in the service's check (serveEvents), once more in the SSE handler's
// Authorize, two round trips to Postgres, and a session ended between
// them had the request refused by the handler, in plain text, after the
// service had taken it. The session is now read once per request: the
// handler's Authorize takes the service's check; a stream whose session
// ends afterwards is ended by watchSessions.
func TestEventsRequestReadsItsSessionOnce(t *testing.T) {
	h := startService(t, time.Millisecond)
	defer func() { sessionsReadHook = nil }()
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	h.follow(run.RunID, "")
	var reads atomic.Int32
	sessionsReadHook = func([]string) { reads.Add(1) }
	cookie := http.Header{"Cookie": {sessionCookie + "=" + h.login(h.browser()).Value}}
	for _, method := range []string{"GET", "HEAD"} {
		reads.Store(0)
		resp := h.send(h.hc, method, run.Events, cookie)
		require.Equal(t, http.StatusOK, resp.StatusCode, method)
		assert.EqualValues(t, 1, reads.Load(), "%s: the reads of the request's session", method)
	}
	// A session ended right after the request's one check: the request
	// was taken.
	for _, method := range []string{"GET", "HEAD"} {
		cookie := http.Header{"Cookie": {sessionCookie + "=" + h.login(h.browser()).Value}}
		ended := endSessionsOnRead(t, h)
		resp := h.send(h.hc, method, run.Events, cookie)
		require.NoError(t, ended())
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s: taken by its one check", method)
	}
	require.NoError(t, h.shutdown())
	sessionsReadHook = nil
	goleak.VerifyNone(t, h.leaks)
}
