package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
)

// lockHolderPID returns the PID of the session that holds the lock of
// lecture key, or 0 if none does.
func (h *harness) lockHolderPID(key string) (pid int32) {
	h.t.Helper()
	require.NoError(h.t, h.pg.Pool.QueryRow(h.t.Context(), `SELECT coalesce(max(pid), 0) FROM pg_locks
	WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`,
		h.s.store.GraphLockKey(key)).Scan(&pid))
	return pid
}

// A run's lecture lock was held with GraphLock.Guard, which cancels the
// run as soon as the lock's session ends: a Postgres restart or failover
// cancelled every run of the service with "lock-lost", cutting its
// generator calls under way (paid for), to be resumed and paid again.
// With -retake, the lock is taken again on a new session and the run
// goes on.
func TestRunSurvivesItsLockSessionsEnd(t *testing.T) {
	h := startServiceWith(t, time.Hour, func(c *config) { c.retake = 10 * time.Second }) // runs go on until cancelled
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	ended := h.lockHolderPID("l")
	require.NotZero(t, ended, "the run's lock")
	h.endLockSession("l")

	var pid int32
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		pid = h.lockHolderPID("l")
		return pid != 0 && pid != ended
	}, 20*time.Second, 10*time.Millisecond, "the lecture's lock was not taken again")
	v := h.awaitRun(first.RunID, "record", func(v runView) bool { return v.Record != nil })
	assert.Equal(t, string(executor.RunRunning), v.Status, "the run goes on: %+v", v.Record)
	assert.Nil(t, v.Report, "the run has not ended")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
