package pgstore

// SetPruneBatch sets how many rows one prune statement of s deletes.
func SetPruneBatch(s *Store, n int) { s.batch = n }

// PruneAssetsSQL is the statement of PruneAssets for a schema.
func PruneAssetsSQL(schema string) string { return newQueries(schema).pruneAssets }

// UpsertStatesSQL is the statement of Commit that writes node states.
func UpsertStatesSQL(schema string) string { return newQueries(schema).upsertStates }

// PruneRunsSQL returns PruneRuns's statement in schema.
func PruneRunsSQL(schema string) string { return newQueries(schema).pruneRuns }
