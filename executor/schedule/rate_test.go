package schedule_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

func TestRate(t *testing.T) {
	// x: 8 independent nodes of key k, 5 at a time. y: 3 of key j, 1 at
	// a time.
	tm := tmpl(batched(per("x"), "k", 5), batched(per("y", dep("x", graph.ScopeSameSegment)), "j", 1))
	type at struct {
		offset  time.Duration // from t0
		succeed []string      // settled before asking
		n       int           // Next calls at most; 0: until it returns nothing
		want    []string      // started by Next at offset
		wake    time.Duration // Wake after the last Next, from t0; 0: none
	}
	tests := []struct {
		name  string
		rates map[string]schedule.Rate
		steps []at
	}{
		{
			name:  "2 per 10s, all at once",
			rates: map[string]schedule.Rate{"k": {Starts: 2, Per: 10 * time.Second}},
			steps: []at{
				{offset: 0, want: []string{"x:segment[0]", "x:segment[1]"}, wake: 10 * time.Second},
				{offset: 5 * time.Second, wake: 10 * time.Second},
				{offset: 10*time.Second - 1, wake: 10 * time.Second},
				// The window is half open: at exactly Per the first start has left it.
				{offset: 10 * time.Second, want: []string{"x:segment[2]", "x:segment[3]"}, wake: 20 * time.Second},
				{offset: 25 * time.Second, want: []string{"x:segment[4]"}},
			},
		},
		{
			name:  "2 per 10s, staggered",
			rates: map[string]schedule.Rate{"k": {Starts: 2, Per: 10 * time.Second}},
			steps: []at{
				{offset: 0, n: 1, want: []string{"x:segment[0]"}},
				{offset: 3 * time.Second, want: []string{"x:segment[1]"}, wake: 10 * time.Second},
				{offset: 10 * time.Second, want: []string{"x:segment[2]"}, wake: 13 * time.Second},
				{offset: 13 * time.Second, want: []string{"x:segment[3]"}, wake: 20 * time.Second},
				// Five run: the key is full, and its rate is not what holds it.
				{offset: 20 * time.Second, want: []string{"x:segment[4]"}},
				// A slot frees, but the window (11s, 21s] already holds two starts.
				{offset: 21 * time.Second, succeed: []string{"x:segment[0]"}, want: []string{"y:segment[0]"}, wake: 23 * time.Second},
				{offset: 23 * time.Second, want: []string{"x:segment[5]"}},
				{offset: 24 * time.Second, succeed: []string{"x:segment[1]"}, wake: 30 * time.Second},
			},
		},
		{
			name:  "one start per second",
			rates: map[string]schedule.Rate{"k": {Starts: 1, Per: time.Second}},
			steps: []at{
				{offset: 0, want: []string{"x:segment[0]"}, wake: time.Second},
				{offset: 1500 * time.Millisecond, want: []string{"x:segment[1]"}, wake: 2500 * time.Millisecond},
				{offset: 2 * time.Second, wake: 2500 * time.Millisecond},
			},
		},
		{
			name:  "the concurrency limit, not the rate, holds the key: no wake",
			rates: map[string]schedule.Rate{"k": {Starts: 10, Per: time.Second}},
			steps: []at{
				{offset: 0, want: []string{"x:segment[0]", "x:segment[1]", "x:segment[2]", "x:segment[3]", "x:segment[4]"}},
				{offset: 2 * time.Second},
				{offset: 3 * time.Second, succeed: []string{"x:segment[2]"}, want: []string{"x:segment[5]", "y:segment[2]"}},
			},
		},
		{
			name: "two keys limited: the earlier wake",
			rates: map[string]schedule.Rate{
				"k": {Starts: 1, Per: 10 * time.Second},
				"j": {Starts: 1, Per: 15 * time.Second},
			},
			steps: []at{
				{offset: 0, want: []string{"x:segment[0]"}, wake: 10 * time.Second},
				{offset: time.Second, succeed: []string{"x:segment[0]"}, want: []string{"y:segment[0]"}, wake: 10 * time.Second},
				{offset: 2 * time.Second, succeed: []string{"y:segment[0]"}, wake: 10 * time.Second},
				{offset: 10 * time.Second, want: []string{"x:segment[1]"}, wake: 20 * time.Second},
				{offset: 11 * time.Second, succeed: []string{"x:segment[1]"}, wake: 16 * time.Second},
				{offset: 16 * time.Second, want: []string{"y:segment[1]"}, wake: 20 * time.Second},
				{offset: 20 * time.Second, want: []string{"x:segment[2]"}, wake: 30 * time.Second},
			},
		},
		{
			name: "a rate for another key changes nothing",
			rates: map[string]schedule.Rate{
				"other": {Starts: 1, Per: time.Hour},
			},
			steps: []at{
				{offset: 0, want: []string{"x:segment[0]", "x:segment[1]", "x:segment[2]", "x:segment[3]", "x:segment[4]"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, tm, 80)
			m := newMachine(t, planOf(t, g), schedule.Config{Rates: tt.rates})
			for i, s := range tt.steps {
				succeed(t, m, g, s.succeed...)
				var got []string
				for s.n == 0 || len(got) < s.n {
					st, ok := m.Next(t0.Add(s.offset))
					if !ok {
						break
					}
					got = append(got, g.NodeID(st.Node))
				}
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Fatalf("step %d at %v (-want +got):\n%s", i, s.offset, diff)
				}
				wake, ok := m.Wake()
				if s.wake == 0 {
					assert.False(t, ok, "step %d: Wake %v, want none", i, wake.Sub(t0))
					continue
				}
				require.True(t, ok, "step %d: no Wake, want %v", i, s.wake)
				assert.Equal(t, s.wake, wake.Sub(t0), "step %d: Wake", i)
			}
		})
	}
}

