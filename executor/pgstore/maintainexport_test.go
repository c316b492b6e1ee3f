package pgstore

import "time"

// Jitter is the wait of Maintain between two passes, for an interval.
var Jitter = jitter

// SetMinMaintainEvery sets the shortest MaintainOptions.Every that
// Maintain on s takes, for tests that make many passes.
func SetMinMaintainEvery(s *Store, d time.Duration) { s.minEvery = d }

// PassTimeoutOf is the PassTimeout that Maintain uses for opts on s.
func PassTimeoutOf(s *Store, opts MaintainOptions) (time.Duration, error) {
	o, err := opts.check(s.minEvery)
	return o.PassTimeout, err
}
