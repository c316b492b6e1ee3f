package sse_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// A duration written without its unit (KeepAlive: 15, meant as seconds)
// is nanoseconds. NewHandler refuses one below a millisecond: before,
// KeepAlive 15ns made each stream write keep-alive comments back to back
// (10 MiB in 6 s to one idle client, a core busy), WriteTimeout 30ns
// ended every stream at its first write (a reconnect storm), Retry 3ns
// sent "retry: 0", and EmptyRunTimeout 60ns answered 204 at once to the
// clients of a run about to start, which stops their EventSource.
func TestNewHandlerRefusesSubMillisecondDurations(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	tests := []struct {
		name string
		opts sse.HandlerOptions
		want string
	}{
		{"KeepAlive", sse.HandlerOptions{KeepAlive: 15}, "KeepAlive 15ns is below 1ms"},
		{"Retry", sse.HandlerOptions{Retry: 3}, "Retry 3ns is below 1ms"},
		{"WriteTimeout", sse.HandlerOptions{WriteTimeout: 30}, "WriteTimeout 30ns is below 1ms"},
		{"EmptyRunTimeout", sse.HandlerOptions{EmptyRunTimeout: 60}, "EmptyRunTimeout 60ns is below 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Authorize = byPath
			_, err := sse.NewHandler(mem, tt.opts)
			assert.ErrorIs(t, err, sse.ErrInvalidOptions)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
