package schedule_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestInheritRateStarts: a machine of a new plan, as a workflow that
// continues as new makes, inherits the starts an earlier machine's rates
// still count, and its rates count them as its own: the provider's quota
// carries over.
func TestInheritRateStarts(t *testing.T) {
	rates := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	old := newMachine(t, lecturePlan(t, 40), rates)
	st, ok := old.Next(t0)
	require.True(t, ok)
	_, err := old.Succeed(st.Node)
	require.NoError(t, err)
	for k := range 2 { // two images, at 0s and 1s
		now := t0.Add(time.Duration(k) * time.Second)
		for {
			st, ok := old.Next(now)
			require.True(t, ok)
			if st.Kind == graph.KindImage {
				break
			}
		}
	}
	at := t0.Add(3 * time.Second)
	got := old.RateStarts(at)
	require.Equal(t, []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0, t0.Add(time.Second)}}}, got)
	assert.Empty(t, old.RateStarts(t0.Add(11*time.Second)), "both have left the window at 11s")
	got[0].Starts[0] = time.Time{}
	assert.Equal(t, t0, old.RateStarts(at)[0].Starts[0], "the caller owns the slices")

	// The new plan: two images edited.
	p := lecturePlan(t, 40, "asset:image:segment[2]", "asset:image:segment[3]")
	m := newMachine(t, p, rates)
	require.NoError(t, m.Inherit(old.RateStarts(at)))
	assert.Equal(t, 7*time.Second, m.RateWait(graph.KindImage, at))
	_, ok = m.Next(at)
	require.False(t, ok, "the inherited starts fill the rate")
	wake, ok := m.Wake()
	require.True(t, ok)
	assert.Equal(t, t0.Add(10*time.Second), wake)
	st, ok = m.Next(wake)
	require.True(t, ok)
	assert.Equal(t, graph.KindImage, st.Kind)
	_, ok = m.Next(wake)
	require.False(t, ok, "the start at 1s still counts")
	st, ok = m.Next(t0.Add(11 * time.Second))
	require.True(t, ok)
	// A snapshot holds the inherited starts, and restores.
	r, err := schedule.Restore(p, rates, m.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, string(marshal(t, m.Snapshot())), string(marshal(t, r.Snapshot())))
	assert.Equal(t, []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0.Add(10 * time.Second), t0.Add(11 * time.Second)}}},
		r.RateStarts(t0.Add(11*time.Second)))
}

// TestInheritRateStartsFits: Inherit keeps of each key's starts the
// latest, up to its rate's Starts, and ignores a key that the plan has
// not, or that has no rate; it refuses a key given twice, and any call
// once a node has started, changing nothing.
func TestInheritRateStartsFits(t *testing.T) {
	p := lecturePlan(t, 40)
	rates := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: 10 * time.Second}}}
	m := newMachine(t, p, rates)
	require.NoError(t, m.Inherit([]schedule.RateStarts{
		{Key: "elsewhere", Starts: []time.Time{t0}},
		{Key: graph.KindVideo, Starts: []time.Time{t0}},
		{Key: graph.KindImage, Starts: []time.Time{t0, t0.Add(2 * time.Second)}},
	}))
	assert.Equal(t, []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0.Add(2 * time.Second)}}}, m.RateStarts(t0))
	assert.Equal(t, 9*time.Second, m.RateWait(graph.KindImage, t0.Add(3*time.Second)))

	for _, tc := range []struct {
		name   string
		starts []schedule.RateStarts
		want   string
	}{
		{"a key twice", []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0}}, {Key: graph.KindImage, Starts: []time.Time{t0}}},
			`batch key "asset:image" twice: give each key once`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, p, rates)
			err := m.Inherit(tc.starts)
			require.ErrorIs(t, err, schedule.ErrInvalidRateStarts)
			require.ErrorContains(t, err, tc.want)
			assert.Empty(t, m.RateStarts(t0), "a refused Inherit changes nothing")
		})
	}
	t.Run("twice", func(t *testing.T) {
		// No node has started: the error says what did count a start.
		m := newMachine(t, p, rates)
		require.NoError(t, m.Inherit([]schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0}}}))
		err := m.Inherit([]schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0.Add(time.Second)}}})
		require.ErrorIs(t, err, schedule.ErrInvalidRateStarts)
		require.ErrorContains(t, err, `batch key "asset:image" has inherited starts already: a machine inherits once, before its first Next`)
		assert.Equal(t, []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0}}}, m.RateStarts(t0), "the second Inherit changes nothing")
		r, err := schedule.Restore(p, rates, m.Snapshot())
		require.NoError(t, err)
		require.ErrorContains(t, r.Inherit(nil), `has inherited starts already`, "nor after a snapshot")
	})
	t.Run("after a start", func(t *testing.T) {
		m := newMachine(t, p, rates)
		_, ok := m.Next(t0)
		require.True(t, ok)
		err := m.Inherit([]schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0}}})
		require.True(t, errors.Is(err, schedule.ErrInvalidRateStarts))
		require.ErrorContains(t, err, "a node has started: inherit the starts before the first Next")
		assert.Empty(t, m.RateStarts(t0))
	})
}

