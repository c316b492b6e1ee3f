// Package pghistory keeps the progress events of runs in PostgreSQL,
// through github.com/jackc/pgx/v5: a [History] is a progress.History
// (and a progress.LastEventReader), the archive that a Source such as
// progress/redisstream's reads when its own copy of a run was trimmed,
// expired or lost with a restarted Redis, so that a browser that resumes
// gets every event once, in order. It passes progress/sinktest's History
// kit, and RunHistory behind a redisstream Stream.
//
// # Usage
//
// The host owns the *pgxpool.Pool: [New] never opens nor closes it.
// Call [History.Migrate] once at start-up; it is idempotent and safe to
// run from several processes at once.
//
//	hist, err := pghistory.New(pool, pghistory.Options{Schema: "regen"})
//	if err != nil { ... }
//	if err := hist.Migrate(ctx); err != nil { ... }
//	stream, err := redisstream.New(client, redisstream.Options{History: hist})
//	sink := progress.NewFanout(
//		progress.NewArchive(hist),
//		progress.NewBuffered(stream, progress.BufferedOptions{Logger: logger}),
//	)
//
// Put the archive behind a progress.Buffered too where a slow or
// unreachable database must not slow the run down: the executor never
// fails a run because a sink failed, but it waits for each Publish.
//
// # Tables
//
// Both tables live in one schema, [Options].Schema ("regen" by default,
// as executor/pgstore's: they can share it, and their Migrate methods
// take one lock, so that neither breaks the other), which New accepts
// only as a plain lowercase identifier (so nothing can be injected
// through it) and every statement quotes. Run IDs are text COLLATE "C":
// compared exactly, byte by byte.
//
//	progress_events  one row per event
//	  run_id text, seq bigint (> 0), event bytea (the event's JSON form);
//	  PRIMARY KEY (run_id, seq)
//	progress_runs    one row per run that has events
//	  run_id text PRIMARY KEY, last_at timestamptz (the run's last
//	  append that stored an event); INDEX progress_runs_last_at, for Prune
//	progress_schema_version  the layout versions applied ([SchemaVersion])
//	  version integer PRIMARY KEY, applied_at timestamptz
//
// Migrate records the layout version, so that a later release can tell
// which layout a database holds, and refuses one newer than it supports
// with a [*SchemaVersionError], and a progress_schema_version that is not
// its table (another tool's) with a [*VersionTableError], changing
// nothing. (A schema made before versions were
// recorded has an archived_at column in progress_events, which Migrate
// drops: it was written and never read.) On a schema that is up to date,
// as at most start-ups, it only reads the catalogs, and locks no table.
// Its ctx alone bounds its waits, for another process's migration and
// for the tables it locks: the statement_timeout, lock_timeout and
// transaction_timeout of the role or the pool are off in its
// transactions (SET LOCAL), and only there.
//
// An event is stored as its JSON form ([progress.Event.MarshalJSON]),
// the bytes a Redis stream holds and a browser parses: NUL and control
// characters in its text are escaped, so any text goes in, and invalid
// UTF-8 is written as U+FFFD, as by every backend. bytea, not jsonb,
// since jsonb refuses the escaped NUL (\u0000).
//
// # Costs
//
// [History.Append] is one statement, one round trip, whatever the number
// of events and runs: an INSERT ... SELECT FROM unnest(...) ON CONFLICT
// DO NOTHING, which also renews the last_at of the runs that got an
// event, in a READ COMMITTED transaction of its own whatever the
// database's default level (BEGIN and COMMIT go in the same round trip).
// [History.Replay] reads a page ([Options].PageSize events, 500 by
// default) per query through the primary key, resuming after the last
// Seq read, and calls its function only once the page is read and the
// connection released. [History.LastEvent] is one query through the
// primary key. On the project's 2-core test machine, on loopback, Append
// of 64 events took 2.4 ms (38 µs an event, the commit included) and
// Replay of a 1,000-event run 6.3 ms (6 µs an event, most of it decoding
// the JSON), 1.5 and 1.3 times that under the simple protocol: see
// BenchmarkAppend and BenchmarkReplay.
//
// # Retention
//
// Nothing is deleted unless the host asks. [History.DeleteRun] deletes a
// run's events; [History.Prune] deletes those of every run whose last
// append was more than an age ago, by the database's clock, in batches,
// found through an index: it costs what it deletes. Both are safe while
// runs go on; see their documentation for what an age should be.
//
// # Limits
//
// The run ID leads both primary keys, and Postgres refuses a btree index
// entry longer than 2,704 bytes, so Append takes run IDs of at most
// [MaxRunIDBytes] (1,200 bytes, as executor/pgstore), and Seqs up to
// [MaxSeq], a bigint. Append refuses an event over those, or whose run
// ID is not valid UTF-8 without NUL, with the whole call, before any SQL:
// a [*RunIDError] (wrapping [ErrRunIDTooLong] or [ErrRunIDNotText], and
// progress.ErrInvalidEvent), or an error wrapping
// progress.ErrInvalidEvent for the Seq. Replay, LastEvent and DeleteRun
// of such a run ID find nothing, as for a run never appended, without a
// query.
//
// # Errors
//
// A done context gives context.Cause(ctx), or, from an Append whose
// statement it interrupted, an error wrapping it that says the events
// may have been stored (see [History.Append]). Driver errors are wrapped with
// what was being done ("pghistory: append run ..."); when the schema or a
// table is missing they also wrap [ErrNotMigrated]. A refused schema name
// is a [*SchemaError]; a schema of a newer layout, a
// [*SchemaVersionError] from Migrate, and another tool's version table a
// [*VersionTableError]; a negative age given to Prune wraps
// [ErrInvalidAge].
//
// # Pools and PgBouncer
//
// Every statement passes its values as arguments and casts them in SQL,
// so the History works with the pool's default query mode, which
// prepares and caches statements, and with
// pgx.QueryExecModeSimpleProtocol, which PgBouncer in transaction mode
// needs. The tests run the conformance kits in both.
//
// # Tests
//
// The tests run against a real Postgres at REGEN_POSTGRES_URL (default
// postgres://root@127.0.0.1:5432/test?sslmode=disable), each in a schema
// of its own that it drops at the end, and a real Redis at
// REGEN_REDIS_URL for the Stream in front. When a server cannot be
// reached they skip, except under CI=true, where they fail.
package pghistory
