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
