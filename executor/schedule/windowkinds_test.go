package schedule_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// A batch key shared by two kinds, b and x (x made from b), with a
// window for x only: the window of x's head held back the whole key, so
// that a b that became ready behind it waited the window out, though
// the key had free slots and no window holds b, and the x that this b
// would release, one of those the window waits for, could not come
// before the window ended. The window now holds back its own kind only.
func TestWindowHoldsItsKindOnly(t *testing.T) {
	tm := tmpl(per("a"),
		batched(per("b", dep("a", graph.ScopeSameSegment)), "k", 3),
		batched(per("x", dep("b", graph.ScopeSameSegment)), "k", 3))
	g := build(t, tm, 60)
	m := newMachine(t, planOf(t, g), schedule.Config{Windows: map[string]time.Duration{"x": 5 * time.Second}})
	drain(m, g, t0) // the singles, every a
	_, err := m.SucceedAt(node(t, g, "a:segment[0]"), t0.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{"b:segment[0]"}, drain(m, g, t0.Add(time.Second)))
	_, err = m.SucceedAt(node(t, g, "b:segment[0]"), t0.Add(2*time.Second))
	require.NoError(t, err)
	assert.Empty(t, drain(m, g, t0.Add(2*time.Second)), "x:segment[0] waits for the window")
	_, err = m.SucceedAt(node(t, g, "a:segment[1]"), t0.Add(3*time.Second))
	require.NoError(t, err)
	now := t0.Add(3 * time.Second)
	assert.True(t, m.CanStart(now), "b:segment[1] may start")
	assert.Equal(t, []string{"b:segment[1]"}, drain(m, g, now), "started at 3 s")
	wake, ok := m.Wake()
	if assert.True(t, ok, "the window of x:segment[0] still holds it") {
		assert.Equal(t, 7*time.Second, wake.Sub(t0))
	}
	_, err = m.SucceedAt(node(t, g, "b:segment[1]"), t0.Add(4*time.Second))
	require.NoError(t, err)
	assert.Empty(t, drain(m, g, t0.Add(4*time.Second)), "x waits on")
	assert.Equal(t, []string{"x:segment[0]"}, drain(m, g, t0.Add(7*time.Second)), "the window ends")
	st, ok := m.More(t0.Add(7*time.Second), node(t, g, "x:segment[0]"))
	if assert.True(t, ok, "More") {
		assert.Equal(t, "x:segment[1]", g.NodeID(st.Node))
	}
}
