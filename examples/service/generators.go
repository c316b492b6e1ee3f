package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// paramStore keeps the nodes' parameters, where the generators read them,
// and each lecture's length, from which an edit builds its graph, the
// runs queued after another (see queuedRun), the cancels requested of
// another process (see requestCancel), the browsers' sessions (see
// saveSession) and the lectures whose runs a shutdown or a lost lock cut
// (see markCut), in six tables of the
// service's schema (see migrate), so that they survive a restart and
// every process of the service sees the same. The executor
// keeps only the parameters' revision: a host saves new parameters and
// records the edit in one transaction (see save), so that the two are
// stored together or not at all. It is safe for concurrent use, by
// several processes too.
//
// Each edit is a row of its own (save inserts it), numbered in the order
// the edits were saved, and a node's parameters are those of its newest
// row. An edit saves its row, deletes the node's older rows and records
// the edit (Store.EditTx) in one transaction: a save whose edit fails, or
// whose process dies before the commit, is rolled back with it, and
// leaves nothing, so that no parameters are ever saved without the
// revision that makes the next run use them.
type paramStore struct {
	pool     *pgxpool.Pool
	schema   string
	lectures string // the quoted name of the lectures' table
	params   string // the quoted name of the parameters' table
	queued   string // the quoted name of the queued runs' table
	cancels  string // the quoted name of the cancels' table
	sessions string // the quoted name of the sessions' table (see saveSession)
	cut      string // the quoted name of the table of the lectures whose runs a shutdown or a lost lock cut (see markCut)
	secrets  string // the quoted name of the deployment's secrets' table (see sessionSecret)
	// owner is the ID of the process (see service.id) that queue saves
	// as the owner of the runs it queues: "" saves none.
	owner string
}

func newParamStore(pool *pgxpool.Pool, schema string) *paramStore {
	return &paramStore{pool: pool, schema: schema,
		lectures: pgx.Identifier{schema, "service_lectures"}.Sanitize(),
		params:   pgx.Identifier{schema, "service_params"}.Sanitize(),
		queued:   pgx.Identifier{schema, "service_queued"}.Sanitize(),
		cancels:  pgx.Identifier{schema, "service_cancels"}.Sanitize(),
		sessions: pgx.Identifier{schema, "service_sessions"}.Sanitize(),
		cut:      pgx.Identifier{schema, "service_cut"}.Sanitize(),
		secrets:  pgx.Identifier{schema, "service_secrets"}.Sanitize()}
}

// migrate creates the tables if they are not there, in the schema that
// the store's Migrate created. Processes that start together take turns,
// under a transaction-scoped advisory lock: two CREATE TABLE IF NOT
// EXISTS of one table at once may fail.
func (p *paramStore) migrate(ctx context.Context) error {
	h := fnv.New64a()
	h.Write([]byte("github.com/regengraph/regen/examples/service.migrate:" + p.schema))
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
		return err
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + p.lectures + ` (
	graph_key text PRIMARY KEY,
	seconds integer NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS ` + p.params + ` (
	graph_key text NOT NULL,
	node_id text NOT NULL,
	edit bigint GENERATED ALWAYS AS IDENTITY,
	params text NOT NULL,
	PRIMARY KEY (graph_key, node_id, edit)
)`,
		`CREATE TABLE IF NOT EXISTS ` + p.queued + ` (
	run_id text PRIMARY KEY,
	graph_key text NOT NULL,
	after_run text NOT NULL,
	queued_at timestamptz NOT NULL DEFAULT now()
)`,
		// The process that queued the run, or that took it over from a
		// process that died (see service.claimQueued); NULL in the rows
		// of the service's versions before it.
		`ALTER TABLE ` + p.queued + ` ADD COLUMN IF NOT EXISTS owner text`,
		`CREATE TABLE IF NOT EXISTS ` + p.cancels + ` (
	run_id text PRIMARY KEY,
	requested_at timestamptz NOT NULL DEFAULT now()
)`,
		`CREATE TABLE IF NOT EXISTS ` + p.sessions + ` (
	id text PRIMARY KEY,
	expires_at timestamptz NOT NULL
)`,
		// A session's lineage (see saveSession), NULL in the rows of the
		// service's versions before it: the session's own ID then.
		`ALTER TABLE ` + p.sessions + ` ADD COLUMN IF NOT EXISTS lineage text`,
		`ALTER TABLE ` + p.sessions + ` ADD COLUMN IF NOT EXISTS replaced boolean NOT NULL DEFAULT false`,
		`CREATE INDEX IF NOT EXISTS service_sessions_lineage ON ` + p.sessions + ` ((COALESCE(lineage, id)))`,
		`CREATE TABLE IF NOT EXISTS ` + p.cut + ` (
	graph_key text PRIMARY KEY,
	cut_at timestamptz NOT NULL DEFAULT now()
)`,
		`CREATE TABLE IF NOT EXISTS ` + p.secrets + ` (
	name text PRIMARY KEY,
	secret bytea NOT NULL,
	made_at timestamptz NOT NULL DEFAULT now()
)`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return err
		}
	}
	// The session cookies' secret (see sessionSecret), made once: the
	// processes that start later, or at once (after this lock), keep it.
	if _, err := tx.Exec(ctx, `INSERT INTO `+p.secrets+` (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		sessionSecretName, newSessionSecret()); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// setSeconds saves a lecture's length, once a run of it has started.
func (p *paramStore) setSeconds(ctx context.Context, key string, seconds int) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO `+p.lectures+` (graph_key, seconds) VALUES ($1, $2)
ON CONFLICT (graph_key) DO UPDATE SET seconds = EXCLUDED.seconds`, key, seconds)
	if err != nil {
		return fmt.Errorf("save the length of lecture %q: %w", key, err)
	}
	return nil
}

