package main

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
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

// watchSessionChecks has each check of the open streams' sessions (see
// checkStreams) send its error, nil for a good one, on the channel it
// returns; the test resets checkStreamsHook.
func watchSessionChecks() <-chan error {
	checks := make(chan error, 64)
	checkStreamsHook = func(err error) {
		select {
		case checks <- err:
		default:
		}
	}
	return checks
}

// openEvents opens a stream of the events at url, sent with header,
// until ctx is done; the channel it returns has the error of the read of
// its body once the stream has ended.
func (h *harness) openEvents(ctx context.Context, url string, header http.Header) (done <-chan error) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", h.base+url, nil)
	require.NoError(h.t, err)
	req.Header = header
	resp, err := h.hc.Do(req)
	require.NoError(h.t, err)
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	ch := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ch <- err
	}()
	return ch
}

// waitSessionCheck waits for a check, on checks, whose read failed
// (failed), or not; it fails the test if the stream of done ends first,
// or bound is done.
func waitSessionCheck(t *testing.T, bound context.Context, checks, done <-chan error, failed bool) {
	t.Helper()
	for {
		select {
		case err := <-checks:
			if (err != nil) == failed {
				return
			}
		case err := <-done:
			t.Fatalf("the stream ended, its session live: %v", err)
		case <-bound.Done():
			t.Fatalf("no check with failed %v before the bound", failed)
		}
	}
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

// A check of the open streams' sessions that failed once (Postgres
// restarted, a lock on the table for a moment) ended every event stream
// open on a session cookie in the process: every browser's EventSource
// gave up at once (their reconnections got 503, or 401), for a hiccup.
// A failed check is now tried again at the next poll, and the streams
// go on; they end only when the sessions have gone unread for
// sessionsUnreadLimit (see TestOpenStreamEndsWhenItsSessionCannotBeRead).
func TestOpenStreamOutlivesAFailedSessionCheck(t *testing.T) {
	defer func(d time.Duration) { sessionPoll = d }(sessionPoll)
	sessionPoll = 20 * time.Millisecond
	checks := watchSessionChecks()
	h := startService(t, time.Hour) // the run goes on until the shutdown
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	cookie := http.Header{"Cookie": {sessionCookie + "=" + h.login(h.browser()).Value}}
	ctx, cancel := context.WithCancel(testenv.Context(t, 15*time.Second)) // a bound against a hang
	done := h.openEvents(ctx, run.Events, cookie)
	waitCheck := func(failed bool) {
		t.Helper()
		waitSessionCheck(t, ctx, checks, done, failed)
	}

	sessions := pgx.Identifier{h.pg.Schema, "service_sessions"}.Sanitize()
	_, err := h.pg.Pool.Exec(t.Context(), `ALTER TABLE `+sessions+` RENAME TO sessions_gone`)
	require.NoError(t, err)
	waitCheck(true)
	waitCheck(true)
	_, err = h.pg.Pool.Exec(t.Context(), `ALTER TABLE `+pgx.Identifier{h.pg.Schema, "sessions_gone"}.Sanitize()+` RENAME TO service_sessions`)
	require.NoError(t, err)
	waitCheck(false)
	waitCheck(false)
	cancel()
	<-done
	require.NoError(t, h.shutdown())
	checkStreamsHook = nil
	goleak.VerifyNone(t, h.leaks)
}

// The time since which the open streams' sessions had gone unread (see
// checkStreams) was forgotten only by a good check, and a check is made
// only while a stream is open: once the streams of a failed check had
// all closed before the next check, that time stayed, and the first
// failed check of the streams opened much later (a hiccup, hours after)
// ended them all at once, as if their sessions had gone unread for
// hours. A check with no stream to check now forgets it.
func TestFailedSessionCheckOfAnOldOutageDoesNotEndLaterStreams(t *testing.T) {
	defer func(d, l time.Duration) { sessionPoll, sessionsUnreadLimit = d, l }(sessionPoll, sessionsUnreadLimit)
	sessionPoll, sessionsUnreadLimit = 20*time.Millisecond, 300*time.Millisecond
	checks := watchSessionChecks()
	defer func() { checkStreamsHook = nil }()
	h := startService(t, time.Hour) // the run goes on until the shutdown
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	cookie := http.Header{"Cookie": {sessionCookie + "=" + h.login(h.browser()).Value}}
	bound := testenv.Context(t, 30*time.Second) // a bound against a hang
	open := func() (cancel context.CancelFunc, done <-chan error) {
		t.Helper()
		ctx, cancel := context.WithCancel(bound)
		return cancel, h.openEvents(ctx, run.Events, cookie)
	}
	waitCheck := func(failed bool, done <-chan error) {
		t.Helper()
		waitSessionCheck(t, bound, checks, done, failed)
	}
	sessions := pgx.Identifier{h.pg.Schema, "service_sessions"}.Sanitize()
	gone := pgx.Identifier{h.pg.Schema, "sessions_gone"}.Sanitize()
	hide := func() {
		t.Helper()
		_, err := h.pg.Pool.Exec(t.Context(), `ALTER TABLE `+sessions+` RENAME TO sessions_gone`)
		require.NoError(t, err)
	}
	restore := func() {
		t.Helper()
		_, err := h.pg.Pool.Exec(t.Context(), `ALTER TABLE `+gone+` RENAME TO service_sessions`)
		require.NoError(t, err)
	}

	// A failed check, then the stream closes before any other.
	cancel, done := open()
	hide()
	waitCheck(true, done)
	cancel()
	<-done
	for {
		h.s.streamsMu.Lock()
		n := len(h.s.streams)
		h.s.streamsMu.Unlock()
		if n == 0 {
			break
		}
		require.NoError(t, bound.Err(), "the stream closed by its client is still served")
		time.Sleep(5 * time.Millisecond)
	}
	restore()
	time.Sleep(2 * sessionsUnreadLimit) // long after that failed check, with no stream open

	// A stream opened now, and its first check fails: a hiccup, which
	// comes right after the read of its request's session.
	var once sync.Once
	sessionsReadHook = func([]string) { once.Do(hide) }
	defer func() { sessionsReadHook = nil }()
	cancel, done = open()
	waitCheck(true, done)
	restore()
	waitCheck(false, done)
	waitCheck(false, done)
	cancel()
	<-done
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
