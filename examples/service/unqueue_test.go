package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
)

// refuseUnqueues makes the queued runs' table refuse the first n deletes
// of run id's row, and returns a function that tells how many were tried
// and one that drops the refusal.
func refuseUnqueues(t *testing.T, h *harness, id string, n int) (tried func() int, drop func()) {
	t.Helper()
	schema := pgx.Identifier{h.pg.Schema}.Sanitize()
	for _, q := range []string{
		`CREATE SEQUENCE ` + schema + `.unqueues`,
		fmt.Sprintf(`CREATE FUNCTION %[1]s.refuse_unqueue() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN IF nextval('%[1]s.unqueues') <= %[2]d THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN OLD; END $$`, schema, n),
		`CREATE TRIGGER refuse_unqueue BEFORE DELETE ON ` + schema + `.service_queued
	FOR EACH ROW WHEN (OLD.run_id = '` + id + `') EXECUTE FUNCTION ` + schema + `.refuse_unqueue()`,
	} {
		_, err := h.pg.Pool.Exec(t.Context(), q)
		require.NoError(t, err)
	}
	tried = func() int {
		var n int
		require.NoError(t, h.pg.Pool.QueryRow(t.Context(), `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM `+schema+`.unqueues`).Scan(&n))
		return n
	}
	drop = func() {
		_, err := h.pg.Pool.Exec(t.Context(), `DROP TRIGGER refuse_unqueue ON `+schema+`.service_queued`)
		require.NoError(t, err)
	}
	return tried, drop
}

// queuedRunNotRecordedKept has the record of h's queued run refused (and
// that of any run the and clause of refuseRecords names) and every delete
// of its row, and cancels the run before it for its lost lock: it waits
// until the queued run's stream has ended with its final event alone,
// the deletes tried at once have failed and the run is kept for a later
// delete. It returns the function that drops the refusal of the deletes.
func queuedRunNotRecordedKept(t *testing.T, h *harness, queued started, and string) (dropUnqueues func()) {
	t.Helper()
	refuseRecords(t, h, queued.RunID, and)
	tried, drop := refuseUnqueues(t, h, queued.RunID, 1<<20)
	h.endLockSession("l")
	events := h.follow(queued.RunID, "")
	require.Len(t, events, 1, "the queued run's events: its final one alone")
	require.Eventually(t, func() bool { return tried() >= giveBackTries }, 20*time.Second, 10*time.Millisecond,
		"the deletes of the queued run's row (a bound against a hang, not a timing assertion)")
	require.Eventually(t, func() bool { // the last try has failed
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		_, ok := h.s.forgetting[queued.RunID]
		return ok
	}, 20*time.Second, 10*time.Millisecond, "the run kept for a later delete")
	return drop
}

// requireQueuedRunNotRunByTakeover checks, on h2, a process that took
// the queued run over from a dead one, that it did not run it (its
// stream had ended, why says how it would have been) and deleted its row.
func requireQueuedRunNotRunByTakeover(t *testing.T, h2 *harness, queued started, why string) {
	t.Helper()
	_, err := h2.s.store.GetRun(t.Context(), queued.RunID)
	assert.ErrorIs(t, err, executor.ErrNotFound, why)
	last, ok, err := h2.s.stream.LastEvent(t.Context(), queued.RunID)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, progress.RunCancelled, last.Type, "the last event of the queued run's stream")
	_, ok, err = h2.s.params.queuedRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	assert.False(t, ok, "the queued run's row, after the other process's recovery")
}

