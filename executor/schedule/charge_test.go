package schedule_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestChargeAtRetryLoop mirrors a driver that retries a failed attempt
// itself, as a workflow engine does: its provider counts every call, so
// each retry's call is charged to the node's batch key's rate before it
// is made. A retry that the rate has no room for waits RateWait, as a
// first start waits Wake; a charge holds back the first starts of other
// nodes as a start does, and a snapshot keeps it.
func TestChargeAtRetryLoop(t *testing.T) {
	cfg := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	images := []string{"asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]", "asset:image:segment[3]"}
	p := lecturePlan(t, 40, images...)
	g := p.Graph
	m := newMachine(t, p, cfg)
	var calls []time.Time // the provider's calls of the key, first and retried
	start := func(now time.Time) []string {
		var out []string
		for {
			st, ok := m.Next(now)
			if !ok {
				return out
			}
			out = append(out, g.NodeID(st.Node))
			if st.Key == graph.KindImage {
				calls = append(calls, now)
			}
		}
	}
	assert.Equal(t, images[:2], start(t0), "the rate holds the third and fourth images back")
	img0 := node(t, g, images[0])

	// Image 0's first attempt fails at 1s; its retry is due at 2s.
	at := t0.Add(2 * time.Second)
	ok, err := m.ChargeAt(img0, at)
	require.NoError(t, err)
	require.False(t, ok, "both starts at 0s fill the rate: the retry waits")
	wait := m.RateWait(graph.KindImage, at)
	require.Equal(t, 8*time.Second, wait)
	at = at.Add(wait)
	// The driver charges its retry before asking Next at the same time,
	// so that the retry comes first.
	ok, err = m.ChargeAt(img0, at)
	require.NoError(t, err)
	require.True(t, ok)
	calls = append(calls, at)
	assert.Equal(t, images[2:3], start(at), "one start of 2 left at 10s")
	wake, ok := m.Wake()
	require.True(t, ok)
	assert.Equal(t, t0.Add(20*time.Second), wake, "the retry's call and image 2's fill the rate until 20s")
	assert.Equal(t, 10*time.Second, m.RateWait(graph.KindImage, at))
	ok, err = m.ChargeAt(node(t, g, images[1]), at)
	require.NoError(t, err)
	assert.False(t, ok, "nor is there room for another retry")
	assert.Equal(t, []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{at, at}}}, m.RateStarts(at))

	// A snapshot keeps the charge, in version 2's form: a restored machine
	// answers as this one.
	snap := m.Snapshot()
	assert.Equal(t, 2, snap.Version())
	js := marshal(t, snap)
	assert.Contains(t, string(js), `"rates":[{"key":"asset:image","starts":["2025-01-01T00:00:10Z","2025-01-01T00:00:10Z"]}]`)
	var back schedule.Snapshot
	require.NoError(t, json.Unmarshal(js, &back))
	r, err := schedule.Restore(p, cfg, back)
	require.NoError(t, err)
	assert.Equal(t, string(js), string(marshal(t, r.Snapshot())))
	assert.Equal(t, 10*time.Second, r.RateWait(graph.KindImage, at))
	assert.Equal(t, images[3:], start(wake), "image 3 starts once the charge leaves the window")
	st, ok := r.Next(wake)
	require.True(t, ok, "and so it does in the restored machine")
	assert.Equal(t, images[3], g.NodeID(st.Node))

	// No window of 10s held more than 2 of the provider's calls.
	for i := range calls {
		n := 0
		for _, c := range calls[:i+1] {
			if calls[i].Sub(c) < 10*time.Second {
				n++
			}
		}
		assert.LessOrEqual(t, n, 2, "calls at %v", calls)
	}
}

