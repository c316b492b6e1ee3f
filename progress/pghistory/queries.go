package pghistory

import (
	"strings"

	"github.com/regengraph/regen/internal/pgschema"
)

// queries are a History's SQL statements, with the schema filled in. New
// checks that the schema name is a plain lowercase identifier, which is
// then quoted, so that SQL keywords ("user", "order") work too. Run IDs
// are text COLLATE "C": compared byte by byte, as Go compares strings.
type queries struct {
	ddl, upgradeTo1, appendEvents, replay, lastEvent, deleteRun, deleteRunEvents, pruneRuns, pruneEvents string
}

// ddl creates the tables; each statement is idempotent. {s} is the
// schema. The names differ from executor/pgstore's (graphs, node_states,
// assets, runs, schema_version), so that both can share a schema; the
// version table, progress_schema_version, is made by pgschema.Version.
const ddl = `
CREATE TABLE IF NOT EXISTS {s}.progress_events (
	run_id text COLLATE "C" NOT NULL,
	seq    bigint NOT NULL CHECK (seq > 0),
	event  bytea NOT NULL,
	PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS {s}.progress_runs (
	run_id  text COLLATE "C" PRIMARY KEY,
	last_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS progress_runs_last_at ON {s}.progress_runs (last_at);
`

// upgradeTo1 brings a schema made before versions were recorded to
// version 1: its events had an archived_at column, written and never
// read (Prune goes by the run's last_at), which version 1 drops. Postgres
// drops a column in its catalog only, without rewriting the table.
const upgradeTo1 = `ALTER TABLE {s}.progress_events DROP COLUMN IF EXISTS archived_at`

// upToDateSQL reports whether the schema $1 has the whole current layout,
// as ddl and upgradeTo1 make it: its two tables, the index
// progress_runs_last_at (valid), and no archived_at column in
// progress_events. It reads the catalogs only, which locks no table. Keep
// it in step with ddl.
const upToDateSQL = `SELECT
	(SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname IN ('progress_events', 'progress_runs')) = 2
	AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
		WHERE n.nspname = $1 AND c.relname = 'progress_runs_last_at' AND i.indisvalid)
	AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = 'progress_events' AND a.attname = 'archived_at' AND NOT a.attisdropped)`

// hasArchivedAtSQL reports whether the progress_events table of the
// schema $1 has the column archived_at, from the catalogs, which takes
// no lock on the table.
const hasArchivedAtSQL = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
	JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = 'progress_events' AND a.attname = 'archived_at' AND NOT a.attisdropped)`

// appendSQL inserts a batch of events, given as three arrays in the same
// order (run IDs, Seqs, the events' JSON), in that order, skipping those
// already held; then it renews last_at of the runs that got an event.
// The runs are upserted once every event is in (the aggregate reads the
// whole insert first), in run ID order, so that two concurrent appends
// take their row locks in one order and never deadlock: Append sorts the
// events by run ID and Seq, and the events' index entries are taken in
// that order too.
//
// replaySQL reads a page of a run after a Seq, through the primary key;
// lastEventSQL its last event, the primary key read backwards.
//
// deleteRunSQL and deleteRunEventsSQL are the two statements of
// DeleteRun, in one transaction: the run's row first, which waits for an
// append of the run that has renewed that row, then, with a snapshot
// taken after that append committed, its events. An append still storing
// its events waits for the row in turn, and inserts it again.
//
// pruneRunsSQL and pruneEventsSQL are the two statements of a batch of
// Prune, in one transaction. The first deletes a batch of runs whose
// last_at is before the cutoff $1, found through
// progress_runs_last_at, skipping those that an append holds (they are
// not old), and returns their IDs; the second deletes the events of those
// runs through the primary key, with a snapshot taken after the first
// locked the runs' rows. One statement would delete the events of its own
// snapshot only: an append that committed after that snapshot, but before
// the row was reached (it renewed the row, yet not past the age, which
// Postgres re-checks), would leave its events without their run, where no
// Prune finds them again. An append that waits for a run's row until the
// prune commits inserts the row again: the events it added are not
// committed when the second statement reads, so they stay, with their run.
const (
	appendSQL = `WITH input AS (
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[]) WITH ORDINALITY AS i(run_id, seq, event, n)
), added AS (
	INSERT INTO {s}.progress_events (run_id, seq, event)
	SELECT run_id, seq, event FROM input ORDER BY n
	ON CONFLICT (run_id, seq) DO NOTHING
	RETURNING run_id
)
INSERT INTO {s}.progress_runs AS r (run_id)
SELECT run_id FROM added GROUP BY run_id ORDER BY run_id
ON CONFLICT (run_id) DO UPDATE SET last_at = now()`
	replaySQL          = `SELECT event FROM {s}.progress_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`
	lastEventSQL       = `SELECT event FROM {s}.progress_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`
	deleteRunSQL       = `DELETE FROM {s}.progress_runs WHERE run_id = $1`
	deleteRunEventsSQL = `DELETE FROM {s}.progress_events WHERE run_id = $1`
	pruneRunsSQL       = `DELETE FROM {s}.progress_runs WHERE run_id = ANY(ARRAY(
	SELECT run_id FROM {s}.progress_runs
	WHERE last_at < $1::timestamptz
	ORDER BY last_at LIMIT $2 FOR UPDATE SKIP LOCKED))
RETURNING run_id`
	pruneEventsSQL = `DELETE FROM {s}.progress_events WHERE run_id = ANY($1::text[])`
	// pruneCutoffSQL is the cutoff of a Prune, by the database's clock,
	// taken once: the runs appended during the prune are newer.
	pruneCutoffSQL = `SELECT now() - $1::bigint * interval '1 microsecond'`
)

func newQueries(schema string) queries {
	f := strings.NewReplacer("{s}", pgschema.Quote(schema)).Replace
	return queries{
		ddl:             f(ddl),
		upgradeTo1:      f(upgradeTo1),
		appendEvents:    f(appendSQL),
		replay:          f(replaySQL),
		lastEvent:       f(lastEventSQL),
		deleteRun:       f(deleteRunSQL),
		deleteRunEvents: f(deleteRunEventsSQL),
		pruneRuns:       f(pruneRunsSQL),
		pruneEvents:     f(pruneEventsSQL),
	}
}
