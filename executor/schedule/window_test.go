package schedule_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestWindow drives bulk calls of a windowed kind step by step: x, 6
// nodes of key k, 3 at a time, each after its own a (singles, all started
// at 0).
func TestWindow(t *testing.T) {
	tm := tmpl(per("a"), batched(per("x", dep("a", graph.ScopeSameSegment)), "k", 3))
	chain := tmpl(batched(per("x", dep("x", graph.ScopePreviousSegment)), "k", 3))
	type at struct {
		offset  time.Duration // from t0
		succeed []string      // SucceedAt offset, before asking
		untimed []string      // Succeed, without a time
		fail    []string
		stale   []string      // Invalidate
		calls   []string      // the bulk calls Next and More then start, nodes joined by spaces
		wake    time.Duration // Wake after the last Next, from t0; 0: none
	}
	tests := []struct {
		name  string
		tm    graph.Template
		cfg   schedule.Config
		steps []at
	}{
		{
			name: "the window ends: a partial call",
			tm:   tm, cfg: schedule.Config{Windows: map[string]time.Duration{"x": 5 * time.Second}},
			steps: []at{
				{offset: time.Second, succeed: []string{"a:segment[0]"}, wake: 6 * time.Second},
				{offset: 2 * time.Second, succeed: []string{"a:segment[1]"}, wake: 6 * time.Second},
				{offset: 6*time.Second - 1, wake: 6 * time.Second},
				{offset: 6 * time.Second, calls: []string{"x:segment[0] x:segment[1]"}},
				// The next window counts from when its first node was
				// ready (the call is not full: the first ended).
				{offset: 7 * time.Second, succeed: []string{"x:segment[0]", "x:segment[1]", "a:segment[2]"}, wake: 12 * time.Second},
				{offset: 12 * time.Second, calls: []string{"x:segment[2]"}},
			},
		},
		{
			name: "a full call starts at once",
			tm:   tm, cfg: schedule.Config{Windows: map[string]time.Duration{"x": time.Hour}},
			steps: []at{
				{offset: time.Second, succeed: []string{"a:segment[0]"}, wake: time.Hour + time.Second},
				{offset: 2 * time.Second, succeed: []string{"a:segment[1]"}, wake: time.Hour + time.Second},
				{offset: 3 * time.Second, succeed: []string{"a:segment[2]", "a:segment[3]"}, calls: []string{"x:segment[0] x:segment[1] x:segment[2]"}},
				// The key is full: x3 waits for a slot, not for the window.
				{offset: 4 * time.Second},
			},
		},
		{
			name: "MaxBatch fills a call sooner",
			tm:   tm, cfg: schedule.Config{MaxBatch: 2, Windows: map[string]time.Duration{"x": time.Hour}},
			steps: []at{
				{offset: time.Second, succeed: []string{"a:segment[0]"}, wake: time.Hour + time.Second},
				{offset: 2 * time.Second, succeed: []string{"a:segment[1]"}, calls: []string{"x:segment[0] x:segment[1]"}},
				// One slot left: a call of one is full.
				{offset: 3 * time.Second, succeed: []string{"a:segment[2]"}, calls: []string{"x:segment[2]"}},
			},
		},
		{
			name: "a rate's starts left fill a call sooner",
			tm:   tm, cfg: schedule.Config{Rates: map[string]schedule.Rate{"k": {Starts: 2, Per: time.Minute}},
				Windows: map[string]time.Duration{"x": time.Hour}},
			steps: []at{
				{offset: time.Second, succeed: []string{"a:segment[0]"}, wake: time.Hour + time.Second},
				{offset: 2 * time.Second, succeed: []string{"a:segment[1]"}, calls: []string{"x:segment[0] x:segment[1]"}},
				// The rate, not the window, holds x2.
				{offset: 3 * time.Second, succeed: []string{"a:segment[2]"}, wake: time.Minute + 2*time.Second},
			},
		},
		{
			name: "no more can come: the others were skipped",
			tm:   tm, cfg: schedule.Config{Windows: map[string]time.Duration{"x": time.Hour}},
			steps: []at{
				{offset: time.Second, succeed: []string{"a:segment[0]"}, wake: time.Hour + time.Second},
				{offset: 2 * time.Second, fail: []string{"a:segment[1]", "a:segment[2]", "a:segment[3]", "a:segment[4]"}, wake: time.Hour + time.Second},
				{offset: 3 * time.Second, fail: []string{"a:segment[5]"}, calls: []string{"x:segment[0]"}},
			},
		},
		{
			name: "a ready node skipped by an invalidation no longer counts",
			tm:   tm, cfg: schedule.Config{Windows: map[string]time.Duration{"x": time.Hour}},
			steps: []at{
				{offset: time.Second, succeed: []string{"a:segment[0]", "a:segment[1]"}, wake: time.Hour + time.Second},
				{offset: 2 * time.Second, stale: []string{"a:segment[1]"}, wake: time.Hour + time.Second},
				// Two ready of three: the window still holds them.
				{offset: 3 * time.Second, succeed: []string{"a:segment[2]"}, wake: time.Hour + time.Second},
				{offset: 4 * time.Second, succeed: []string{"a:segment[3]"}, calls: []string{"x:segment[0] x:segment[2] x:segment[3]"}},
			},
		},
		{
			name: "Succeed without a time: the window counts from the next Next",
			tm:   tm, cfg: schedule.Config{Windows: map[string]time.Duration{"x": 5 * time.Second}},
			steps: []at{
				{offset: time.Second, untimed: []string{"a:segment[0]"}, wake: 6 * time.Second},
				{offset: 6 * time.Second, calls: []string{"x:segment[0]"}},
			},
		},
		{
			name: "another kind's window: none for x",
			tm:   tm, cfg: schedule.Config{Windows: map[string]time.Duration{"a": time.Hour, "y": time.Hour}},
			steps: []at{
				{offset: time.Second, succeed: []string{"a:segment[0]"}, calls: []string{"x:segment[0]"}},
			},
		},
		{
			// Each x waits on the one before: the window waits for a node
			// that cannot come, and is waited out (see Config.Windows).
			// Each x waits on the one before it, which has not started:
			// none can come while the head waits, so it does not wait.
			name: "a chain of its own kind: nothing can come, no wait",
			tm:   chain, cfg: schedule.Config{Windows: map[string]time.Duration{"x": 5 * time.Second}},
			steps: []at{
				{offset: 0, calls: []string{"x:segment[0]"}},
				{offset: time.Second, succeed: []string{"x:segment[0]"}, calls: []string{"x:segment[1]"}},
				{offset: 2 * time.Second, succeed: []string{"x:segment[1]"}, calls: []string{"x:segment[2]"}},
			},
		},
		{
			name: "staged: no window",
			tm:   chain, cfg: schedule.Config{Mode: schedule.Staged, Windows: map[string]time.Duration{"x": 5 * time.Second}},
			steps: []at{
				{offset: 0, calls: []string{"x:segment[0]"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, tt.tm, 60)
			m := newMachine(t, planOf(t, g), tt.cfg)
			// Start the singles: every a at 0.
			for _, err := g.Lookup("a:segment[0]"); err == nil; {
				st, ok := m.Next(t0)
				if !ok || st.Key != "" {
					if ok {
						m.Halt() // a step would be lost: the test is wrong
						t.Fatalf("started %s with the singles", g.NodeID(st.Node))
					}
					break
				}
			}
			for _, s := range tt.steps {
				now := t0.Add(s.offset)
				for _, id := range s.succeed {
					_, err := m.SucceedAt(node(t, g, id), now)
					require.NoError(t, err, "SucceedAt %s", id)
				}
				for _, id := range s.untimed {
					_, err := m.Succeed(node(t, g, id))
					require.NoError(t, err, "Succeed %s", id)
				}
				for _, id := range s.fail {
					_, err := m.Fail(node(t, g, id))
					require.NoError(t, err, "Fail %s", id)
				}
				for _, id := range s.stale {
					_, err := m.Invalidate(node(t, g, id))
					require.NoError(t, err, "Invalidate %s", id)
				}
				require.Equal(t, len(s.calls) > 0, m.CanStart(now), "CanStart at %v", s.offset)
				var calls []string
				for {
					st, ok := m.Next(now)
					if !ok {
						break
					}
					call := []string{g.NodeID(st.Node)}
					for tt.cfg.MaxBatch == 0 || len(call) < tt.cfg.MaxBatch {
						more, ok := m.More(now, st.Node)
						if !ok {
							break
						}
						call = append(call, g.NodeID(more.Node))
					}
					calls = append(calls, strings.Join(call, " "))
				}
				if diff := cmp.Diff(s.calls, calls); diff != "" {
					t.Errorf("at %v: calls (-want +got):\n%s", s.offset, diff)
				}
				wake, ok := m.Wake()
				if s.wake == 0 {
					assert.False(t, ok, "at %v: Wake %v, want none", s.offset, wake.Sub(t0))
				} else if assert.True(t, ok, "at %v: no Wake, want %v", s.offset, s.wake) {
					assert.Equal(t, s.wake, wake.Sub(t0), "at %v: Wake", s.offset)
				}
				if at, ok := m.WakeAt(now); s.wake != 0 && len(calls) == 0 {
					assert.True(t, ok && at.Equal(wake), "at %v: WakeAt %v, %v; Wake %v", s.offset, at.Sub(t0), ok, wake.Sub(t0))
				}
			}
		})
	}
}

// TestWindowHaltEndsTheWait: a halted machine holds nothing for a window
// and wakes nobody: the driver's workers end at once.
func TestWindowHaltEndsTheWait(t *testing.T) {
	g := build(t, tmpl(per("a"), batched(per("x", dep("a", graph.ScopeSameSegment)), "k", 3)), 60)
	m := newMachine(t, planOf(t, g), schedule.Config{Windows: map[string]time.Duration{"x": time.Hour}})
	drain(m, g, t0)
	_, err := m.SucceedAt(node(t, g, "a:segment[0]"), t0)
	require.NoError(t, err)
	_, ok := m.Next(t0)
	require.False(t, ok)
	_, ok = m.Wake()
	require.True(t, ok, "the window's end")
	m.Halt()
	_, ok = m.Next(t0)
	assert.False(t, ok)
	_, ok = m.Wake()
	assert.False(t, ok, "a wake after the halt")
	_, ok = m.WakeAt(t0)
	assert.False(t, ok, "a WakeAt after the halt")
}

func TestWindowConfigErrors(t *testing.T) {
	p := lecturePlan(t, 60)
	tests := []struct {
		name string
		cfg  schedule.Config
		want string
	}{
		{"zero window", schedule.Config{Windows: map[string]time.Duration{graph.KindVideo: 0}},
			`schedule: invalid config: window for kind "asset:video" is 0s: want a positive duration (leave the kind out for none)`},
		{"negative window, first in name order", schedule.Config{Windows: map[string]time.Duration{
			graph.KindVideo: -time.Second, graph.KindImage: -time.Minute}},
			`schedule: invalid config: window for kind "asset:image" is -1m0s: want a positive duration (leave the kind out for none)`},
		{"negative MaxBatch", schedule.Config{MaxBatch: -1},
			"schedule: invalid config: max batch -1: want 0 (no cap) or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := schedule.New(p, tt.cfg)
			require.True(t, errors.Is(err, schedule.ErrInvalidConfig), "%v", err)
			assert.EqualError(t, err, tt.want)
		})
	}
}
