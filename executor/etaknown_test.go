package executor_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// requireETAKnown checks the package doc's promise on a run's ETA: 0
// (unknown) until some kind's cost is known, and on the final event;
// while nodes are left (Done below Total), never less than a second.
func requireETAKnown(t *testing.T, evs []progress.Event) {
	t.Helper()
	known := false
	for _, ev := range evs {
		switch {
		case ev.Type.Final():
			require.Zero(t, ev.ETA, "seq %d %s: the final event's ETA", ev.Seq, ev.Type)
		case ev.ETA > 0:
			known = true
			require.GreaterOrEqual(t, ev.ETA, time.Second, "seq %d %s: ETA", ev.Seq, ev.Type)
		case known && ev.Done < ev.Total:
			t.Fatalf("seq %d %s %s: ETA unknown (0) again, with %d of %d nodes done", ev.Seq, ev.Type, ev.Node, ev.Done, ev.Total)
		}
	}
}

// A stage whose first event is the settlement of the run's last node
// (its inputs unchanged, kept by early cutoff) started with an ETA of 0,
// unknown, though its Done said a node was left and the ETA had been
// known since the first node ended: its stage.started took the ETA of
// that last settlement, 0 as nothing is left after it.
func TestStageStartedOfTheLastNodeKeepsTheETA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 10)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		l.resetCalls()
		// Made again with the same output: the video and the timeline
		// keep their results, each the first event of its stage.
		narration := graph.ID{Kind: graph.KindNarration}.String()
		rep, err := l.run(e, dirty.Mark{ID: narration, Reason: dirty.ReasonForced})
		require.NoError(t, err)
		require.Equal(t, []string{narration}, rep.Generated)
		require.Len(t, rep.Unchanged, 2)
		l.mu.Lock()
		evs := slices.Clone(l.events)
		l.mu.Unlock()
		requireETAKnown(t, evs)
	})
}