// TestChargeAtRefuses: ChargeAt of a node that is not running, not in
// the plan, of a key without a rate, or at a time before the key's latest
// start is an error that says so, and charges nothing.
func TestChargeAtRefuses(t *testing.T) {
	cfg := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 3, Per: 10 * time.Second}}}
	p := lecturePlan(t, 40, "asset:image:segment[0]", "asset:image:segment[1]")
	g := p.Graph
	m := newMachine(t, p, cfg)
	at := t0.Add(5 * time.Second)
	st, ok := m.Next(at)
	require.True(t, ok)
	require.Equal(t, graph.KindImage, st.Kind)
	video := node(t, g, "asset:video:segment[0]")
	for _, tc := range []struct {
		name string
		n    graph.Node
		at   time.Time
		is   error
		want string
	}{
		{"not running", node(t, g, "asset:image:segment[1]"), at, schedule.ErrNotRunning, `node "asset:image:segment[1]" is ready`},
		{"not in the plan", node(t, g, "asset:image:segment[3]"), at, schedule.ErrNotInPlan, `node "asset:image:segment[3]"`},
		{"not in the graph", graph.Node(g.Len()), at, schedule.ErrNotInPlan, fmt.Sprintf("node %d: the graph has nodes 0 to %d", g.Len(), g.Len()-1)},
		{"before the key's latest start", st.Node, t0, schedule.ErrInvalidRateStarts, `before the latest start of batch key "asset:image", 2025-01-01T00:00:05Z: the driver's clock must not go back`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := m.ChargeAt(tc.n, tc.at)
			require.ErrorIs(t, err, tc.is)
			require.ErrorContains(t, err, tc.want)
			assert.False(t, ok)
			assert.Equal(t, []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{at}}}, m.RateStarts(at), "nothing charged")
		})
	}
	t.Run("not rated", func(t *testing.T) {
		m := newMachine(t, lecturePlan(t, 40, "asset:image:segment[0]"), cfg)
		_, err := m.Succeed(drainOne(t, m, at, graph.KindImage))
		require.NoError(t, err)
		n := drainOne(t, m, at, graph.KindVideo)
		require.Equal(t, video, n)
		ok, err := m.ChargeAt(n, at)
		require.ErrorIs(t, err, schedule.ErrNotRated)
		require.ErrorContains(t, err, `node "asset:video:segment[0]": batch key "asset:video" has no rate (Config.Rates): nothing counts its calls`)
		assert.False(t, ok)
		_, err = m.Succeed(n)
		require.NoError(t, err)
		n = drainOne(t, m, at, "timeline")
		ok, err = m.ChargeAt(n, at)
		require.ErrorIs(t, err, schedule.ErrNotRated)
		require.ErrorContains(t, err, `node "timeline" is a single: it has no batch key, and no rate counts its calls`)
		assert.False(t, ok)
	})
	t.Run("zero Machine", func(t *testing.T) {
		var z schedule.Machine
		ok, err := z.ChargeAt(0, at)
		require.ErrorIs(t, err, schedule.ErrNotInPlan)
		assert.False(t, ok)
	})
}

// drainOne starts nodes at now until one of kind, and returns it.
func drainOne(t *testing.T, m *schedule.Machine, now time.Time, kind string) graph.Node {
	t.Helper()
	for {
		st, ok := m.Next(now)
		require.True(t, ok, "no node of kind %s started", kind)
		if st.Kind == kind {
			return st.Node
		}
	}
}

// TestChargeAtRefusalReadsAlikeAfterRestore: the error of a charge
// before the key's latest start gives the times in UTC, as a snapshot
// holds them, so that a machine and one restored from its snapshot
// refuse a driver whose clock is in another zone with the same words.
func TestChargeAtRefusalReadsAlikeAfterRestore(t *testing.T) {
	cfg := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 3, Per: 10 * time.Second}}}
	p := lecturePlan(t, 40, "asset:image:segment[0]")
	cet := time.FixedZone("CET", 3600)
	m := newMachine(t, p, cfg)
	st, ok := m.Next(t0.Add(5 * time.Second).In(cet))
	require.True(t, ok)
	r, err := schedule.Restore(p, cfg, m.Snapshot())
	require.NoError(t, err)
	var errs []string
	for _, m := range []*schedule.Machine{m, r} {
		ok, err := m.ChargeAt(st.Node, t0.In(cet))
		require.ErrorIs(t, err, schedule.ErrInvalidRateStarts)
		assert.False(t, ok)
		errs = append(errs, err.Error())
	}
	assert.Equal(t, errs[0], errs[1], "the machine's and the restored machine's")
	assert.Contains(t, errs[0], `node "asset:image:segment[0]" at 2025-01-01T00:00:00Z, before the latest start of batch key "asset:image", 2025-01-01T00:00:05Z`)
}
