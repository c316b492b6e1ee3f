package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/regengraph/regen/progress/sse"
)

// A browser's EventSource cannot set the Authorization header: a page
// follows a run with the session cookie that POST /session sets, which
// authorizes GET and HEAD of /runs/{run}/events and nothing else.

const (
	// sessionCookie is the session cookie's name.
	sessionCookie = "regen_session"
	// sessionPath is the session cookie's Path: the browser sends it to
	// the runs' routes alone, of which only the events route reads it.
	sessionPath = "/runs/"
	// sessionTTL is how long a session cookie is good for (its Max-Age,
	// and the time its value carries).
	sessionTTL = 12 * time.Hour
	// sessionVersion starts a session cookie's value.
	sessionVersion = "v1"
)

// sessionKey returns the key of the session cookies' MACs, derived from
// the service's token: every process of the service, started with the
// same token, takes the cookies of the others, and a new token voids the
// cookies made under the old one.
func sessionKey(token string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("regen examples/service session key"))
	return m.Sum(nil)
}

// sessionValue returns the value of a session cookie that expires at
// exp, made with key: "v1.<exp in Unix seconds>.<MAC>", where the MAC is
// the unpadded base64url HMAC-SHA256 of "v1.<exp>". It holds no secret:
// the token cannot be read back from it, and it is good for reading
// events only, until exp.
func sessionValue(key []byte, exp time.Time) string {
	payload := sessionVersion + "." + strconv.FormatInt(exp.Unix(), 10)
	return payload + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(key, payload))
}

func sessionMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// errBadSession is the refusal of a session cookie that the service did
// not make, or that has expired.
var errBadSession = fmt.Errorf("%w: the session cookie %q is not one of this service's, or has expired: "+
	"POST /session with the header \"Authorization: Bearer TOKEN\" for a new one", sse.ErrUnauthorized, sessionCookie)

// checkSession reports whether value is a session cookie made with key
// that has not expired at now. The MAC is compared in constant time.
func checkSession(key []byte, value string, now time.Time) bool {
	payload, mac, ok := strings.Cut(value, ".")
	if !ok || payload != sessionVersion {
		return false
	}
	exp, mac, ok := strings.Cut(mac, ".")
	if !ok {
		return false
	}
	payload += "." + exp
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil || !hmac.Equal(got, sessionMAC(key, payload)) {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && now.Unix() < unix
}

// authenticateEvents checks a request of the events route: with the
// Authorization header, as every request (see authenticate); without
// it, the session cookie, for a GET or a HEAD, which change nothing. A
// request with neither, or with a session cookie that is not good, wraps
// sse.ErrUnauthorized (401).
func (s *service) authenticateEvents(r *http.Request) error {
	if _, ok := r.Header["Authorization"]; ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return s.authenticate(r)
	}
	cookies := r.CookiesNamed(sessionCookie)
	if len(cookies) == 0 {
		return fmt.Errorf("%w: send the header \"Authorization: Bearer TOKEN\", "+
			"or, from a browser, the cookie %q that POST /session sets", sse.ErrUnauthorized, sessionCookie)
	}
	key, now := sessionKey(s.cfg.token), time.Now()
	// A browser may hold a stale cookie beside a good one (set under
	// another path, or by another token): any good one will do.
	for _, c := range cookies {
		if checkSession(key, c.Value, now) {
			return nil
		}
	}
	return errBadSession
}

// createSession is POST /session: with the token in the Authorization
// header, it answers 200 {"expires"} and sets the session cookie, which
// lets a browser's EventSource follow runs (GET /runs/{run}/events)
// until it expires, sessionTTL later.
func (s *service) createSession(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	exp := time.Now().Add(sessionTTL).Truncate(time.Second)
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    sessionValue(sessionKey(s.cfg.token), exp),
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
// header, it answers 204 and has the browser delete the session cookie.
// The cookie holds no state of the service's: one copied before is good
// until it expires, or until the token changes.
func (s *service) deleteSession(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
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
