package pgstore

// SetPruneBatch sets how many rows one prune statement of s deletes.
func SetPruneBatch(s *Store, n int) { s.batch = n }
