package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regengraph/regen/progress/sse"
)

// A browser's EventSource cannot set the Authorization header: a page
// follows a run with the session cookie that POST /session sets, which
// authorizes GET and HEAD of /runs/{run}/events and nothing else. Each
// session is a row of the service's own (see paramStore.saveSession),
// of a lineage: the sessions of one browser's logins, each made with
// the cookie of the one before, or at once with the same cookie. DELETE
// /session deletes the rows of the lineage of its cookie: their cookies,
// and every copy of them, are refused by every process from then on.
// An event stream already open on a session's cookie ends within
// sessionPoll of its session's end or expiry, in whichever process
// serves it (see watchSessions), and its reconnection is refused; while
// the sessions cannot be read, within sessionsUnreadLimit (see
// checkStreams).

const (
	// sessionCookie is the session cookie's name.
	sessionCookie = "regen_session"
	// sessionPath is the session cookie's Path: the browser sends it to
	// every route, of which only the events route, and DELETE /session
	// (which ends its session), read it.
	sessionPath = "/"
	// sessionTTL is how long a session cookie is good for (its Max-Age,
	// and the time its value carries).
	sessionTTL = 12 * time.Hour
	// sessionVersion starts a session cookie's value. The cookies of
	// "v1", which no row backed, and of "v2", signed with a key derived
	// from the token alone, are refused.
	sessionVersion = "v3"
	// sessionSecretName is the name of the row of the session cookies'
	// secret (see paramStore.sessionSecret).
	sessionSecretName = "session"
	// sessionSecretBytes is the length of that secret.
	sessionSecretBytes = 32
)

// sessionKey returns the key of the session cookies' MACs, derived from
// the deployment's secret (see paramStore.sessionSecret) and the
// service's token: every process of the deployment, started with the
// same token, takes the cookies of the others; a new token, or a new
// secret, voids the cookies made before. The secret, random and never
// sent, keeps a cookie from being an oracle for the token: a key
// derived from the token alone let whoever held a cookie (which reads
// events only) try guesses of the token offline, each checked against
// the cookie's MAC.
func sessionKey(secret []byte, token string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("regen examples/service session key\x00"))
	m.Write([]byte(token))
	return m.Sum(nil)
}

// sessionValue returns the value of the cookie of session id that
// expires at exp, made with key: "v3.<exp in Unix seconds>.<id>.<MAC>",
// where the MAC is the unpadded base64url HMAC-SHA256 of "v3.<exp>.<id>".
// The token cannot be read back from it, and it is good for reading
// events only, until exp, while its session's row is there.
func sessionValue(key []byte, id string, exp time.Time) string {
	payload := sessionVersion + "." + strconv.FormatInt(exp.Unix(), 10) + "." + id
	return payload + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(key, payload))
}

// newSessionID returns a random session ID, unpadded base64url: no dot,
// nor replacedPrefix.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func sessionMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// sessionPoll is how often each process checks the sessions of the event
// streams it serves on session cookies (see watchSessions), in one
// query for all of them: a stream ends at most about that long after its
// session has ended or expired. A variable for the tests.
var sessionPoll = 2 * time.Second

// errBadSession is the refusal of a session cookie that the service did
// not make, that has expired, or whose session was ended.
var errBadSession = fmt.Errorf("%w: the session cookie %q is not one of this service's, or has expired, or its session was ended "+
	"(DELETE /session): POST /session with the header \"Authorization: Bearer TOKEN\" for a new one", sse.ErrUnauthorized, sessionCookie)

// errSessionsUnread: the sessions could not be read (Postgres failed);
// answered 503 with Retry-After.
var errSessionsUnread = errors.New("the sessions could not be read: retry in a moment")

