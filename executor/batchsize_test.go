package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A node.started of a bulk call says how many nodes the call takes ("in
// a batch of N"): it counted the nodes taken for the call, those that
// early cutoff then kept (no call) among them, so that a call of one
// node said "in a batch of 2".
func TestBatchStartCountsTheNodesOfTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 20)
		b := &bulk{lab: l, failOnce: map[string]bool{}}
		reg := l.registry(l)
		reg[graph.KindVideo] = b
		e := l.executor(executor.Options{Generators: reg, Mode: executor.Staged})
		_, err := l.run(e)
		require.NoError(t, err)
		l.resetCalls()
		b.batches = nil
		// Both narrations made again, the first with the same output: its
		// video keeps its result (early cutoff) in the bulk call of the
		// videos' stage, and the other video alone is called.
		video0, video1 := ids(l, graph.KindVideo, 0, 1)[0], ids(l, graph.KindVideo, 0, 1)[1]
		narr := ids(l, graph.KindNarration, 0, 1)
		l.set(narr[1], func(context.Context, executor.Request) ([]byte, error) { return []byte("another take"), nil })
		rep, err := l.run(e, dirty.Mark{ID: narr[0], Reason: dirty.ReasonForced}, dirty.Mark{ID: narr[1], Reason: dirty.ReasonForced})
		require.NoError(t, err)
		require.Contains(t, rep.Unchanged, video0)
		require.Contains(t, rep.Generated, video1)
		require.Equal(t, [][]string{{video1}}, b.batches)
		var msgs []string
		for _, ev := range l.eventsOf(progress.NodeStarted) {
			if ev.Node == video1 {
				msgs = append(msgs, ev.Message)
			}
		}
		require.Equal(t, []string{"in a batch of 1"}, msgs)
	})
}
