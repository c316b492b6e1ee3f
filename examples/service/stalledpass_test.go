package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// lowerTimeout sets the service's timeout *d to 200ms for the test, and
// back once the test ends: after the service's shutdown, when called
// before the service starts.
func lowerTimeout(t *testing.T, d *time.Duration) {
	saved := *d
	t.Cleanup(func() { *d = saved })
	*d = 200 * time.Millisecond
}

// requirePassEndsOnALockedTable locks table of h's schema from a session
// of the test (ACCESS EXCLUSIVE), so that the queries of pass on it
// stall, and runs pass with a context that has no deadline: pass must
// return all the same, within 20s, a bound against a hang and not a
// timing assertion, or the test fails with stalled. It then lets the
// table go and shuts h down.
func requirePassEndsOnALockedTable(t *testing.T, h *harness, table string, pass func(context.Context), stalled string) {
	t.Helper()
	tx, err := h.pg.Pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), `LOCK TABLE `+pgx.Identifier{h.pg.Schema, table}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	done := make(chan struct{})
	go func() {
		defer close(done)
		pass(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a bound against a hang, not a timing assertion
		t.Fatal(stalled)
	}
	require.NoError(t, tx.Rollback(t.Context()))
	require.NoError(t, h.shutdown())
}
