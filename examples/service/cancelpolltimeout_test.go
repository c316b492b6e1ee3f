package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// A poll of the cancels that other processes saved for this process's
// runs was bounded by the service's context alone: a query that the
// server stalled (a lock held on the table, a network that TCP had not
// given up on) stalled the polls for good, and no cancel asked of another
// process reached this one's runs again until a restart. Each poll now
// ends within cancelPollTimeout, and the next one tries again.
func TestCancelPollEndsOnAStalledQuery(t *testing.T) {
	saved := cancelPollTimeout
	t.Cleanup(func() { cancelPollTimeout = saved }) // after the service's shutdown
	cancelPollTimeout = 200 * time.Millisecond
	h := startService(t, time.Hour) // its runs go on until cancelled
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	// A session of the test locks the table of the cancels.
	tx, err := h.pg.Pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), `LOCK TABLE `+pgx.Identifier{h.pg.Schema, "service_cancels"}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	done := make(chan struct{})
	go func() {
		defer close(done)
		h.s.applyCancels(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a bound against a hang, not a timing assertion
		t.Fatal("the poll of the cancels stalled with its query")
	}
	require.NoError(t, tx.Rollback(t.Context()))
	require.NoError(t, h.shutdown())
}
