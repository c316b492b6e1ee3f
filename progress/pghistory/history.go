package pghistory

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/regengraph/regen/internal/pgschema"
	"github.com/regengraph/regen/progress"
)

// Compile-time checks that a History implements the progress interfaces.
var (
	_ progress.History         = (*History)(nil)
	_ progress.LastEventReader = (*History)(nil)
)

// DefaultSchema is the schema of the tables when [Options].Schema is "":
// the same as executor/pgstore's, with which it can share a schema.
const DefaultSchema = "regen"

// SchemaVersion is the version of the table layout that [History.Migrate]
// creates and records in the progress_schema_version table (a table of
// its own, beside executor/pgstore's schema_version, whose versions
// count pgstore's layout). Version 1 is the first recorded; a schema made
// before versions were recorded is migrated to it.
const SchemaVersion = 1

// versionTable is the table that records the layout versions applied.
const versionTable = "progress_schema_version"

// DefaultPageSize is the events a Replay reads per query when
// [Options].PageSize is 0.
const DefaultPageSize = 500

// MaxPageSize is the largest [Options].PageSize.
const MaxPageSize = 10000

// MaxRunIDBytes is the longest run ID that a [History] stores, in bytes
// (of UTF-8). Postgres refuses a btree index entry longer than 2,704
// bytes, and the run ID is the first column of both tables' primary
// keys; 1,200 bytes, as executor/pgstore takes, keeps every entry well
// within that, however incompressible the ID.
const MaxRunIDBytes = 1200

// MaxSeq is the highest Seq that a [History] stores: Postgres's largest
// bigint. The executor's Seqs start at 1 and grow by one per event.
const MaxSeq = math.MaxInt64

// Errors of the package, for errors.Is.
var (
	// ErrInvalidSchema: [Options].Schema is not a safe SQL identifier. A
	// [*SchemaError] wraps it.
	ErrInvalidSchema = errors.New("pghistory: invalid schema name")
	// ErrInvalidOptions: an [Options] field is out of range.
	ErrInvalidOptions = errors.New("pghistory: invalid options")
	// ErrNoPool: [New] was given a nil pool.
	ErrNoPool = errors.New("pghistory: no pool")
	// ErrNotMigrated: the schema or its tables do not exist. Call
	// [History.Migrate] once before using the History.
	ErrNotMigrated = errors.New("pghistory: tables missing (call History.Migrate first)")
	// ErrSchemaTooNew: the schema holds a table layout newer than
	// [SchemaVersion], made by a later release, which this one must not
	// use nor migrate. A [*SchemaVersionError] wraps it.
	ErrSchemaTooNew = errors.New("pghistory: schema layout too new")
	// ErrForeignVersionTable: the schema holds a progress_schema_version
	// that is not the History's (another tool's table, or a view), which
	// [History.Migrate] refuses, changing nothing. A [*VersionTableError]
	// wraps it. It is pgstore's ErrForeignVersionTable too.
	ErrForeignVersionTable = pgschema.ErrForeignVersionTable
	// ErrInDoubt: an [History.Append] whose context ended, or whose
	// connection was lost, while its statement ran, may have stored the
	// events or not; appending them again is safe. Its error, which says
	// so, wraps it. It is pgstore's ErrInDoubt too.
	ErrInDoubt = pgschema.ErrInDoubt
	// ErrInvalidAge: [History.Prune] got a negative age.
	ErrInvalidAge = errors.New("pghistory: invalid age")
	// ErrRunIDTooLong: a run ID to append is longer than
	// [MaxRunIDBytes]. A [*RunIDError] wraps it.
	ErrRunIDTooLong = errors.New("pghistory: run ID too long")
	// ErrRunIDNotText: a run ID to append is not valid UTF-8 without NUL,
	// which a text column cannot hold. A [*RunIDError] wraps it.
	ErrRunIDNotText = errors.New("pghistory: run ID is not text")
)

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

