package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
)

// legacySessionMAC is the MAC of a session cookie as the service made it
// before the signing secret: keyed by an HMAC of the token alone, so
// that a cookie (which reads events only) let anyone who held one try
// guesses of the full-power token offline.
func legacySessionMAC(tok, payload string) []byte {
	k := hmac.New(sha256.New, []byte(tok))
	k.Write([]byte("regen examples/service session key"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// The session cookies are signed with a key derived from a random secret
// of the deployment's, saved in its schema, and the token: a cookie is
// no oracle for the token (the right guess of it does not give the
// cookie's MAC), every process of the deployment takes the others'
// cookies, another deployment with the same token does not, and the
// cookies of the version before (v2, signed with the token alone) are
// refused, their sessions live or not.
func TestSessionCookieDoesNotRevealTheToken(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	pg3, rd3 := testenv.NewPostgres(t), testenv.NewRedis(t)
	h1 := startServiceOn(t, pg, rd, time.Millisecond, nil)
	h2 := startServiceOn(t, pg, rd, time.Millisecond, nil)   // a second process of the deployment
	h3 := startServiceOn(t, pg3, rd3, time.Millisecond, nil) // another deployment, the same token
	read := h1.endedRunReader()

	value := h1.login(h1.browser()).Value
	require.True(t, strings.HasPrefix(value, sessionVersion+"."), "cookie %q", value)
	i := strings.LastIndexByte(value, '.')
	payload, mac := value[:i], value[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(mac)
	require.NoError(t, err)
	assert.False(t, hmac.Equal(got, legacySessionMAC(token, payload)), "the token, guessed, gives the cookie's MAC: the cookie is an oracle for it")

	id, ok := checkSession(h1.s.cookieKey, value, time.Now())
	require.True(t, ok, "the cookie of the process that made it")
	_, ok = checkSession(h2.s.cookieKey, value, time.Now())
	assert.True(t, ok, "another process of the deployment takes the cookie")
	_, ok = checkSession(h3.s.cookieKey, value, time.Now())
	assert.False(t, ok, "another deployment, with the same token, takes the cookie")
	assert.Equal(t, http.StatusOK, read(value))

	// A cookie of the version before, its session live: refused, and
	// the browser logs in again.
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	old := "v2." + strconv.FormatInt(exp.Unix(), 10) + "." + id
	old += "." + base64.RawURLEncoding.EncodeToString(legacySessionMAC(token, old))
	assert.Equal(t, http.StatusUnauthorized, read(old), "a cookie signed with the token alone")

	// The secret is one row of the deployment's schema, made once.
	var n int
	require.NoError(t, pg.Pool.QueryRow(t.Context(), `SELECT count(*) FROM `+
		pgx.Identifier{pg.Schema, "service_secrets"}.Sanitize()).Scan(&n))
	assert.Equal(t, 1, n, "the secrets saved")

	require.NoError(t, h1.shutdown())
	require.NoError(t, h2.shutdown())
	require.NoError(t, h3.shutdown())
	goleak.VerifyNone(t, h1.leaks)
}

// A token shorter than minTokenBytes is refused at start-up, before any
// server is touched: the token is the one credential of the service,
// and a short one is guessed.
func TestShortTokenIsRefused(t *testing.T) {
	env := func(tok string) func(string) string {
		return func(k string) string {
			if k == "REGEN_SERVICE_TOKEN" {
				return tok
			}
			return ""
		}
	}
	for _, tok := range []string{"sectoken123", strings.Repeat("x", minTokenBytes-1)} {
		_, err := parse(nil, env(tok))
		require.Error(t, err, "token of %d bytes", len(tok))
		assert.Equal(t, "REGEN_SERVICE_TOKEN is "+strconv.Itoa(len(tok))+" bytes long: want at least "+strconv.Itoa(minTokenBytes)+
			" (a random one: openssl rand -hex 32), or leave it unset for a random one", err.Error())
		assert.NotContains(t, err.Error(), tok, "the error does not print the token")
	}
	c, err := parse(nil, env(strings.Repeat("x", minTokenBytes)))
	require.NoError(t, err)
	assert.Len(t, c.token, minTokenBytes)
	_, err = parse(nil, env(""))
	require.NoError(t, err, "no token: a random one")
	assert.GreaterOrEqual(t, len(token), minTokenBytes, "the tests' token")

	code, out, errOut := runCommand(t, map[string]string{"REGEN_SERVICE_TOKEN": "short",
		"REGEN_POSTGRES_URL": "postgres://root@127.0.0.1:1/test?sslmode=disable&connect_timeout=1"}, "-addr", "127.0.0.1:0")
	assert.Equal(t, 2, code, errOut)
	assert.Empty(t, out)
	assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line on stderr: %q", errOut)
}
