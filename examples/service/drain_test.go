package main

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// errStarted stops a follow at the run's first node.started.
var errStarted = errors.New("a node started")

// awaitNodeStarted follows run runID until one of its nodes has started.
func (h *harness) awaitNodeStarted(runID string) {
	h.t.Helper()
	c := sse.NewClient(h.base+"/runs/"+runID+"/events", sse.ClientOptions{HTTPClient: h.hc,
		Header: http.Header{"Authorization": {"Bearer " + token}}, Retry: 100 * time.Millisecond})
	ctx := testenv.Context(h.t, time.Minute) // a bound against a hang, not a timing assertion
	err := c.Follow(ctx, func(e progress.Event) error {
		if e.Type == progress.NodeStarted {
			return errStarted
		}
		return nil
	})
	require.ErrorIs(h.t, err, errStarted, "follow run %s", runID)
}

// The shutdown cancelled the runs at once, throwing away the generator
// calls under way, which were paid for (an outside SRE team's trial).
// With -drain, it lets them end and keeps their outputs, starting no other
// call, and the runs end cancelled with the code "shutdown", which the
// next start resumes, making only what they left.
func TestShutdownDrainsTheRuns(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, 2*time.Second, func(c *config) { c.drain = time.Minute })
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	h.awaitNodeStarted(first.RunID)
	require.NoError(t, h.shutdown())
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	rec, err := store.GetRun(t.Context(), first.RunID)
	require.NoError(t, err)
	require.Equal(t, executor.RunCancelled, rec.Status)
	assert.Equal(t, codeShutdown, rec.CancelledBy)
	assert.Contains(t, rec.Error, errShutdown.Error())
	assert.Positive(t, rec.Counts.Generated, "the calls under way were kept")
	assert.Zero(t, rec.Counts.Cancelled, "no call was cut")
	assert.Equal(t, rec.Counts.Generated, rec.Counts.Attempts, "no call started after the drain")

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	resumed := newestRun(t, store, "l")
	require.NotEqual(t, first.RunID, resumed.ID, "a run that resumes it")
	made := requireWholeRun(t, resumed.ID, h.follow(resumed.ID, ""))
	assert.Len(t, made, len(testgraph.LectureIDs(t, 10))-rec.Counts.Generated, "the resume makes only what was left")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