// VersionTableError reports the relation named progress_schema_version
// of the History's schema that [History.Migrate] refused because it is
// not the History's version table (version integer, applied_at
// timestamptz): its schema, its name, what it is (Kind: "table",
// "view"...) and its columns. The History would misread such a table,
// or write its version into it: give the History a schema of its own
// ([Options].Schema). It wraps [ErrForeignVersionTable], and is pgstore's
// VersionTableError too.
type VersionTableError = pgschema.VersionTableError

// SchemaVersionError reports a schema whose recorded table layout is
// newer than this release supports: [History.Migrate] refuses it,
// changing nothing. It wraps [ErrSchemaTooNew].
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

// RunIDError reports a run ID that [History.Append] refused before any
// SQL, with the whole call: longer than [MaxRunIDBytes] (it then wraps
// [ErrRunIDTooLong]), or not valid UTF-8 without NUL (it then wraps
// [ErrRunIDNotText]). It wraps [progress.ErrInvalidEvent] too, since the
// event cannot be stored, so that a caller that branches on invalid
// events does not retry it.
type RunIDError struct {
	// RunID is the run ID given.
	RunID string
	// Seq is the Seq of the event that carries it.
	Seq uint64
	// NotText says that the run ID is refused for not being valid UTF-8
	// without NUL, rather than for its length.
	NotText bool
}

func (e *RunIDError) Error() string {
	if e.NotText {
		return fmt.Sprintf("%v: seq %d: run ID %.64q is not valid UTF-8 without NUL: Postgres text holds only that",
			ErrRunIDNotText, e.Seq, e.RunID)
	}
	return fmt.Sprintf("%v: seq %d: run ID %.32q... is %d bytes long: want at most %d bytes (Postgres indexes it)",
		ErrRunIDTooLong, e.Seq, e.RunID, len(e.RunID), MaxRunIDBytes)
}

// Unwrap returns [ErrRunIDNotText] or [ErrRunIDTooLong], and
// [progress.ErrInvalidEvent].
func (e *RunIDError) Unwrap() []error {
	if e.NotText {
		return []error{ErrRunIDNotText, progress.ErrInvalidEvent}
	}
	return []error{ErrRunIDTooLong, progress.ErrInvalidEvent}
}

// Options configures a [History]. The zero value gives the defaults.
type Options struct {
	// Schema is the Postgres schema that holds the History's tables. It
	// must be a plain lowercase identifier: 1 to 63 of a-z, 0-9 and _,
	// not starting with a digit nor with "pg_", and not
	// information_schema: no system schema. It may be the schema of
	// an executor/pgstore Store: their tables' names differ. Default:
	// [DefaultSchema], "regen".
	Schema string
	// PageSize is how many events [History.Replay] reads per query, and
	// so holds in memory at once, at most [MaxPageSize]. Default:
	// [DefaultPageSize], 500.
	PageSize int
}

// History is a [progress.History] in PostgreSQL, through a
// pgxpool.Pool that the host owns: the archive that a Source such as
// progress/redisstream's falls back to once its own copy of a run is
// trimmed, expired or lost. It also implements
// [progress.LastEventReader]. It is safe for concurrent use, from one
// process or many. It never closes the pool.
//
// Call [History.Migrate] once (at start-up; it is idempotent) before
// using it. See the package documentation for the tables, the costs and
// the limits.
type History struct {
	pool       *pgxpool.Pool
	schema     string
	pageSize   int
	batch      int    // runs a prune statement deletes at most
	afterBatch func() // for tests: called after each batch of a prune
	q          queries
}

