package main

import (
	"bytes"
	"context"
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
	testenv.RequireReachable(t, "Redis", testenv.RedisURL())
	t.Setenv("REGEN_REDIS_URL", testenv.RedisURL())
	code, out, errOut := runExample(t, "-duration", "60")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "Events go to Redis Streams")
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
		// The limit, not the graph's Options.MaxSeconds, which no flag sets.
		{[]string{"-duration", "86410"}, "-duration 86410: the longest lecture is 86400 s (8640 segments)"},
	} {
		code, out, errOut := runExample(t, tt.args...)
		assert.Equal(t, 2, code, "%v", tt.args)
		assert.Empty(t, out)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line on stderr: %q", errOut)
		assert.Contains(t, errOut, tt.want)
		assert.NotContains(t, errOut, "Options.")
	}
}
