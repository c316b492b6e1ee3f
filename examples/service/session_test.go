package main

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// browser is a client that keeps cookies, as a browser does, and sends
// no Authorization header of its own: a page's EventSource.
func (h *harness) browser() *http.Client {
	h.t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(h.t, err)
	return &http.Client{Transport: h.hc.Transport, Jar: jar}
}

// send sends a request with the headers given, through hc, and returns
// its response, whose body it has read and closed.
func (h *harness) send(hc *http.Client, method, path string, header http.Header) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, nil)
	require.NoError(h.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	require.NoError(h.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// login is POST /session with the token, through the browser hc: its jar
// keeps the session cookie. It returns the cookie.
func (h *harness) login(hc *http.Client) *http.Cookie {
	h.t.Helper()
	resp := h.send(hc, "POST", "/session", http.Header{"Authorization": {"Bearer " + token}})
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	cookies := resp.Cookies()
	require.Len(h.t, cookies, 1, "Set-Cookie: %q", resp.Header.Values("Set-Cookie"))
	return cookies[0]
}

// loginWith is POST /session with the token and the session cookie
// value alone, as a browser sends it with the cookie it holds. It
// returns the new session's cookie value.
func (h *harness) loginWith(value string) string {
	h.t.Helper()
	resp := h.send(h.hc, "POST", "/session", http.Header{"Authorization": {"Bearer " + token}, "Cookie": {sessionCookie + "=" + value}})
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	require.Len(h.t, resp.Cookies(), 1)
	return resp.Cookies()[0].Value
}

// endedRunReader starts a run of lecture l and follows it to its end. It
// returns a GET of that run's events sent with the session cookie value
// alone, which answers the status: 200 for a session the service takes
// as live, 401 for one it does not.
func (h *harness) endedRunReader() (read func(value string) int) {
	h.t.Helper()
	var run started
	require.Equal(h.t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	h.follow(run.RunID, "")
	return func(value string) int {
		h.t.Helper()
		return h.send(h.hc, "GET", run.Events, http.Header{"Cookie": {sessionCookie + "=" + value}}).StatusCode
	}
}

// followWith follows a run's events with the package's SSE client
// through hc, without an Authorization header, as EventSource does.
func (h *harness) followWith(hc *http.Client, runID string) ([]progress.Event, error) {
	h.t.Helper()
	c := sse.NewClient(h.base+"/runs/"+runID+"/events", sse.ClientOptions{HTTPClient: hc, Retry: 100 * time.Millisecond})
	var events []progress.Event
	ctx := testenv.Context(h.t, time.Minute) // a bound against a hang, not a timing assertion
	err := c.Follow(ctx, func(e progress.Event) error {
		events = append(events, e)
		return nil
	})
	return events, err
}

// requireStatus checks that err is the SSE client's for a server that
// answered status.
func requireStatus(t *testing.T, status int, err error, msg string) {
	t.Helper()
	var se *sse.StatusError
	require.ErrorAs(t, err, &se, msg)
	require.Equal(t, status, se.StatusCode, "%s: %v", msg, err)
}

// A browser cannot set the Authorization header on an EventSource: it
// follows a run with the session cookie that POST /session sets. The
// cookie authorizes reading the events route alone, never a request
// that changes anything.
func TestBrowserFollowsARunWithTheSessionCookie(t *testing.T) {
	h := startService(t, 2*time.Millisecond)
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 20}`, &run))

	// Without the cookie: 401, as the service handed the URL out.
	browser := h.browser()
	_, err := h.followWith(browser, run.RunID)
	requireStatus(t, http.StatusUnauthorized, err, "an EventSource without the cookie")

	c := h.login(browser)
	assert.Equal(t, sessionCookie, c.Name)
	assert.Equal(t, "/", c.Path, "sent to the events route, and to DELETE /session, which ends its session")
	assert.True(t, c.HttpOnly, "no script reads it")
	assert.Equal(t, http.SameSiteStrictMode, c.SameSite, "no cross-site request carries it")
	assert.False(t, c.Secure, "plain HTTP on loopback: a Secure cookie would not be sent back")
	assert.Equal(t, int(sessionTTL/time.Second), c.MaxAge)
	assert.NotContains(t, c.Value, token, "the cookie is not the token")

	events, err := h.followWith(browser, run.RunID)
	require.NoError(t, err)
	requireWholeRun(t, run.RunID, events)
	resp := h.send(browser, "HEAD", run.Events, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "HEAD with the cookie")
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	// The cookie authorizes nothing else: the browser's jar sends it to
	// every route, and a page may send it anywhere, but
	// every other request still needs the header (no cross-site form can
	// set it, so no request forgery rides on the cookie).
	cookie := http.Header{"Cookie": {c.String()}}
	for _, tc := range []struct {
		name, method, path string
		hc                 *http.Client
		header             http.Header
		want               int
	}{
		{"a cancel, from the jar", "POST", "/runs/" + run.RunID + "/cancel", browser, nil, http.StatusUnauthorized},
		{"a run's record, from the jar", "GET", "/runs/" + run.RunID, browser, nil, http.StatusUnauthorized},
		{"a create", "POST", "/lectures/l/runs", h.hc, cookie, http.StatusUnauthorized},
		{"an edit", "POST", "/lectures/l/edits", h.hc, cookie, http.StatusUnauthorized},
		{"a list", "GET", "/lectures/l/runs", h.hc, cookie, http.StatusUnauthorized},
		{"a new session", "POST", "/session", h.hc, cookie, http.StatusUnauthorized},
		{"a POST to the events", "POST", run.Events, browser, nil, http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.send(tc.hc, tc.method, tc.path, tc.header)
			assert.Equal(t, tc.want, resp.StatusCode)
		})
	}
	// The header, when sent, is what counts: another token is refused
	// with the cookie too.
	resp = h.send(browser, "GET", run.Events, http.Header{"Authorization": {"Bearer nope"}})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	// DELETE /session ends the session in the browser.
	resp = h.send(browser, "DELETE", "/session", http.Header{"Authorization": {"Bearer " + token}})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Len(t, resp.Cookies(), 1)
	assert.Equal(t, -1, resp.Cookies()[0].MaxAge, "Max-Age=0: the browser deletes it")
	assert.Equal(t, "/", resp.Cookies()[0].Path)
	u, err := url.Parse(h.base + run.Events)
	require.NoError(t, err)
	assert.Empty(t, browser.Jar.Cookies(u))
	_, err = h.followWith(browser, run.RunID)
	requireStatus(t, http.StatusUnauthorized, err, "after DELETE /session")

	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A session cookie could not be revoked: DELETE /session had the browser
// delete it, but the service kept no state of its sessions, so a copy
// taken before (another tab's, a stolen one) read events until it
// expired, 12 hours later, in every process. Sessions are now rows of the
// service's own: DELETE /session deletes the session of the cookie it is
// sent with, and every process of the service refuses that cookie from
// then on; the other sessions are good still.
func TestLogoutRevokesTheSessionInEveryProcess(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h1 := startServiceOn(t, pg, rd, time.Millisecond, nil)
	leaks := h1.leaks
	h2 := startServiceOn(t, pg, rd, time.Millisecond, nil)
	var run started
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	h1.follow(run.RunID, "")
	browser := h1.browser()
	copied := h1.login(browser).Value // a copy of the cookie, kept elsewhere
	other := h1.login(h1.browser()).Value
	read := func(h *harness, value string) int {
		t.Helper()
		return h.send(h.hc, "GET", run.Events, http.Header{"Cookie": {sessionCookie + "=" + value}}).StatusCode
	}
	for _, h := range []*harness{h1, h2} {
		require.Equal(t, http.StatusOK, read(h, copied), "the session, before its logout")
		require.Equal(t, http.StatusOK, read(h, other), "another session")
	}

	bearer := http.Header{"Authorization": {"Bearer " + token}}
	resp := h1.send(browser, "DELETE", "/session", bearer)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	for i, h := range []*harness{h1, h2} {
		assert.Equal(t, http.StatusUnauthorized, read(h, copied), "process %d: the copy of the cookie, after its logout", i+1)
		assert.Equal(t, http.StatusOK, read(h, other), "process %d: another session, after the first's logout", i+1)
	}
	// Again, with the copy: nothing is left to end.
	resp = h2.send(h2.hc, "DELETE", "/session", http.Header{"Authorization": bearer["Authorization"], "Cookie": {sessionCookie + "=" + copied}})
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)

	require.NoError(t, h1.shutdown())
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A session cookie that is not one the service made, or has expired,
// is answered 401 with WWW-Authenticate, as a request without a token is:
// the page logs in again.
func TestWrongSessionCookie(t *testing.T) {
	h := startService(t, 2*time.Millisecond)
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	h.follow(run.RunID, "")
	good := h.login(h.browser()).Value
	id, ok := checkSession(h.s.cookieKey, good, time.Now())
	require.True(t, ok, "the cookie POST /session set")
	secret, err := h.s.params.sessionSecret(t.Context())
	require.NoError(t, err)
	now := time.Now()
	for _, tc := range []struct{ name, value string }{
		{"empty", ""},
		{"garbage", "nope"},
		{"the token itself", token},
		{"another token's", sessionValue(sessionKey(secret, "another-token"), id, now.Add(time.Hour))},
		{"another secret's", sessionValue(sessionKey(newSessionSecret(), token), id, now.Add(time.Hour))},
		{"expired", sessionValue(h.s.cookieKey, id, now.Add(-time.Second))},
		{"its session unknown", sessionValue(h.s.cookieKey, newSessionID(), now.Add(time.Hour))},
		{"its session ID changed", strings.Replace(good, "."+id+".", "."+newSessionID()+".", 1)},
		{"without a session ID", sessionValue(h.s.cookieKey, "", now.Add(time.Hour))},
		{"its time changed", strings.Replace(good, ".", ".9", 1)},
		{"its MAC changed", good[:len(good)-2] + "AA"},
		{"its MAC cut", good[:len(good)-1]},
		{"another version", "v0" + strings.TrimPrefix(good, sessionVersion)},
		{"a time past int64", sessionVersion + ".99999999999999999999." + id + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(h.s.cookieKey, sessionVersion+".99999999999999999999."+id))},
		{"the version before, which no session backed", func() string {
			payload := "v1." + strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
			return payload + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(h.s.cookieKey, payload))
		}()},
		{"its MAC doubled", good + good[strings.LastIndexByte(good, '.')+1:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{"GET", "HEAD"} {
				resp := h.send(h.hc, method, run.Events, http.Header{"Cookie": {sessionCookie + "=" + tc.value}})
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, method)
				assert.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"), method)
			}
		})
	}
	// A stale cookie beside a good one (another path, another session):
	// the good one counts.
	resp := h.send(h.hc, "GET", run.Events, http.Header{"Cookie": {sessionCookie + "=nope; " + sessionCookie + "=" + good}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// The session cookie is Secure, so that a browser sends it over HTTPS
// only, unless the browser reaches the service over plain HTTP on
// loopback (a browser sends no Secure cookie over plain HTTP to
// 127.0.0.1; Go's cookie jar none to any host).
func TestSessionCookieSecure(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		header       map[string]string
		want         bool
	}{
		{"127.0.0.1", "http://127.0.0.1:8080/session", nil, false},
		{"localhost", "http://localhost:8080/session", nil, false},
		{"a name under localhost", "http://app.localhost/session", nil, false},
		{"::1", "http://[::1]:8080/session", nil, false},
		{"HTTPS", "https://127.0.0.1:8080/session", nil, true},
		{"a proxy that passes the host", "http://regen.example.com/session", nil, true},
		{"a proxy's HTTPS", "http://127.0.0.1:8080/session", map[string]string{"X-Forwarded-Proto": "https"}, true},
		{"a proxy's plain HTTP", "http://127.0.0.1:8080/session", map[string]string{"X-Forwarded-Proto": "http"}, false},
		{"Forwarded", "http://127.0.0.1:8080/session", map[string]string{"Forwarded": `for=192.0.2.60;Proto=HTTPS;by=203.0.113.43`}, true},
		{"another loopback address", "http://127.1.2.3/session", nil, false},
		{"a private address", "http://10.0.0.1/session", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tc.target, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			assert.Equal(t, tc.want, secureCookie(r))
		})
	}
}

// The retention deletes the sessions that have expired, and those alone.
func TestExpiredSessionsArePruned(t *testing.T) {
	p, _ := newTestParams(t)
	now := time.Now()
	expired, live := newSessionID(), newSessionID()
	require.NoError(t, p.saveSession(t.Context(), expired, now.Add(-time.Second)))
	require.NoError(t, p.saveSession(t.Context(), live, now.Add(time.Hour)))
	for _, tc := range []struct {
		id   string
		want bool
	}{{expired, false}, {live, true}} {
		live, err := p.liveSessions(t.Context(), []string{tc.id})
		require.NoError(t, err)
		assert.Equal(t, tc.want, len(live) == 1, "session %s", tc.id)
	}

	n, err := p.pruneSessions(t.Context())
	require.NoError(t, err)
	assert.EqualValues(t, 1, n, "the sessions pruned")
	rows, err := p.pool.Query(t.Context(), `SELECT id FROM `+p.sessions)
	require.NoError(t, err)
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{live}, left, "the sessions left")
}

// A session that cannot be checked (Postgres fails) is answered 503,
// with Retry-After, never 401: EventSource gives up on either, but a 401
// tells the page that its session is over.
func TestSessionNotCheckedIs503(t *testing.T) {
	h := startService(t, time.Millisecond)
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	h.follow(run.RunID, "")
	cookie := http.Header{"Cookie": {sessionCookie + "=" + h.login(h.browser()).Value}}
	sessions := pgx.Identifier{h.pg.Schema, "service_sessions"}.Sanitize()
	_, err := h.pg.Pool.Exec(t.Context(), `ALTER TABLE `+sessions+` RENAME TO sessions_gone`)
	require.NoError(t, err)

	resp := h.send(h.hc, "GET", run.Events, cookie)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))

	_, err = h.pg.Pool.Exec(t.Context(), `ALTER TABLE `+pgx.Identifier{h.pg.Schema, "sessions_gone"}.Sanitize()+` RENAME TO service_sessions`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, h.send(h.hc, "GET", run.Events, cookie).StatusCode, "once the sessions can be read")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// followCookie follows a run's events on h with the package's SSE client,
// with the session cookie of value and no Authorization header, until
// ctx ends. Each event it takes is sent on got, if there is room.
func (h *harness) followCookie(ctx context.Context, runID, value string, got chan<- progress.Event) ([]progress.Event, error) {
	c := sse.NewClient(h.base+"/runs/"+runID+"/events", sse.ClientOptions{HTTPClient: h.hc,
		Header: http.Header{"Cookie": {sessionCookie + "=" + value}}, Retry: 100 * time.Millisecond})
	var events []progress.Event
	err := c.Follow(ctx, func(e progress.Event) error {
		events = append(events, e)
		select {
		case got <- e:
		default:
		}
		return nil
	})
	return events, err
}

// An event stream open when its session ended went on until its run
// ended, although every process refused the cookie from then on: a
// copy of a cookie kept reading a run's events, for hours, after its
// logout, and a session that expired while its stream was open kept
// reading too. Each process checks the sessions of its open streams
// every sessionPoll and ends the streams of the sessions ended (in any
// process) or expired; the reconnect is refused with 401, which ends
// EventSource. A stream of a session still live goes on.
func TestOpenStreamEndsWithItsSession(t *testing.T) {
	defer func(d time.Duration) { sessionPoll = d }(sessionPoll)
	sessionPoll = 20 * time.Millisecond
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h1 := startServiceOn(t, pg, rd, time.Hour, nil) // the runs go on until the shutdown
	leaks := h1.leaks
	h2 := startServiceOn(t, pg, rd, time.Hour, nil)
	var run, queued started
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	require.Equal(t, http.StatusAccepted, h1.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "x"}}`, &queued))
	require.Equal(t, run.RunID, queued.QueuedAfter, "queued: no event of its own until the run before it ends")

	// A stream of another session, open on h2 throughout.
	bctx, stopBystander := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(bctx, "GET", h2.base+run.Events, nil)
	require.NoError(t, err)
	req.Header.Set("Cookie", sessionCookie+"="+h1.login(h1.browser()).Value)
	resp, err := h2.hc.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	bystander := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		bystander <- err
	}()

	logout := func(t *testing.T, value string) {
		// From h1, with a copy of the cookie: the stream's client keeps it.
		resp := h1.send(h1.hc, "DELETE", "/session", http.Header{"Authorization": {"Bearer " + token},
			"Cookie": {sessionCookie + "=" + value}})
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
	}
	for _, tc := range []struct {
		name   string
		runID  string
		cookie func(t *testing.T) string
		end    func(t *testing.T, value string) // nil: the session expires
	}{
		{"ended in another process", run.RunID, func(*testing.T) string { return h1.login(h1.browser()).Value }, logout},
		{"ended while its run has no event yet", queued.RunID, func(*testing.T) string { return h1.login(h1.browser()).Value }, logout},
		{"expired", run.RunID, func(t *testing.T) string {
			// Good for 2 to 3 s: long enough to connect.
			id, exp := newSessionID(), time.Now().Add(3*time.Second).Truncate(time.Second)
			require.NoError(t, h2.s.params.saveSession(t.Context(), id, exp))
			return sessionValue(h2.s.cookieKey, id, exp)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value := tc.cookie(t)
			// A bound against a hang, not a timing assertion: the
			// sessions are checked every 20 ms.
			ctx := testenv.Context(t, 15*time.Second)
			got := make(chan progress.Event, 1)
			type result struct {
				events []progress.Event
				err    error
			}
			done := make(chan result, 1)
			active := h2.s.events.Stats().Active
			go func() {
				events, err := h2.followCookie(ctx, tc.runID, value, got)
				done <- result{events, err}
			}()
			if tc.runID == run.RunID {
				select {
				case <-got: // the stream is open
				case r := <-done:
					t.Fatalf("the stream ended before its first event: %v", r.err)
				}
			} else {
				require.Eventually(t, func() bool { return h2.s.events.Stats().Active > active }, 10*time.Second, 5*time.Millisecond,
					"the stream of a run without events")
			}
			if tc.end != nil {
				tc.end(t, value)
			}
			r := <-done
			requireStatus(t, http.StatusUnauthorized, r.err, "the stream, once its session is over")
			for _, e := range r.events {
				assert.False(t, e.Type.Final(), "the run goes on: %v", e)
			}
		})
	}

	select {
	case err := <-bystander:
		t.Errorf("the stream of another session ended: %v", err)
	default:
	}
	stopBystander()
	<-bystander
	require.NoError(t, h1.shutdown())
	require.NoError(t, h2.shutdown())
	goleak.VerifyNone(t, leaks)
}

