package pgstore

import (
	"strconv"
	"strings"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/pgschema"
)

// queries are a Store's SQL statements, with the schema filled in. New
// checks that the schema name is a plain lowercase identifier, which is
// then quoted, so that SQL keywords ("user", "order") work too. Keys, IDs
// and references are text COLLATE "C": compared and sorted byte by byte,
// as Go compares strings.
type queries struct {
	ddl string
	// refIndexMethod reads the access method of node_states_asset_ref,
	// and hashRefIndex makes it a hash index, under lockStates (see
	// Store.Migrate).
	refIndexMethod, hashRefIndex, lockStates string
	// upToDate reports whether the schema has the whole current layout
	// (see Store.Migrate); hasCancelledIndex whether it has
	// runs_cancelled too, and whether it is valid; cancelledIndex makes
	// it, and reindexCancelled rebuilds one that is not valid.
	upToDate, hasCancelledIndex, cancelledIndex, reindexCancelled string
	// upgrades bring tables of an older layout up to date where ddl's
	// CREATE TABLE IF NOT EXISTS does not, in version order.
	upgrades []upgrade

	load, version, commitFirst, commitNext string

	// lockGraph and editStates are EditTx's lock of a graph's row and its
	// read of the states it edits, after the lock (see Store.EditTx).
	lockGraph, editStates string

	putAsset, getAsset, getAssets, assetExists, missingAssets string

	putRun, getRun, listRuns, runsRunning, runsCancelled, runsByStatus string

	// listRunsFirst, listRunsAfter and listRunsAfterUnstarted are the
	// pages of ListRunsPage: the first, and those after a cursor of a
	// record with a start time, or without one.
	listRunsFirst, listRunsAfter, listRunsAfterUnstarted string

	// latestRuns, latestRunsBefore and latestRunsBeforeUnstarted are the
	// pages of LatestRuns: the first, and those before a cursor of a
	// record with a start time, or without one.
	latestRuns, latestRunsBefore, latestRunsBeforeUnstarted string

	deleteGraph, deleteGraphStates, deleteGraphRuns, pruneAssets, pruneRuns string
}

// upgrade is a statement that Migrate runs on a schema of a layout older
// than version: it makes what ddl makes for a new schema, in a table
// that an older layout made. It is idempotent.
type upgrade struct {
	version int
	sql     string
}

// ddl creates the tables, as of the current layout; each statement is
// idempotent. {s} is the schema. The version table, schema_version, is
// made by pgschema.Version. A table made by an older layout is upgraded by
// the statements that follow (indexes) or by upgrades (columns).
//
// CREATE INDEX IF NOT EXISTS takes a share lock on its table even when the
// index exists, held until Migrate commits, so the indexes are made in
// the order in which the writers lock their tables: node_states, then
// runs, as DeleteGraph does. In the other order, a DeleteGraph that held
// node_states while Migrate held runs would wait for runs while Migrate
// waited for node_states, and Postgres would abort one of them as a
// deadlock. (Commit locks graphs, assets and node_states, none of which
// Migrate locks before node_states; the later steps of Migrate, the
// upgrades, lock node_states and runs again, in that order.)
const ddl = `
CREATE TABLE IF NOT EXISTS {s}.graphs (
	graph_key  text COLLATE "C" PRIMARY KEY,
	version    bigint      NOT NULL CHECK (version > 0),
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.node_states (
	graph_key   text COLLATE "C" NOT NULL REFERENCES {s}.graphs (graph_key) ON DELETE CASCADE,
	node_id     text COLLATE "C" NOT NULL,
	status      text        NOT NULL,
	rev         bigint      NOT NULL,
	input_hash  text        NOT NULL,
	output_hash text        NOT NULL,
	asset_ref   text        NOT NULL,
	attempts    bigint      NOT NULL,
	last_error  text        NOT NULL,
	updated_at  timestamptz,
	PRIMARY KEY (graph_key, node_id)
);
CREATE TABLE IF NOT EXISTS {s}.assets (
	key       text COLLATE "C" PRIMARY KEY,
	data      bytea,
	url       text        NOT NULL,
	hash      text        NOT NULL,
	length_ns bigint      NOT NULL,
	meta      jsonb,
	put_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.runs (
	id           text COLLATE "C" PRIMARY KEY,
	graph_key    text COLLATE "C" NOT NULL,
	seconds      bigint      NOT NULL,
	graph        text        NOT NULL DEFAULT '',
	triggered_by text        NOT NULL,
	reason       text        NOT NULL,
	resumes      text        NOT NULL DEFAULT '',
	marks        jsonb       NOT NULL,
	status       text        NOT NULL,
	started_at   timestamptz,
	ended_at     timestamptz,
	counts       jsonb       NOT NULL,
	failed       text[]      NOT NULL,
	error        text        NOT NULL,
	cancelled_by text        NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS node_states_asset_ref ON {s}.node_states USING hash (asset_ref);
CREATE INDEX IF NOT EXISTS runs_graph_started ON {s}.runs (graph_key, started_at NULLS FIRST, id);
CREATE INDEX IF NOT EXISTS runs_age ON {s}.runs ((coalesce(ended_at, started_at)));
CREATE INDEX IF NOT EXISTS runs_running ON {s}.runs (started_at NULLS FIRST, id) WHERE status = 'running';
` + cancelledIndexDDL

