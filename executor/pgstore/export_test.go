package pgstore

// SetPruneBatch sets how many rows one prune statement of s deletes.
func SetPruneBatch(s *Store, n int) { s.batch = n }

// PruneAssetsSQL is the statement of PruneAssets for a schema.
func PruneAssetsSQL(schema string) string { return newQueries(schema).pruneAssets }
