package sse_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/regengraph/regen/progress/sse"
)

// A server's retry field sets the Client's base delay, but no further
// than ClientOptions.MaxBackoff, as a 503's Retry-After is capped: the
// host's bound on a wait holds whatever the server asks. Before, the
// field was waited in full, so one response with "retry: 9223372036854"
// parked the client's reconnection for about 292 years, while ctx lasted.
func TestClientCapsTheServersRetry(t *testing.T) {
	const maxBackoff = time.Second
	capped := [2]time.Duration{maxBackoff, maxBackoff * 3 / 2}
	tests := []struct {
		name    string
		opts    sse.ClientOptions
		replies []reply
		want    [][2]time.Duration
	}{
		{"after events", sse.ClientOptions{MaxBackoff: maxBackoff}, fresh("retry: 9223372036854\n", 3),
			[][2]time.Duration{capped, capped, capped}},
		{"after connections without events", sse.ClientOptions{MaxBackoff: maxBackoff}, []reply{{body: "retry: 9223372036854\n\n"}},
			[][2]time.Duration{{maxBackoff, maxBackoff}, {maxBackoff, maxBackoff}, {maxBackoff, maxBackoff}}},
		{"a retry of a minute, the default MaxBackoff", sse.ClientOptions{}, fresh("retry: 60000\n", 2),
			[][2]time.Duration{{30 * time.Second, 45 * time.Second}, {30 * time.Second, 45 * time.Second}}},
		{"a retry below MaxBackoff is the base", sse.ClientOptions{MaxBackoff: maxBackoff}, fresh("retry: 500\n", 2),
			[][2]time.Duration{{500 * time.Millisecond, 750 * time.Millisecond}, {500 * time.Millisecond, 750 * time.Millisecond}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				checkWaits(t, tt.want, followFake(t, tt.opts, len(tt.want)+1, tt.replies...))
			})
		})
	}
}