// cancelledIndexDDL makes the partial index runs_cancelled, for
// RunsByStatus of cancelled runs (ResumeCancelled's list). It came after
// layout 7 without a version of its own: a release that does not know it
// reads and writes the schema as well with it, and this one as well
// without it (RunsByStatus then scans the table), so that the processes
// of both go on side by side in a rolling deploy, and a rollback finds a
// layout it takes. Migrate makes it where it can (see Store.Migrate), and
// upToDateSQL does not ask for it.
const cancelledIndexDDL = `CREATE INDEX IF NOT EXISTS runs_cancelled ON {s}.runs (started_at NULLS FIRST, id) WHERE status = 'cancelled';
`

// cancelledIndexSQL returns whether the index runs_cancelled of the
// schema $1 is valid, from the catalogs; no row if there is none. A
// CREATE INDEX CONCURRENTLY that failed (a DBA's, cut by its
// statement_timeout) leaves one that is not, which the planner does not
// use, and which CREATE INDEX IF NOT EXISTS takes for made.
const cancelledIndexSQL = `SELECT i.indisvalid FROM pg_catalog.pg_class c
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
	WHERE n.nspname = $1 AND c.relname = 'runs_cancelled'`

// refIndexMethodSQL returns the access method of the index
// node_states_asset_ref of the schema $1, from the catalogs. The first
// release of layout version 2 made it a btree, which refuses a reference
// longer than about 2,700 bytes; the next made it a hash index, under the
// same name and version, so that CREATE INDEX IF NOT EXISTS keeps a
// btree made before.
const refIndexMethodSQL = `SELECT am.amname FROM pg_catalog.pg_class c
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	JOIN pg_catalog.pg_am am ON am.oid = c.relam
	WHERE n.nspname = $1 AND c.relname = 'node_states_asset_ref'`

// upToDateSQL reports whether the schema $1 has every table, index and
// column that ddl and upgrades make, as the current layout has them: its
// four tables, its four indexes (valid, the one on references a hash
// index) and the runs' graph, resumes and cancelled_by columns, the only
// columns added since layout 1 (by layouts 4, 6 and 7). It reads the catalogs only, which
// locks no table. Keep it in step with ddl.
const upToDateSQL = `SELECT
	(SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname IN ('graphs', 'node_states', 'assets', 'runs')) = 4
	AND (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid JOIN pg_catalog.pg_am am ON am.oid = c.relam
		WHERE n.nspname = $1 AND i.indisvalid
			AND ((c.relname IN ('runs_graph_started', 'runs_age', 'runs_running') AND am.amname = 'btree')
				OR (c.relname = 'node_states_asset_ref' AND am.amname = 'hash'))) = 4
	AND (SELECT count(*) FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = 'runs' AND a.attname IN ('graph', 'resumes', 'cancelled_by') AND NOT a.attisdropped) = 3`

