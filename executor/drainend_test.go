package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A drain that lands while the run's last calls are under way keeps
// nothing from starting: those calls end, and the run ends as it would
// have without the drain (succeeded, or failed), not as cancelled with
// nothing left to make, which a host's next start would resume for
// nothing, and its dashboards show as cut.
func TestDrainDuringTheLastCallsEndsAsWithout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		converge int
		lastErr  error // of the last node's call
		want     executor.RunStatus
		final    progress.Type
	}{
		{"succeeded", 0, nil, executor.RunSucceeded, progress.RunFinished},
		{"succeeded with Converge", 2, nil, executor.RunSucceeded, progress.RunFinished},
		{"failed", 0, executor.Permanent(errors.New("bad script")), executor.RunFailed, progress.RunFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				var last string
				for n := range l.g.Len() {
					if l.g.KindName(l.g.KindOf(graph.Node(n))) == graph.KindTimeline {
						last = l.g.NodeID(graph.Node(n))
					}
				}
				require.NotEmpty(t, last)
				if tc.lastErr != nil {
					l.set(last, fail(tc.lastErr))
				}
				e := l.executor(executor.Options{Converge: tc.converge})
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				for !assert.ObjectsAreEqual([]string{last}, l.activeAll()) {
					time.Sleep(time.Second)
				}
				r.Drain(executor.CancelCode("shutdown", nil))
				rep, err := r.Wait()
				assert.Equal(t, tc.want, rep.Record.Status, "err %v", err)
				assert.Empty(t, rep.Record.CancelledBy)
				assert.NotErrorIs(t, err, executor.ErrCancelled)
				if tc.lastErr == nil {
					require.NoError(t, err)
					l.requireAllClean()
				} else {
					assert.Equal(t, []string{last}, rep.Failed)
				}
				l.requireEventOrder(tc.final)
			})
		})
	}
}

// A drain keeps Options.Converge from starting a round: the nodes that an
// edit during the drain made stale stay dirty, for a Resume, and the run
// ends as cancelled with the drain's code.
func TestDrainStartsNoConvergeRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const video = "asset:video:segment[3]"
		l := newLab(t, 60)
		e := l.executor(executor.Options{Converge: 2})
		_, err := l.run(e)
		require.NoError(t, err)
		l.resetCalls()
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: video, Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		time.Sleep(10 * time.Second) // the video's call is under way
		require.Equal(t, []string{video}, l.activeAll())
		r.Drain(nil)
		_, err = e.Edit(context.Background(), l.g, "lecture", video)
		require.NoError(t, err)
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrDrained)
		assert.Equal(t, executor.CancelledByDrain, rep.Record.CancelledBy)
		assert.Equal(t, 1, rep.Rounds)
		assert.Contains(t, rep.Dirty, video)
		assert.Equal(t, []string{video}, l.calledIDs(), "a call after the drain")
		for _, ev := range l.eventsOf(progress.Message) {
			assert.NotContains(t, ev.Message, "Round 2", "a round started after the drain")
		}
	})
}
