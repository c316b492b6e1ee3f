package pgstore

// SetPruneBatch sets how many rows one prune statement of s deletes.
func SetPruneBatch(s *Store, n int) { s.batch = n }

// PruneAssetsSQL is the statement of PruneAssets for a schema.
func PruneAssetsSQL(schema string) string { return newQueries(schema).pruneAssets }

// CommitSQL is the statement of Commit at a version above 0, which swaps
// the graph's version and writes node states.
func CommitSQL(schema string) string { return newQueries(schema).commitNext }

// PruneRunsSQL returns PruneRuns's statement in schema.
func PruneRunsSQL(schema string) string { return newQueries(schema).pruneRuns }

// RunsRunningSQL returns the statement of RunsByStatus(RunRunning) in
// schema.
func RunsRunningSQL(schema string) string { return newQueries(schema).runsRunning }
