package main

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// On a database or role whose default_transaction_isolation is stricter
// than READ COMMITTED (a setting some deployments make), an edit's
// transaction (pgx.BeginFunc, at the session's level) took its snapshot at
// its save, and a run's commit of the lecture that landed before
// Store.EditTx locked the lecture's row failed the edit with SQLSTATE
// 40001: answered 503, whenever a run of the lecture committed in that
// moment; and so did its row claims and lock checks (queue.go). pgstore's
// doc asks for READ COMMITTED, which the edit now sets on its transaction,
// and the service's pool on every session. Here the commit lands just after the save
// (savedHook), on a URL whose sessions default to REPEATABLE READ.
func TestEditOnAStricterDefaultIsolation(t *testing.T) {
	h := startServiceWith(t, time.Millisecond, func(c *config) {
		u, err := url.Parse(c.postgresURL)
		require.NoError(t, err)
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += "default_transaction_isolation=repeatable%20read" // pgx reads "+" as itself
		c.postgresURL = u.String()
	})
	// The service's sessions keep to READ COMMITTED all the same, for
	// its row claims and lock checks (queue.go) as for the edit.
	var isolation string
	require.NoError(t, h.s.pool.QueryRow(t.Context(), `SHOW default_transaction_isolation`).Scan(&isolation))
	require.Equal(t, "read committed", isolation, "the service's sessions")
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	requireWholeRun(t, first.RunID, h.follow(first.RunID, ""))
	h.getRun(first.RunID) // its report is kept: the run has ended

	savedHook = func(key, node string) { // a run's commit of the lecture, as the edit is saved
		snap, err := h.s.store.Load(t.Context(), key)
		if assert.NoError(t, err) {
			_, err = h.s.store.Commit(t.Context(), key, snap.Version, nil)
			assert.NoError(t, err)
		}
	}
	defer func() { savedHook = nil }()
	var e map[string]string
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "b"}}`, &e), "%v", e)
	savedHook = nil
	params, err := h.s.params.get(t.Context(), "l", "script")
	require.NoError(t, err)
	assert.JSONEq(t, `{"topic": "b"}`, string(params))
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
