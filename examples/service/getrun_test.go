package main

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// GET /runs/{run} answered a run's report with the record that the store
// held before the run ended ("running", no error): it read the record,
// then the report, which the run's end had kept in between, though the
// run's final record is stored before its report is kept. A client that
// waited for the report (TestRunIsCancelledWhenItsLockIsLost did, and
// failed so under load) read a record that said the run went on. The
// report is now read first: an answer with a report has the final
// record. Here the run is cancelled, and its report kept, between the
// two reads (getRunHook).
func TestRunWithItsReportHasItsFinalRecord(t *testing.T) {
	h := startService(t, time.Hour) // the run goes on until it is cancelled
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	var once sync.Once
	getRunHook = func(runID string) {
		once.Do(func() {
			_, err := h.s.cancel(runID)
			assert.NoError(t, err)
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				h.s.mu.Lock()
				kept := h.s.reports[runID] != nil
				h.s.mu.Unlock()
				if kept {
					return
				}
			}
			t.Errorf("the report of run %s was not kept", runID) // a bound against a hang
		})
	}
	defer func() { getRunHook = nil }()

	var v runView
	require.Equal(t, http.StatusOK, h.do("GET", "/runs/"+first.RunID, "", &v))
	if v.Report != nil {
		assert.Equal(t, "cancelled", v.Status, "the record answered with the run's report")
	}
	assert.Equal(t, "cancelled", h.getRun(first.RunID).Status)
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
