package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/pgschema"
)

// Compile-time checks that a Store implements the executor's interfaces.
var (
	_ executor.StateStore       = (*Store)(nil)
	_ executor.AssetStore       = (*Store)(nil)
	_ executor.AssetChecker     = (*Store)(nil)
	_ executor.AssetBatchGetter = (*Store)(nil)
	_ executor.RunStore         = (*Store)(nil)
	_ executor.RunStatusLister  = (*Store)(nil)
)

// DefaultSchema is the schema of the tables when [Options].Schema is "".
const DefaultSchema = "regen"

// SchemaVersion is the version of the table layout that [Store.Migrate]
// creates and records in the schema_version table. Version 2 added the
// node_states_asset_ref index, for [Store.PruneAssets], version 3 the
// runs_age index, for [Store.PruneRuns], version 4 the runs table's
// graph column, for executor.Record.Graph, version 5 the partial index
// runs_running, for [Store.RunsByStatus], version 6 the runs table's
// resumes column, for executor.Record.Resumes, and version 7 its
// cancelled_by column, for executor.Record.CancelledBy; migrating an
// older schema adds them. The partial index runs_cancelled, for
// [Store.RunsByStatus] of cancelled runs, came later without a version
// of its own, as releases that know it and releases that do not work
// with either schema (see [Store.Migrate]).
const SchemaVersion = 7

// versionTable is the table that records the layout versions applied.
const versionTable = "schema_version"

// Errors of the package, for errors.Is.
var (
	// ErrInvalidSchema: [Options].Schema is not a safe SQL identifier. A
	// [*SchemaError] wraps it.
	ErrInvalidSchema = errors.New("pgstore: invalid schema name")
	// ErrNoPool: [New] was given a nil pool.
	ErrNoPool = errors.New("pgstore: no pool")
	// ErrNotMigrated: the schema or its tables do not exist, or a table
	// lacks a column of the current layout (one migrated by an older
	// release, before version 4's runs.graph, version 6's runs.resumes
	// or version 7's runs.cancelled_by). Call [Store.Migrate] once
	// before using the store.
	ErrNotMigrated = errors.New("pgstore: tables missing (call Store.Migrate first)")
	// ErrInvalidAge: a retention method got a negative age. It is
	// executor.ErrInvalidAge, which executor.MemoryStore returns too, so
	// that a host checks one value whichever store it runs on.
	ErrInvalidAge = executor.ErrInvalidAge
	// ErrKeyTooLong: a graph key, node ID, asset key or run ID (a
	// record's own, or the one its Resumes names) is longer than the
	// store can index (see [MaxGraphKeyBytes]). A [*KeyError]
	// wraps it, with executor.ErrInvalidRequest but for an asset key.
	ErrKeyTooLong = errors.New("pgstore: key too long")
	// ErrKeyNotText: a graph key, node ID, asset key or run ID (a
	// record's own, or the one its Resumes names) to write is not valid UTF-8 without NUL, which a text column cannot hold. A
	// [*KeyError] wraps it, with executor.ErrInvalidRequest but for an
	// asset key.
	ErrKeyNotText = errors.New("pgstore: key is not text")
	// ErrNotText: a text field to write that is not a key (a node state's
	// hashes, reference or LastError, a run record's texts, an asset's
	// URL, Hash or Meta) is not valid UTF-8 without NUL, which Postgres
	// text and jsonb cannot hold. A [*TextError] wraps it.
	ErrNotText = errors.New("pgstore: text is not valid UTF-8 without NUL")
	// ErrAssetTooLarge: an asset to put is larger than a message of
	// the Postgres protocol carries (see [MaxAssetBytes]), or its Meta
	// larger than jsonb holds ([MaxAssetMetaBytes]). An
	// [*AssetSizeError] wraps it.
	ErrAssetTooLarge = errors.New("pgstore: asset too large")
	// ErrSchemaTooNew: the schema holds a table layout newer than
	// [SchemaVersion], migrated by a later release, which this one can
	// neither use nor migrate. A [*SchemaVersionError] wraps it.
	ErrSchemaTooNew = errors.New("pgstore: schema layout too new")
	// ErrForeignVersionTable: the schema holds a schema_version that is
	// not the store's (another tool's table, such as Flyway's before its
	// release 5, or a view), which [Store.Migrate] refuses, changing
	// nothing. A [*VersionTableError] wraps it.
	ErrForeignVersionTable = pgschema.ErrForeignVersionTable
	// ErrInDoubt: a Put, PutRun or prune whose context ended, or whose
	// connection was lost, while its statement ran, may have been stored
	// (or its batch deleted) or not; putting (or pruning) again is safe.
	// Its error, which says so, wraps it, and is not
	// executor.Permanent, so that the executor puts again. It is
	// pghistory's ErrInDoubt too.
	ErrInDoubt = pgschema.ErrInDoubt
)

