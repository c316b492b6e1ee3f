package main

import (
	"testing"
	"time"
)

// A pass of the retention was bounded by the service's context alone: a
// query that the server stalled (a lock held on a table, a network that
// TCP had not given up on) stalled the retention for good, and nothing
// was pruned again until a restart. Each pass now ends within
// retentionTimeout, and the next one tries again.
func TestRetentionPassEndsOnAStalledQuery(t *testing.T) {
	lowerTimeout(t, &retentionTimeout)
	h := startService(t, time.Millisecond)
	// A session of the test locks a table that the retention prunes.
	requirePassEndsOnALockedTable(t, h, "service_queued", h.s.prune, "the retention's pass stalled with its query")
}
