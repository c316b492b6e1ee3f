package redisstream_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// sweptOnce returns a channel that gets each Stream whose sweep ends,
// from the test's start to its end.
func sweptOnce(t *testing.T) <-chan *redisstream.Stream {
	swept := make(chan *redisstream.Stream, 16)
	redisstream.OnSweep(t, func(s *redisstream.Stream, done bool) {
		if done {
			select {
			case swept <- s:
			default:
			}
		}
	})
	return swept
}

// waitSweep waits for the end of a sweep of s.
func waitSweep(t *testing.T, swept <-chan *redisstream.Stream, s *redisstream.Stream) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-swept:
			if got == s {
				return
			}
		case <-timeout:
			t.Fatal("no sweep of the Stream ended within 10s")
		}
	}
}

// A Stream that only reads (a progress/sse service's), on a Redis user
// allowed to read and nothing more, gives no stream an expiry: that is
// the writers' work, whose user the docs ask for EVAL and PEXPIRE, and
// such a user may lack the commands. So its sweep sends no command it
// would have no use for: without a History (nothing to copy), none at
// all. Before, since the sweep gave expiries to the streams without one
// (ee5bd07), every Stream swept, and a reading Stream whose user had no
// SCAN (@stream alone) counted a read error and warned at each sweep, a
// minute after it started and every IdleTTL/4, and one whose user had
// no EVAL (@read) warned at each page of such streams of each sweep.
func TestAReadingStreamGivesNoExpiries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		acl     []any
		history bool
	}{
		{"streams alone, no History", []any{"+@stream", "+@connection"}, false},
		{"reads alone, a History", []any{"+@read", "+@connection"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redisstream.SetFirstSweep(t, time.Millisecond)
			swept := sweptOnce(t)
			ctx := context.Background()
			r := testenv.NewRedis(t)
			run := sinktest.RunID(t)
			key := r.Prefix + run
			oldRelease(t, r.Client, key, sinktest.Events(run, 1, 3)...) // a stream without an expiry
			logs := &testenv.LogBuffer{}
			opts := redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, Logger: slog.New(slog.NewTextHandler(logs, nil))}
			if tc.history {
				opts.History = progress.NewMemoryHistory()
			}
			s, err := redisstream.New(aclUser(t, r, tc.acl...), opts)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })

			waitSweep(t, swept, s)
			assert.Zero(t, s.Stats().ReadErrors, "read errors of a reading Stream's sweep")
			assert.NotContains(t, logs.String(), "level=WARN")
			ttl, err := r.Client.PTTL(ctx, key).Result()
			require.NoError(t, err)
			assert.Equal(t, time.Duration(-1), ttl, "a reading Stream gave an expiry")
		})
	}
}