// TestRateWindow drives keys with rates through the simulator, which
// checks at every start that no window of length Per holds more than
// Starts starts, and that the run does not stall.
func TestRateWindow(t *testing.T) {
	rates := []map[string]schedule.Rate{
		{graph.KindImage: {Starts: 2, Per: 7 * time.Second}},
		{graph.KindImage: {Starts: 1, Per: 3 * time.Second}, graph.KindVideo: {Starts: 2, Per: 30 * time.Second}},
		{graph.KindNarration: {Starts: 10, Per: time.Minute}, graph.KindVideo: {Starts: 3, Per: time.Second}},
	}
	for i, r := range rates {
		for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
			for _, bulk := range []bool{false, true} {
				t.Run(fmt.Sprintf("rates=%d/%s/bulk=%v", i, mode, bulk), func(t *testing.T) {
					s := newSim(t, lecturePlan(t, 300), schedule.Config{Mode: mode, Rates: r}, uint64(i))
					s.bulk = bulk
					s.run()
					for key := range r {
						assert.Len(t, s.starts[key], 30, "starts of %s", key)
					}
				})
			}
		}
	}
}

// TestRateWindowWithRefunds checks the rate invariant in the simulator
// while started nodes give their starts back at random: the machine's
// window forgets exactly the refunded starts, never one still counted.
func TestRateWindowWithRefunds(t *testing.T) {
	rates := map[string]schedule.Rate{
		graph.KindImage: {Starts: 2, Per: 7 * time.Second},
		graph.KindVideo: {Starts: 1, Per: 5 * time.Second},
	}
	for seed := range uint64(20) {
		for _, bulk := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed=%d/bulk=%v", seed, bulk), func(t *testing.T) {
				s := newSim(t, lecturePlan(t, 300), schedule.Config{Rates: rates}, seed)
				s.bulk, s.refund = bulk, 0.4
				s.run()
			})
		}
	}
}

// Refund gives back a running node's rate start: a node that made no
// provider call does not hold its key back. Without a rate, or for a
// node not running, there is nothing to give back.
func TestRefund(t *testing.T) {
	p := lecturePlan(t, 60)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := newMachine(t, p, schedule.Config{Rates: map[string]schedule.Rate{
		graph.KindImage: {Starts: 2, Per: 10 * time.Second}}})
	script := node(t, p.Graph, "script")
	st, ok := m.Next(t0)
	require.True(t, ok)
	require.Equal(t, script, st.Node)
	refunded, err := m.Refund(script)
	require.NoError(t, err)
	assert.False(t, refunded, "script has no rate")
	_, err = m.Succeed(script)
	require.NoError(t, err)

	var images []graph.Node
	for {
		st, ok := m.Next(t0)
		if !ok {
			break
		}
		if st.Key == graph.KindImage {
			images = append(images, st.Node)
		}
	}
	require.Len(t, images, 2, "two image starts in the window")
	refunded, err = m.Refund(images[0])
	require.NoError(t, err)
	assert.True(t, refunded)
	refunded, err = m.Refund(images[0])
	require.NoError(t, err)
	assert.False(t, refunded, "a start is given back once")
	st, ok = m.Next(t0.Add(time.Second))
	require.True(t, ok, "the refunded start frees the rate")
	assert.Equal(t, graph.KindImage, st.Key)
	_, ok = m.Next(t0.Add(time.Second))
	assert.False(t, ok, "and only one")
	at, ok := m.Wake()
	require.True(t, ok)
	assert.Equal(t, t0.Add(10*time.Second), at, "the oldest start still counted leaves the window first")
	wake, ok := m.WakeAt(t0.Add(2 * time.Second))
	require.True(t, ok, "WakeAt says the same without a Next")
	assert.Equal(t, at, wake)
	_, ok = m.WakeAt(t0.Add(10 * time.Second))
	assert.False(t, ok, "once the rate allows a start, there is nothing to wait for")
	st, ok = m.Next(t0.Add(10 * time.Second))
	require.True(t, ok)
	assert.Equal(t, graph.KindImage, st.Key)

	_, err = m.Succeed(images[0])
	require.NoError(t, err)
	_, err = m.Refund(images[0])
	assert.Error(t, err, "a settled node has no start to give back")
}

