package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// A run ID that no run can have (not valid UTF-8, or with a NUL: the
// store refuses such an ID, and Postgres text cannot hold one) was looked
// up among the runs queued all the same, whose read Postgres refused
// (SQLSTATE 22021): GET /runs/{run} and POST /runs/{run}/cancel answered
// 500, logged as an error, and GET /runs/{run}/events 503 with
// Retry-After, which an EventSource retries for good. No such run
// exists: 404, as for any unknown run.
func TestRunIDThatNoRunCanHaveIsNotFound(t *testing.T) {
	h := startService(t, time.Millisecond)
	for _, id := range []string{"%FF", "run-%00", "%C3%28"} {
		for _, tc := range []struct{ method, path string }{
			{"GET", "/runs/" + id},
			{"HEAD", "/runs/" + id},
			{"POST", "/runs/" + id + "/cancel"},
			{"GET", "/runs/" + id + "/events"},
		} {
			t.Run(tc.method+" "+tc.path, func(t *testing.T) {
				assert.Equal(t, http.StatusNotFound, h.doAs(token, tc.method, tc.path, "", nil))
			})
		}
	}
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
