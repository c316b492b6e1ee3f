package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runExample(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"-addr", "127.0.0.1:0", "-linger", "0", "-latency", "1ms"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestWithRedis(t *testing.T) {
	rd := testenv.NewRedis(t)
	t.Setenv("REGEN_REDIS_URL", testenv.RedisURL())
	code, out, errOut := runExample(t, "-duration", "60", "-prefix", rd.Prefix)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "Events go to Redis Streams")
	assert.Contains(t, out, "(key "+rd.Prefix+"run:{runId},")
	// The run's stream is under -prefix, which the test's clean-up
	// deletes, and nowhere else on the shared Redis.
	keys := rd.Keys(t)
	require.Len(t, keys, 1)
	assert.Regexp(t, `^`+regexp.QuoteMeta(rd.Prefix)+`run:demo-\d+$`, keys[0])
	assert.Contains(t, out, "curl -N http://127.0.0.1:")
	assert.Contains(t, out, "succeeded: 21 nodes generated")
	assert.Contains(t, out, "ending with run.finished")
}

func TestWithoutRedis(t *testing.T) {
	t.Setenv("REGEN_REDIS_URL", "redis://127.0.0.1:1/0") // nothing listens on port 1
	code, out, errOut := runExample(t, "-duration", "30")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "the in-memory stream")
	assert.Contains(t, out, "received all")
	assert.Contains(t, errOut, "Redis unavailable")
}

func TestBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in the line on stderr
	}{
		{[]string{"-duration", "25"}, "-duration: graph: invalid duration: 25s is not a multiple of 10s"},
		{[]string{"-latency", "-1s"}, "-latency and -linger must not be negative"},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-prefix", ""}, `-prefix "": want a non-empty prefix of the example's own`},
		{[]string{"-prefix", "p:{runId}:"}, `-prefix "p:{runId}:": want a non-empty prefix of the example's own, without {runId}`},
		// The limit, not the graph's Options.MaxSeconds, which no flag sets.
		{[]string{"-duration", "86410"}, "-duration 86410: the longest lecture is 86400 s (8640 segments)"},
		// Its help says loopback: it served every interface.
		{[]string{"-addr", "0.0.0.0:0"}, `-addr "0.0.0.0:0": want a loopback address`},
		{[]string{"-addr", "8080"}, `-addr "8080": want HOST:PORT`},
		// Once refused by the listener only, exit 1.
		{[]string{"-addr", "127.0.0.1:99999"}, `-addr "127.0.0.1:99999": want a port from 0 to 65535`},
		{[]string{"-addr", "127.0.0.1:http"}, `-addr "127.0.0.1:http": want a port from 0 to 65535 in digits`}, // port 80, not what its -h says
	} {
		code, out, errOut := runExample(t, tt.args...)
		assert.Equal(t, 2, code, "%v", tt.args)
		assert.Empty(t, out)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line on stderr: %q", errOut)
		assert.Contains(t, errOut, tt.want)
		assert.NotContains(t, errOut, "Options.")
	}
}

// TestHelp: -h prints the synopsis, then every flag with its
// description and default, on stdout, and exits 0.
func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"-h"}, &out, &errOut))
	assert.Empty(t, errOut.String())
	assert.True(t, strings.HasPrefix(out.String(), usage), "%q", out.String())
	for _, want := range []string{
		"-addr string\n    \taddress to serve on (loopback) (default \"127.0.0.1:8080\")",
		"-duration int\n    \tlecture length in seconds, a multiple of 10 (default 120)",
		"-latency duration\n    \tmedian fake generator latency (default 300ms)",
		"-linger duration\n    \thow long to keep serving after the run (default 1m0s)",
		"-prefix string\n    \tprefix of the Redis keys: a run's stream is PREFIX + \"run:{runId}\" (default \"regen-example:\")",
	} {
		assert.Contains(t, out.String(), want)
	}
}