// VersionTableError reports the relation named schema_version of the
// store's schema that [Store.Migrate] refused because it is not the
// store's version table (version integer, applied_at timestamptz): its
// schema, its name, what it is (Kind: "table", "view"...) and its
// columns. The store would misread such a table, or write its version
// into it: give the store a schema of its own ([Options].Schema). It
// wraps [ErrForeignVersionTable].
type VersionTableError = pgschema.VersionTableError

// SchemaError reports an [Options].Schema that New refused: what was
// given and what is allowed. It wraps [ErrInvalidSchema].
type SchemaError struct {
	// Schema is the name given.
	Schema string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("%v %q: %s", ErrInvalidSchema, e.Schema, pgschema.Allowed)
}

// Unwrap returns [ErrInvalidSchema].
func (e *SchemaError) Unwrap() error { return ErrInvalidSchema }

// SchemaVersionError reports a schema whose recorded table layout is
// newer than this release supports: [Store.Migrate] refuses it, changing
// nothing. It wraps [ErrSchemaTooNew].
type SchemaVersionError struct {
	// Schema is the schema migrated.
	Schema string
	// Found is the newest layout version the schema records.
	Found int
	// Supported is the newest this release knows, [SchemaVersion].
	Supported int
}

func (e *SchemaVersionError) Error() string {
	return fmt.Sprintf("%v: %s", ErrSchemaTooNew, pgschema.TooNew(e.Schema, e.Found, e.Supported))
}

// Unwrap returns [ErrSchemaTooNew].
func (e *SchemaVersionError) Unwrap() error { return ErrSchemaTooNew }

// Options configures a [Store]. The zero value gives the defaults.
type Options struct {
	// Schema is the Postgres schema that holds the store's tables. It
	// must be a plain lowercase identifier: 1 to 63 of a-z, 0-9 and _,
	// not starting with a digit nor with "pg_" (which Postgres reserves),
	// and not information_schema: no system schema. Several stores can share
	// one database under different schemas. Default: [DefaultSchema],
	// "regen".
	Schema string
}

// Store keeps the executor's node states, assets and run records in
// Postgres, through a pgxpool.Pool that the host owns: it implements
// [executor.StateStore], [executor.AssetStore] and [executor.RunStore], so
// one Store can fill all three fields of executor.Options. It is safe for
// concurrent use, from one process or many. It never closes the pool.
//
// Call [Store.Migrate] once (at start-up; it is idempotent) before using
// it. See the package documentation for the tables and the transaction
// semantics.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	q      queries
	batch  int // rows a prune statement deletes at most
	// minEvery is the shortest MaintainOptions.Every that Maintain
	// takes: MinMaintainEvery, but in tests.
	minEvery time.Duration
	// maxAsset is the largest asset Put sends, for the pool's query
	// mode (pgxpool.Pool.Config copies the config at every call).
	maxAsset int
}

