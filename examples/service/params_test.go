package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

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

// swap, keep and restore, failing the test on an error.
func swap(t *testing.T, p *paramStore, key, nodeID, params string) *saved {
	t.Helper()
	sv, err := p.swap(t.Context(), key, nodeID, json.RawMessage(params))
	require.NoError(t, err)
	return sv
}

func keep(t *testing.T, p *paramStore, sv *saved) {
	t.Helper()
	require.NoError(t, p.keep(t.Context(), sv))
}

func restore(t *testing.T, p *paramStore, sv *saved) {
	t.Helper()
	require.NoError(t, p.restore(t.Context(), sv))
}

// Two edits of a node are being recorded at once, and the store fails
// both: the node keeps the parameters it had before either, whichever
// failure comes first. Neither edit's parameters may stay, as no revision
// stands for them and both clients were told their edit failed. The two
// edits come from two processes of the service, which share the tables.
func TestConcurrentFailedEditsRestoreTheParametersFromBeforeBoth(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first int // the edit whose failure comes first: 0 or 1
	}{{"the older fails first", 0}, {"the newer fails first", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			p, other := newTestParams(t)
			restore(t, p, swap(t, p, "l", "script", `{"topic":"old"}`)) // a failed edit of another time
			keep(t, p, swap(t, p, "l", "script", `{"topic":"kept"}`))   // its edit was recorded
			a := swap(t, p, "l", "script", `{"topic":"a"}`)
			b := swap(t, other, "l", "script", `{"topic":"b"}`)
			fail := [2]func(){func() { restore(t, p, a) }, func() { restore(t, other, b) }}
			fail[tc.first]()
			fail[1-tc.first]()
			assert.JSONEq(t, `{"topic":"kept"}`, paramsOf(t, p, "l", "script"))
			assert.JSONEq(t, `{"topic":"kept"}`, paramsOf(t, other, "l", "script"))
		})
	}
}

// An edit that fails puts back neither its parameters nor those it
// replaced when another edit of the node, recorded or still being
// recorded, came after it or before it.
func TestFailedEditKeepsOtherEditsParameters(t *testing.T) {
	p, _ := newTestParams(t)
	a := swap(t, p, "l", "script", `{"topic":"a"}`)
	b := swap(t, p, "l", "script", `{"topic":"b"}`)
	restore(t, p, a) // b, newer, is still being recorded
	assert.JSONEq(t, `{"topic":"b"}`, paramsOf(t, p, "l", "script"))
	keep(t, p, b)
	assert.JSONEq(t, `{"topic":"b"}`, paramsOf(t, p, "l", "script"))

	c := swap(t, p, "l", "script", `{"topic":"c"}`)
	d := swap(t, p, "l", "script", `{"topic":"d"}`)
	keep(t, p, c)
	restore(t, p, d) // c, older, was recorded
	assert.JSONEq(t, `{"topic":"c"}`, paramsOf(t, p, "l", "script"))
	var rows int
	require.NoError(t, p.pool.QueryRow(t.Context(), fmt.Sprintf(`SELECT count(*) FROM %s`, p.params)).Scan(&rows))
	assert.Equal(t, 1, rows, "one row is left once every edit is settled")

	restore(t, p, swap(t, p, "l", "new", `{"topic":"x"}`))
	assert.JSONEq(t, `{}`, paramsOf(t, p, "l", "new"), "a node that had no parameters has none again")
	assert.JSONEq(t, `{}`, paramsOf(t, p, "other", "script"), "parameters are a lecture's own")
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