// lectureSeconds returns a lecture's length, if saved.
func (p *paramStore) lectureSeconds(ctx context.Context, key string) (int, bool, error) {
	var n int
	err := p.pool.QueryRow(ctx, `SELECT seconds FROM `+p.lectures+` WHERE graph_key = $1`, key).Scan(&n)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read the length of lecture %q: %w", key, err)
	}
	return n, true, nil
}

// save saves a node's parameters in tx, for an edit that the caller
// records in the same transaction (Store.EditTx) before it commits: they
// are the node's once tx commits, and never if it rolls back. The node's
// older rows, which no read needs any more, are deleted. The edits of one
// node take turns, under a transaction-scoped advisory lock, from the
// save to the commit: the row of the edit that commits last is the
// newest, and deletes the others.
func (p *paramStore) save(ctx context.Context, tx pgx.Tx, key, nodeID string, params json.RawMessage) error {
	h := fnv.New64a()
	h.Write([]byte(p.schema + "\x00" + key + "\x00" + nodeID))
	sum := h.Sum64()
	// Two int4 keys: another space than the lectures' locks and migrate's
	// (a bigint key each), so that a node's lock never waits for those.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, int32(sum>>32), int32(sum)); err != nil {
		return fmt.Errorf("save the parameters of %s of lecture %q: %w", nodeID, key, err)
	}
	var edit int64
	err := tx.QueryRow(ctx, `INSERT INTO `+p.params+` (graph_key, node_id, params) VALUES ($1, $2, $3)
RETURNING edit`, key, nodeID, string(params)).Scan(&edit)
	if err != nil {
		return fmt.Errorf("save the parameters of %s of lecture %q: %w", nodeID, key, err)
	}
	_, err = tx.Exec(ctx, `DELETE FROM `+p.params+` WHERE graph_key = $1 AND node_id = $2 AND edit < $3`,
		key, nodeID, edit)
	if err != nil {
		return fmt.Errorf("forget the older parameters of %s of lecture %q: %w", nodeID, key, err)
	}
	return nil
}

// get returns a node's parameters, or {} when none were saved.
func (p *paramStore) get(ctx context.Context, key, nodeID string) (json.RawMessage, error) {
	var params string
	err := p.pool.QueryRow(ctx, `SELECT params FROM `+p.params+` WHERE graph_key = $1 AND node_id = $2
ORDER BY edit DESC LIMIT 1`, key, nodeID).Scan(&params)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return json.RawMessage("{}"), nil
	case err != nil:
		return nil, fmt.Errorf("read the parameters of %s of lecture %q: %w", nodeID, key, err)
	}
	return json.RawMessage(params), nil
}

// generator is a fake generator for every kind of the lecture template:
// it waits its latency, as a call to a provider would (honouring ctx), and
// makes the node's output from its parameters and its dependencies'
// outputs, so that the same inputs give the same output and early cutoff
// works. A real host calls its providers here, passing
// Request.IdempotencyKey to those that deduplicate.
type generator struct {
	params  *paramStore
	latency time.Duration
}

// lectureGenerators returns a registry with a fake generator for each kind
// of the lecture template.
func lectureGenerators(params *paramStore, latency time.Duration) executor.Registry {
	gen := &generator{params: params, latency: latency}
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	return reg
}

// Generate implements executor.Generator.
func (g *generator) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	t := time.NewTimer(g.latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return executor.Asset{}, ctx.Err()
	}
	params, err := g.params.get(ctx, req.GraphKey, req.NodeID)
	if err != nil {
		return executor.Asset{}, err
	}
	data := fmt.Appendf(nil, "%s from %s", req.NodeID, params)
	for _, d := range req.Deps {
		data = fmt.Appendf(data, " <%s>", d.Asset.Hash)
	}
	// Hash is left empty: the executor hashes Data.
	a := executor.Asset{Data: data}
	if req.ID.Kind == graph.KindNarration {
		a.Length = graph.SegmentLength // a narration must fit its segment
	}
	return a, nil
}