// New returns a Store on pool, with its tables in opts.Schema. It checks
// the options only; it does not touch the database. It returns an error
// wrapping [ErrNoPool] for a nil pool, and a [*SchemaError] for a schema
// name that is not allowed.
func New(pool *pgxpool.Pool, opts Options) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: pass the host's *pgxpool.Pool to New", ErrNoPool)
	}
	schema := opts.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	if err := CheckSchema(schema); err != nil {
		return nil, err
	}
	return &Store{pool: pool, schema: schema, q: newQueries(schema), batch: pruneBatch, minEvery: MinMaintainEvery, maxAsset: maxAssetBytes(pool)}, nil
}

// CheckSchema returns the [*SchemaError] that New would return for
// opts.Schema set to schema, or nil if New takes it ("" names
// [DefaultSchema], which it takes). A host checks a configured name with
// it before it connects, as progress/pghistory takes the same names.
func CheckSchema(schema string) error {
	if schema != "" && !pgschema.Valid(schema) {
		return &SchemaError{Schema: schema}
	}
	return nil
}

// Schema returns the name of the schema that holds the store's tables.
func (s *Store) Schema() string { return s.schema }

// Migrate creates the schema, the tables and the index that the store
// needs, if they do not exist yet, and records [SchemaVersion]. It is
// idempotent, and safe to call concurrently from several processes: it
// runs in one transaction that first takes a transaction-scoped advisory
// lock (pg_advisory_xact_lock) derived from the schema name, so
// concurrent migrations of one schema run one after the other. It never
// drops anything that holds data, and alters only what an older layout
// made: it adds the graph column to the runs table of a schema of layout
// 3 or older, the runs_running index to one of layout 4 or older, the
// resumes column to the runs table of one of layout 5 or older, the
// cancelled_by column to the runs table of one of layout 6 or older, and makes node_states_asset_ref a hash index where the
// first release of layout 2 made it a btree (which refuses references
// over about 2,700 bytes), dropping the btree. A
// schema that records a layout newer than SchemaVersion, migrated by a
// later release, is refused with a [*SchemaVersionError], changing
// nothing: this release would misread it (a rollback of a deployment,
// say). A schema whose schema_version is not the store's (a table of
// another tool by that name, with other columns) is refused with a
// [*VersionTableError], changing nothing. A schema that records SchemaVersion and has every table, index
// and column of its layout, as at most start-ups, is left as it is, read
// from the catalogs only: Migrate then locks none of its tables, and so
// never waits for the writes of other processes, nor holds theirs off;
// and it needs no privilege but reading schema_version, so that a service
// whose role may only read and write rows (another role owning the
// tables) can call it at start-up too. Such a schema that lacks the index
// runs_cancelled (one that a release from before the index migrated) gets
// it, once, as an index of layout 5 or older gets added (CREATE INDEX,
// which blocks PutRun while it runs), and one whose runs_cancelled is not
// valid (a CREATE INDEX CONCURRENTLY that failed left it so) gets it
// rebuilt, once (REINDEX, which blocks PutRun, and the queries of the
// runs table, which the planner plans with every index, while it runs);
// a role that may not make it (one that only writes rows), or a session
// that may not write (on a hot standby, or read-only by
// default_transaction_read_only), leaves it as it is, without an error,
// as the store works without it (RunsByStatus of cancelled runs then
// scans the table). ctx alone bounds Migrate: it
// waits for another process's migration of the schema, and for the
// writes under way on a table that its changes lock, until ctx ends, as
// it turns statement_timeout, lock_timeout and transaction_timeout off in
// its own transaction (SET LOCAL), so that a replica that starts while
// another migrates does not fail for a timeout that the role or the pool
// sets to bound its queries; the pool's connection has them again after
// it. It returns ctx.Err() if ctx is done, and an error wrapping
// ctx.Err() if ctx ends while it waits.
func (s *Store) Migrate(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tx, err := pgschema.BeginMigrate(ctx, s.pool, s.schema)
	if err != nil {
		return s.migrateErr(ctx, err, "")
	}
	defer pgschema.Rollback(ctx, tx)
	found, err := pgschema.Version(ctx, tx, s.schema, versionTable)
	if err != nil {
		return s.migrateErr(ctx, err, "")
	}
	if found > SchemaVersion {
		return &SchemaVersionError{Schema: s.schema, Found: found, Supported: SchemaVersion}
	}
	if found == SchemaVersion {
		// Up to date, as at most start-ups: the DDL below would lock
		// node_states and runs (CREATE INDEX IF NOT EXISTS takes a share
		// lock even when the index exists), so that behind a long write
		// every write after it would wait for this Migrate.
		var upToDate bool
		if err := tx.QueryRow(ctx, s.q.upToDate, s.schema).Scan(&upToDate); err != nil {
			return s.migrateErr(ctx, err, "look up the layout")
		}
		if upToDate {
			return s.addCancelledIndex(ctx, tx)
		}
	}
	// The first release of layout 2 made the index on references a
	// btree (see refIndexMethodSQL), which later layouts kept: it is made
	// again, as the hash index that takes references of any length. (No
	// index yet, the DDL makes a hash index.)
	var method string
	err = tx.QueryRow(ctx, s.q.refIndexMethod, s.schema).Scan(&method)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return s.migrateErr(ctx, err, "look up the index on references")
	}
	rebuild := err == nil && method != "hash"
	if rebuild {
		// Its DROP INDEX locks node_states in ACCESS EXCLUSIVE mode,
		// which the DDL's CREATE INDEX IF NOT EXISTS would have locked
		// in SHARE mode before: a commit whose statement holds ACCESS
		// SHARE on node_states (it reads the states it replaces) while
		// it waits behind that SHARE for its ROW EXCLUSIVE would hold
		// the upgrade off, and Postgres would abort one of the two as a
		// deadlock. The strongest lock first, then.
		if _, err := tx.Exec(ctx, s.q.lockStates); err != nil {
			return s.migrateErr(ctx, err, "lock node_states")
		}
	}
	if _, err := tx.Exec(ctx, s.q.ddl); err != nil {
		return s.migrateErr(ctx, err, "create tables")
	}
	if rebuild {
		if _, err := tx.Exec(ctx, s.q.hashRefIndex); err != nil {
			return s.migrateErr(ctx, err, "make the index on references a hash index")
		}
	}
	for _, u := range s.q.upgrades {
		// A schema that records the current layout but is not up to date
		// lost a column by hand: every upgrade is idempotent, so all of
		// them run, and put back what is missing.
		if u.version <= found && found < SchemaVersion {
			continue
		}
		if _, err := tx.Exec(ctx, u.sql); err != nil {
			return s.migrateErr(ctx, err, fmt.Sprintf("upgrade to layout version %d", u.version))
		}
	}
	if err := pgschema.RecordVersion(ctx, tx, s.schema, versionTable, SchemaVersion); err != nil {
		return s.migrateErr(ctx, err, "")
	}
	if err := tx.Commit(ctx); err != nil {
		return s.migrateErr(ctx, err, "commit")
	}
	return nil
}

