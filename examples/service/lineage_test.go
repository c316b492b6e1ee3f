package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
)

// Two logins at once from one browser (two tabs reloaded together), each
// sent with the browser's session cookie, each ended that session and
// made one of their own; the browser kept the cookie of the answer that
// came last, and the other session stayed live, its cookie set in the
// browser for a moment (an EventSource opened then reads with it, as may
// a copy of it): the browser's logout ended the session of the cookie it
// held, and the other lived on for its 12 hours. A login now makes its
// session of the lineage of the sessions whose cookies it is sent with,
// and a logout ends every session of the lineages of its cookies.
func TestLogoutEndsTheSessionsOfLoginsMadeAtOnce(t *testing.T) {
	h := startService(t, time.Millisecond)
	read := h.endedRunReader()
	bearer := "Bearer " + token
	first := h.login(h.browser()).Value
	other := h.login(h.browser()).Value // another browser's
	// The two logins, as the server may take them when they come at once:
	// each with the cookie the browser held when it sent them.
	a, b := h.loginWith(first), h.loginWith(first)
	assert.Equal(t, http.StatusUnauthorized, read(first), "the session the logins replaced")
	require.Equal(t, http.StatusOK, read(a), "the first login's session")
	require.Equal(t, http.StatusOK, read(b), "the second login's session")

	// The browser kept b, whose answer came last, and logs out with it.
	resp := h.send(h.hc, "DELETE", "/session", http.Header{"Authorization": {bearer}, "Cookie": {sessionCookie + "=" + b}})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, http.StatusUnauthorized, read(b), "the session of the cookie the browser held, after the logout")
	assert.Equal(t, http.StatusUnauthorized, read(a), "the session of the login made at once, after the logout")
	assert.Equal(t, http.StatusUnauthorized, read(first), "the session replaced, after the logout")
	assert.Equal(t, http.StatusOK, read(other), "another browser's session, after the logout")

	// A login with the cookie of a session ended by that logout starts
	// a lineage of its own: the other browser's logout spares it.
	again := h.send(h.hc, "POST", "/session", http.Header{"Authorization": {bearer}, "Cookie": {sessionCookie + "=" + b}})
	require.Equal(t, http.StatusOK, again.StatusCode)
	resp = h.send(h.hc, "DELETE", "/session", http.Header{"Authorization": {bearer}, "Cookie": {sessionCookie + "=" + other}})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, http.StatusUnauthorized, read(other))
	assert.Equal(t, http.StatusOK, read(again.Cookies()[0].Value), "a session of another lineage, after the other browser's logout")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// Logins made at once for real, each with the browser's cookie, wait for