func newQueries(schema string) queries {
	r := strings.NewReplacer("{s}", pgschema.Quote(schema))
	f := r.Replace
	return queries{
		ddl:               f(ddl),
		refIndexMethod:    refIndexMethodSQL,
		upToDate:          upToDateSQL,
		hasCancelledIndex: cancelledIndexSQL,
		cancelledIndex:    f(cancelledIndexDDL),
		reindexCancelled:  f(`REINDEX INDEX {s}.runs_cancelled`),
		lockStates:        f(`LOCK TABLE {s}.node_states IN ACCESS EXCLUSIVE MODE`),
		hashRefIndex: f(`DROP INDEX {s}.node_states_asset_ref;
CREATE INDEX node_states_asset_ref ON {s}.node_states USING hash (asset_ref)`),
		upgrades: []upgrade{
			// Record.Graph. The default is a constant, so no row is
			// rewritten; the records of before read as "", no fingerprint.
			{4, f(`ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS graph text NOT NULL DEFAULT ''`)},
			// Record.Resumes, likewise: the records of before read as "",
			// finishing no run.
			{6, f(`ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS resumes text NOT NULL DEFAULT ''`)},
			// Record.CancelledBy, likewise: the records of before read as
			// "", no cancel code.
			{7, f(`ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS cancelled_by text NOT NULL DEFAULT ''`)},
		},

		// One statement, so one snapshot: the version and the states
		// agree. A graph without states gives one row with NULL states.
		load: f(`SELECT g.version, s.node_id IS NOT NULL, coalesce(s.node_id, ''),
	coalesce(s.status, ''), coalesce(s.rev, 0), coalesce(s.input_hash, ''), coalesce(s.output_hash, ''),
	coalesce(s.asset_ref, ''), coalesce(s.attempts, 0), coalesce(s.last_error, ''), s.updated_at
FROM {s}.graphs g LEFT JOIN {s}.node_states s ON s.graph_key = g.graph_key
WHERE g.graph_key = $1`),
		version: f(`SELECT version FROM {s}.graphs WHERE graph_key = $1`),
		// A commit's compare-and-swap and its node states, in one
		// statement (see commitSQL): the first commit of a graph inserts
		// its row; of two concurrent ones, the second waits for the first
		// to end, then inserts nothing (no unique violation).
		commitFirst: f(strings.Replace(commitSQL, "{cas}", `INSERT INTO {s}.graphs (graph_key, version) VALUES ($1, 1)
	ON CONFLICT (graph_key) DO NOTHING RETURNING version`, 1)),
		// Later commits, $11 the version expected. A concurrent one waits
		// for the row lock, then re-checks the version of the committed
		// row.
		commitNext: f(strings.Replace(commitSQL, "{cas}", `UPDATE {s}.graphs SET version = version + 1, updated_at = now()
	WHERE graph_key = $1 AND version = $11 RETURNING version`, 1)),

		lockGraph: f(`SELECT version FROM {s}.graphs WHERE graph_key = $1 FOR UPDATE`),
		editStates: f(`SELECT node_id, status, rev, input_hash, output_hash, asset_ref, attempts, last_error, updated_at
FROM {s}.node_states WHERE graph_key = $1 AND node_id = ANY ($2::text[])`),

		putAsset: f(`INSERT INTO {s}.assets (key, data, url, hash, length_ns, meta)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT (key) DO UPDATE SET data = excluded.data, url = excluded.url, hash = excluded.hash,
	length_ns = excluded.length_ns, meta = excluded.meta, put_at = now()`),
		getAsset: f(`SELECT data, url, hash, length_ns, meta::text FROM {s}.assets WHERE key = $1`),
		getAssets: f(`SELECT key, data, url, hash, length_ns, meta::text FROM {s}.assets
WHERE key = ANY($1::text[])`),
		assetExists: f(`SELECT EXISTS (SELECT 1 FROM {s}.assets WHERE key = $1)`),
		// The keys of $1 with no asset, each once, looked up in the
		// primary key's collation so that its index serves.
		missingAssets: f(`SELECT DISTINCT u.k FROM unnest($1::text[]) AS u (k)
WHERE NOT EXISTS (SELECT 1 FROM {s}.assets a WHERE a.key = u.k COLLATE "C")`),

		// A record replaced keeps, after the new marks, the stored marks
		// whose reason is none of $16, the reasons this release knows:
		// those of a newer release (a rolling deploy), which scanRun
		// leaves out of the record read, and so out of the record put
		// back (see Store.PutRun): objects whose id and reason are text,
		// as scanRun reads them; any other element, which scanRun fails
		// on, is dropped. Stored marks that are not an array (JSON null,
		// an object: written by hand or another tool) have none to keep,
		// and jsonb_array_elements fails on them.
		putRun: f(`INSERT INTO {s}.runs AS r
	(id, graph_key, seconds, triggered_by, reason, marks, status, started_at, ended_at, counts, failed, error, graph, resumes,
	cancelled_by)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10::jsonb, $11::text[], $12, $13, $14, $15)
ON CONFLICT (id) DO UPDATE SET graph_key = excluded.graph_key, seconds = excluded.seconds, graph = excluded.graph,
	triggered_by = excluded.triggered_by, reason = excluded.reason, resumes = excluded.resumes,
	marks = excluded.marks || coalesce((SELECT jsonb_agg(u.m ORDER BY u.i)
		FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.marks) = 'array' THEN r.marks ELSE '[]'::jsonb END)
			WITH ORDINALITY AS u (m, i)
		WHERE jsonb_typeof(u.m->'id') = 'string' AND jsonb_typeof(u.m->'reason') = 'string'
			AND NOT u.m->>'reason' = ANY ($16::text[])), '[]'::jsonb),
	status = excluded.status, started_at = excluded.started_at, ended_at = excluded.ended_at,
	counts = excluded.counts, failed = excluded.failed, error = excluded.error, cancelled_by = excluded.cancelled_by`),
		getRun: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE id = $1`),
		listRuns: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE graph_key = $1
ORDER BY started_at NULLS FIRST, id`),
		// The pages of ListRunsPage, in listRuns's order, from the index
		// runs_graph_started, which gives that order; the LIMIT is the
		// page's plus one, which tells whether another follows. After a
		// record with a start, a row comparison, which the index serves
		// from the cursor on (NULL starts come first, and are past); after
		// one without, the rest of those without a start, then every one
		// with a start.
		listRunsFirst: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE graph_key = $1
ORDER BY started_at NULLS FIRST, id LIMIT $2`),
		listRunsAfter: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE graph_key = $1
	AND (started_at, id) > ($2::timestamptz, $3::text COLLATE "C")
ORDER BY started_at NULLS FIRST, id LIMIT $4`),
		listRunsAfterUnstarted: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE graph_key = $1
	AND (started_at IS NOT NULL OR id > $2::text COLLATE "C")
