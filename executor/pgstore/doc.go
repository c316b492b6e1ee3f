// Package pgstore keeps the executor's node states, assets and run
// records in PostgreSQL, through github.com/jackc/pgx/v5. A [Store]
// implements executor.StateStore, executor.AssetStore and
// executor.RunStore, so one value fills all three store fields of
// executor.Options, and executor.RunStatusLister, which lists the runs
// left running across graph keys. It passes the executor/storetest conformance kit.
//
// # Usage
//
// The host owns the *pgxpool.Pool: [New] never opens nor closes it.
// Call [Store.Migrate] once at start-up; it is idempotent and safe to run
// from several processes at once.
//
//	store, err := pgstore.New(pool, pgstore.Options{Schema: "regen"})
//	if err != nil { ... }
//	if err := store.Migrate(ctx); err != nil { ... }
//	e, err := executor.New(executor.Options{
//		Generators: reg, States: store, Assets: store, Runs: store,
//	})
//
// # Tables
//
// All tables live in one schema, [Options].Schema ("regen" by default),
// which New accepts only as a plain lowercase identifier (so nothing can
// be injected through it) and every statement quotes (so SQL keywords such
// as "user" work). Keys, IDs and references are text COLLATE "C":
// compared exactly and sorted byte by byte, as Go compares strings. A zero
// time is stored as NULL. Statuses and mark reasons are stored by name,
// so that stored data keeps its meaning whatever the order of dirty's
// constants. Graph metadata and heavy asset data are kept apart:
//
//	graphs          one row per graph ever committed (a deleted graph's
//	                row stays, as a tombstone that keeps its version)
//	  graph_key text PRIMARY KEY, version bigint (> 0), updated_at timestamptz
//	node_states     one row per node that has a state, and one for
//	                executor.GraphStateID, the executor's own
//	  graph_key text REFERENCES graphs ON DELETE CASCADE, node_id text,
//	  status text (the dirty.Status name), rev bigint, input_hash text,
//	  output_hash text, asset_ref text, attempts bigint, last_error text,
//	  updated_at timestamptz; PRIMARY KEY (graph_key, node_id)
//	assets          one row per asset key
//	  key text PRIMARY KEY, data bytea, url text, hash text,
//	  length_ns bigint (Asset.Length in nanoseconds), meta jsonb,
//	  put_at timestamptz (the last Put, or the last release by a commit)
//	runs            one row per run record
//	  id text PRIMARY KEY, graph_key text, seconds bigint,
//	  graph text (executor.Record.Graph, '' in records of before layout 4),
//	  triggered_by text, reason text,
//	  resumes text (executor.Record.Resumes, '' in records of before layout 6),
//	  marks jsonb ([{"id": ..., "reason": "edited"}], in order),
//	  status text, started_at timestamptz, ended_at timestamptz,
//	  counts jsonb (executor.Counts), failed text[], error text,
//	  cancelled_by text (executor.Record.CancelledBy, '' in records of before layout 7);
//	  INDEX runs_graph_started (graph_key, started_at NULLS FIRST, id)
//	  INDEX runs_age ((coalesce(ended_at, started_at))), for PruneRuns
//	  INDEX runs_running (started_at NULLS FIRST, id) WHERE status = 'running',
//	    for RunsByStatus
//	  INDEX runs_cancelled (started_at NULLS FIRST, id) WHERE status = 'cancelled',
//	    for RunsByStatus and ResumeCancelled (no layout version of its own)
//	  INDEX node_states_asset_ref USING hash (asset_ref), for PruneAssets
//	schema_version  the layout versions applied ([SchemaVersion])
//
// The schema may hold the host's own tables too (those that it writes in
// an [Store.EditTx] transaction, say), as examples/service's service_*
// tables and pghistory's progress_* tables share it: Migrate creates and
// alters only the tables above, and never drops one. Give them names of
// their own, with a prefix: a later layout may add tables.
//
// An asset's reference is [RefPrefix] ("pg:") followed by its key. Get
// and Exists treat any other reference, and any that Postgres could not
// hold (NUL bytes, invalid UTF-8, a key over [MaxAssetKeyBytes]), as not
// found, without an error.
//
// # Limits
//
// Postgres refuses a btree index entry longer than 2,704 bytes, and the
// store indexes keys and IDs with btrees, so it takes graph keys, node IDs
// and run IDs of at most 1,200 bytes each ([MaxGraphKeyBytes],
// [MaxNodeIDBytes], [MaxRunIDBytes]) and asset keys of at most 2,600
// ([MaxAssetKeyBytes]): within those, every index entry fits, however
// incompressible the keys. Commit, Put and PutRun refuse a longer one,
// or one that is not valid UTF-8 without NUL ([ErrKeyNotText]), with an
// error wrapping a [*KeyError] before any SQL; a lookup of one finds
// nothing, as for a key never stored. These are limits of a request, for
// a host to know: an executor.RunRequest whose GraphKey or RunID is longer
// than 1,200 bytes, or whose graph has a longer node ID, cannot run on
// the store, and the KeyError of a graph key, node ID or run ID wraps
// executor.ErrInvalidRequest, as the executor's refusals of bad input do,
// so that a host answers it as such (HTTP 400): executor.Run and Start
// return it at once, the run's record refused before anything is
// written. A host that takes keys or run IDs from its own clients may
// check them against these limits at its door. An asset key's KeyError
// does not wrap it (the executor makes the key of the graph key, the node
// ID and a generator's hash, and the hash alone can make it too long). Asset references, in node states, have no
// limit: their index is a hash index.
//
// An asset goes to Postgres, and comes back, in one message of its
// protocol, which carries at most 1 GiB: Put takes an asset whose Data,
// URL, Hash and Meta (as JSON) hold at most [MaxAssetBytes] together (1
// GiB less 1 MiB), or [MaxAssetTextBytes] (250 MiB) on a pool that sends
// values as text (pgx.QueryExecModeSimpleProtocol, which sends Data as
// hex, or pgx.QueryExecModeExec), and refuses a larger one with an
// [*AssetSizeError] before any SQL. Meta goes as jsonb, which holds at
// most [MaxAssetMetaBytes] (256 MiB less one byte): Put refuses a larger
// Meta the same way. Keep larger media elsewhere, and its address in the
// asset's URL.
//
// # Transactions
//
// A graph has one version number, the version column of its graphs row; a
// graph without a row is at version 0. [Store.Commit] is one READ
// COMMITTED transaction of one statement, in two round trips (BEGIN and
// the statement in one pipeline, then COMMIT):
//
//  1. the compare-and-swap of the version: at expect 0, INSERT the row at
//     version 1 ON CONFLICT DO NOTHING; at a higher expect, UPDATE the row
//     to expect+1 WHERE version = expect. Either locks the row until the
//     transaction ends.
//  2. if a row was inserted or updated, and only then, upsert the changed
//     node states in one INSERT ... SELECT FROM unnest(...) ON CONFLICT
//     DO UPDATE (the last change of each node, as later changes win), and
//     set put_at of the assets whose references they replace to now (see
//     Retention). Both steps are common table expressions of the one
//     statement, the upsert reading the swap's row, so it writes only
//     after the swap succeeded.
//  3. if no row was inserted or updated, read the version that is there,
//     roll back, and return a *executor.ConflictError with it; else
//     COMMIT.
//
// Concurrent commits to one graph queue on its row lock. In READ
// COMMITTED a queued UPDATE re-checks the version of the row the winner
// committed, and a queued INSERT finds the winner's row and inserts
// nothing, so exactly one commit per version wins and the others get a
// ConflictError: never a lost update, never a unique violation. (The
// statement reads node_states as of its start, which may be before a
// commit it then waited for; but that commit moved the version on, so
// the statement writes nothing. Every writer of node states, Commit,
// DeleteGraph and EditTx, moves the graph's version on.) Commits to different
// graphs do not wait for each other. A commit that fails applies nothing,
// except when the connection is lost after COMMIT was sent: then, as the
// StateStore contract says, it may or may not have been applied.
//
// [Store.Load] reads the version and the states in one statement (graphs
// LEFT JOIN node_states), so they come from one snapshot. Put, PutRun and
// the reads are single statements. Every write runs in READ COMMITTED,
// whatever level the role or the database defaults to
// (default_transaction_isolation): Put, PutRun and each batch of
// PruneAssets and of PruneRuns in a transaction of its own, whose BEGIN and COMMIT go in
// one round trip with the statement. (At a stricter level, a write that
// waited for a row that another one renewed failed with SQLSTATE 40001.)
//
// [Store.Migrate] runs CREATE SCHEMA and CREATE TABLE ... IF NOT EXISTS,
// and on a schema of an older layout the ALTER TABLE ... ADD COLUMN IF
// NOT EXISTS of the columns added since, in one transaction that first
// takes pg_advisory_xact_lock on a key derived from the schema name, so
// that two processes migrating at once do not collide in the system
// catalogs. The lock ends with the transaction, in which the
// statement_timeout, lock_timeout and transaction_timeout of the role or
// the pool are off (SET LOCAL), so that Migrate's ctx alone bounds its
// waits for the lock and for the tables. Its CREATE INDEX IF NOT
// EXISTS statements lock their tables even when the indexes exist, until
// it commits, in the order in which the writers lock them (node_states,
// then runs, as DeleteGraph), so that a Migrate at the start of a process
// never deadlocks with the writes of the others. A schema that is up to
// date (it records [SchemaVersion] and has every table, index and column
// of the layout, as at most start-ups) is only read, from the catalogs:
// Migrate then locks none of its tables, and so neither waits for the
// writes under way nor holds off the next ones. A
// schema that a later release migrated (its schema_version records a
// layout above [SchemaVersion]) is refused with a [*SchemaVersionError]
// before any change, so that an older release rolled back to never
// writes to a layout it does not know. So is a schema whose
// schema_version is not the store's (another tool's table of that name,
// such as Flyway's before its release 5: its columns are not version
// integer and applied_at timestamptz), with a [*VersionTableError]: the
// store shares no schema with other tools' tables of its names.
//
// # Edits in the host's transaction
//
// executor.Executor.Edit asks the host to save a node's new parameters
// first, then call it: the executor keeps only the node's revision. A
// host that committed its save, and whose Edit then failed for good (its
// context ended, the database stayed down longer than Edit's retries,
// the process died), has lost the edit: the next run makes nothing from
// the new parameters, and nothing can tell. A host that keeps its
// parameters in the same Postgres saves them and records the edit in one
// transaction of its own with [Store.EditTx], which does what Edit does
// (a new revision for each node, dirty, and the graph's version moved
// on, with Edit's checks and errors) in that transaction:
//
//	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
//		if _, err := tx.Exec(ctx, `UPDATE narrations SET text = $1 WHERE id = $2`, text, id); err != nil {
//			return err
//		}
//		_, err := store.EditTx(ctx, tx, g, "lecture-42", "asset:narration:segment[3]")
//		return err // an error rolls both back
//	})
//
// Nothing of it is visible before the commit, and a rollback leaves no
// trace: the parameters and the edit are stored together or not at all.
// Once committed, a run in flight, in any process, that started one of
// the nodes conflicts, reloads and supersedes it, as after Edit, and the
// next run makes it from the new parameters. EditTx locks the graph's row
// as Commit does (SELECT ... FOR UPDATE, then Commit's statement), so
// that every commit of the graph waits for the host's transaction to
// end: call it last, just before the commit. Prefer it to Edit whenever
// the parameters live in this database; keep Edit for parameters kept
// elsewhere. Run the transaction in READ COMMITTED, as above: pgx.Begin
// takes the session's default_transaction_isolation, which a role or a
// database may set stricter, and at a stricter level a commit of the
// graph since the transaction's snapshot fails EditTx with SQLSTATE
// 40001 (the host then runs its transaction again). Roll it back on any
// error of EditTx.
//
// # Retention
//
// Nothing is deleted by the executor. An asset's key ends with its content
// hash, so regenerating a node puts a new asset and leaves the old one
// behind, and results that were never committed (cancelled, superseded)
// leave theirs. A host deletes with three methods:
//
//   - [Store.DeleteGraph] removes a graph's node states and run records
//     in one transaction. Its graphs row stays, as a tombstone whose
//     version moves on, so that no version number is used twice: a run
//     that loaded the graph before the deletion cannot commit over the
//     graph re-created after it.
//   - [Store.PruneAssets] deletes the assets that no node state refers to
//     and that were put, or released, more than a given age ago. A commit
//     that replaces a node's reference releases the old asset, which
//     renews its put_at. An age longer than the longest run makes it safe
//     while runs go on. It is only for a Store that is also the
//     StateStore of everything that puts assets into it.
//   - [Store.PruneRuns] deletes run records that ended, or that never
//     ended but started, more than a given age ago, but never one that
//     says running, whatever its age: its run may go on still, or wait,
//     its process gone, for [Store.ResumeLeftRunning].
//
// Ages are measured by the database's clock. The prunes work in batches of
// 1,000 rows, each a short transaction. Layout version 2 added the hash
// index that PruneAssets looks references up with (a hash index has no
// limit on the length of a reference); [Store.Migrate] adds it to a
// version 1 schema (CREATE INDEX, which blocks writes to node_states while
// it runs), and makes it again, as a hash index, in a schema that the
// first release of version 2 migrated, which made it a btree under the
// same name (so that a commit of a reference over about 2,700 bytes
// failed there): DROP INDEX and CREATE INDEX, which hold off reads and
// writes of node_states until the migration commits. It then locks
// node_states so (ACCESS EXCLUSIVE) before anything else, so that the
// commits of the other processes, which read node_states before they
// write it, wait for it without a deadlock. Layout version 3 added the index on the runs' age that
// PruneRuns finds old records with, so that a prune costs what it
// deletes, not a scan of every record kept (73 ms for 200,000 records,
// at every prune, and for each batch of a large one); [Store.Migrate]
// adds it to an older schema (CREATE INDEX, which blocks PutRun, and so
// the start and end of runs, while it runs: seconds for millions of
// records). Layout version 4 added the runs table's graph column, which
// keeps executor.Record.Graph, the fingerprint of a run's graph that
// executor.Executor.Resume checks; [Store.Migrate] adds it to an older
// schema (ALTER TABLE ... ADD COLUMN with a constant default, which
// rewrites no row but waits for the statements on runs going on, and
// holds off the next ones until the migration commits: a moment, unless
// a long query on runs is running). The records of before read with an
// empty Graph, which Resume checks by their duration only. Layout version
// 5 added the partial index runs_running, which holds the running
// records only, so that [Store.RunsByStatus] of executor.RunRunning, which
// a host calls at start-up to find the runs that a crashed process left
// running, costs what it returns rather than a scan of every record
// kept; [Store.Migrate] adds it to an older schema (CREATE INDEX, which
// blocks PutRun while it runs, as layout 3's did, but reads the table
// only once: seconds for millions of records). Layout version 6 added the
// runs table's resumes column, which keeps executor.Record.Resumes, the
// run that a run started by Resume or RerunFailed finishes;
// [Store.Migrate] adds it to an older schema as layout 4's graph column
// (ALTER TABLE ... ADD COLUMN with a constant default: no row rewritten,
// a moment's lock on runs). The records of before read with an empty
// Resumes, as records of runs that finished none, as do the records that
// a process of an older release, still going on during the upgrade (a
// rolling deploy), puts new: it does not know the column. Layout version
// 7 added the runs table's cancelled_by column, which keeps
// executor.Record.CancelledBy, a cancelled run's cancel code (such as
// [CancelledByLockLost]), the same way: the records of before, and those
// that a process of an older release puts during the upgrade, read with
// no code. The partial index runs_cancelled, which holds the cancelled
// records only, so that [Store.RunsByStatus] of executor.RunCancelled
// (which [Store.ResumeCancelled] lists at each start-up) costs what it
// returns rather than a scan of every record kept, came after layout 7
// without a version of its own: a release of layout 7 that does not know
// it works with it, and this one without it (the scan), so that their
// processes go on side by side in a rolling deploy, and a rollback takes
// the schema as it is. [Store.Migrate] makes it, once, in a schema of
// layout 7 that lacks it (CREATE INDEX, which blocks PutRun while it
// runs, as layout 5's did), and rebuilds, once, one that a CREATE INDEX
// CONCURRENTLY that failed left not valid (REINDEX), or leaves it as it
// is if its role may not make it (one that only writes rows) or its
// session may not write (on a hot standby, or read-only): then the
// schema's owner's next Migrate makes it.
//
// A newer release may also know a dirty.Reason that this one does not,
// and write it in a record's marks. This release reads such a record all
// the same, the marks of reasons it does not know left out of
// Record.Marks (the rest as stored), so that GetRun, ListRuns,
// RunsByStatus and [Store.ResumeLeftRunning] do not fail for it; and its
// PutRun of the record (the executor recording it as interrupted, say)
// keeps those marks in the table, after the others (see [Store.PutRun]).
//
// # Listing runs
//
// [Store.ListRuns] reads every record of a graph at once, which a graph
// with a long history makes slow and large. [Store.ListRunsPage] reads
// them a page at a time, in ListRuns's order (oldest first), from the
// runs_graph_started index: a limit of 1 to [MaxRunsPage], a cursor that
// is opaque, "" for the first page, and "" back after the last. A bad
// limit or cursor is a [*PageError] (wrapping [ErrInvalidPage] and
// executor.ErrInvalidRequest), refused before any SQL. A host that serves
// a graph's runs to its clients pages them, as examples/service does.
// [Store.LatestRuns] reads the pages newest first, from the same index
// backwards, and [Store.LatestRun] the newest record alone: a host that
// needs a graph's last run (its status, its length) reads it so, at the
// cost of one record, where ListRuns's last costs every record.
//
// # Locking a graph key
//
// The executor makes runs of one graph key safe together, but not free:
// two processes that start the same work, or a Resume of a run that goes
// on in another process, pay the provider for the same nodes twice (and
// the Resume records the live run as interrupted). A host runs one run at
// a time per graph key, across its processes, with [Store.LockGraph]: a
// Postgres session advisory lock on a 64-bit key derived from the schema
// and the graph key ([Store.GraphLockKey]), held by a connection of its
// own. Postgres frees it when that session ends, so that a process that
// dies, or whose connection drops, never leaves a key locked. The recipe
// for a run, in an HTTP handler whose request's context is ctx:
//
//	lock, err := store.LockGraph(ctx, key) // or TryLockGraph, to refuse at once; ctx bounds the wait
//	if err != nil { ... }                   // a *LockedError from TryLockGraph: the key runs elsewhere
//	// Not ctx: Start's context is the run's lifetime, and the request's
//	// ends when the handler returns. Run.Cancel cancels the run.
//	run, err := e.Start(context.WithoutCancel(ctx), req) // or e.Resume(context.WithoutCancel(ctx), g, runID)
//	if err != nil {
//		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
//		defer cancel()
//		_ = lock.Unlock(uctx) // bounded: on a dead network the server cannot be told
//		...
//	}
//	// Cancels the run if the lock is lost (another process may take the
//	// key), and unlocks it once the run has ended.
//	held := lock.Hold(run)
//	go func() { // or wait in place, where nothing ends ctx before the run
//		report, err := run.Wait()
//		...
//		if err := <-held; err != nil { ... } // ErrLockLost: the run may have overlapped another
//	}()
//
// ctx bounds the lock's wait, and the run gets a context of its own:
// context.WithoutCancel(ctx) keeps ctx's values without its cancel (a
// service's own context, cancelled at its shutdown, does as well). Given
// ctx itself, the run would be cancelled as soon as the handler returned
// its answer. The host cancels the run with Run.Cancel or CancelCause (a
// cancel request, its shutdown), and Hold does on a lost lock; to bound
// the start itself by the request, see executor.Executor.Start.
// [GraphLock.Hold] unlocks with a bounded context once the run has ended
// (Run.Done), and its channel then says whether the lock was held to the
// end: nil, or an error wrapping [ErrLockLost]. Reading it is optional; a
// host that runs several steps under one lock, or unlocks elsewhere,
// calls [GraphLock.Guard], which only cancels, and Unlock itself. The
// lock is held until the run has ended: when a generator ignores its
// context, that is up to the executor's Options.Grace after the run's
// record says that it ended (see executor.Run.Done), and a TryLockGraph
// of the key in that time is refused.
//
// For start-up recovery, of the runs that a process which stopped left
// recorded as running, on every key, [Store.ResumeLeftRunning] does
// what follows, and says per run what it did. By hand: list them with
// [Store.RunsByStatus] (executor.RunRunning, from an index of the running
// records only); for each, try its key's lock with TryLockGraph: a
// *LockedError says that a live process runs the key (skip it: LockGraph
// would wait for that run's end, and a replica starting while others run
// would wait for each of their runs in turn), and a lock taken says that
// the process that ran it is gone; then read the record again with
// GetRun (another process may have resumed it meanwhile) and, if it
// still says running, check that the lock is still held
// ([GraphLock.Check]: its session may have ended since, and another
// process taken it) and Resume it under the lock as above. A record says running while its run goes
// on, too: only the lock tells a live run from one left behind. Several
// runs of one key left running (a recovery that died between its
// Resume's start of the new run and its record of the old one as
// interrupted) are settled in one call: the newest is resumed, and the
// older ones recorded as interrupted with executor.Executor.AbandonTo,
// resumed by the run that took over, which ends their streams with a
// final event whose ResumedBy names it.
// [Store.GraphLocked] asks the server whether a key's lock is held now,
// without taking it nor waiting, so that a check that resumes nothing
// (an on-call engineer's, an alert's) tells them apart too: a record
// that RunsByStatus lists as running, whose key GraphLocked finds
// unlocked, and that GetRun then still finds running, is a dead
// process's run, where every run of the store runs under its key's
// lock.
// ResumeLeftRunning's ctx, as Resume's, is the resumed runs' context
// too: give it the process's context, which its shutdown cancels, not
// one bounded for the start-up (context.WithTimeout), whose deadline
// would cancel every run it resumed.
//
// The runs that the host's shutdown or a lost lock cancelled are not left
// running: their records say cancelled, with a cancel code
// (executor.Record.CancelledBy: the host's, given with
// executor.CancelCode at shutdown, or [CancelledByLockLost]).
// [Store.ResumeCancelled] resumes those of the codes given, the same way,
// unless a run of their key started since (their resume among them)
// superseded them (a run of their graph that failed as it started, or
// that was cancelled before it started a node, with another code than
// those given, as its context ended or its lock was lost, supersedes
// nothing; a user's cancel, or the host's with a code of its own, does),
// and reports a run whose
// key's graph was replaced since ([SkippedGraphReplaced]: never resumed)
// without resuming it; a user's cancel (executor.CancelledByCancel) is
// left alone unless asked for:
//
//	shutdown := executor.CancelCode("shutdown", errors.New("service stopping"))
//	// at shutdown: cancel(shutdown) of the runs' context, then e.Close,
//	// then <-held of each Hold (or Wait of each Recovery) before exiting
//	// at start-up, after ResumeLeftRunning:
//	recs, err := s.ResumeCancelled(ctx, e, graphOf, executor.ResumeOptions{}, "shutdown", pgstore.CancelledByLockLost)
//
// e.Close waits for the runs to end, not for the Unlock that Hold makes
// after each run's end (bounded by 10 s), so a process that exits
// without reading each Hold's channel, or calling [Recovery.Wait] of
// each run that ResumeLeftRunning or ResumeCancelled resumed, may exit
// with an unlock pending: the server then frees the lock only once it
// sees the session end, and the channel's report of a lost lock is lost.
//
// What to know:
//
//   - Connections. A lock held, or waited for, takes a connection out of
//     the pool (pgxpool.Conn.Hijack), so that locks never starve the
//     store's own statements of the pool's connections: each is one
//     server connection beyond the pool's MaxConns, closed at Unlock, and
//     the pool opens another in its place when it needs one. Size
//     Postgres's max_connections for them (see Sizing connections).
//     Closing the pool neither waits for the locks' connections nor frees
//     the locks: Unlock them.
//   - Loss. A goroutine of each GraphLock reads its idle connection, so
//     that Lost is closed at once when the server ends the session (an
//     administrator's pg_terminate_backend, a restart, a failover) or the
//     connection closes; Unlock and Check then return an error wrapping
//     [ErrLockLost], and Hold's channel delivers one, unless a Check
//     begun after the held run's end found the lock held before the
//     server's end of the session was found, by the watcher, a Check or
//     Hold's unlock (then nil: nothing was lost). A network that
//     fails silently is found when TCP gives up on the connection
//     (keepalives), or at once by [GraphLock.Check], one round trip. Meanwhile the server frees the lock when it sees
//     the session end: at once for a process that dies on a live host,
//     after its own TCP keepalives for a host that vanished
//     (tcp_keepalives_idle, tcp_keepalives_interval and
//     tcp_keepalives_count; a minute or two is a sensible bound).
//   - Re-take. Hold cancels its run as soon as the lock's session ends,
//     even in a restart or failover that the executor's
//     Options.StoreRetry rides out. [GraphLock.HoldFor] with a
//     [HoldOptions].Retake (about StoreRetry) takes the key's lock again
//     on a new connection, within Retake, and the run goes on; it
//     cancels with [CancelledByLockLost] if another session took the key
//     meanwhile, or Retake passes. In the window between the two
//     sessions another process's recovery may resume the run, whose
//     calls are then paid twice (the commits' compare-and-swap keeps the
//     state right): see HoldFor. [MaintainOptions].Retake does the same
//     for the runs that [Store.Maintain]'s passes resume, and
//     [GraphLock.GuardFor] for a host that runs several runs in turn
//     under one lock and unlocks it itself.
//     statement_timeout, lock_timeout and idle_session_timeout may be set
//     for the store's role or pool: LockGraph and TryLockGraph turn them
//     off on the lock's connection, so that its ctx alone bounds its wait
//     and an idle session does not end, and lose the lock, during a run.
//   - Collisions. Keys are 64-bit FNV-1a hashes: two graph keys (or a
//     graph key and another advisory lock of the database) that collide
//     share one lock, which makes one wait for the other, never lets two
//     holders in at once.
//   - Poolers. Session advisory locks need a connection that keeps its
//     server session: a direct connection, or PgBouncer in session mode.
//     PgBouncer in transaction or statement mode hands the session to
//     other clients between statements, which would share the lock, and
//     cannot hold one: point the lock's pool at Postgres directly, or at
//     a session-mode pooler. Check and Unlock find a connection moved to
//     another session, say so with ErrLockLost, and close Lost (Guard
//     and Hold then cancel the run, if it is still going on). The simple
//     protocol itself (pgx.QueryExecModeSimpleProtocol) works, on such a
//     connection: the tests take locks in both query modes.
//   - Key limits. A graph key that Commit would refuse (longer than
//     [MaxGraphKeyBytes], or not valid UTF-8 without NUL) is refused with
//     the same [*KeyError], before any SQL, and so is an empty one, which
//     the executor refuses as a RunRequest's GraphKey; each wraps
//     executor.ErrInvalidRequest. GraphLocked refuses the same keys.
//
// # Maintenance
//
// Recovery at start-up is not enough: a run that a process left as it
// died, or that a shutdown or a lost lock cut short, would wait for the
// next start-up of some process. [Store.Maintain] is the loop that every
// process of a host runs while it lives, from its start: each pass
// resumes the runs left running ([Store.ResumeLeftRunning]), then the
// runs cancelled with one of [MaintainOptions].ResumeCodes
// ([Store.ResumeCancelled]: the host's shutdown code and
// [CancelledByLockLost], typically), and, with MaintainOptions.Retain,
// prunes ([Store.PruneRuns], [Store.PruneAssets], then each of
// MaintainOptions.Pruners, such as a pghistory History, with the same
// age) at most every MaintainOptions.PruneEvery (an hour by default: a
// PruneAssets walks every asset). The first pass comes at once, and is
// the start-up recovery; the next ones every MaintainOptions.Every (10 s
// by default), jittered, so that a dead process's run is resumed by a
// live process about that long after the server has seen its sessions
// end:
//
//	ctx, stop := context.WithCancelCause(context.Background()) // the process's
//	go func() {
//		done <- store.Maintain(ctx, e, graphOf, pgstore.MaintainOptions{
//			ResumeCodes: []string{"shutdown", pgstore.CancelledByLockLost},
//			Retain:      7 * 24 * time.Hour, // longer than the longest run
//			Pruners:     []pgstore.Pruner{history},
//			OnPass:      func(p pgstore.Pass) { ... }, // metrics
//		})
//	}()
//	// at shutdown:
//	stop(executor.CancelCode("shutdown", errors.New("service stopping")))
//	<-done // the runs Maintain resumed have ended, their keys unlocked
//	// then e.Close(...)
//
// Its ctx must be the process's own: it is the context of the runs that
// the passes resume, as ResumeLeftRunning's is, so a ctx bounded for the
// start-up (context.WithTimeout) would cancel them. Cancelled with a
// coded cause, as above, it records the runs it cuts with the code, for
// another process's next pass to finish. A shutdown that drains the runs
// first (executor.Executor.Drain, with that cause) drains those that
// Maintain resumed too, which then end cancelled with the code; cancel
// ctx as soon as the drain has returned, as a pass after it would resume
// the drained runs afresh, only for the cancel to cut their calls. A step
// that fails (the database down, a Pruner's error) is logged as a warning
// ([MaintainOptions].Logger) and reported in [Pass].Err, and the loop
// goes on: the next step, and the next pass, are made all the same, and
// so after a panic of graphOf, a Pruner or OnPass, which is made an
// *executor.PanicError (see Store.Maintain). A run that a pass could not
// resume (graphOf failed, say) is logged too, and tried again at each
// pass, until the host abandons it (executor.Executor.Abandon); a run
// whose graphOf keeps failing, or that Resume keeps refusing as bad
// input (executor.ErrInvalidRequest: graphOf builds a graph that is not
// the run's, say), is warned of once, and again only after a pass in
// which it was not so. Each pass's queries end after
// [MaintainOptions].PassTimeout (Every or ten minutes, whichever is longer),
// so that a query the server stalls fails the pass ([ErrPassTimeout]),
// not the loop (executor.Executor.Resume's calls, whose context is the
// resumed run's, are bounded by the executor's Options.StoreTimeout and
// StoreRetry instead). Maintain
// returns context.Cause(ctx) once ctx has ended, after the pass under way
// and the runs its passes resumed (cancelled by ctx's end) have ended and
// their keys are unlocked: no goroutine of it outlives it. Bad arguments
// or options are refused before any pass with a [*MaintainOptionsError],
// which wraps executor.ErrInvalidRequest: a negative Every, PruneEvery,
// PassTimeout or Retake, an Every or a PassTimeout below
// [MinMaintainEvery] (a second) but 0, a Retain below [MinRetain] (a minute) but 0, Pruners or PruneEvery
// without Retain, a code that ResumeCancelled refuses.
//
// A pass takes a run whose record says running, and whose key is
// unlocked, for a dead process's: every process on the schema must start its runs
// under their keys' locks (see Locking a graph key), as the passes of a
// process skip its own runs and those of every live process only by
// their locks (a pass reports a run that an earlier pass of the same
// Maintain resumed, still going on, as [SkippedRunningHere], and a
// locked run otherwise as [SkippedLocked]). Each run resumed holds its key's lock, a connection, until
// it ends (see Sizing connections): as [GraphLock.Hold] holds it, so that
// its session's end (a Postgres restart or failover) cancels the run with
// [CancelledByLockLost] at once, for a next pass to resume; with
// [MaintainOptions].Retake, as [GraphLock.HoldFor] with that Retake,
// which takes the lock again on a new session and lets the run go on.
//
// # Errors
//
// A conflict is a *executor.ConflictError; an unknown asset or run wraps
// executor.ErrNotFound. A done context gives ctx.Err() with no effect;
// one that ends during a call gives an error wrapping ctx.Err(), also
// when the pool cancels statements with a cancel request
// (pgconn.CancelRequestContextWatcherHandler), which keeps the
// connection, rather than by closing it, as pgx does by default.
// A Put, PutRun or prune whose context ends, or whose connection is
// lost, while its statement runs may have been stored (or, for a prune,
// its batch deleted) or not: the store has the server cancel the
// statement before it returns (within a second), so that nothing is
// stored or deleted after the call has returned (unless the server
// cannot be reached to take the cancel: the error then says it may yet
// be), and its error says that the outcome is unknown and that putting
// (or pruning) again is safe (the executor puts again while its context
// lasts), and wraps [ErrInDoubt]. With a pool that cancels statements
// with a cancel request, the server's answer to it (SQLSTATE 57014,
// the statement cancelled) is no such doubt: nothing was stored, and
// the error does not wrap ErrInDoubt.
// Driver errors are wrapped with what was being done ("pgstore: commit
// graph ..."); when the schema, a table or a column of the current
// layout is missing (a schema of an older layout, not migrated yet) they
// also wrap [ErrNotMigrated]. A refused schema name is a [*SchemaError], a schema
// of a newer layout a [*SchemaVersionError] (wrapping [ErrSchemaTooNew]),
// a schema whose schema_version is another tool's table a
// [*VersionTableError] (wrapping [ErrForeignVersionTable]);
// a key or ID
// over its limit gives a [*KeyError], wrapping [ErrKeyTooLong] (or
// [ErrKeyNotText] for one that is not valid UTF-8 without NUL), and
// executor.ErrInvalidRequest too but for an asset key (see Limits),
// itself wrapped in executor.Permanent so that the executor does not
// retry it;
// another text field to write (a node state's LastError, a run record's
// Error, an asset's URL or Meta...) that is not valid UTF-8 without NUL
// gives a [*TextError] wrapping [ErrNotText], so wrapped too, before any
// SQL, and an asset larger than a message carries (or with a Meta larger
// than jsonb holds) an [*AssetSizeError] wrapping [ErrAssetTooLarge], so
// wrapped too; a negative age given to a prune wraps [ErrInvalidAge].
// [Store.TryLockGraph] of a key locked elsewhere gives a [*LockedError],
// wrapping [ErrGraphLocked] and executor.ErrBusy; a lock that lost its session gives errors
// wrapping [ErrLockLost]; a second [GraphLock.Hold] of a lock gives a
// [*HoldError]. [Store.EditTx] refuses what
// executor.Executor.Edit refuses with the same errors, wrapping
// executor.ErrInvalidRequest. [Store.ResumeLeftRunning] reports a run whose
// graph the host's graphOf could not build with a [*GraphOfError].
//
// # Pools and PgBouncer
//
// Every statement passes its values as arguments and casts them in SQL,
// so the store works with the pool's default query mode, which prepares
// and caches statements, and with pgx.QueryExecModeSimpleProtocol, which
// PgBouncer in transaction mode needs. The tests run the conformance kit
// in both, on direct connections. The graph locks are the exception:
// they need a session of their own, which PgBouncer in transaction mode
// does not keep (see Locking a graph key).
//
// A commit holds its graph's version row locked until it ends, so a
// process that freezes inside one (a paused VM, a stuck client) holds
// every commit on that graph. Set idle_in_transaction_session_timeout on
// the server or the store's role (a few seconds is plenty: a commit is
// one short transaction) so that Postgres ends such a session; the
// executor then retries its commits, reloading first. [Store.EditTx]
// holds the row until the host's transaction ends: the same setting
// bounds a host's transaction left idle after it.
//
// # Sizing connections
//
// The store's statements use the pool's connections, at most its
// MaxConns (pgxpool's default: 4, or the number of CPUs if more). Each
// graph lock held, or waited for by [Store.LockGraph], is a server
// connection of its own beyond MaxConns: LockGraph and
// [Store.TryLockGraph] take it out of the pool, which opens another in
// its place when its statements need one. A process with a pool of
// MaxConns 1 that runs 5 runs under their locks uses 6 server
// connections. So a process uses at most
//
//	MaxConns + L
//
// server connections, where L is the most locks it holds or waits for at
// once: one for each run under a lock (the recipe's, and each run that
// [Store.ResumeLeftRunning] or [Store.ResumeCancelled] resumed, until it
// ends), and one for each LockGraph still waiting. Set Postgres's
// max_connections for every process of every host that shares the
// server, and the server's reserved slots:
//
//	max_connections >= the sum over the processes of (MaxConns + L)
//	                   + superuser_reserved_connections (3 by default)
//	                   + reserved_connections (Postgres 16 and later)
//	                   + every other client (psql, migrations, monitoring)
//
// A host bounds L by bounding the runs it starts under locks (a
// semaphore before LockGraph, or a queue: examples/service's -max-runs).
// A server at max_connections refuses the next connection opened
// (SQLSTATE 53300), whether for a lock (LockGraph and TryLockGraph fail;
// ResumeLeftRunning reports the run NotResumed, for a later call) or for
// the pool's statements (their calls fail, and the executor retries its
// own as other failed store calls).
//
// # Tests
//
// The tests run against a real Postgres at REGEN_POSTGRES_URL (default
// postgres://root@127.0.0.1:5432/test?sslmode=disable), each in a schema
// of its own that it drops at the end. When Postgres cannot be reached
// they skip, except under CI=true, where they fail.
package pgstore
