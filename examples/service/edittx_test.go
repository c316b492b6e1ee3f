package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// An edit whose parameters were saved, but whose recording never
// happened, was lost for good: the parameters were new while the node
// kept its revision, so that no run made anything from them. The service
// saved them in a transaction of their own (paramStore.swap), then called
// Executor.Edit, and deleted them again if Edit failed (restore): a
// process that died between the two (here, the handler aborted right
// after the save, as a crash would end it), or a restore that failed too
// (here, the database refuses the edit, then the restore), left them
// saved with no edit. The parameters and the edit now commit together, in
// one transaction (Store.EditTx), or not at all: in both cases the node
// keeps its parameters and its revision, and the same edit made again is
// recorded and made. A failure that passes (the connection lost before
// the commit, a lock held past the edit's bound) is answered 503 with
// Retry-After, not 500: the same edit may be made again.
func TestEditIsSavedAndRecordedTogetherOrNotAtAll(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(t *testing.T, h *harness) // makes the edit fail after its save
		want int                            // the edit's answer; 0 for none
	}{
		{"the process dies after the save", func(t *testing.T, h *harness) {
			savedHook = func(key, node string) { panic(http.ErrAbortHandler) }
			t.Cleanup(func() { savedHook = nil })
		}, 0},
		{"the database refuses the edit and the restore", func(t *testing.T, h *harness) {
			schema := pgx.Identifier{h.pg.Schema}.Sanitize()
			for _, q := range []string{
				`CREATE FUNCTION ` + schema + `.refuse() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`,
				`CREATE TRIGGER refuse_edit BEFORE INSERT OR UPDATE ON ` + schema + `.node_states
	FOR EACH ROW EXECUTE FUNCTION ` + schema + `.refuse()`,
				`CREATE TRIGGER refuse_restore BEFORE DELETE ON ` + h.s.params.params + `
	FOR EACH ROW WHEN (OLD.params LIKE '%lost%') EXECUTE FUNCTION ` + schema + `.refuse()`,
			} {
				_, err := h.pg.Pool.Exec(t.Context(), q)
				require.NoError(t, err)
			}
			t.Cleanup(func() {
				_, err := h.pg.Pool.Exec(context.Background(), `DROP TRIGGER refuse_edit ON `+schema+`.node_states;
DROP TRIGGER refuse_restore ON `+h.s.params.params)
				require.NoError(t, err)
			})
		}, http.StatusInternalServerError},
		// A cause that passes is answered 503, to try again: nothing was
		// saved. It was answered 500, as a fault of the service.
		{"the database connection drops after the save", func(t *testing.T, h *harness) {
			savedHook = func(key, node string) {
				// The edit's own backend, idle in its transaction after
				// the save into this test's parameters table.
				var n int
				err := h.pg.Pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
	FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction' AND strpos(query, $1) > 0`,
					h.s.params.params).Scan(&n)
				assert.NoError(t, err)
				assert.Equal(t, 1, n, "the edit's connection is ended")
			}
			t.Cleanup(func() { savedHook = nil })
		}, http.StatusServiceUnavailable},
		{"the lecture's row stays locked past the edit's bound", func(t *testing.T, h *harness) {
			tx, err := h.pg.Pool.Begin(t.Context())
			require.NoError(t, err)
			_, err = tx.Exec(t.Context(), `SELECT version FROM `+pgx.Identifier{h.pg.Schema}.Sanitize()+`.graphs WHERE graph_key = 'l' FOR UPDATE`)
			require.NoError(t, err)
			bound := editTimeout
			editTimeout = time.Second
			t.Cleanup(func() {
				editTimeout = bound
				require.NoError(t, tx.Rollback(context.Background()))
			})
		}, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startService(t, time.Millisecond)
			var first started
			require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
			requireWholeRun(t, first.RunID, h.follow(first.RunID, ""))
			h.getRun(first.RunID) // its report is kept: the run has ended
			before, err := h.s.store.Load(t.Context(), "l")
			require.NoError(t, err)

			const edit = `{"node": "script", "params": {"topic": "lost"}}`
			t.Run("failed", func(t *testing.T) {
				tc.fail(t, h)
				req, err := http.NewRequest("POST", h.base+"/lectures/l/edits", strings.NewReader(edit))
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := h.hc.Do(req)
				if tc.want == 0 {
					require.Error(t, err, "the handler died: no answer")
				} else {
					require.NoError(t, err)
					resp.Body.Close()
					require.Equal(t, tc.want, resp.StatusCode)
					if tc.want == http.StatusServiceUnavailable {
						assert.Equal(t, "1", resp.Header.Get("Retry-After"))
					}
				}
			})
			params, err := h.s.params.get(t.Context(), "l", "script")
			require.NoError(t, err)
			after, err := h.s.store.Load(t.Context(), "l")
			require.NoError(t, err)
			assert.JSONEq(t, `{}`, string(params), "the failed edit's parameters are not the node's")
			assert.Equal(t, before.States["script"].Rev, after.States["script"].Rev, "the failed edit gave no revision")
			assert.Equal(t, before.Version, after.Version, "the failed edit committed nothing")

			// The same edit, made again, is recorded, and its run makes
			// the script and what depends on it from the new parameters.
			var again started
			require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits", edit, &again))
			assert.Len(t, requireWholeRun(t, again.RunID, h.follow(again.RunID, "")), 6, "the whole lecture depends on its script")
			params, err = h.s.params.get(t.Context(), "l", "script")
			require.NoError(t, err)
			assert.JSONEq(t, `{"topic": "lost"}`, string(params))
			require.NoError(t, h.shutdown())
			goleak.VerifyNone(t, h.leaks)
		})
	}
}