ORDER BY started_at NULLS FIRST, id LIMIT $3`),
		// The pages of LatestRuns, in the reverse of listRuns's order,
		// from the index runs_graph_started read backwards, which gives
		// that order; the LIMIT is the page's plus one, as above. Before a
		// record with a start, a row comparison, which the index serves
		// from the cursor back, then those without a start, which come
		// last backwards (each branch stops after the page); before one
		// without, the rest of those without a start.
		latestRuns: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE graph_key = $1
ORDER BY started_at DESC NULLS LAST, id DESC LIMIT $2`),
		latestRunsBefore: f(`SELECT * FROM (
	(SELECT ` + runColumns + ` FROM {s}.runs WHERE graph_key = $1
		AND (started_at, id) < ($2::timestamptz, $3::text COLLATE "C")
	ORDER BY started_at DESC NULLS LAST, id DESC LIMIT $4)
	UNION ALL
	(SELECT ` + runColumns + ` FROM {s}.runs WHERE graph_key = $1 AND started_at IS NULL
	ORDER BY started_at DESC NULLS LAST, id DESC LIMIT $4)
) AS page ORDER BY started_at DESC NULLS LAST, id DESC LIMIT $4`),
		latestRunsBeforeUnstarted: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE graph_key = $1
	AND started_at IS NULL AND id < $2::text COLLATE "C"
ORDER BY started_at DESC NULLS LAST, id DESC LIMIT $3`),
		// The running records, of every graph, from the partial index
		// runs_running, in its order. The status is a literal, not a
		// parameter: a generic plan of "status = $1" could not use an
		// index whose predicate is "status = 'running'".
		runsRunning: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE status = '` + string(executor.RunRunning) + `'
ORDER BY started_at NULLS FIRST, id`),
		// The cancelled records, likewise, from runs_cancelled where the
		// schema has it (see Store.Migrate), else by a scan.
		runsCancelled: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE status = '` + string(executor.RunCancelled) + `'