// A queued run not started whose record could not be written, and whose
// row then could not be deleted either (two failures in a row), kept its
// row, owned by its live process, which never looks at its own rows: GET
// /runs/{run} answered it "queued" while its stream had ended with its
// run.cancelled, and once its process stopped another process took the
// row over and ran it, after that final event. The delete is now tried
// again at once, a few times, and then at each pass of the recovery, as
// a give-back is.
func TestQueuedRunNotRecordedLosesItsRowAfterAFailedDelete(t *testing.T) {
	for _, tc := range []struct {
		name     string
		refusals int
	}{
		{"refused once: deleted at once", 1},
		{"refused until the next pass", 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, queued := queuedBehindARun(t)
			refuseRecords(t, h, queued.RunID, ``)
			tried, drop := refuseUnqueues(t, h, queued.RunID, tc.refusals)
			// The first run is cancelled for its lost lock; the queued run
			// takes the lock again, and neither its start nor its record
			// is written.
			h.endLockSession("l")
			events := h.follow(queued.RunID, "")
			require.Len(t, events, 1, "the queued run's events: its final one alone")
			assert.Equal(t, progress.RunCancelled, events[0].Type)
			assert.Contains(t, events[0].Message, "not written")

			want := min(tc.refusals+1, giveBackTries) // the deletes tried at once
			require.Eventually(t, func() bool { return tried() >= want }, 20*time.Second, 10*time.Millisecond,
				"the deletes of the queued run's row (a bound against a hang, not a timing assertion)")
			if tc.refusals > giveBackTries {
				drop()
				require.NoError(t, h.s.recoverRuns(t.Context(), false))
			}
			require.Eventually(t, func() bool { // the last try ends before the bound
				_, ok, err := h.s.params.queuedRun(t.Context(), queued.RunID)
				require.NoError(t, err)
				return !ok
			}, 20*time.Second, 10*time.Millisecond, "the queued run's row is deleted")
			var e map[string]string
			assert.Equal(t, http.StatusNotFound, h.do("GET", "/runs/"+queued.RunID, "", &e), "no longer queued: %v", e)
			require.NoError(t, h.shutdown())
			goleak.VerifyNone(t, h.leaks)
		})
	}
}

// The row of a queued run not recorded whose deletes all failed until
// the shutdown (no pass of the recovery came between) is deleted by the
// shutdown, before the process's lock is given up: no other process
// takes it over and runs it after its final event.
func TestShutdownDeletesTheRowOfAQueuedRunNotRecorded(t *testing.T) {
	h, _, queued := queuedBehindARun(t)
	drop := queuedRunNotRecordedKept(t, h, queued, ``)
	_, ok, err := h.s.params.queuedRun(t.Context(), queued.RunID)
	require.NoError(t, err)
	require.True(t, ok, "the row, before the shutdown")
	drop()
	require.NoError(t, h.shutdown())
	var n int
	require.NoError(t, h.pg.Pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{h.pg.Schema, "service_queued"}.Sanitize()+
		` WHERE run_id = $1`, queued.RunID).Scan(&n))
	assert.Zero(t, n, "the queued run's row, after the shutdown")
	goleak.VerifyNone(t, h.leaks)
}

