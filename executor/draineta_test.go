package executor_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// Once a run is drained, no node starts: its ETA is what is left of the
// calls under way, not of the whole plan. At 21 s into the lecture the
// music's call (20 s, to 40 s) is the longest under way, so that no
// event after the drain may say more than its 19 s; the events said up
// to 59 s, and 25.5 s when the music's end ended the run.
func TestDrainETACountsTheCallsUnderWayAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, _, r := startLecture(t)
		time.Sleep(21 * time.Second)
		require.Contains(t, l.activeAll(), "asset:music")
		r.Drain(nil)
		_, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrDrained)
		l.mu.Lock()
		defer l.mu.Unlock()
		after := -1
		for i, ev := range l.events {
			if ev.Type == progress.Message && after < 0 {
				after = i
			}
			if after >= 0 && ev.Type != progress.RunCancelled {
				assert.LessOrEqual(t, ev.ETA, 19*time.Second, "%s %s", ev.Type, ev.Node)
			}
		}
		require.GreaterOrEqual(t, after, 0, "no event of the drain")
		for _, ev := range l.events {
			if ev.Type == progress.NodeSucceeded && ev.Node == "asset:music" {
				assert.LessOrEqual(t, ev.ETA, time.Second, "the run's last call ended")
			}
		}
	})
}
