package pgstore

// RunsPageAfterSQL returns ListRunsPage's statement after a cursor of a
// record with a start time, in schema.
func RunsPageAfterSQL(schema string) string { return newQueries(schema).listRunsAfter }

// LatestRunsSQL returns LatestRuns's statement of the newest page, in
// schema.
func LatestRunsSQL(schema string) string { return newQueries(schema).latestRuns }

// LatestRunsBeforeSQL returns LatestRuns's statement before a cursor of a
// record with a start time, in schema.
func LatestRunsBeforeSQL(schema string) string { return newQueries(schema).latestRunsBefore }
