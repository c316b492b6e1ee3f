package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// errOrigin is what -cors-origin wants.
var errOrigin = errors.New("want an origin such as https://app.example.com " +
	"(scheme http or https, a host, a port if not the scheme's default, nothing more)")

// checkOrigin checks a -cors-origin value: an origin as a browser sends
// it in the Origin header (lowercase, without a path, a user or the
// scheme's default port), which the service compares byte for byte.
func checkOrigin(v string) error {
	if v == "*" {
		return fmt.Errorf("%w; \"*\" cannot go with the cookie: name each origin", errOrigin)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return errOrigin
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return errOrigin
		}
		if (u.Scheme == "http" && n == 80) || (u.Scheme == "https" && n == 443) {
			port = ""
		}
	}
	want := u.Scheme + "://"
	switch {
	case port != "":
		want += net.JoinHostPort(host, port)
	case strings.Contains(host, ":"): // IPv6
		want += "[" + host + "]"
	default:
		want += host
	}
	if v != want {
		return fmt.Errorf("want %q, as a browser sends it", want)
	}
	return nil
}

// originsFlag is -cors-origin, which may be given more than once.
type originsFlag struct{ origins *[]string }

func (f originsFlag) Set(v string) error {
	if err := checkOrigin(v); err != nil {
		return err
	}
	if !slices.Contains(*f.origins, v) {
		*f.origins = append(*f.origins, v)
	}
	return nil
}

func (f originsFlag) String() string {
	if f.origins == nil {
		return ""
	}
	return strings.Join(*f.origins, " ")
}

// CORS preflight answers: the methods and the request headers that the
// service's routes take.
const (
	corsMethods = "GET, HEAD, POST, DELETE"
	corsHeaders = "Authorization, Content-Type, Last-Event-ID, Cache-Control"
	corsMaxAge  = "600"
)

// cors wraps next with the CORS answers of -cors-origin, if any: a
// request whose Origin is one of them is answered with that origin in
// Access-Control-Allow-Origin (never "*") and
// Access-Control-Allow-Credentials: true, so that a page of that origin
// may read the service's answers, and send its session cookie with
// EventSource(url, {withCredentials: true}) and fetch(url, {credentials:
// "include"}). Every answer has Vary: Origin. A preflight (OPTIONS with
// Access-Control-Request-Method) is answered 204 with the methods and
// headers the service takes, or 403 for another origin. Without
// -cors-origin, next is returned as it is: no answer has a CORS header.
func (s *service) cors(next http.Handler) http.Handler {
	if len(s.cfg.corsOrigins) == 0 {
		return next
	}
	allowed := map[string]bool{}
	for _, o := range s.cfg.corsOrigins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		ok := allowed[origin]
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			if !ok {
				httpError(w, http.StatusForbidden, fmt.Errorf("origin %.100q is not allowed: the service's -cors-origin flags name those that are", origin))
				return
			}
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