// checkSession returns the ID of the session of cookie value, if value
// is a session cookie made with key that has not expired at now; the
// caller then checks that the session was not ended (see
// paramStore.liveSessions). The MAC is compared in constant time.
func checkSession(key []byte, value string, now time.Time) (id string, ok bool) {
	parts := strings.SplitN(value, ".", 5)
	if len(parts) != 4 || parts[0] != sessionVersion || parts[2] == "" {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || !hmac.Equal(got, sessionMAC(key, strings.Join(parts[:3], "."))) {
		return "", false
	}
	unix, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Unix() >= unix {
		return "", false
	}
	return parts[2], true
}

// sessionIDs returns the IDs of the good session cookies of r (see
// checkSession), in their order: a browser may hold a stale cookie
// beside a good one (set under another path, or by another token).
func (s *service) sessionIDs(r *http.Request) []string {
	key, now := s.cookieKey, time.Now()
	var ids []string
	for _, c := range r.CookiesNamed(sessionCookie) {
		if id, ok := checkSession(key, c.Value, now); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// authenticateEvents checks a request of the events route: with the
// Authorization header, as every request (see authenticate); without
// it, the session cookie, for a GET or a HEAD, which change nothing. A
// request with neither, or with a session cookie that is not good (not
// the service's, expired, or its session ended), wraps
// sse.ErrUnauthorized (401); one whose sessions could not be read wraps
// errSessionsUnread (503), as does one whose read does not answer within
// sessionCheckTimeout. Any good cookie will do. It returns the IDs
// of the live sessions of the request's cookies, nil for a request
// with the header.
func (s *service) authenticateEvents(r *http.Request) (sessions []string, err error) {
	if _, ok := r.Header["Authorization"]; ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return nil, s.authenticate(r)
	}
	if len(r.CookiesNamed(sessionCookie)) == 0 {
		return nil, fmt.Errorf("%w: send the header \"Authorization: Bearer TOKEN\", "+
			"or, from a browser, the cookie %q that POST /session sets", sse.ErrUnauthorized, sessionCookie)
	}
	ids := s.sessionIDs(r)
	if len(ids) == 0 {
		return nil, errBadSession
	}
	// Bounded as the checks of the open streams are (see checkStreams):
	// a Postgres that stalls would hold the request until its client
	// left; it is answered 503 instead, with Retry-After, which a
	// client that reconnects (the package's sse.Client) waits out, and
	// on which a browser's EventSource gives up (see the package doc).
	ctx, cancel := context.WithTimeout(r.Context(), sessionCheckTimeout)
	live, err := s.params.liveSessions(ctx, ids)
	cancel()
	if sessionsReadHook != nil {
		sessionsReadHook(live)
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errSessionsUnread, err)
	case len(live) == 0:
		return nil, errBadSession
	}
	return live, nil
}

// sessionsReadHook, if not nil, is called by authenticateEvents after
// each read of its request's sessions, with the live ones; a variable
// for the tests.
var sessionsReadHook func(live []string)

// sessionStream is an event stream served on session cookies: sessions
// are the IDs of its cookies' live sessions, and end ends its request.
type sessionStream struct {
	sessions []string
	end      context.CancelCauseFunc
}

// serveSessionEvents hands a request of the events route, authorized by
// the session cookies of sessions (see authenticateEvents), to the SSE
// handler, and ends it once none of those sessions is live (see
// watchSessions), by cancelling its context: the handler then ends the
// stream (it opens every stream at once, with no EmptyRunTimeout set),
// and EventSource's reconnection is refused with 401.
func (s *service) serveSessionEvents(w http.ResponseWriter, r *http.Request, sessions []string) {
	ctx, end := context.WithCancelCause(r.Context())
	defer end(nil)
	st := &sessionStream{sessions: sessions, end: end}
	s.streamsMu.Lock()
	s.streams[st] = struct{}{}
	s.streamsMu.Unlock()
	defer func() {
		s.streamsMu.Lock()
		delete(s.streams, st)
		s.streamsMu.Unlock()
	}()
	s.events.ServeHTTP(w, r.WithContext(ctx))
}

// watchSessions checks, every sessionPoll until ctx ends, the sessions
// of the event streams open on session cookies (see checkStreams).
func (s *service) watchSessions(ctx context.Context) { tick(ctx, sessionPoll, s.checkStreams) }

// checkStreams reads the sessions of the event streams open on session
// cookies, in one query, and ends the streams none of whose sessions is
// live any more (ended, in any process, or expired): their reconnection
// is refused with 401. A read that fails (or does not answer within
// sessionCheckTimeout) ends no stream: one failure of the moment (a
// restart of Postgres, a lock on the table) would otherwise drop every
// browser of the process at once; the next check tries again. Once the
// sessions have gone unread for sessionsUnreadLimit (every check since
// failing: a read that hangs for good would keep the streams of sessions
// ended meanwhile open), it ends them all, as it cannot tell which are
// still good: their reconnection gets 503, with Retry-After, until the
// sessions can be read. The time counts from the first failed check of
// streams open since the last good check, or since no stream was open.
func (s *service) checkStreams(ctx context.Context) {
	s.streamsMu.Lock()
	streams := make([]*sessionStream, 0, len(s.streams))
	var ids []string
	for st := range s.streams {
		streams = append(streams, st)
		ids = append(ids, st.sessions...)
	}
	if len(streams) == 0 {
		// Nothing goes unread: the streams opened from now on get the
		// whole limit, whatever the checks of those closed met.
		s.unreadSince = time.Time{}
	}
	s.streamsMu.Unlock()
	if len(streams) == 0 {
		return
	}
	slices.Sort(ids)
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, sessionCheckTimeout)
	live, err := s.params.liveSessions(cctx, slices.Compact(ids))
	cancel()
	if checkStreamsHook != nil {
		defer checkStreamsHook(err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.streamsMu.Lock()
		if s.unreadSince.IsZero() {
			s.unreadSince = start
		}
		unread := time.Since(s.unreadSince)
		if unread >= sessionsUnreadLimit {
			s.unreadSince = time.Time{} // the streams opened from now on get the whole limit
		}
		s.streamsMu.Unlock()
		if unread < sessionsUnreadLimit {
			s.logger.Warn("sessions not read: the event streams open on session cookies go on, and the next check tries again",
				"streams", len(streams), "unread", unread.Round(time.Millisecond), "err", err)
			return
		}
		s.logger.Warn("sessions not read for too long: the event streams open on session cookies end",
			"streams", len(streams), "unread", unread.Round(time.Millisecond), "err", err)
		for _, st := range streams {
			st.end(fmt.Errorf("%w: %w", errSessionsUnread, err))
		}
		return
	}
	s.streamsMu.Lock()
	s.unreadSince = time.Time{}
	s.streamsMu.Unlock()
	ended := 0
	for _, st := range streams {
		if !slices.ContainsFunc(st.sessions, func(id string) bool { _, ok := slices.BinarySearch(live, id); return ok }) {
			st.end(errBadSession)
			ended++
		}
	}
	if ended > 0 {
		s.logger.Info("event streams ended: their sessions were ended or have expired", "streams", ended)
	}
}

// checkStreamsHook, if not nil, is called at the end of each check of
// the open streams' sessions that reads them (see checkStreams), with
// the read's error; a variable for the tests, set before the service
// starts.
var checkStreamsHook func(err error)

// createSession is POST /session: with the token in the Authorization
// header, it saves a new session and answers 200 {"expires"}, setting
// the session's cookie, which lets a browser's EventSource follow runs
// (GET /runs/{run}/events) until it expires, sessionTTL later, or until
// DELETE /session ends it. It ends the sessions of the good session
// cookies it is sent with, whose cookie the new one replaces in the
// browser, and the new session joins their lineage (see saveSession), so
// that neither a copy of theirs nor a session of another login made at
// once with the same cookie outlives the browser's next logout. If the
// session cannot be saved, it answers 500 and nothing changes.
func (s *service) createSession(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	// The cookie set replaces the browser's: the sessions of the cookies
	// sent end, or a copy of one would outlive the next logout, and the
	// new one joins their lineage, which the next logout ends whole.
	id, exp := newSessionID(), time.Now().Add(sessionTTL).Truncate(time.Second)
	if err := s.params.saveSession(r.Context(), id, exp, s.sessionIDs(r)...); err != nil {
		s.internalError(w, r, "saving the session", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    sessionValue(s.cookieKey, id, exp),
		Path:     sessionPath,
		MaxAge:   int(sessionTTL / time.Second),
		Secure:   secureCookie(r),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		Expires time.Time `json:"expires"`
	}{exp.UTC()})
}

// deleteSession is DELETE /session: with the token in the Authorization
// header, it ends the sessions of the lineages of the good session
// cookies it is sent with (deletes their rows: every copy of those
// cookies, and of the cookies of their lineages, is refused by every
// process from then on), answers 204 and has the browser delete the
// cookie. If the sessions cannot be ended, it answers 500 and leaves
// the cookie, so that the page can try again.
func (s *service) deleteSession(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	if ids := s.sessionIDs(r); len(ids) > 0 {
		if err := s.params.endSessions(r.Context(), ids); err != nil {
			s.internalError(w, r, "ending the session", err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: sessionPath, MaxAge: -1,
		Secure: secureCookie(r), HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// secureCookie reports whether the session cookie is set Secure, so that
// the browser sends it over HTTPS only: unless the request came over
// plain HTTP to a loopback host (http://127.0.0.1:8080, http://localhost),
// where a browser would not send a Secure cookie back. Behind a proxy
// that serves HTTPS and reaches the service on loopback, the proxy passes
// the host it serves (nginx: proxy_set_header Host $host) or
// X-Forwarded-Proto: https (or Forwarded: proto=https).
func secureCookie(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		return strings.EqualFold(strings.TrimSpace(p), "https")
	}
	for _, f := range r.Header.Values("Forwarded") {
		for _, pair := range strings.FieldsFunc(f, func(c rune) bool { return c == ';' || c == ',' }) {
			k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if strings.EqualFold(k, "proto") {
				return strings.EqualFold(strings.Trim(v, `"`), "https")
			}
		}
	}
	return !loopbackHost(r.Host)
}

// loopbackHost reports whether hostport (a request's Host) names a
// loopback host: localhost, a name under .localhost, or a loopback IP.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sessionSecret returns the deployment's secret of the session cookies
// (see sessionKey): sessionSecretBytes random bytes, made by the first
// process of the deployment to migrate (see migrate) and saved in the
// schema, which every process reads. Deleting the row, then restarting
// every process, makes a new secret, which voids every cookie.
func (p *paramStore) sessionSecret(ctx context.Context) ([]byte, error) {
	var secret []byte
	err := p.pool.QueryRow(ctx, `SELECT secret FROM `+p.secrets+` WHERE name = $1`, sessionSecretName).Scan(&secret)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("read the session cookies' secret: no row %q in %s: restart the service to make one", sessionSecretName, p.secrets)
	case err != nil:
		return nil, fmt.Errorf("read the session cookies' secret: %w", err)
	case len(secret) < sessionSecretBytes:
		return nil, fmt.Errorf("the session cookies' secret in %s is %d bytes long: want %d (delete its row and restart to make a new one)",
			p.secrets, len(secret), sessionSecretBytes)
	}
	return secret, nil
}

// newSessionSecret returns a new secret of the session cookies.
func newSessionSecret() []byte {
	b := make([]byte, sessionSecretBytes)
	_, _ = rand.Read(b) // never fails
	return b
}

// saveSession saves session id, good until exp, which replaces sessions
// replaces (those of the cookies of its login): they end, and it joins
// their lineage (the least of their lineages' IDs, if several), or
// starts one of its own if none is saved, in one statement. The sessions
// replaced are kept, ended, until they expire (see pruneSessions), so
// that a login made at once with the same cookie, which waits for this
// one's row lock, finds their lineage too, as does a later login with a
// copy of a replaced cookie. A replaced session's row is kept under its
// ID with replacedPrefix: no cookie names it any more, so that a process
// of the service's version before lineages, which reads a session by its
// ID and expiry alone and would take it as live, refuses its cookie too.
func (p *paramStore) saveSession(ctx context.Context, id string, exp time.Time, replaces ...string) error {
	_, err := p.pool.Exec(ctx, `WITH replaced AS (
	UPDATE `+p.sessions+` SET replaced = true, lineage = COALESCE(lineage, id),
		id = CASE WHEN starts_with(id, '`+replacedPrefix+`') THEN id ELSE '`+replacedPrefix+`' || id END
	WHERE id = ANY($3) RETURNING lineage
)
INSERT INTO `+p.sessions+` (id, expires_at, lineage) VALUES ($1, $2, COALESCE((SELECT min(lineage) FROM replaced), $1))`,
		id, exp, withReplaced(replaces))
	if err != nil {
		return fmt.Errorf("save a session: %w", err)
	}
	return nil
}

// replacedPrefix starts the ID of the row of a session replaced by a
// login (see saveSession): no session ID has it (see newSessionID), so
// that no cookie names the row.
const replacedPrefix = "~"

// withReplaced returns ids and, after them, each with replacedPrefix:
// the IDs of their sessions' rows, replaced or not.
func withReplaced(ids []string) []string {
	all := slices.Clone(ids)
	for _, id := range ids {
		all = append(all, replacedPrefix+id)
	}
	return all
}

// liveSessions returns those of sessions ids that are saved, not
// replaced by a login (see saveSession), and have not expired, by the
// database's clock, sorted in Go's order (byte order,
// as slices.BinarySearch wants, whatever the database's collation).
func (p *paramStore) liveSessions(ctx context.Context, ids []string) ([]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT id FROM `+p.sessions+` WHERE id = ANY($1) AND expires_at > now() AND NOT replaced`, ids)
	if err != nil {
		return nil, fmt.Errorf("read the sessions: %w", err)
	}
	live, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the sessions: %w", err)
	}
	slices.Sort(live)
	return live, nil
}

// endSessions deletes sessions ids and every session of their lineages
// (a logout; see saveSession): their cookies are good no longer. A login
// that had locked the row of a session of those lineages (a login with
// the same cookie, under way) has the delete wait for it, and saves its
// session in the lineage, where the delete's snapshot, taken before,
// does not see it: the lineages are deleted again, each time in a
// statement of its own (a snapshot of its own, at READ COMMITTED), until
// one finds no session left, up to endSessionsSweeps times, so that no
// session that joined them while the logout waited outlives it. All in
// one transaction: a logout that fails deletes nothing, and one made
// again with the same cookies finds their lineages still.
func (p *paramStore) endSessions(ctx context.Context, ids []string) error {
	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM `+p.sessions+` WHERE COALESCE(lineage, id) IN (
	SELECT COALESCE(lineage, id) FROM `+p.sessions+` WHERE id = ANY($1)) RETURNING COALESCE(lineage, id)`, withReplaced(ids))
		if err != nil {
			return err
		}
		lineages, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(lineages) == 0 {
			return err
		}
		slices.Sort(lineages)
		lineages = slices.Compact(lineages)
		for range endSessionsSweeps {
			tag, err := tx.Exec(ctx, `DELETE FROM `+p.sessions+` WHERE COALESCE(lineage, id) = ANY($1)`, lineages)
			if err != nil {
				return fmt.Errorf("the sessions that joined their lineages meanwhile: %w", err)
			}
			if tag.RowsAffected() == 0 {
				break
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("end the sessions: %w", err)
	}
	return nil
}

// endSessionsSweeps bounds the deletes of the lineages a logout ends
// that come after the first (see endSessions): each but the last found
// a session that a login under way saved meanwhile.
const endSessionsSweeps = 3

// pruneSessions deletes the sessions that have expired, and returns how
// many.
func (p *paramStore) pruneSessions(ctx context.Context) (int64, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM `+p.sessions+` WHERE expires_at <= now()`)
	if err != nil {
		return 0, fmt.Errorf("prune the sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// sessionsUnreadLimit is how long the sessions of the open streams may
// go unread, every check failing, before checkStreams ends those
// streams: a stream of a session ended meanwhile goes on at most about
// that long. A variable for the tests.
var sessionsUnreadLimit = 30 * time.Second

// sessionCheckTimeout bounds each check of the open streams' sessions
// (see checkStreams). A variable for the tests.
var sessionCheckTimeout = 2 * time.Second
