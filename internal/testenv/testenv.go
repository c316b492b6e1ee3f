// Package testenv gives tests the addresses of this machine's test servers
// and the rules for using them: a test skips with a clear message when a
// server cannot be reached, except in CI (env CI=true), where that fails
// the test. It also gives each test a private Redis key prefix, cleaned up
// afterwards, or a private Postgres schema, dropped afterwards, and can
// start a private redis-server that a fault test may kill and restart.
//
// Never FLUSHALL or FLUSHDB the shared servers, nor drop a schema that is
// not the test's own: other tests use them at the same time.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// Default addresses of the machine's shared test servers.
const (
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
	DefaultPostgresURL = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
)

// RedisURL returns env REGEN_REDIS_URL, or [DefaultRedisURL].
func RedisURL() string { return getenv("REGEN_REDIS_URL", DefaultRedisURL) }

// PostgresURL returns env REGEN_POSTGRES_URL, or [DefaultPostgresURL].
func PostgresURL() string { return getenv("REGEN_POSTGRES_URL", DefaultPostgresURL) }

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// InCI reports whether env CI is "true", as in the project's CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test with a message naming what is missing and how
// to provide it; in CI it fails the test instead, because there every
// server must be up.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("testenv: %s (CI=true, so this fails instead of skipping)", msg)
	}
	t.Skipf("testenv: %s; skipping (set CI=true to make this a failure)", msg)
}

// RequireReachable dials the host and port of rawURL (for example
// [RedisURL]()) and calls [Unavailable] if nothing answers within two
// seconds. name names the server in the message ("Redis"). A URL without
// a TCP host and port (a Unix socket, a key=value connection string) is
// not checked here: the caller's own connection attempt decides.
func RequireReachable(t testing.TB, name, rawURL string) {
	t.Helper()
	addr, err := hostPort(rawURL)
	if err != nil {
		return
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		Unavailable(t, "%s is not reachable at %s (%v); start it or point the URL's env var elsewhere", name, addr, err)
		return
	}
	conn.Close()
}

// hostPort returns host:port of a URL, with the scheme's default port.
func hostPort(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", fmt.Errorf("no host in %q", rawURL)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := map[string]string{"redis": "6379", "rediss": "6379", "postgres": "5432", "postgresql": "5432"}[u.Scheme]
	if port == "" {
		return "", fmt.Errorf("no port in %q and no default for scheme %q", rawURL, u.Scheme)
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// UniqueName returns a name unique to this test and process, made of
// letters, digits, '-' and '_', for keys, tables and run IDs.
func UniqueName(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 48 {
		name = name[len(name)-48:]
	}
	return name + "-" + hex.EncodeToString(b[:])
}

// Context returns a context that ends with the test, or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
