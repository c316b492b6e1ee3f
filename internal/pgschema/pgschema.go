// Package pgschema holds what the project's Postgres adapters,
// executor/pgstore and progress/pghistory, must do alike: which schema
// names they take, how they quote them, the advisory lock under which
// they migrate a schema (so that the two can share one), what text
// Postgres holds, and how they roll a transaction back.
package pgschema

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/regengraph/regen/internal/quote"
)

// Valid reports whether name is a schema name the adapters take: a plain
// lowercase identifier that needs no quoting and names no system schema,
// [a-z_][a-z0-9_]{0,62}, not "pg_..." (Postgres reserves the prefix:
// pg_catalog, pg_toast, pg_temp_N) nor information_schema (the SQL
// standard's, in which a superuser may create tables), so that a Migrate
// never creates the adapters' tables beside the system catalogs.
func Valid(name string) bool {
	if len(name) == 0 || len(name) > 63 || strings.HasPrefix(name, "pg_") || name == "information_schema" {
		return false
	}
	for i := range len(name) {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Allowed says what Valid allows, for the adapters' errors.
const Allowed = "want 1 to 63 lowercase ASCII letters, digits and underscores, " +
	"starting with a letter or an underscore, and not starting with \"pg_\" (reserved by Postgres) nor information_schema " +
	"(the system schemas)"

// Quote quotes a schema name that Valid accepted, for SQL text.
func Quote(name string) string { return `"` + name + `"` }

// MigrateLockKey is the key of the transaction-scoped advisory lock
// (pg_advisory_xact_lock) that every adapter's Migrate of a schema takes
// first, so that migrations of one schema run one after the other: two
// that created a schema at once would fail one of them in the system
// catalogs. It is a 64-bit FNV-1a hash of pgstore's Migrate and the
// schema name, as pgstore has always taken it.
func MigrateLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("github.com/regengraph/regen/executor/pgstore.Migrate:" + schema))
	return int64(h.Sum64())
}

// QuoteKey returns a key, ID or reference quoted for an error, cut after
// 64 bytes, as the executor's errors quote graph keys and run IDs (see
// [quote.Key]).
func QuoteKey(s string) string { return quote.Key(s) }

// Storable reports whether Postgres can hold s in a text column: valid
// UTF-8 without NUL.
func Storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// RollbackTimeout bounds a rollback run after its context ended.
const RollbackTimeout = 5 * time.Second

// Rollback rolls tx back, if it is still open. It runs even when ctx is
// done, so that the connection goes back to the pool clean; pgx closes
// the connection instead if that fails. Rolling back a committed tx is a
// no-op.
func Rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RollbackTimeout)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// BeginReadCommitted starts a transaction in READ COMMITTED, as
// pgx.TxOptions{IsoLevel: pgx.ReadCommitted} does, for a batch.
const BeginReadCommitted = "BEGIN ISOLATION LEVEL READ COMMITTED"

// RollbackConn rolls back the transaction open on conn, if any, as
// Rollback does for a pgx.Tx: even when ctx is done, so that the
// connection goes back to the pool clean. pgxpool destroys a connection
// released with a transaction still open, or after a failed rollback.
func RollbackConn(ctx context.Context, conn *pgxpool.Conn) {
	pc := conn.Conn().PgConn()
	if pc.IsClosed() || pc.TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RollbackTimeout)
	defer cancel()
	_, _ = conn.Exec(ctx, "ROLLBACK")
}

