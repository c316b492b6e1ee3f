package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
)

// refuseGiveBacks makes the queued runs' table refuse the first n
// updates that move a row away from owner (the give-back of a run that
// owner took over: see unclaimQueued), and returns a function that drops
// the refusal.
func refuseGiveBacks(t *testing.T, h *harness, owner string, n int) (drop func()) {
	t.Helper()
	schema := pgx.Identifier{h.pg.Schema}.Sanitize()
	for _, q := range []string{
		`CREATE SEQUENCE ` + schema + `.give_backs`,
		fmt.Sprintf(`CREATE FUNCTION %[1]s.refuse_give_back() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN IF nextval('%[1]s.give_backs') <= %[2]d THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$`, schema, n),
		`CREATE TRIGGER refuse_give_back BEFORE UPDATE ON ` + schema + `.service_queued
	FOR EACH ROW WHEN (OLD.owner = '` + owner + `' AND NEW.owner IS DISTINCT FROM OLD.owner) EXECUTE FUNCTION ` + schema + `.refuse_give_back()`,
	} {
		_, err := h.pg.Pool.Exec(t.Context(), q)
		require.NoError(t, err)
	}
	return func() {
		_, err := h.pg.Pool.Exec(t.Context(), `DROP TRIGGER refuse_give_back ON `+schema+`.service_queued`)
		require.NoError(t, err)
	}
}

// A queued run that a recovery took over from a dead process, and did
// not start (here: its lecture's length was not saved), is given back to
// the dead process, so that a later recovery, of any process, takes it
// over again. When the give-back's UPDATE failed, the row stayed owned by
// the live process that took it, which never looks at its own rows, and
// which every other process takes for alive: no process ever ran the
// run while that process lived. The give-back is now tried again at once
// (a few times), and then at the start of each pass of the recovery,
// which then takes the run over as any dead process's.
func TestQueuedRunNotGivenBackIsGivenBackLater(t *testing.T) {
	for _, tc := range []struct {
		name     string
		refusals int
		// owner is the queued run's owner after the first pass: "dead"
		// for the dead process's, "self" for the process's own.
		owner string
	}{
		{"refused once: given back at once", 1, "dead"},
		{"refused until the next pass", 1 << 20, "self"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startService(t, time.Millisecond)
			leaks := h.leaks
			dead := *h.s.params
			dead.owner = "dead-process" // its lock is free: a process that died
			require.NoError(t, dead.queue(t.Context(), "run-queued", "l", "run-before"))
			drop := refuseGiveBacks(t, h, h.s.id, tc.refusals)

			// Taken over, not started: the lecture's length is unknown.
			require.NoError(t, h.s.recoverRuns(t.Context(), false))
			q, ok, err := h.s.params.queuedRun(t.Context(), "run-queued")
			require.NoError(t, err)
			require.True(t, ok, "the queued run is still saved as queued")
			want := map[string]string{"dead": dead.owner, "self": h.s.id}[tc.owner]
			assert.Equal(t, want, q.owner, "the owner of the queued run after the first pass")
			_, err = h.s.store.GetRun(t.Context(), "run-queued")
			require.ErrorIs(t, err, executor.ErrNotFound, "not started")

			drop()
			require.NoError(t, h.s.params.setSeconds(t.Context(), "l", 10))
			require.NoError(t, h.s.recoverRuns(t.Context(), false))
			_, err = h.s.store.GetRun(t.Context(), "run-queued")
			require.NoError(t, err, "the queued run is started by the next pass")
			h.s.mu.Lock()
			assert.Empty(t, h.s.givingBack, "the give-backs left to try")
			h.s.mu.Unlock()

			require.NoError(t, h.shutdown())
			goleak.VerifyNone(t, leaks)
		})
	}
}
