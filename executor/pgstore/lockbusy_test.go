package pgstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// A TryLockGraph refused because another session holds the key's lock is
// the executor's "busy" (a good request, to retry once the other run has
// ended), as the executor's own refusal of a second Resume of a key is:
// before, a *LockedError wrapped ErrGraphLocked alone, so that a host
// answering errors.Is(err, executor.ErrBusy) with a 409 and a retry took
// pgstore's refusal for an internal error. It now wraps executor.ErrBusy
// too, and never ErrInvalidRequest, and errors.As still finds it, also
// wrapped again.
func TestLockedErrorIsBusy(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	const key = "lecture-1"
	l, err := s.TryLockGraph(ctx, key)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Unlock(t.Context()) })

	_, refused := s.TryLockGraph(ctx, key)
	require.Error(t, refused)
	for name, err := range map[string]error{"as returned": refused, "wrapped": fmt.Errorf("start lecture: %w", refused)} {
		assert.ErrorIs(t, err, executor.ErrBusy, name)
		assert.ErrorIs(t, err, pgstore.ErrGraphLocked, name)
		assert.NotErrorIs(t, err, executor.ErrInvalidRequest, name)
		var le *pgstore.LockedError
		if assert.ErrorAs(t, err, &le, name) {
			assert.Equal(t, key, le.GraphKey, name)
		}
	}
	assert.NotErrorIs(t, l.Check(ctx), executor.ErrBusy, "a held lock's Check")
}
