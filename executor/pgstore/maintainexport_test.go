package pgstore

import "time"

// Jitter is the wait of Maintain between two passes, for an interval.
var Jitter = jitter

// SetMinMaintainEvery sets the shortest MaintainOptions.Every that
// Maintain on s takes, for tests that make many passes.
func SetMinMaintainEvery(s *Store, d time.Duration) { s.minEvery = d }