// New returns a History on pool, with its tables in opts.Schema. It
// checks the options only; it does not touch the database. It returns an
// error wrapping [ErrNoPool] for a nil pool, a [*SchemaError] for a
// schema name that is not allowed, and one wrapping [ErrInvalidOptions]
// for a PageSize out of range.
func New(pool *pgxpool.Pool, opts Options) (*History, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: pass the host's *pgxpool.Pool to New", ErrNoPool)
	}
	schema := opts.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	if !pgschema.Valid(schema) {
		return nil, &SchemaError{Schema: schema}
	}
	page := opts.PageSize
	if page == 0 {
		page = DefaultPageSize
	}
	if page < 1 || page > MaxPageSize {
		return nil, fmt.Errorf("%w: PageSize %d: want 1 to %d, or 0 for %d", ErrInvalidOptions, opts.PageSize, MaxPageSize, DefaultPageSize)
	}
	return &History{pool: pool, schema: schema, pageSize: page, batch: pruneBatch, q: newQueries(schema)}, nil
}

// Schema returns the name of the schema that holds the History's tables.
func (h *History) Schema() string { return h.schema }

// Migrate creates the schema, the tables and the index that the History
// needs, if they do not exist yet, and records [SchemaVersion] in the
// progress_schema_version table. It is idempotent, and safe to call
// concurrently from several processes, and beside executor/pgstore's
// Store.Migrate on the same schema: it runs in one transaction that
// first takes the transaction-scoped advisory lock
// (pg_advisory_xact_lock) that pgstore's Migrate takes for that schema,
// so that migrations of one schema run one after the other. A schema
// that records a layout newer than SchemaVersion is refused with a
// [*SchemaVersionError], and left as it was. Migrate never drops
// anything that holds data, nor touches a table of pgstore; migrating a
// schema made before versions were recorded drops its progress_events
// column archived_at, which nothing read, first, in a transaction of its
// own (under the same lock) that locks no other table, so that it never
// deadlocks with an append or a delete under way. A schema that records
// SchemaVersion and has the whole layout, as at most start-ups, is left
// as it is, read from the catalogs only: Migrate then locks none of its
// tables, and so never waits for the writes of other processes, nor holds
// theirs off; and it needs no privilege but reading the version table, so
// that a service whose role may only read and write rows can call it at
// start-up too. ctx alone bounds Migrate: it waits for another
// process's migration of the schema, and for the writes under way on a
// table that its changes lock, until ctx ends, as it turns
// statement_timeout, lock_timeout and transaction_timeout off in its own
// transactions (SET LOCAL), so that a replica that starts while another
// migrates does not fail for a timeout that the role or the pool sets to
// bound its queries; the pool's connection has them again after it. It
// returns context.Cause(ctx) if ctx is done, or ends while it waits.
func (h *History) Migrate(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	again, err := h.migrate(ctx, true)
	if err == nil && again {
		_, err = h.migrate(ctx, false)
	}
	return err
}