// addCancelledIndex is Migrate's step on a schema of the current layout:
// it makes runs_cancelled if the schema lacks it (one that a release
// before the index migrated), or rebuilds it (REINDEX) if it is not
// valid (a CREATE INDEX CONCURRENTLY that failed left it so), and
// commits tx; a role that may not make it (one that only writes rows, as
// the schema's owner is another), or a session that may not write (a hot
// standby, a read-only transaction), leaves the schema as it is, without
// an error, as the store works without it.
// Otherwise it changes nothing, and the deferred rollback ends tx.
func (s *Store) addCancelledIndex(ctx context.Context, tx pgx.Tx) error {
	var valid bool
	sql, step := s.q.cancelledIndex, "make the index on cancelled runs"
	switch err := tx.QueryRow(ctx, s.q.hasCancelledIndex, s.schema).Scan(&valid); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return s.migrateErr(ctx, err, "look up the index on cancelled runs")
	case valid:
		return nil // nothing to change: the deferred rollback ends the transaction
	default:
		sql, step = s.q.reindexCancelled, "rebuild the index on cancelled runs, which is not valid"
	}
	if _, err := tx.Exec(ctx, sql); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "25006") {
			// insufficient_privilege: not the table's owner;
			// read_only_sql_transaction: a session that may not write (a
			// hot standby, default_transaction_read_only).
			return nil
		}
		return s.migrateErr(ctx, err, step)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.migrateErr(ctx, err, "commit")
	}
	return nil
}

