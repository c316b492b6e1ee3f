package progress_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// assertRefused checks that Tail and Replay of a Memory made with opts,
// which holds events 1..3 of run "a", refuse opts with ErrInvalidOptions
// and an error that contains want. The context has an hour, so that a
// Tail that took opts would wait rather than return.
func assertRefused(t *testing.T, opts progress.MemoryOptions, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	m := progress.NewMemory(opts)
	require.NoError(t, m.Publish(ctx, sinktest.Events("a", 1, 3)...))
	err := m.Tail(ctx, "a", 0, func(progress.Event) error { return nil })
	require.ErrorIs(t, err, progress.ErrInvalidOptions)
	assert.ErrorContains(t, err, want)
	err = m.Replay(ctx, "a", 0, func(progress.Event) error { return nil })
	require.ErrorIs(t, err, progress.ErrInvalidOptions)
	assert.ErrorContains(t, err, want)
}