// migrate runs one transaction of Migrate. In a schema made before
// versions were recorded whose progress_events still has archived_at,
// with dropFirst, it only drops that column, commits, and reports that
// Migrate must run again. The drop takes an exclusive lock on
// progress_events, and the DDL a share lock on progress_runs (CREATE
// INDEX IF NOT EXISTS takes it even when the index exists); in one
// transaction, one of them would be held while waiting for the other,
// and an append (progress_events, then progress_runs) or a DeleteRun or
// Prune (progress_runs, then progress_events) under way would close a
// cycle that Postgres breaks by aborting one of the two.
func (h *History) migrate(ctx context.Context, dropFirst bool) (again bool, err error) {
	tx, err := pgschema.BeginMigrate(ctx, h.pool, h.schema)
	if err != nil {
		return false, h.fail(ctx, err, "migrate schema %s", h.schema)
	}
	defer pgschema.Rollback(ctx, tx)
	found, err := pgschema.Version(ctx, tx, h.schema, versionTable)
	if err != nil {
		return false, h.fail(ctx, err, "migrate schema %s", h.schema)
	}
	if found > SchemaVersion {
		return false, &SchemaVersionError{Schema: h.schema, Found: found, Supported: SchemaVersion}
	}
	if found == SchemaVersion {
		// Up to date, as at most start-ups: the DDL below would lock
		// progress_runs (CREATE INDEX IF NOT EXISTS takes a share lock
		// even when the index exists), so that behind a long write every
		// append after it would wait for this Migrate.
		var upToDate bool
		if err := tx.QueryRow(ctx, upToDateSQL, h.schema).Scan(&upToDate); err != nil {
			return false, h.fail(ctx, err, "migrate schema %s: look up the layout", h.schema)
		}
		if upToDate {
			return false, nil // nothing to change: the deferred rollback ends the transaction
		}
	}
	var archivedAt bool
	if found < 1 {
		// A catalog read, which locks no table: ALTER TABLE would lock
		// progress_events even when it has no such column.
		if err := tx.QueryRow(ctx, hasArchivedAtSQL, h.schema).Scan(&archivedAt); err != nil {
			return false, h.fail(ctx, err, "migrate schema %s: look up archived_at", h.schema)
		}
	}
	if archivedAt && dropFirst {
		if _, err := tx.Exec(ctx, h.q.upgradeTo1); err != nil {
			return false, h.fail(ctx, err, "migrate schema %s: to version 1", h.schema)
		}
		if err := tx.Commit(ctx); err != nil {
			return false, h.fail(ctx, err, "migrate schema %s: commit", h.schema)
		}
		return true, nil
	}
	if _, err := tx.Exec(ctx, h.q.ddl); err != nil {
		return false, h.fail(ctx, err, "migrate schema %s: create tables", h.schema)
	}
	if archivedAt {
		// Made again between the two transactions (the table dropped by
		// hand, and created by an older release): drop it here.
		if _, err := tx.Exec(ctx, h.q.upgradeTo1); err != nil {
			return false, h.fail(ctx, err, "migrate schema %s: to version 1", h.schema)
		}
	}
	if err := pgschema.RecordVersion(ctx, tx, h.schema, versionTable, SchemaVersion); err != nil {
		return false, h.fail(ctx, err, "migrate schema %s", h.schema)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, h.fail(ctx, err, "migrate schema %s: commit", h.schema)
	}
	return false, nil
}

// fail wraps a driver error with what was being done: context.Cause(ctx)
// alone once ctx is done, since that is why the call failed; one that
// says the schema or a table does not exist wraps [ErrNotMigrated] too.
func (h *History) fail(ctx context.Context, err error, format string, args ...any) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	what := fmt.Sprintf(format, args...)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") { // undefined_table, invalid_schema_name
		return fmt.Errorf("%w: schema %s: %s: %w", ErrNotMigrated, h.schema, what, err)
	}
	return fmt.Errorf("pghistory: %s: %w", what, err)
}

// fits reports whether runID can be one the History holds. A lookup of a
// run ID that does not fit finds nothing, without asking the server.
func fits(runID string) bool {
	return len(runID) <= MaxRunIDBytes && pgschema.Storable(runID)
}

// checkEvent returns why e cannot be appended, or nil: [progress.Event.Validate]'s
// error, a [*RunIDError], or a Seq over [MaxSeq].
func checkEvent(e progress.Event) error {
	// The run ID's own errors first: they say more than Validate's, which
	// refuses a run ID that is not text too.
	switch {
	case len(e.RunID) > MaxRunIDBytes:
		return &RunIDError{RunID: e.RunID, Seq: e.Seq}
	case !pgschema.Storable(e.RunID):
		return &RunIDError{RunID: e.RunID, Seq: e.Seq, NotText: true}
	}
	if err := e.Validate(); err != nil {
		return err
	}
	switch {
	case e.Seq > MaxSeq:
		return fmt.Errorf("%w: run %s seq %d is over %d, the largest Postgres bigint", progress.ErrInvalidEvent, pgschema.QuoteKey(e.RunID), e.Seq, uint64(MaxSeq))
	}
	return nil
}