ORDER BY started_at NULLS FIRST, id`),
		// The records of another status: a scan of the table, which no
		// index serves.
		runsByStatus: f(`SELECT ` + runColumns + ` FROM {s}.runs WHERE status = $1
ORDER BY started_at NULLS FIRST, id`),

		deleteGraph:       f(deleteGraphSQL),
		deleteGraphStates: f(deleteGraphStatesSQL),
		deleteGraphRuns:   f(deleteGraphRunsSQL),
		pruneAssets:       f(pruneAssetsSQL),
		pruneRuns:         f(pruneRunsSQL),
	}
}

// commitSQL is a commit's statement, {cas} its compare-and-swap of the
// graph's row ($1 the graph key), which returns the new version, or no
// row if the graph is not at the version expected. The rest writes the
// changed node states, from the columns $2 to $10, only if cas returned
// a row: it upserts them, and releases the assets they stop referring
// to (their put_at becomes now, so that PruneAssets counts their age
// from their release). The statement returns cas's row, if any.
//
// released looks each changed node's state up by primary key, in a
// lateral subquery per change, so that a commit costs what it changes:
// its LIMIT 1, a no-op on a primary key, keeps the planner from making
// it a join, which, on tables without statistics yet (new, or grown
// since their last ANALYZE), it would plan as a scan of all the graph's
// states, each looked up in assets, at every commit.
//
// Each CTE that modifies data runs exactly once, to completion; released
// and upserted read cas's row, so the swap is done, and the row locked,
// before they write, and a lost commit writes nothing (Commit rolls it
// back too, but an upsert there would fail on the foreign key at a lost
// first commit, and do work for nothing at a lost later one). All the CTEs read the tables as of the statement's
// start: released sees the states as they were before the upsert. That
// snapshot may be older than a commit that ended while cas waited for
// the row lock, but such a commit moved the version on, so cas finds no
// row at the version expected and nothing is written: every writer of a
// graph's node states (Commit, DeleteGraph, EditTx) moves its version on.
var commitSQL = `WITH cas AS (
	{cas}
), c AS (
	SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
		$8::bigint[], $9::text[], $10::timestamptz[])
		AS c (node_id, status, rev, input_hash, output_hash, asset_ref, attempts, last_error, updated_at)
), released AS (
	UPDATE {s}.assets a SET put_at = now()
	FROM cas, c CROSS JOIN LATERAL (
		SELECT s.asset_ref FROM {s}.node_states s
		WHERE s.graph_key = $1 AND s.node_id = c.node_id COLLATE "C"
		LIMIT 1
	) s
	WHERE s.asset_ref <> c.asset_ref AND s.asset_ref LIKE '` + RefPrefix + `%'
		AND a.key = substr(s.asset_ref, ` + refKeyStart + `) COLLATE "C"
), upserted AS (
	INSERT INTO {s}.node_states
		(graph_key, node_id, status, rev, input_hash, output_hash, asset_ref, attempts, last_error, updated_at)
	SELECT $1::text, c.node_id, c.status, c.rev, c.input_hash, c.output_hash, c.asset_ref, c.attempts,
		c.last_error, c.updated_at
	FROM cas, c
	ON CONFLICT (graph_key, node_id) DO UPDATE SET
		status = excluded.status, rev = excluded.rev, input_hash = excluded.input_hash,
		output_hash = excluded.output_hash, asset_ref = excluded.asset_ref, attempts = excluded.attempts,
		last_error = excluded.last_error, updated_at = excluded.updated_at
)
SELECT version FROM cas`

// refKeyStart is where the key starts in a reference, for SQL's 1-based
// substr: just after RefPrefix.
var refKeyStart = strconv.Itoa(len(RefPrefix) + 1)

// runColumns are the columns scanRun reads, in its order.
const runColumns = `id, graph_key, seconds, triggered_by, reason, marks::text, status, started_at, ended_at, counts::text, failed, error, graph, resumes, cancelled_by`