// A restart of Postgres may fail both the record of a queued run not
// started and the delete of its row, and end the session of its
// process's lock too: another process, which took that process for
// dead, took the row over and ran the run, after the run.cancelled that
// had ended its stream, before the process could try the delete again.
// A process that takes a queued run over now looks at its stream first:
// one that has ended is not run, and its row is deleted.
func TestQueuedRunNotRecordedIsNotRunByAnotherProcess(t *testing.T) {
	h, _, queued := queuedBehindARun(t)
	pg, rd := h.pg, h.redis
	dropUnqueues := queuedRunNotRecordedKept(t, h, queued, ``)
	h.endProcessLockSession()
	// Postgres is back.
	_, err := pg.Pool.Exec(t.Context(), `DROP TRIGGER refuse ON `+pgx.Identifier{pg.Schema, "runs"}.Sanitize())
	require.NoError(t, err)
	dropUnqueues()

	h2 := startServiceOn(t, pg, rd, time.Millisecond, nil) // its start-up's recovery takes the dead's runs over
	requireQueuedRunNotRunByTakeover(t, h2, queued, "the queued run, whose stream had ended, was run by the other process")
	require.NoError(t, h2.shutdown())
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// As TestQueuedRunNotRecordedIsNotRunByAnotherProcess, when the restart
// failed the final record of the run before it too, left running: the
// other process resumed that run under the ID of the queued one, whose
// stream had ended. It now resumes it under an ID of its own, and
// deletes the queued run's row.
func TestQueuedRunNotRecordedIsNotTheIDOfAResume(t *testing.T) {
	h, first, queued := queuedBehindARun(t)
	pg, rd := h.pg, h.redis
	dropUnqueues := queuedRunNotRecordedKept(t, h, queued, ` OR (NEW.id = '`+first.RunID+`' AND NEW.status <> 'running')`)
	rec, err := h.s.store.GetRun(t.Context(), first.RunID)
	require.NoError(t, err)
	require.Equal(t, executor.RunRunning, rec.Status, "the run before it, its final record refused")
	h.endProcessLockSession()
	// Postgres is back.
	_, err = pg.Pool.Exec(t.Context(), `DROP TRIGGER refuse ON `+pgx.Identifier{pg.Schema, "runs"}.Sanitize())
	require.NoError(t, err)
	dropUnqueues()

	h2 := startServiceOn(t, pg, rd, time.Millisecond, nil) // its start-up's recovery takes the dead's runs over
	requireQueuedRunNotRunByTakeover(t, h2, queued, "the queued run, whose stream had ended, is the ID of a resume")
	rec, err = h2.s.store.GetRun(t.Context(), first.RunID)
	require.NoError(t, err)
	assert.NotEqual(t, executor.RunRunning, rec.Status, "the run before it, after the other process's recovery")
	require.NoError(t, h2.shutdown())
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// shutdownTimeout bounds the whole shutdown, but its last delete of the
// rows of queued runs not recorded had a bound of its own, unlockTimeout,
// from when it began: a Postgres that stalls (the case in which those
// deletes have failed) held a shutdown whose time was up that long more.
// The delete now ends with the shutdown's context.
func TestShutdownBoundsTheDeleteOfAQueuedRunNotRecorded(t *testing.T) {
	s, pg, leaks := startUnserved(t)
	s.mu.Lock()
	s.forgetting["stalled"] = "l"
	s.mu.Unlock()
	// The table of the queued runs is held: a delete waits.
	tx, err := pg.Pool.Begin(context.Background())
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(t.Context(), `LOCK TABLE `+pgx.Identifier{pg.Schema, "service_queued"}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the shutdown's time is up
	done := make(chan error, 1)
	go func() { done <- s.shutdown(ctx) }()
	select {
	case <-done:
	case <-time.After(unlockTimeout / 2): // a bound below that of the delete, not a timing assertion
		require.NoError(t, tx.Rollback(context.Background()))
		<-done
		t.Fatal("the shutdown, its time up, waited for the delete of a queued run's row")
	}
	require.NoError(t, tx.Rollback(context.Background()))
	goleak.VerifyNone(t, leaks)
}

// The shutdown's delete of the row of a queued run not recorded logged,
// when it failed, that the next pass of the recovery would try again,
// though no pass follows a shutdown. It now says what becomes of the
// row: a process that takes the run over deletes it, if its stream has
// ended.
func TestShutdownsFailedDeleteOfAQueuedRunsRowSaysWhatBecomesOfIt(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	leaks := goleak.IgnoreCurrent()
	var logs testenv.LogBuffer
	c := config{addr: "127.0.0.1:0", postgresURL: testenv.PostgresURL(), redisURL: testenv.RedisURL(),
		schema: pg.Schema, prefix: rd.Prefix, token: token, retain: time.Hour, pruneEvery: time.Hour, recoverEvery: time.Hour}
	s, err := start(context.Background(), c, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	s.mu.Lock()
	s.forgetting["run-not-recorded"] = "l"
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the shutdown's time is up: the delete fails
	_ = s.shutdown(ctx)
	t.Log(logs.String())
	var lines []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "run=run-not-recorded") {
			lines = append(lines, line)
		}
	}
	require.Len(t, lines, 1, "the failed delete's log line")
	assert.NotContains(t, lines[0], "next pass", "no pass of the recovery follows a shutdown")
	assert.Contains(t, lines[0], "takes the run over deletes it")
	goleak.VerifyNone(t, leaks)
}
