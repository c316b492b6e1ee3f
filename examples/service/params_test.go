package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
)

// newTestParams returns a paramStore on a schema of the test's own, its
// tables made, as two processes of the service would each have one.
func newTestParams(t *testing.T) (p, other *paramStore) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	_, err := pg.Pool.Exec(t.Context(), "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{pg.Schema}.Sanitize())
	require.NoError(t, err)
	p = newParamStore(pg.Pool, pg.Schema)
	require.NoError(t, p.migrate(t.Context()))
	other = newParamStore(pg.Pool, pg.Schema)
	require.NoError(t, other.migrate(t.Context()), "a second migrate changes nothing")
	return p, other
}

// paramsOf returns a node's parameters, as a generator reads them.
func paramsOf(t *testing.T, p *paramStore, key, nodeID string) string {
	t.Helper()
	params, err := p.get(t.Context(), key, nodeID)
	require.NoError(t, err)
	return string(params)
}

// save saves a node's parameters in a transaction of their own, as an
// edit does (with its EditTx), failing the test on an error.
func save(t *testing.T, p *paramStore, key, nodeID, params string) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(t.Context(), p.pool, func(tx pgx.Tx) error {
		return p.save(t.Context(), tx, key, nodeID, json.RawMessage(params))
	}))
}

// paramRows returns how many rows of parameters the node has.
func paramRows(t *testing.T, p *paramStore, key, nodeID string) (n int) {
	t.Helper()
	require.NoError(t, p.pool.QueryRow(t.Context(), fmt.Sprintf(`SELECT count(*) FROM %s WHERE graph_key = $1 AND node_id = $2`,
		p.params), key, nodeID).Scan(&n))
	return n
}

// Parameters saved in an edit's transaction are the node's once it
// commits, and never if it rolls back (its edit failed); each commit
// leaves the node one row.
func TestSavedParametersAreTheNodesOnceCommitted(t *testing.T) {
	p, other := newTestParams(t)
	assert.JSONEq(t, `{}`, paramsOf(t, p, "l", "script"), "a node without parameters")
	save(t, p, "l", "script", `{"topic":"a"}`)
	save(t, other, "l", "script", `{"topic":"b"}`)
	assert.JSONEq(t, `{"topic":"b"}`, paramsOf(t, p, "l", "script"))

	tx, err := p.pool.Begin(t.Context())
	require.NoError(t, err)
	require.NoError(t, p.save(t.Context(), tx, "l", "script", json.RawMessage(`{"topic":"failed"}`)))
	assert.JSONEq(t, `{"topic":"b"}`, paramsOf(t, p, "l", "script"), "not before the commit")
	require.NoError(t, tx.Rollback(t.Context()))
	assert.JSONEq(t, `{"topic":"b"}`, paramsOf(t, p, "l", "script"), "a rollback leaves the parameters as they were")
	assert.Equal(t, 1, paramRows(t, p, "l", "script"), "one row is left once every edit is settled")
	assert.JSONEq(t, `{}`, paramsOf(t, p, "other", "script"), "parameters are a lecture's own")
	assert.JSONEq(t, `{}`, paramsOf(t, p, "l", "timeline"), "and a node's own")
}

// The edits of one node, in two processes, take turns from their save to
// their commit: the second waits for the first to commit, and then
// deletes its row, so that the parameters of the edit that commits last
// are the node's, and one row is left. Without the turns, neither deleted
// the other's row, uncommitted when it looked, and the node's parameters
// were those of the edit saved last, whichever committed last.
func TestEditsOfANodeTakeTurns(t *testing.T) {
	p, other := newTestParams(t)
	first, err := p.pool.Begin(t.Context())
	require.NoError(t, err)
	defer first.Rollback(context.Background())
	require.NoError(t, p.save(t.Context(), first, "l", "script", json.RawMessage(`{"topic":"first"}`)))

	second, err := other.pool.Begin(t.Context())
	require.NoError(t, err)
	defer second.Rollback(context.Background())
	var pid int
	require.NoError(t, second.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&pid))
	saved := make(chan error, 1)
	go func() { saved <- other.save(t.Context(), second, "l", "script", json.RawMessage(`{"topic":"second"}`)) }()
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		var waiting bool
		require.NoError(t, p.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_locks
	WHERE pid = $1 AND locktype = 'advisory' AND NOT granted)`, pid).Scan(&waiting))
		return waiting
	}, 20*time.Second, 10*time.Millisecond, "the second save waits for the first edit's commit")
	require.NoError(t, first.Commit(t.Context()))
	require.NoError(t, <-saved)
	require.NoError(t, second.Commit(t.Context()))
	assert.JSONEq(t, `{"topic":"second"}`, paramsOf(t, p, "l", "script"))
	assert.Equal(t, 1, paramRows(t, p, "l", "script"))
}

// A lecture's length is saved, and a new length replaces the old.
func TestLectureSecondsAreSaved(t *testing.T) {
	p, other := newTestParams(t)
	_, ok, err := p.lectureSeconds(t.Context(), "l")
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, p.setSeconds(t.Context(), "l", 60))
	require.NoError(t, other.setSeconds(context.Background(), "l", 30))
	n, ok, err := p.lectureSeconds(t.Context(), "l")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 30, n)
}
