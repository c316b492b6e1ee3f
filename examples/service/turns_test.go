package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// A run's report was kept (GET /runs/{run} showed it ended, with its
// report) before its lecture was freed: while the run's lock was given
// up, a new run of the lecture was refused, 409 "a run of this lecture is
// going on", though none was (TestRunIsCancelledWhenItsLockIsLost failed
// so, now and then). A request now waits while the lock is given up.
func TestLectureIsFreeOnceItsRunHasEnded(t *testing.T) {
	h := startService(t, time.Millisecond)
	for round := range 30 {
		var e map[string]string // the answer, an error's or a run's
		status := h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &e)
		require.Equal(t, http.StatusAccepted, status, "round %d: %s", round, e["error"])
		h.getRun(e["runId"]) // its report is kept: the run has ended
	}
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