// A start made at the zero time can be given back too: the machine reads
// no clock, and a driver may start its own at zero.
func TestRefundAtTheZeroTime(t *testing.T) {
	p := lecturePlan(t, 60)
	m := newMachine(t, p, schedule.Config{Rates: map[string]schedule.Rate{
		graph.KindImage: {Starts: 2, Per: 10 * time.Second}}})
	var t0 time.Time
	_, ok := m.Next(t0)
	require.True(t, ok)
	_, err := m.Succeed(node(t, p.Graph, "script"))
	require.NoError(t, err)
	var images []graph.Node
	for {
		st, ok := m.Next(t0)
		if !ok {
			break
		}
		if st.Key == graph.KindImage {
			images = append(images, st.Node)
		}
	}
	require.Len(t, images, 2)
	refunded, err := m.Refund(images[0])
	require.NoError(t, err)
	assert.True(t, refunded)
	st, ok := m.Next(t0)
	require.True(t, ok)
	assert.Equal(t, graph.KindImage, st.Key)
}

// CanStart changes nothing: a driver may ask it at any time (a Temporal
// query handler, which replay skips) without changing what the machine
// decides later, Refund's answers included.
func TestCanStartChangesNothing(t *testing.T) {
	tm := tmpl(batched(per("x"), "k", 5))
	g := build(t, tm, 60)
	rates := map[string]schedule.Rate{"k": {Starts: 2, Per: 10 * time.Second}}
	type decision struct {
		Started []string
		Refund  bool
		Wake    time.Time
	}
	run := func(ask bool) []decision {
		m := newMachine(t, planOf(t, g), schedule.Config{Rates: rates})
		var out []decision
		for _, at := range []time.Duration{0, 2 * time.Second, 11 * time.Second, 12 * time.Second, 25 * time.Second} {
			now := t0.Add(at)
			if ask {
				m.CanStart(now.Add(time.Minute)) // far ahead: every start has left the window
				m.CanStart(now)
			}
			d := decision{Started: drain(m, g, now)}
			if len(d.Started) > 0 {
				ok, err := m.Refund(node(t, g, d.Started[0]))
				require.NoError(t, err)
				d.Refund = ok
			}
			d.Wake, _ = m.Wake()
			out = append(out, d)
		}
		return out
	}
	want, got := run(false), run(true)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decisions with CanStart asked in between (-without +with):\n%s", d)
	}
}

// RateWait says how long until a key's rate allows a start, from the
// starts in its window, and changes nothing.
func TestRateWait(t *testing.T) {
	tm := tmpl(batched(per("x"), "k", 5), batched(per("y", dep("x", graph.ScopeSameSegment)), "j", 1))
	g := build(t, tm, 80)
	m := newMachine(t, planOf(t, g), schedule.Config{Rates: map[string]schedule.Rate{"k": {Starts: 2, Per: 10 * time.Second}}})
	s := time.Second
	steps := []struct {
		at    time.Duration // from t0
		start int           // nodes started at at, before asking
		want  time.Duration
	}{
		{0, 0, 0},
		{0, 1, 0},         // one start in the window: room for another
		{3 * s, 1, 7 * s}, // full until the first leaves, at 10 s
		{9 * s, 0, s},     // counting down
		{10 * s, 0, 0},    // the window is half open: room at exactly 10 s
		{12 * s, 1, s},    // starts at 3 and 12 s: room at 13 s
		{12 * s, 0, s},    // asking again changes nothing
		{20 * s, 0, 0},
	}
	for _, st := range steps {
		now := t0.Add(st.at)
		for range st.start {
			_, ok := m.Next(now)
			require.True(t, ok, "a start at %v", st.at)
		}
		assert.Equal(t, st.want, m.RateWait("k", now), "at %v", st.at)
		assert.Zero(t, m.RateWait("j", now), "a key without a rate")
		assert.Zero(t, m.RateWait("other", now), "a key not in the plan")
		assert.Zero(t, m.RateWait("", now), "the singles")
	}
}