// one another's row of the session they replace: each joins its lineage,
// and the logout with any one of their cookies ends them all.
func TestLogoutEndsTheSessionsOfManyLoginsAtOnce(t *testing.T) {
	h := startService(t, time.Millisecond)
	read := h.endedRunReader()
	first := h.login(h.browser()).Value
	values := make([]string, 8)
	errs := make([]error, len(values))
	var wg sync.WaitGroup
	for i := range values {
		wg.Go(func() {
			req, err := http.NewRequest("POST", h.base+"/session", nil)
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Cookie", sessionCookie+"="+first)
			resp, err := h.hc.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 1 {
				errs[i] = fmt.Errorf("status %d, Set-Cookie %q", resp.StatusCode, resp.Header.Values("Set-Cookie"))
				return
			}
			values[i] = resp.Cookies()[0].Value
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for i, v := range values {
		require.Equal(t, http.StatusOK, read(v), "login %d", i)
	}
	resp := h.send(h.hc, "DELETE", "/session", http.Header{"Authorization": {"Bearer " + token}, "Cookie": {sessionCookie + "=" + values[len(values)-1]}})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	for i, v := range values {
		assert.Equal(t, http.StatusUnauthorized, read(v), "login %d, after the logout", i)
	}
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A login kept the sessions it replaced, marked replaced, until they
// expire: a process of the service's version before lineages, which
// shares the tables in a rolling deploy and reads a session by its ID
// and expiry alone (its liveSessions and endSessions, below, as they
// were), took a replaced session's cookie, and every copy of it, as
// good, for up to 12 hours, though that version had deleted the
// sessions a login replaced, and a logout through it did not end them.
// A replaced session's row no longer answers to its cookie's ID.
func TestReplacedSessionIsRefusedByAnOlderProcess(t *testing.T) {
	h := startService(t, time.Millisecond)
	sessions := pgx.Identifier{h.pg.Schema, "service_sessions"}.Sanitize()
	// olderLive is the read of a session of an older process.
	olderLive := func(value string) bool {
		t.Helper()
		id, ok := checkSession(h.s.cookieKey, value, time.Now())
		require.True(t, ok)
		var n int
		require.NoError(t, h.pg.Pool.QueryRow(t.Context(),
			`SELECT count(*) FROM `+sessions+` WHERE id = ANY($1) AND expires_at > now()`, []string{id}).Scan(&n))
		return n > 0
	}
	read := h.endedRunReader()
	bearer := "Bearer " + token
	first := h.login(h.browser()).Value
	require.True(t, olderLive(first), "a session not replaced, read by an older process")
	a, b := h.loginWith(first), h.loginWith(first) // two logins at once, with the same cookie
	assert.False(t, olderLive(first), "the session replaced, read by an older process")
	assert.True(t, olderLive(a))
	assert.True(t, olderLive(b))
	assert.Equal(t, http.StatusUnauthorized, read(first))
	c := h.loginWith(a) // a's tab logs in again: of the lineage still
	assert.False(t, olderLive(a), "the session replaced, read by an older process")
	assert.Equal(t, http.StatusUnauthorized, read(a))

	// A later login with the replaced cookie joins the lineage still,
	// and the logout with any of its cookies ends it whole.
	d := h.loginWith(first)
	for _, v := range []string{b, c, d} {
		require.Equal(t, http.StatusOK, read(v))
	}
	resp := h.send(h.hc, "DELETE", "/session", http.Header{"Authorization": {bearer}, "Cookie": {sessionCookie + "=" + c}})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	for i, v := range []string{first, a, b, c, d} {
		assert.Equal(t, http.StatusUnauthorized, read(v), "session %d, after the logout", i)
	}
	var left int
	require.NoError(t, h.pg.Pool.QueryRow(t.Context(), `SELECT count(*) FROM `+sessions).Scan(&left))
	assert.Zero(t, left, "the rows of the lineage, after the logout")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A logout made while a login with the same cookie was under way (two
// tabs: one logs out as the other reloads) waited for the login's lock
// on the row of the session they shared, deleted that row, and missed
// the session the login had just saved in the lineage, which its
// snapshot did not hold: the logout answered 204, and that session,
// whose cookie the browser may have kept a moment (the login's answer
// came first), lived on for its 12 hours. A logout now ends, too, the
// sessions that joined the lineages it ends while it waited.
func TestLogoutEndsTheSessionOfALoginUnderWay(t *testing.T) {
	h := startService(t, time.Millisecond)
	read := h.endedRunReader()
	first := h.login(h.browser()).Value
	value, status := loginDuringLogout(t, h, first)
	require.Equal(t, http.StatusNoContent, status)
	assert.Equal(t, http.StatusUnauthorized, read(first))
	assert.Equal(t, http.StatusUnauthorized, read(value), "the session of the login the logout waited for")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// loginDuringLogout sends a login and a logout, each with the session
// cookie first, the login first: the logout waits for the login's lock
// on the row of first's session. It returns the login's cookie and the
// logout's status.
func loginDuringLogout(t *testing.T, h *harness, first string) (value string, status int) {
	t.Helper()
	id, ok := checkSession(h.s.cookieKey, first, time.Now())
	require.True(t, ok)
	sessions := pgx.Identifier{h.pg.Schema, "service_sessions"}.Sanitize()
	ctx := testenv.Context(t, 30*time.Second) // a bound against a hang
	// waiting waits until n statements on the sessions table wait for a
	// lock.
	waiting := func(n int) {
		t.Helper()
		for {
			var got int
			require.NoError(t, h.pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()`, sessions).Scan(&got))
			if got >= n {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The row of the browser's session is held, so that the login takes
	// its lock first, and the logout waits for it.
	tx, err := h.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, `SELECT 1 FROM `+sessions+` WHERE id = $1 FOR UPDATE`, id)
	require.NoError(t, err)
	type answer struct {
		resp *http.Response
		err  error
	}
	send := func(method string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			req, err := http.NewRequestWithContext(ctx, method, h.base+"/session", nil)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			req.Header = http.Header{"Authorization": {"Bearer " + token}, "Cookie": {sessionCookie + "=" + first}}
			resp, err := h.hc.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			ch <- answer{resp, err}
		}()
		return ch
	}
	login := send("POST")
	waiting(1)
	logout := send("DELETE")
	waiting(2)
	require.NoError(t, tx.Commit(ctx))
	in, out := <-login, <-logout
	require.NoError(t, in.err)
	require.NoError(t, out.err)
	require.Equal(t, http.StatusOK, in.resp.StatusCode)
	require.Len(t, in.resp.Cookies(), 1)
	return in.resp.Cookies()[0].Value, out.resp.StatusCode
}

// A logout whose delete of the sessions that joined the lineage while
// it waited failed answered 500, "try again", having deleted the rows it
// had found first, that of its cookie among them: the page's logout
// again, with the cookie it kept, found no lineage to end, answered 204,
// and the session of the login under way lived on. A logout that fails
// now deletes nothing.
func TestLogoutThatFailsEndsNothing(t *testing.T) {
	h := startService(t, time.Millisecond)
	read := h.endedRunReader()
	first := h.login(h.browser()).Value
	id, ok := checkSession(h.s.cookieKey, first, time.Now())
	require.True(t, ok)
	// The deletes of the sessions but first's fail.
	schema := pgx.Identifier{h.pg.Schema}.Sanitize()
	for _, q := range []string{
		`CREATE FUNCTION ` + schema + `.refuse_logout() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`,
		`CREATE TRIGGER refuse_logout BEFORE DELETE ON ` + schema + `.service_sessions
	FOR EACH ROW WHEN (OLD.id NOT IN ('` + id + `', '` + replacedPrefix + id + `')) EXECUTE FUNCTION ` + schema + `.refuse_logout()`,
	} {
		_, err := h.pg.Pool.Exec(t.Context(), q)
		require.NoError(t, err)
	}
	value, status := loginDuringLogout(t, h, first)
	require.Equal(t, http.StatusInternalServerError, status)
	_, err := h.pg.Pool.Exec(t.Context(), `DROP TRIGGER refuse_logout ON `+schema+`.service_sessions`)
	require.NoError(t, err)
	// The page logs out again, with the cookie it kept.
	resp := h.send(h.hc, "DELETE", "/session", http.Header{"Authorization": {"Bearer " + token}, "Cookie": {sessionCookie + "=" + first}})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, http.StatusUnauthorized, read(value), "the session of the login the failed logout waited for")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
