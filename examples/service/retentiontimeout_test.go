package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// A pass of the retention was bounded by the service's context alone: a
// query that the server stalled (a lock held on a table, a network that
// TCP had not given up on) stalled the retention for good, and nothing
// was pruned again until a restart. Each pass now ends within
// retentionTimeout, and the next one tries again.
func TestRetentionPassEndsOnAStalledQuery(t *testing.T) {
	saved := retentionTimeout
	t.Cleanup(func() { retentionTimeout = saved }) // after the service's shutdown
	retentionTimeout = 200 * time.Millisecond
	h := startService(t, time.Millisecond)
	// A session of the test locks a table that the retention prunes.
	tx, err := h.pg.Pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), `LOCK TABLE `+pgx.Identifier{h.pg.Schema, "service_queued"}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	done := make(chan struct{})
	go func() {
		defer close(done)
		h.s.prune(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a bound against a hang, not a timing assertion
		t.Fatal("the retention's pass stalled with its query")
	}
	require.NoError(t, tx.Rollback(t.Context()))
	require.NoError(t, h.shutdown())
}