// TestInheritStartsLaterThanNow: the machine has no clock, and Inherit
// takes no time, so a start later than the new machine's first now (from
// a host whose clock runs ahead) is taken as it is: it counts until its
// Per after it, and holds the key back longer than a start made at now
// would. Inherit's doc says so, and how a driver brings such starts onto
// its clock: a start cannot have been made later than now, and
// min(start, now) keeps them in order.
func TestInheritStartsLaterThanNow(t *testing.T) {
	rates := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: 10 * time.Second}}}
	p := lecturePlan(t, 40)
	ahead := []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0.Add(-time.Second), t0.Add(time.Hour)}}}
	// wakeAt inherits starts, runs the script at t0 and returns when the
	// first image may start.
	wakeAt := func(starts []schedule.RateStarts) time.Time {
		m := newMachine(t, p, rates)
		require.NoError(t, m.Inherit(starts))
		st, ok := m.Next(t0)
		require.True(t, ok)
		_, err := m.Succeed(st.Node)
		require.NoError(t, err)
		for {
			st, ok := m.Next(t0)
			if !ok {
				break
			}
			require.NotEqual(t, graph.KindImage, st.Kind, "an image starts within the inherited start's window")
		}
		wake, ok := m.Wake()
		require.True(t, ok, "the rate holds the images back")
		require.Equal(t, wake.Sub(t0), m.RateWait(graph.KindImage, t0))
		return wake
	}
	assert.Equal(t, t0.Add(time.Hour+10*time.Second), wakeAt(ahead), "the start an hour ahead counts as made then")
	clamped := []schedule.RateStarts{{Key: graph.KindImage, Starts: make([]time.Time, len(ahead[0].Starts))}}
	for k, s := range ahead[0].Starts {
		if s.After(t0) {
			s = t0
		}
		clamped[0].Starts[k] = s
	}
	assert.Equal(t, t0.Add(10*time.Second), wakeAt(clamped), "brought onto the driver's clock, it counts from now")
}

// TestInheritedStartAheadThenNext: a start inherited from a clock ahead
// (see TestInheritStartsLaterThanNow), followed by a Next at the
// driver's earlier now, leaves the key's starts out of time order in
// the machine, but ascending in its snapshot. The machine and one
// restored from its snapshot must count them alike: the start at 0s
// leaves the window at 10s though the inherited one, at 1s, is still in
// it, and a charge before the inherited start is refused by both.
func TestInheritedStartAheadThenNext(t *testing.T) {
	cfg := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	p := lecturePlan(t, 40, "asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]")
	m := newMachine(t, p, cfg)
	require.NoError(t, m.Inherit([]schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0.Add(time.Second)}}}))
	st, ok := m.Next(t0)
	require.True(t, ok)
	require.Equal(t, graph.KindImage, st.Kind)
	r, err := schedule.Restore(p, cfg, m.Snapshot())
	require.NoError(t, err)
	for _, m := range []*schedule.Machine{m, r} {
		at := t0.Add(10500 * time.Millisecond)
		assert.Equal(t, time.Duration(0), m.RateWait(graph.KindImage, at), "the start at 0s left the window at 10s")
		assert.True(t, m.CanStart(at))
		assert.Equal(t, []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0, t0.Add(time.Second)}}}, m.RateStarts(t0), "oldest first")
		ok, err := m.ChargeAt(st.Node, t0.Add(500*time.Millisecond))
		require.ErrorIs(t, err, schedule.ErrInvalidRateStarts, "before the inherited start at 1s")
		assert.False(t, ok)
	}
	assert.Equal(t, string(marshal(t, r.Snapshot())), string(marshal(t, m.Snapshot())))
}

// TestInheritTakesStartsByTime: starts out of order, as a driver that
// passes time.Now() gets them back from RateStarts' JSON across a step
// back of the wall clock (the machine ordered them by their monotonic
// readings, which JSON does not keep), are taken by time, as Restore
// takes a snapshot's: the latest are kept, and the same starts in any
// order give the same machine.
func TestInheritTakesStartsByTime(t *testing.T) {
	p := lecturePlan(t, 40)
	rates := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	at := []time.Time{t0.Add(5 * time.Second), t0.Add(-time.Second), t0.Add(3 * time.Second)}
	var want string
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}, {0, 2, 1}} {
		starts := make([]time.Time, len(order))
		for k, i := range order {
			starts[k] = at[i]
		}
		m := newMachine(t, p, rates)
		require.NoError(t, m.Inherit([]schedule.RateStarts{{Key: graph.KindImage, Starts: starts}}), "starts %v", starts)
		assert.Equal(t, []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0.Add(3 * time.Second), t0.Add(5 * time.Second)}}},
			m.RateStarts(t0.Add(6*time.Second)), "the latest two, oldest first, of %v", starts)
		assert.Equal(t, 7*time.Second, m.RateWait(graph.KindImage, t0.Add(6*time.Second)), "the start at 3s holds the key until 13s")
		got := string(marshal(t, m.Snapshot()))
		if want == "" {
			want = got
		}
		assert.Equal(t, want, got, "the same starts in another order give the same state")
	}
}