// A stream open on a session cookie whose session cannot be checked any
// more (Postgres fails), for sessionsUnreadLimit, ends too, as its
// session may have ended: its reconnection is answered 503 until the
// sessions can be read.
func TestOpenStreamEndsWhenItsSessionCannotBeRead(t *testing.T) {
	defer func(d, l time.Duration) { sessionPoll, sessionsUnreadLimit = d, l }(sessionPoll, sessionsUnreadLimit)
	sessionPoll, sessionsUnreadLimit = 20*time.Millisecond, 200*time.Millisecond
	h := startService(t, time.Hour) // the run goes on until the shutdown
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	cookie := http.Header{"Cookie": {sessionCookie + "=" + h.login(h.browser()).Value}}
	ctx := testenv.Context(t, 15*time.Second) // a bound against a hang, not a timing assertion
	req, err := http.NewRequestWithContext(ctx, "GET", h.base+run.Events, nil)
	require.NoError(t, err)
	req.Header = cookie
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	sessions := pgx.Identifier{h.pg.Schema, "service_sessions"}.Sanitize()
	_, err = h.pg.Pool.Exec(t.Context(), `ALTER TABLE `+sessions+` RENAME TO sessions_gone`)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err, "the stream ends (EOF), before the bound")
	again := h.send(h.hc, "GET", run.Events, cookie)
	assert.Equal(t, http.StatusServiceUnavailable, again.StatusCode)
	assert.Equal(t, "1", again.Header.Get("Retry-After"))

	_, err = h.pg.Pool.Exec(t.Context(), `ALTER TABLE `+pgx.Identifier{h.pg.Schema, "sessions_gone"}.Sanitize()+` RENAME TO service_sessions`)
	require.NoError(t, err)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A read of the sessions that hangs (Postgres unreachable, a lock on the
// table) held the check for as long: the streams open on session
// cookies, those of sessions ended or expired meanwhile among them, went
// on for good, and nothing was logged. A check that does not answer
// within sessionCheckTimeout fails, as any failed read, and ends them
// once the sessions have gone unread for sessionsUnreadLimit.
func TestOpenStreamEndsWhenItsSessionsReadHangs(t *testing.T) {
	defer func(d, c, l time.Duration) { sessionPoll, sessionCheckTimeout, sessionsUnreadLimit = d, c, l }(sessionPoll, sessionCheckTimeout, sessionsUnreadLimit)
	sessionPoll, sessionCheckTimeout, sessionsUnreadLimit = 20*time.Millisecond, 200*time.Millisecond, 300*time.Millisecond
	h := startService(t, time.Hour) // the run goes on until the shutdown
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	cookie := http.Header{"Cookie": {sessionCookie + "=" + h.login(h.browser()).Value}}
	ctx := testenv.Context(t, 15*time.Second) // a bound against a hang, not a timing assertion
	req, err := http.NewRequestWithContext(ctx, "GET", h.base+run.Events, nil)
	require.NoError(t, err)
	req.Header = cookie
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The lock makes every read of the table wait until the rollback.
	tx, err := h.pg.Pool.Begin(t.Context())
	require.NoError(t, err)
	sessions := pgx.Identifier{h.pg.Schema, "service_sessions"}.Sanitize()
	_, err = tx.Exec(t.Context(), `LOCK TABLE `+sessions+` IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, tx.Rollback(context.WithoutCancel(t.Context())))
	require.NoError(t, err, "the stream ends (EOF), before the bound")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A browser that logged in again (a page reloaded, another tab) had its
// cookie replaced, and its earlier session was left live: DELETE
// /session, sent with the new cookie alone, ended the new session, and
// a copy of the earlier cookie read events for the rest of its 12 hours.
// POST /session ends the sessions of the cookies it is sent with, whose
// cookie it replaces.
func TestLoginAgainEndsTheSessionItReplaces(t *testing.T) {
	h := startService(t, time.Millisecond)
	read := h.endedRunReader()
	browser := h.browser()
	first := h.login(browser).Value // a copy of it, kept elsewhere
	require.Equal(t, http.StatusOK, read(first))
	second := h.login(browser).Value // the browser sends the first with it
	require.NotEqual(t, first, second)
	assert.Equal(t, http.StatusUnauthorized, read(first), "the session replaced, once the browser logged in again")
	require.Equal(t, http.StatusOK, read(second), "the new session")

	resp := h.send(browser, "DELETE", "/session", http.Header{"Authorization": {"Bearer " + token}})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, http.StatusUnauthorized, read(first), "the first session, after the logout")
	assert.Equal(t, http.StatusUnauthorized, read(second), "the second session, after the logout")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// liveSessions answered the sessions sorted by the database's collation
// (ORDER BY id), and checkStreams looks each stream's sessions up in
// them by a binary search in Go's byte order: under a language's
// collation (initdb's under en_US.UTF-8, say), where "a" sorts before
// "B" and "_" and "-" are all but ignored, a live session was not
// found, and its stream was ended every sessionPoll. The sessions are
// now sorted in Go's order, whatever the collation.
func TestLiveSessionsAreSortedInGoOrder(t *testing.T) {
	p, _ := newTestParams(t)
	_, err := p.pool.Exec(t.Context(), `ALTER TABLE `+p.sessions+` ALTER COLUMN id TYPE text COLLATE "und-x-icu"`)
	require.NoError(t, err)
	ids := []string{"a", "B", "_c", "-d", "Z", "b", "0e"}
	for _, id := range ids {
		require.NoError(t, p.saveSession(t.Context(), id, time.Now().Add(time.Hour)))
	}
	live, err := p.liveSessions(t.Context(), ids)
	require.NoError(t, err)
	assert.True(t, slices.IsSorted(live), "sorted as checkStreams searches them: %q", live)
	for _, id := range ids {
		_, found := slices.BinarySearch(live, id)
		assert.True(t, found, "session %q found among the live ones", id)
	}
}

// The events request's read of its sessions had no bound but its
// client's: a Postgres that stalls (a lock on the table) held the request
// until the client left, where the checks of the open streams give up
// after sessionCheckTimeout. It now fails as they do, within that bound,
// and is answered 503 with Retry-After, which a client that reconnects
// waits out (a browser's EventSource gives up on it, as on any 503).
func TestEventsRequestWhoseSessionsReadHangsIs503(t *testing.T) {
	defer func(c time.Duration) { sessionCheckTimeout = c }(sessionCheckTimeout)
	sessionCheckTimeout = 200 * time.Millisecond
	h := startService(t, time.Millisecond)
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	h.follow(run.RunID, "")
	cookie := http.Header{"Cookie": {sessionCookie + "=" + h.login(h.browser()).Value}}
	// The lock makes every read of the table wait until the rollback.
	tx, err := h.pg.Pool.Begin(t.Context())
	require.NoError(t, err)
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	sessions := pgx.Identifier{h.pg.Schema, "service_sessions"}.Sanitize()
	_, err = tx.Exec(t.Context(), `LOCK TABLE `+sessions+` IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	ctx := testenv.Context(t, 15*time.Second) // a bound against a hang, not a timing assertion
	req, err := http.NewRequestWithContext(ctx, "GET", h.base+run.Events, nil)
	require.NoError(t, err)
	req.Header = cookie
	resp, err := h.hc.Do(req)
	require.NoError(t, err, "answered before the client's bound")
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.NoError(t, tx.Rollback(context.WithoutCancel(t.Context())))
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
