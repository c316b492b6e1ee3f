package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A poll of the cancels that other processes saved for this process's
// runs was bounded by the service's context alone: a query that the
// server stalled (a lock held on the table, a network that TCP had not
// given up on) stalled the polls for good, and no cancel asked of another
// process reached this one's runs again until a restart. Each poll now
// ends within cancelPollTimeout, and the next one tries again.
func TestCancelPollEndsOnAStalledQuery(t *testing.T) {
	lowerTimeout(t, &cancelPollTimeout)
	h := startService(t, time.Hour) // its runs go on until cancelled
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	// A session of the test locks the table of the cancels.
	requirePassEndsOnALockedTable(t, h, "service_cancels", h.s.applyCancels, "the poll of the cancels stalled with its query")
}