// migrateErr wraps an error of Migrate's step (none if "") with the
// schema, and with ctx.Err() once ctx is done, as wrapErr does.
func (s *Store) migrateErr(ctx context.Context, err error, step string) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	if step != "" {
		return fmt.Errorf("pgstore: migrate schema %s: %s: %w", s.schema, step, err)
	}
	return fmt.Errorf("pgstore: migrate schema %s: %w", s.schema, err)
}

// exec runs a put of one statement, which replaces what it writes, in a
// READ COMMITTED transaction of its own, whatever the session's default
// level, in one round trip (see pgschema.ReadCommitted): the store's
// statements rely on READ COMMITTED to go on with a row that a
// concurrent writer committed.
//
// If ctx ends while the statement runs, or the connection is lost, the
// put may have been stored or not: ReadCommitted then has the server
// cancel the statement before it returns (a second at most), so that a
// put that waits for a row lock does not commit after the call returned,
// over a later put of the same record or asset, and the error, a
// *pgschema.InDoubtError, says so, and that putting it again is safe
// (as the executor does after a lost connection), wrapping
// context.Cause(ctx) and ctx.Err(), or the driver's error.
func (s *Store) exec(ctx context.Context, sql string, args ...any) error {
	err := pgschema.ReadCommitted(ctx, s.pool, sql, args, func(r pgx.BatchResults) error {
		_, err := r.Exec()
		return err
	})
	var d *pgschema.InDoubtError
	if errors.As(err, &d) {
		d.Done, d.Again = "stored it", "putting it again is safe"
	}
	return err
}

// wrapErr wraps a driver error with what was being done. An error that
// says the schema, a table or a column does not exist also wraps
// [ErrNotMigrated]. Once ctx is done the error wraps ctx.Err() too: a
// pool whose connections cancel a statement with a cancel request
// (pgconn.CancelRequestContextWatcherHandler) gets the server's "canceling
// statement due to user request" (SQLSTATE 57014), which carries no
// context error, where pgx's default handler gives one that does.
func (s *Store) wrapErr(ctx context.Context, err error, format string, args ...any) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	what := fmt.Sprintf(format, args...)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") { // undefined_table, invalid_schema_name
		return fmt.Errorf("%w: schema %s: %s: %w", ErrNotMigrated, s.schema, what, err)
	}
	if errors.As(err, &pe) && pe.Code == "42703" { // undefined_column: a table of an older layout
		return fmt.Errorf("%w: schema %s is of an older layout than version %d: %s: %w", ErrNotMigrated, s.schema, SchemaVersion, what, err)
	}
	return fmt.Errorf("pgstore: %s: %w", what, err)
}

// toTimestamptz converts t for a timestamptz column: NULL for the zero
// time. Postgres keeps microseconds; pgx truncates the rest.
func toTimestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// fromTimestamptz converts a timestamptz column: the zero time for NULL
// (or an infinity, which the store never writes), else the instant in
// UTC.
func fromTimestamptz(ts pgtype.Timestamptz) time.Time {
	if !ts.Valid || ts.InfinityModifier != pgtype.Finite {
		return time.Time{}
	}
	return ts.Time.UTC()
}
