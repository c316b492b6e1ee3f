package schedule_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// traceCases are the golden trace's run in both modes, settled with
// SucceedAt or with Succeed, with and without a cancel.
func traceCases() []struct {
	name     string
	mode     schedule.Mode
	timed    bool
	cancelAt time.Duration
} {
	type tc = struct {
		name     string
		mode     schedule.Mode
		timed    bool
		cancelAt time.Duration
	}
	var out []tc
	for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
		for _, timed := range []bool{true, false} {
			for _, cancelAt := range []time.Duration{0, 20 * time.Second} {
				out = append(out, tc{fmt.Sprintf("%s/timed=%v/cancel=%v", mode, timed, cancelAt), mode, timed, cancelAt})
			}
		}
	}
	return out
}

// TestQueriesChangeNothing replays recorded runs with every query of the
// package doc's list made before each call, at the call's time, later
// and earlier: the answers of the recorded calls must not change, so a
// workflow may add queries to its code or leave them out of a replay.
func TestQueriesChangeNothing(t *testing.T) {
	for _, tc := range traceCases() {
		t.Run(tc.name, func(t *testing.T) {
			want := traceRun(t, tc.mode, tc.timed, tc.cancelAt)
			r := newRecorder(t, lecturePlan(t, 120), traceConfig(tc.mode), t0)
			for i, c := range want.calls {
				for _, d := range []time.Duration{0, time.Hour, -time.Second} {
					now := t0.Add(c.at + d)
					r.m.CanStart(now)
					r.m.WakeAt(now)
					r.m.RateWait(graph.KindImage, now)
					r.m.RateWait(graph.KindVideo, now)
				}
				r.m.Wake()
				for n := range graph.Node(r.g.Len()) {
					r.m.State(n)
				}
				r.m.Unsettled()
				r.m.RunningNodes()
				r.m.Running()
				r.m.Settled()
				r.m.Len()
				r.m.Done()
				r.m.Halted()
				r.m.Snapshot()
				r.do(c)
				require.Equal(t, want.log[i], r.log[i], "call %d, after the queries", i)
			}
		})
	}
}

// TestEmptyPollsMayBeLeftOut replays recorded runs without the calls of
// Next and More that returned no node, but for the first call that takes
// a time after New or after a Succeed, as the package doc allows: the
// other calls must answer as they did (a Next kept after a dropped one
// answers the same, wake included). TestFirstPollAfterSucceedNotesTheTime
// shows why that call stays.
func TestEmptyPollsMayBeLeftOut(t *testing.T) {
	for _, tc := range traceCases() {
		t.Run(tc.name, func(t *testing.T) {
			rec := traceRun(t, tc.mode, tc.timed, tc.cancelAt)
			var (
				calls []call
				want  []string
			)
			timeKnown := false // a call took a time since New or the last Succeed
			for i, c := range rec.calls {
				if (c.op == "next" || c.op == "more") && strings.Contains(rec.log[i], "-> none") && timeKnown {
					continue
				}
				switch c.op {
				case "next", "more", "succeedAt":
					timeKnown = true
				case "succeed":
					timeKnown = false
				}
				calls, want = append(calls, c), append(want, rec.log[i])
			}
			require.Less(t, len(calls), len(rec.calls), "the run has empty polls")
			got := replay(t, lecturePlan(t, 120), traceConfig(tc.mode), t0, calls).log
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the calls answer otherwise without the empty polls (-recorded +replayed):\n%s", diff)
			}
		})
	}
}

// TestFirstPollAfterSucceedNotesTheTime: a Next that returns no node
// after a Succeed notes when the nodes that Succeed made ready became
// ready, for the batch windows; a replay without it notes the time of the
// next call instead, and its window ends later.
func TestFirstPollAfterSucceedNotesTheTime(t *testing.T) {
	p := lecturePlan(t, 20)
	g := p.Graph
	cfg := schedule.Config{Windows: map[string]time.Duration{graph.KindVideo: 5 * time.Second}}
	calls := []call{
		{op: "next"}, {op: "succeedAt", n: node(t, g, "script")},
		{op: "next"}, {op: "next"}, {op: "next"}, {op: "next"}, {op: "next"}, // both narrations and images, the music
		{op: "succeed", n: node(t, g, "asset:narration:segment[0]"), at: time.Second},
		{op: "succeed", n: node(t, g, "asset:image:segment[0]"), at: time.Second},
		{op: "next", at: time.Second}, // none: video 0 waits for video 1, up to 6 s
		{op: "next", at: 3 * time.Second},
		{op: "next", at: 6 * time.Second},
	}
	all := replay(t, p, cfg, t0, calls).log
	require.Contains(t, all[9], "-> none, wake at 6s")
	require.Contains(t, all[11], "asset:video:segment[0]", "the window ends at 6 s")
	without := replay(t, p, cfg, t0, slices.Delete(slices.Clone(calls), 9, 10)).log
	assert.Contains(t, without[9], "-> none, wake at 8s", "the window counts from 3 s")
	assert.Contains(t, without[10], "6s next -> none")
}

