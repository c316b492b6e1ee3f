package main

import (
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/progress"
)

// A run queued in another process, and recorded there (cancelled, or
// started) while this process looked it up, was answered 404 ("no run"),
// which stops an EventSource for good: GET /runs/{run}, POST
// /runs/{run}/cancel and GET /runs/{run}/events read its record (none
// yet), then its row among the runs queued (deleted by then, once its
// record was written).
// TestCancelRunOfAnotherProcess failed so, once in a run of the package.
// The record is now read again when the row is not found. Here the run is
// cancelled in the process that queued it between the two reads
// (findRunHook). GET /runs/{run}/events made two reads of its own
// before the handler's (findRun), and still answered 404 so: this test
// did with the hook between them, and TestCancelRunOfAnotherProcess
// did again under load. It now looks the run up with findRun too.
func TestQueuedRunRecordedWhileLookedUpIsFound(t *testing.T) {
	for _, tc := range []struct {
		name    string
		request func(t *testing.T, h *harness, runID string)
	}{
		{"GET /runs/{run}", func(t *testing.T, h *harness, runID string) {
			var v runView
			require.Equal(t, http.StatusOK, h.do("GET", "/runs/"+runID, "", &v))
			assert.Equal(t, "cancelled", v.Status)
		}},
		{"POST /runs/{run}/cancel", func(t *testing.T, h *harness, runID string) {
			var e map[string]string
			require.Equal(t, http.StatusConflict, h.do("POST", "/runs/"+runID+"/cancel", "", &e), "it has ended")
			assert.Contains(t, e["error"], "has ended: cancelled")
		}},
		{"GET /runs/{run}/events", func(t *testing.T, h *harness, runID string) {
			events := h.followAll(runID)
			require.Len(t, events, 1)
			assert.Equal(t, progress.RunCancelled, events[0].Type)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h1, h2, queued := queuedInTwoProcesses(t)
			leaks := h1.leaks
			var once sync.Once
			findRunHook = func(runID string) {
				once.Do(func() {
					ok, err := h1.s.cancel(runID) // records it, then deletes its row
					assert.True(t, ok)
					assert.NoError(t, err)
				})
			}
			defer func() { findRunHook = nil }()
			tc.request(t, h2, queued.RunID)
			require.NoError(t, h2.shutdown())
			require.NoError(t, h1.shutdown())
			goleak.VerifyNone(t, leaks)
		})
	}
}
