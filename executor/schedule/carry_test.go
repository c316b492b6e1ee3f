package schedule_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestRateWaitOfACarriedKey: a round whose plan has no node of a rated
// key carries the starts it inherited of it (Inherit), and RateWait
// answers when the key's quota frees, as for a key of the plan: a
// driver asks it to know when the provider may be called again, by a
// call of its own or by the next round.
func TestRateWaitOfACarriedKey(t *testing.T) {
	rates := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	p := lecturePlan(t, 40, "asset:music") // no image
	m := newMachine(t, p, rates)
	require.NoError(t, m.Inherit([]schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0, t0.Add(time.Second)}}}))
	assert.Equal(t, 8*time.Second, m.RateWait(graph.KindImage, t0.Add(2*time.Second)), "both starts fill the rate until 10s")
	assert.Equal(t, time.Duration(0), m.RateWait(graph.KindImage, t0.Add(10*time.Second)), "the first left the window at 10s")
	r, err := schedule.Restore(p, rates, m.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, 8*time.Second, r.RateWait(graph.KindImage, t0.Add(2*time.Second)), "restored from a snapshot")

	one := newMachine(t, p, rates)
	require.NoError(t, one.Inherit([]schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0}}}))
	assert.Equal(t, time.Duration(0), one.RateWait(graph.KindImage, t0.Add(time.Second)), "one start of 2 leaves room")
	assert.Equal(t, time.Duration(0), m.RateWait("elsewhere", t0), "a key without a rate")
}

// TestSnapshotDropsCarriedStartsThatLeftTheWindow: the starts a machine
// carries for a rated key its plan has not (Inherit) are held while
// they may be in their window, as Snapshot's doc says: once a call that
// starts a node, charges one, or SucceedAt passes a time at which they
// have left it, a snapshot holds them no more, nor does the snapshot of
// a machine restored from an earlier one after the same call.
func TestSnapshotDropsCarriedStartsThatLeftTheWindow(t *testing.T) {
	rates := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	p := lecturePlan(t, 40, "asset:music") // the music, then the timeline; no image
	g := p.Graph
	m := newMachine(t, p, rates)
	require.NoError(t, m.Inherit([]schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0, t0.Add(5 * time.Second)}}}))
	st, ok := m.Next(t0.Add(6 * time.Second))
	require.True(t, ok)
	require.Equal(t, graph.KindMusic, st.Kind)
	assert.Contains(t, string(marshal(t, m.Snapshot())), `"rates":[{"key":"asset:image","starts":["2025-01-01T00:00:00Z","2025-01-01T00:00:05Z"]}]`, "both in the window at 6s")
	early, err := schedule.Restore(p, rates, m.Snapshot())
	require.NoError(t, err)

	// The music ends at 12s: the start at 0s has left the window.
	for _, m := range []*schedule.Machine{m, early} {
		_, err = m.SucceedAt(st.Node, t0.Add(12*time.Second))
		require.NoError(t, err)
		assert.Contains(t, string(marshal(t, m.Snapshot())), `"rates":[{"key":"asset:image","starts":["2025-01-01T00:00:05Z"]}]`, "the start at 0s left the window at 10s")
	}
	assert.Equal(t, string(marshal(t, m.Snapshot())), string(marshal(t, early.Snapshot())))
	// The timeline starts at 16s: none is left.
	st, ok = m.Next(t0.Add(16 * time.Second))
	require.True(t, ok)
	require.Equal(t, "timeline", g.NodeID(st.Node))
	assert.NotContains(t, string(marshal(t, m.Snapshot())), `"rates":[`, "the start at 5s left the window at 15s")
	assert.Empty(t, m.RateStarts(t0.Add(16*time.Second)))
}