// ReadCommitted runs sql, one statement, with args, in a READ COMMITTED
// transaction of its own on a connection of pool, whatever level the
// session defaults to (a role or a database may set
// default_transaction_isolation to 'repeatable read' or 'serializable'):
// the adapters' statements go on, in READ COMMITTED, with a row that a
// concurrent writer they waited for committed, where a stricter level
// fails them with SQLSTATE 40001. It costs one round trip, as the
// statement alone: BEGIN, the statement and COMMIT go in one batch. read
// reads the statement's result, with Exec or QueryRow, and nothing else.
// On an error of the server's the transaction is rolled back (see
// RollbackConn); but an error of read's own (a Scan that cannot convert
// a value, a check that refuses the result) comes once the server was
// sent the COMMIT, which it runs all the same: the statement is then
// committed, and read must not refuse a result to undo it. The error is
// the driver's, or read's, or context.Cause(ctx) if ctx is done before
// the batch is sent, or while pgx prepares its statements, as it does
// first, in a round trip of its own, in the modes that describe them
// (pgx.QueryExecModeCacheStatement, its default, on a connection that
// has not cached them yet): nothing of the batch is sent then, so that
// neither that error nor the driver's, for a connection lost then, is an
// [*InDoubtError].
//
// If ctx ends while the statement runs, or the connection is lost, the
// statement may have been committed or not, and the error is an
// [*InDoubtError]. pgx then closes the connection and sends the server a
// cancel request from a goroutine of its own, which may arrive after
// ReadCommitted returned; but the server holds the COMMIT already, so
// that a statement that waits (for a row lock that another transaction
// holds) and whose wait ends before that request arrives goes on, and
// commits, after the call returned. (A server does not see a lost
// connection while a statement waits, either.) So ReadCommitted sends a
// cancel request itself, and waits for the server to take it
// (CancelTimeout at most), which ends the wait with an error: the
// transaction fails and its COMMIT is skipped. A request that comes once
// the statement is done finds it committing or committed.
func ReadCommitted(ctx context.Context, pool *pgxpool.Pool, sql string, args []any, read func(pgx.BatchResults) error) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	pc := conn.Conn().PgConn()
	sent := false
	defer func() {
		// An error of the server's says that it answered: the transaction
		// failed. An error of the connection's, once the batch was sent,
		// leaves it unknown.
		var (
			pe  *pgconn.PgError
			pre pgx.ErrPreprocessingBatch
		)
		if errors.As(err, &pre) {
			// pgx prepares the statements first, in a round trip of its
			// own, in the modes that describe them, or failed to encode
			// an argument: nothing of the batch was sent.
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return
		}
		if !sent || err == nil || errors.As(err, &pe) || !pc.IsClosed() {
			return
		}
		d := &InDoubtError{Err: err}
		if ctx.Err() != nil {
			d.Ended, d.Err = true, context.Cause(ctx)
			if cerr := ctx.Err(); !errors.Is(d.Err, cerr) {
				d.Err = fmt.Errorf("%w (%w)", d.Err, cerr)
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CancelTimeout)
		defer cancel()
		d.Cancel = pc.CancelRequest(cctx)
		err = d
	}()
	defer RollbackConn(ctx, conn)
	if ctx.Err() != nil { // SendBatch would send nothing
		return context.Cause(ctx)
	}
	batch := &pgx.Batch{}
	batch.Queue(BeginReadCommitted)
	batch.Queue(sql, args...)
	batch.Queue("COMMIT")
	results := conn.SendBatch(ctx, batch)
	sent = true
	_, err = results.Exec()
	if err == nil {
		err = read(results)
	}
	if err == nil {
		var tag pgconn.CommandTag
		if tag, err = results.Exec(); err == nil && tag.String() != "COMMIT" {
			err = pgx.ErrTxCommitRollback
		}
	}
	if cerr := results.Close(); err == nil {
		err = cerr
	}
	return err
}

// CancelTimeout bounds the cancel request that ReadCommitted sends when
// it lost the statement's answer: a new connection to the server, which
// takes a round trip or two (a few more with TLS), unless the server
// cannot be reached, when the call must not wait long past its context.
const CancelTimeout = time.Second

// InDoubtError is ReadCommitted's error when ctx ended, or the
// connection was lost, while the statement ran: the statement may have
// been committed or not; errors.Is finds [ErrInDoubt] in it. The server
// has taken ReadCommitted's cancel request (unless Cancel says
// otherwise), so that it does not commit the statement later. An adapter
// sets Done and Again to say what the statement does, and wraps the
// error.
type InDoubtError struct {
	// Ended says that ctx ended; otherwise the connection was lost.
	Ended bool
	// Err is context.Cause(ctx), wrapped with ctx.Err() if it is not
	// that, or the driver's error.
	Err error
	// Cancel is the error of the cancel request, if the server could not
	// be reached: it may then still commit the statement.
	Cancel error
	// Done says what the statement may have done, for the error: "stored
	// the events". Default: "committed it".
	Done string
	// Again, if not "", says that the call may be made again, for the
	// error: "appending them again is safe".
	Again string
}

