package schedule_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestZeroMachine: a zero Machine, which New did not make, panicked in
// Snapshot, the transitions, State, More, Invalidate and Refund (its
// graph is nil). It is a machine of no plan: every exported method
// answers as for an empty plan, without a panic: no node to start, none
// in the plan (an error wrapping ErrNotInPlan that says to use New),
// Done, and the zero Snapshot, which is no snapshot.
func TestZeroMachine(t *testing.T) {
	var m schedule.Machine
	for _, n := range []graph.Node{0, 3, -1} {
		t.Run("", func(t *testing.T) {
			notInPlan := func(err error) {
				t.Helper()
				require.ErrorIs(t, err, schedule.ErrNotInPlan)
				require.ErrorContains(t, err, "the zero Machine has no plan: make one with New")
			}
			for name, f := range map[string]func(graph.Node) (schedule.Result, error){
				"Succeed": m.Succeed, "Fail": m.Fail, "Supersede": m.Supersede, "Cancel": m.Cancel, "Invalidate": m.Invalidate,
				"SucceedAt": func(n graph.Node) (schedule.Result, error) { return m.SucceedAt(n, t0) },
			} {
				r, err := f(n)
				notInPlan(err)
				assert.Equal(t, schedule.Result{}, r, name)
			}
			ok, err := m.Refund(n)
			notInPlan(err)
			assert.False(t, ok)
			st, ok := m.State(n)
			assert.False(t, ok)
			assert.Equal(t, schedule.Pending, st)
			_, ok = m.More(t0, n)
			assert.False(t, ok)
		})
	}
	_, ok := m.Next(t0)
	assert.False(t, ok)
	assert.False(t, m.CanStart(t0))
	_, ok = m.WakeAt(t0)
	assert.False(t, ok)
	_, ok = m.Wake()
	assert.False(t, ok)
	assert.Zero(t, m.RateWait("tts", t0))
	assert.Nil(t, m.RateStarts(t0))
	require.ErrorIs(t, m.Inherit([]schedule.RateStarts{{Key: "tts", Starts: []time.Time{t0}}}), schedule.ErrInvalidRateStarts, "see TestZeroMachineInherit")
	assert.Nil(t, m.RateStarts(t0))
	assert.Zero(t, m.Len())
	assert.Zero(t, m.Settled())
	assert.Zero(t, m.Running())
	assert.Nil(t, m.RunningNodes())
	assert.Nil(t, m.Unsettled())
	assert.True(t, m.Done(), "nothing to do")
	s := m.Snapshot()
	assert.Equal(t, schedule.Snapshot{}, s, "no snapshot")
	b, err := json.Marshal(s)
	require.NoError(t, err)
	assert.Equal(t, "null", string(b))
	assert.False(t, m.Halted())
	m.Halt()
	assert.True(t, m.Halted())
	assert.True(t, m.Done())
}

// TestZeroMachineInherit: the zero Machine's Inherit took the starts a
// driver carries between rounds and returned nil, though it kept none
// (it has no Config, so no rate): its RateStarts then gave the next
// round nothing, and the providers' quotas were lost without a word, as
// by a driver that forgot New. It refuses them, as its transitions do,
// with an error wrapping ErrInvalidRateStarts that says to make a
// machine with New; with nothing to carry too, as its transitions
// refuse any node.
func TestZeroMachineInherit(t *testing.T) {
	for _, starts := range [][]schedule.RateStarts{{{Key: "tts", Starts: []time.Time{t0}}}, nil} {
		var m schedule.Machine
		err := m.Inherit(starts)
		require.ErrorIs(t, err, schedule.ErrInvalidRateStarts)
		require.ErrorContains(t, err, "the zero Machine has no plan: make one with New")
		assert.Nil(t, m.RateStarts(t0))
	}
}