// TestInheritTakesWallTimes: Inherit orders a key's starts by their wall
// times, as a snapshot's JSON gives them, not by the monotonic readings
// of times from time.Now, so that a driver that replays its journal
// keeps the same starts whether it passes the times it read or the same
// times read back from JSON (after a wall clock stepped back between
// two starts the two orders differ). The times the machine keeps have no
// monotonic reading.
func TestInheritTakesWallTimes(t *testing.T) {
	p := lecturePlan(t, 40)
	rates := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	now := time.Now() // has a monotonic reading
	starts := []time.Time{now.Add(-3 * time.Second), now.Add(-2 * time.Second)}
	m := newMachine(t, p, rates)
	require.NoError(t, m.Inherit([]schedule.RateStarts{{Key: graph.KindImage, Starts: starts}}))
	got := m.RateStarts(now)
	require.Len(t, got, 1)
	require.Len(t, got[0].Starts, 2)
	for i, s := range got[0].Starts {
		assert.True(t, s == starts[i].Round(0), "start %d: %v kept its monotonic reading", i, s)
	}
}

// TestInheritCarriesKeysThePlanHasNot: a round whose plan has no node of
// a rate-limited key (only the music edited) still carries the starts
// that an earlier round's machine counted for it: it inherits them,
// RateStarts returns them while they are in the window, and a snapshot
// holds them, so that the round after it, whose plan has the key again,
// does not start the provider's quota over. A Config without the key's
// rate drops them, as it always did.
func TestInheritCarriesKeysThePlanHasNot(t *testing.T) {
	rates := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	images := []string{"asset:image:segment[2]", "asset:image:segment[3]"}
	// Round 1, at t0: two images start.
	m1 := newMachine(t, lecturePlan(t, 40, images...), rates)
	for range 2 {
		st, ok := m1.Next(t0)
		require.True(t, ok)
		require.Equal(t, graph.KindImage, st.Kind)
	}
	carried := []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0, t0}}}
	require.Equal(t, carried, m1.RateStarts(t0.Add(time.Second)))

	// Round 2, at 1s: only the music is edited, and the plan has no image.
	p2 := lecturePlan(t, 40, "asset:music")
	m2 := newMachine(t, p2, rates)
	require.NoError(t, m2.Inherit(m1.RateStarts(t0.Add(time.Second))))
	assert.Equal(t, []string{graph.KindMusic}, drain(m2, p2.Graph, t0.Add(time.Second)))
	assert.Equal(t, carried, m2.RateStarts(t0.Add(2*time.Second)), "the image starts are carried through")
	assert.Empty(t, m2.RateStarts(t0.Add(10*time.Second)), "until they leave the window")
	again := newMachine(t, p2, rates)
	require.NoError(t, again.Inherit(carried))
	require.ErrorContains(t, again.Inherit(carried), `batch key "asset:image" has inherited starts already`, "a machine inherits once")

	// A snapshot holds them, and restores them under the same Config.
	r2, err := schedule.Restore(p2, rates, m2.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, string(marshal(t, m2.Snapshot())), string(marshal(t, r2.Snapshot())))
	assert.Contains(t, string(marshal(t, m2.Snapshot())), `"rates":[{"key":"asset:image","starts":["2025-01-01T00:00:00Z","2025-01-01T00:00:00Z"]}]`)
	assert.Equal(t, carried, r2.RateStarts(t0.Add(2*time.Second)))
	// Under a lower rate, the latest of them up to its Starts; without the
	// key's rate, none.
	lower := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: 10 * time.Second}}}
	r2, err = schedule.Restore(p2, lower, m2.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, []schedule.RateStarts{{Key: graph.KindImage, Starts: []time.Time{t0}}}, r2.RateStarts(t0.Add(2*time.Second)))
	r2, err = schedule.Restore(p2, schedule.Config{}, m2.Snapshot())
	require.NoError(t, err)
	assert.Empty(t, r2.RateStarts(t0.Add(2*time.Second)))

	// Round 3, at 2s: two more images wait for the quota.
	p3 := lecturePlan(t, 40, "asset:image:segment[0]", "asset:image:segment[1]")
	m3 := newMachine(t, p3, rates)
	require.NoError(t, m3.Inherit(m2.RateStarts(t0.Add(2*time.Second))))
	assert.Empty(t, drain(m3, p3.Graph, t0.Add(2*time.Second)), "2 images in 2s under 2 per 10s")
	wake, ok := m3.Wake()
	require.True(t, ok)
	assert.Equal(t, t0.Add(10*time.Second), wake)
	assert.Len(t, drain(m3, p3.Graph, wake), 2)
}
