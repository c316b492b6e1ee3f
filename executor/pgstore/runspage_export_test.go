package pgstore

// RunsPageAfterSQL returns ListRunsPage's statement after a cursor of a
// record with a start time, in schema.
func RunsPageAfterSQL(schema string) string { return newQueries(schema).listRunsAfter }