// TestReplayRebuildsTheMachine rebuilds a machine, as a workflow that
// continues as new would, by making a run's recorded calls again on a new
// machine for the same plan and Config, from another epoch of the clock:
// every call answers as it did, and at each point the states, the running
// nodes and the wake are the original's.
func TestReplayRebuildsTheMachine(t *testing.T) {
	for _, tc := range traceCases() {
		t.Run(tc.name, func(t *testing.T) {
			rec := traceRun(t, tc.mode, tc.timed, tc.cancelAt)
			p := lecturePlan(t, 120)
			other := time.Date(1999, 3, 4, 1, 2, 3, 4, time.FixedZone("x", 3600))
			got := replay(t, p, traceConfig(tc.mode), other, rec.calls)
			if diff := cmp.Diff(rec.log, got.log); diff != "" {
				t.Fatalf("the rebuilt machine answers otherwise (-recorded +replayed):\n%s", diff)
			}
			// Midway: the rebuilt machine stands where the original stood.
			k := len(rec.calls) / 2
			orig := replay(t, p, traceConfig(tc.mode), t0, rec.calls[:k])
			again := replay(t, p, traceConfig(tc.mode), other, rec.calls[:k])
			assert.Equal(t, states(orig.m, p), states(again.m, p))
			assert.Equal(t, ids(p.Graph, orig.m.RunningNodes()), ids(p.Graph, again.m.RunningNodes()))
			w1, ok1 := orig.m.Wake()
			w2, ok2 := again.m.Wake()
			assert.Equal(t, ok1, ok2)
			assert.Equal(t, w1.Sub(t0), w2.Sub(other))
		})
	}
}

// TestMoreOutsideThePlanNotesNoTime: a More for a like outside the plan
// or the graph changes nothing, as its doc says, not even the time at
// which the nodes that a Succeed made ready became ready: the calls after
// it answer as without it.
func TestMoreOutsideThePlanNotesNoTime(t *testing.T) {
	p := lecturePlan(t, 20, "script")
	g := p.Graph
	cfg := schedule.Config{Windows: map[string]time.Duration{graph.KindVideo: 5 * time.Second}}
	calls := []call{
		{op: "next"}, {op: "succeedAt", n: node(t, g, "script")},
		{op: "next"}, {op: "next"}, {op: "next"}, {op: "next"}, {op: "next"}, // both narrations and images, the music
		{op: "succeed", n: node(t, g, "asset:narration:segment[0]"), at: time.Second},
		{op: "succeed", n: node(t, g, "asset:image:segment[0]"), at: time.Second},
		{op: "next", at: 3 * time.Second}, // none: video 0 waits for video 1, up to 8 s
		{op: "next", at: 6 * time.Second},
	}
	want := replay(t, p, cfg, t0, calls).log
	require.Contains(t, want[9], "-> none, wake at 8s")
	for _, like := range []graph.Node{graph.Node(g.Len()), -1} {
		t.Run(fmt.Sprint(like), func(t *testing.T) {
			with := slices.Insert(slices.Clone(calls), 9, call{op: "more", n: like, at: time.Second})
			got := replay(t, p, cfg, t0, with).log
			require.Contains(t, got[9], "-> none")
			if diff := cmp.Diff(want, slices.Delete(got, 9, 10)); diff != "" {
				t.Errorf("the calls after a More for a like outside the plan answer otherwise (-without +with):\n%s", diff)
			}
		})
	}
}

// TestWakeAtStandsInForADroppedPoll: where a record leaves out a Next
// that returned no node, a machine rebuilt from the record answers WakeAt
// at its time as that Next's Wake did, while Wake, which answers for the
// last Next made, may not.
func TestWakeAtStandsInForADroppedPoll(t *testing.T) {
	wakeDiffers := false
	for _, tc := range traceCases() {
		t.Run(tc.name, func(t *testing.T) {
			rec := traceRun(t, tc.mode, tc.timed, tc.cancelAt)
			r := newRecorder(t, lecturePlan(t, 120), traceConfig(tc.mode), t0)
			timeKnown := false
			dropped := 0
			for i, c := range rec.calls {
				if c.op == "next" && strings.Contains(rec.log[i], "-> none") && timeKnown {
					want := "none"
					if _, at, ok := strings.Cut(rec.log[i], "wake at "); ok {
						want, _, _ = strings.Cut(at, " ")
					}
					got := "none"
					if at, ok := r.m.WakeAt(t0.Add(c.at)); ok {
						got = at.Sub(t0).String()
					}
					require.Equal(t, want, got, "call %d: WakeAt in place of %q", i, rec.log[i])
					last := "none"
					if at, ok := r.m.Wake(); ok {
						last = at.Sub(t0).String()
					}
					wakeDiffers = wakeDiffers || last != want
					dropped++
					continue
				}
				switch c.op {
				case "next", "more", "succeedAt":
					timeKnown = true
				case "succeed":
					timeKnown = false
				}
				r.do(c)
			}
			require.Positive(t, dropped, "the run has empty polls")
		})
	}
	assert.True(t, wakeDiffers, "Wake answered for a dropped Next in every case")
}