func (e *InDoubtError) Error() string {
	var b strings.Builder
	if e.Ended {
		b.WriteString("the context ended")
	} else {
		b.WriteString("the connection was lost")
	}
	done := e.Done
	if done == "" {
		done = "committed it"
	}
	b.WriteString(" while the statement ran, which may have " + done + " or not")
	if e.Cancel != nil {
		b.WriteString(", or may yet: the server did not take the cancel request (" + e.Cancel.Error() + ")")
	}
	if e.Again != "" {
		b.WriteString(" (" + e.Again + ")")
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

// Unwrap returns Err.
func (e *InDoubtError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrInDoubt], so that a host, which
// cannot name this internal type, finds it in an adapter's error.
func (e *InDoubtError) Is(target error) bool { return target == ErrInDoubt }

// ErrInDoubt: a write's outcome is unknown, as its context ended or its
// connection was lost while its statement ran. An [*InDoubtError] is it
// (errors.Is), and the adapters export it as their ErrInDoubt.
var ErrInDoubt = errors.New("the outcome of the write is unknown")

// Timeouts are the settings that a role or a pool may set to bound its
// queries or sessions, which would end a wait that ctx alone must bound
// (statement_timeout, lock_timeout, and transaction_timeout of Postgres
// 17 and later), or the idle session that holds a lock
// (idle_session_timeout, of Postgres 14 and later). A server without one
// of them has no such setting in pg_settings, and Untimed skips it.
const Timeouts = `'statement_timeout', 'lock_timeout', 'transaction_timeout', 'idle_session_timeout'`

// Untimed returns an SQL expression that turns Timeouts off, those the
// server has, if cond, an SQL boolean, holds: for the session, or, if
// local, for the transaction under way only (as SET LOCAL does), so that
// the connection goes back to its pool with the settings it had. The
// statements that follow the one that evaluates it run untimed (a
// statement's own statement_timeout starts with it).
func Untimed(cond string, local bool) string {
	return `(SELECT count(set_config(s.name, '0', ` + strconv.FormatBool(local) + `)) FROM pg_settings AS s WHERE ` + cond +
		` AND s.name IN (` + Timeouts + `))`
}

// BeginMigrate starts the transaction of an adapter's Migrate of schema:
// it turns Timeouts off for the transaction (see Untimed), takes the
// MigrateLockKey lock, then creates the schema if it does not exist.
// (CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the database
// even when the schema exists: it is skipped then, so that a host whose
// administrator made the schema can still migrate.) So ctx alone bounds
// the waits of the Migrate, for the lock while another process migrates
// and for the tables that its DDL locks behind the writes under way,
// whatever timeouts the role or the pool set to bound their queries; the
// pool's connection has them again once the transaction ends. The caller
// creates its tables, commits, and defers Rollback. An error says which
// step failed, and wraps the driver's.
func BeginMigrate(ctx context.Context, pool *pgxpool.Pool, schema string) (pgx.Tx, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	fail := func(step string, err error) (pgx.Tx, error) {
		Rollback(ctx, tx)
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	if _, err := tx.Exec(ctx, "SELECT "+Untimed("true", true)); err != nil {
		return fail("turn the timeouts off", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", MigrateLockKey(schema)); err != nil {
		return fail("advisory lock", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		return fail("look up the schema", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+Quote(schema)); err != nil {
			return fail("create schema", err)
		}
	}
	return tx, nil
}

// ErrForeignVersionTable: the schema holds a relation by the name of an
// adapter's version table that is not one (another tool's table, such as
// the schema_version of Flyway's releases before 5). A
// [*VersionTableError] wraps it.
var ErrForeignVersionTable = errors.New("the schema's version table is not regen's")

// versionColumns are the columns of an adapter's version table, as
// columnsSQL lists them, in order.
var versionColumns = []string{"version integer", "applied_at timestamp with time zone"}

// VersionTableError reports a relation of the schema, named as an
// adapter's version table, that is not one: [Version] refuses it before
// it reads or writes it, so that Migrate changes nothing. It wraps
// [ErrForeignVersionTable].
type VersionTableError struct {
	// Schema and Table name the relation.
	Schema, Table string
	// Kind is what the relation is: "table", "view", "materialized
	// view", "foreign table", "sequence", "index" or "other".
	Kind string
	// Columns are its columns, in order, each its name and its type
	// ("version character varying(50)"); none for a sequence or an index.
	Columns []string
}

func (e *VersionTableError) Error() string {
	return fmt.Sprintf("%v: %s %s of schema %s has columns (%s), not the version table's (%s): "+
		"another tool made it (Flyway's releases before 5 name their table schema_version), and Migrate would misread it "+
		"or write into it: give the adapter a schema of its own (a schema that does not exist is created), and leave this one as it is",
		ErrForeignVersionTable, e.Kind, e.Table, e.Schema, strings.Join(e.Columns, ", "), strings.Join(versionColumns, ", "))
}

// Unwrap returns [ErrForeignVersionTable].
func (e *VersionTableError) Unwrap() error { return ErrForeignVersionTable }

// relationSQL says what the relation named $2 in schema $1 is, and its
// columns (see versionColumns), if there is one; none if there is not. A
// catalog read, which locks nothing.
const relationSQL = `SELECT c.relkind::text, coalesce(array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
	ORDER BY a.attnum) FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}')
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
WHERE n.nspname = $1 AND c.relname = $2 GROUP BY c.relkind`

// relationKinds names pg_class.relkind's values.
var relationKinds = map[string]string{
	"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table",
	"S": "sequence", "i": "index", "I": "index",
}

// Version creates, if it does not exist, an adapter's version table in
// schema, a row per layout version applied (version integer PRIMARY KEY,
// applied_at timestamptz), and returns the newest version it records, 0
// if none: a schema made before the adapter recorded versions, or a new
// one. A relation of that name that is not such a table (a table with
// other columns, made by another tool, or a view) is refused with a
// [*VersionTableError] before Version reads or writes it. tx is the
// transaction of a Migrate, which holds the migration lock (see
// BeginMigrate), so that what it reads stays true until the commit. The
// table name must be a plain identifier, a constant of the adapter.
func Version(ctx context.Context, tx pgx.Tx, schema, table string) (int, error) {
	t := Quote(schema) + "." + table
	// CREATE TABLE IF NOT EXISTS needs the CREATE privilege on the schema
	// even when the table exists: made only if missing, so that a role
	// that may only read and write rows migrates an up-to-date schema.
	var (
		kind    string
		columns []string
	)
	err := tx.QueryRow(ctx, relationSQL, schema, table).Scan(&kind, &columns)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("look up %s: %w", table, err)
	}
	if exists && (kind != "r" && kind != "p" || !slices.Equal(columns, versionColumns)) {
		name, ok := relationKinds[kind]
		if !ok {
			name = "other"
		}
		return 0, &VersionTableError{Schema: schema, Table: table, Kind: name, Columns: columns}
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+t+
			" (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
			return 0, fmt.Errorf("create %s: %w", table, err)
		}
	}
	var v int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+t).Scan(&v); err != nil {
		return 0, fmt.Errorf("read %s: %w", table, err)
	}
	return v, nil
}

// RecordVersion records version in the version table that Version made,
// if it is not there yet.
func RecordVersion(ctx context.Context, tx pgx.Tx, schema, table string, version int) error {
	if _, err := tx.Exec(ctx, "INSERT INTO "+Quote(schema)+"."+table+
		" (version) VALUES ($1) ON CONFLICT (version) DO NOTHING", version); err != nil {
		return fmt.Errorf("record version %d in %s: %w", version, table, err)
	}
	return nil
}

// TooNew says what is wrong with a schema whose recorded layout version,
// found, is newer than the release's, supported, for the adapters'
// SchemaVersionError.
func TooNew(schema string, found, supported int) string {
	return fmt.Sprintf("schema %s holds layout version %d, and this release supports up to version %d: run a release that supports it",
		schema, found, supported)
}
