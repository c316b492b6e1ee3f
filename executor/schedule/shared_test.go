package schedule_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestMoreSpansSharedKinds: kinds that Config.Shared groups share bulk
// calls under their batch key, in node order of their queue; the others
// keep calls of their own.
func TestMoreSpansSharedKinds(t *testing.T) {
	// a, b and c share key k (8 at a time); d has key j; all independent.
	tm := tmpl(batched(per("a"), "k", 8), batched(per("b"), "k", 8), batched(per("c"), "k", 8), batched(per("d"), "j", 8))
	tests := []struct {
		name    string
		cfg     schedule.Config
		batches [][]string
	}{
		{
			name: "no sharing: a call per kind",
			batches: [][]string{
				{"a:segment[0]", "a:segment[1]"},
				{"b:segment[0]", "b:segment[1]"},
				{"c:segment[0]", "c:segment[1]"},
				{"d:segment[0]", "d:segment[1]"},
				nil,
			},
		},
		{
			name: "a and b share",
			cfg:  schedule.Config{Shared: [][]string{{"b", "a"}}},
			batches: [][]string{
				{"a:segment[0]", "a:segment[1]", "b:segment[0]", "b:segment[1]"},
				{"c:segment[0]", "c:segment[1]"},
				{"d:segment[0]", "d:segment[1]"},
				nil,
			},
		},
		{
			name: "MaxBatch cuts a shared call",
			cfg:  schedule.Config{Shared: [][]string{{"a", "b", "c"}}, MaxBatch: 5},
			batches: [][]string{
				{"a:segment[0]", "a:segment[1]", "b:segment[0]", "b:segment[1]", "c:segment[0]"},
				{"c:segment[1]"},
				{"d:segment[0]", "d:segment[1]"},
				nil,
			},
		},
		{
			name: "a cap cuts a shared call",
			cfg:  schedule.Config{Shared: [][]string{{"a", "b", "c"}}, Caps: map[string]int{"k": 3}},
			batches: [][]string{
				{"a:segment[0]", "a:segment[1]", "b:segment[0]"},
				{"d:segment[0]", "d:segment[1]"},
				nil,
			},
		},
		{
			name: "a group across keys shares within each key only",
			cfg:  schedule.Config{Shared: [][]string{{"c", "d", "unknown"}}},
			batches: [][]string{
				{"a:segment[0]", "a:segment[1]"},
				{"b:segment[0]", "b:segment[1]"},
				{"c:segment[0]", "c:segment[1]"},
				{"d:segment[0]", "d:segment[1]"},
				nil,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, tm, 20)
			m := newMachine(t, planOf(t, g), tt.cfg)
			for i, want := range tt.batches {
				if diff := cmp.Diff(want, bulk(t, m, g, t0)); diff != "" {
					t.Fatalf("take %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestSharedKindsInStagedMode: a stage's nodes of kinds that share calls
// go in one call, up to the key's concurrency, as the plan's summary
// counts them.
func TestSharedKindsInStagedMode(t *testing.T) {
	tm := tmpl(glob("s"), batched(per("a", dep("s", graph.ScopeGlobal)), "k", 4), batched(per("b", dep("s", graph.ScopeGlobal)), "k", 4))
	g := build(t, tm, 30)
	m := newMachine(t, planOf(t, g), schedule.Config{Mode: schedule.Staged, Shared: [][]string{{"a", "b"}}})
	require.Equal(t, []string{"s"}, bulk(t, m, g, t0))
	succeed(t, m, g, "s")
	assert.Equal(t, []string{"a:segment[0]", "a:segment[1]", "a:segment[2]", "b:segment[0]"}, bulk(t, m, g, t0))
	assert.Nil(t, bulk(t, m, g, t0), "the key is full")
	succeed(t, m, g, "a:segment[0]", "a:segment[1]")
	assert.Equal(t, []string{"b:segment[1]", "b:segment[2]"}, bulk(t, m, g, t0))
}

// TestSharedWindow: a batch window of a kind that shares calls waits for
// nodes of any kind of its group, the longest window of the group's
// kinds.
func TestSharedWindow(t *testing.T) {
	// a and b depend on s, of their segment: each becomes ready as its
	// s ends.
	tm := tmpl(per("s"), batched(per("a", dep("s", graph.ScopeSameSegment)), "k", 4), batched(per("b", dep("s", graph.ScopeSameSegment)), "k", 4))
	g := build(t, tm, 20)
	cfg := schedule.Config{Shared: [][]string{{"a", "b"}}, Windows: map[string]time.Duration{"a": time.Second, "b": 3 * time.Second}}
	m := newMachine(t, planOf(t, g), cfg)
	require.Equal(t, []string{"s:segment[0]", "s:segment[1]"}, drain(m, g, t0))
	_, err := m.SucceedAt(node(t, g, "s:segment[0]"), t0)
	require.NoError(t, err)
	// a0 and b0 are ready; a1 and b1 may come: the call waits for them,
	// the longest of the group's windows.
	_, ok := m.Next(t0.Add(2 * time.Second))
	assert.False(t, ok, "a window of the group holds the call for more of its kinds")
	wake, ok := m.Wake()
	require.True(t, ok)
	assert.Equal(t, t0.Add(3*time.Second), wake)
	_, err = m.SucceedAt(node(t, g, "s:segment[1]"), t0.Add(2*time.Second))
	require.NoError(t, err)
	assert.Equal(t, []string{"a:segment[0]", "b:segment[0]", "a:segment[1]", "b:segment[1]"}, bulk(t, m, g, t0.Add(2*time.Second)),
		"the call takes the group's four nodes, once they are ready, in the order they became ready")
}

func TestSharedConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		shared  [][]string
		problem string
	}{
		{"a group of one", [][]string{{"a", "b"}, {"c"}}, `shared[1] has 1 kind: want 2 or more (a kind's calls are its own already)`},
		{"a kind twice in a group", [][]string{{"a", "b", "a"}}, `kind "a" is in shared[0] and shared[0]: give each kind once, in one group`},
		{"a kind in two groups", [][]string{{"a", "b"}, {"c", "b"}}, `kind "b" is in shared[0] and shared[1]: give each kind once, in one group`},
		{"not UTF-8", [][]string{{"a", "\xff"}}, `a shared kind "\xff", which is not UTF-8: ` + "batch keys and kinds are, as the graph's names are, and the JSON form holds only UTF-8"},
	}
	g := build(t, tmpl(batched(per("a"), "k", 2), batched(per("b"), "k", 2)), 10)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := schedule.New(planOf(t, g), schedule.Config{Shared: tt.shared})
			var ce *schedule.ConfigError
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, "Shared", ce.Field)
			assert.Equal(t, tt.problem, ce.Problem)
			_, err = json.Marshal(schedule.Config{Shared: tt.shared})
			assert.ErrorIs(t, err, schedule.ErrInvalidConfig)
		})
	}
}

func TestSharedJSON(t *testing.T) {
	c := schedule.Config{Shared: [][]string{{"d", "c"}, {"b", "a"}}}
	data, err := json.Marshal(c)
	require.NoError(t, err)
	assert.Equal(t, `{"shared":[{"kinds":["a","b"]},{"kinds":["c","d"]}]}`, string(data), "sorted, so that the same Config gives the same bytes")
	var back schedule.Config
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, schedule.Config{Shared: [][]string{{"a", "b"}, {"c", "d"}}}, back)

	for _, tt := range []struct{ in, problem string }{
		{`{"shared":[{"kinds":["a"]}]}`, `shared[0] has 1 kind: want 2 or more (a kind's calls are its own already)`},
		{`{"shared":[null]}`, `shared[0] is null: want a group of kinds that share bulk calls, an object such as {"kinds": ["tile:0", "tile:1"]}`},
		{`{"shared":[{"kinds":["a",null]}]}`, `shared[0].kinds[1] is null: want a string, a kind`},
		{`{"shared":[{"kinds":["a",1]}]}`, `shared: a group's "kinds": want a string, a kind, not a number`},
		{`{"shared":[{"kinds":"a"}]}`, `shared: a group's "kinds": want a list of kinds, such as ["tile:0", "tile:1"], not a string`},
		{`{"shared":[{"kinds":["a","b"],"Kinds":[]}]}`, ``},
	} {
		var got schedule.Config
		err := json.Unmarshal([]byte(tt.in), &got)
		var ce *schedule.ConfigError
		require.True(t, errors.As(err, &ce), "%s: %v", tt.in, err)
		assert.Equal(t, "Shared", ce.Field, tt.in)
		if tt.problem != "" {
			assert.Equal(t, tt.problem, ce.Problem, tt.in)
		}
	}
}

// TestSharedSnapshot: a snapshot is of its Config's sharing: Restore
// under another says so, in Differs, and one without sharing has no
// "shared" part, as before sharing came.
func TestSharedSnapshot(t *testing.T) {
	g := build(t, tmpl(batched(per("a"), "k", 2), batched(per("b"), "k", 2)), 20)
	p := planOf(t, g)
	plain := newMachine(t, p, schedule.Config{})
	data, err := json.Marshal(plain.Snapshot())
	require.NoError(t, err)
	assert.NotContains(t, string(data), "shared")

	sharing := schedule.Config{Shared: [][]string{{"a", "b"}}}
	m := newMachine(t, p, sharing)
	assert.Equal(t, []string{"a:segment[0]", "a:segment[1]"}, bulk(t, m, g, t0))
	snap := m.Snapshot()
	data, err = json.Marshal(snap)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"shared":`)
	var back schedule.Snapshot
	require.NoError(t, json.Unmarshal(data, &back))
	r, err := schedule.Restore(p, sharing, back)
	require.NoError(t, err)
	succeed(t, r, g, "a:segment[0]")
	more, ok := r.More(t0, node(t, g, "a:segment[1]"))
	require.True(t, ok)
	assert.Equal(t, "b:segment[0]", g.NodeID(more.Node), "the restored machine shares calls as the snapshotted one")

	for _, tt := range []struct {
		name string
		snap schedule.Snapshot
		cfg  schedule.Config
	}{
		{"shared, restored without", back, schedule.Config{}},
		{"not shared, restored with", plain.Snapshot(), sharing},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := schedule.Restore(p, tt.cfg, tt.snap)
			var se *schedule.SnapshotError
			require.True(t, errors.As(err, &se), "%v", err)
			assert.True(t, se.Mismatch)
			assert.Equal(t, []string{"Shared"}, se.Differs)
		})
	}
	// A sharing that the machine ignores (a kind not in the graph) is no
	// difference.
	_, err = schedule.Restore(p, schedule.Config{Shared: [][]string{{"a", "zz"}}}, plain.Snapshot())
	require.NoError(t, err)
}

// TestPropertySharedKinds drives the property test's random cases with
// random groups of kinds that share calls (Config.Shared), bulk calls
// and, for about two thirds, batch windows, through the simulator, whose model
// takes the kinds of a group under one batch key as one kind: More
// gives no node that shares no call with like's, and nothing more while
// one that does is ready; a window holds the group's nodes as one kind.
func TestPropertySharedKinds(t *testing.T) {
	seeds := uint64(600)
	if testing.Short() {
		seeds = 60
	}
	for seed := range seeds {
		c := newRandomCase(t, seed)
		r := rand.New(rand.NewPCG(seed, 11))
		g := c.plan.Graph
		c.cfg.Shared = randomShared(r, g)
		if c.cfg.Windows == nil && r.IntN(2) == 0 {
			c.cfg.Windows = map[string]time.Duration{}
			for ki := range g.Kinds() {
				if r.IntN(2) == 0 {
					c.cfg.Windows[g.KindName(ki)] = time.Duration(1+r.IntN(8)) * time.Second
				}
			}
			c.cfg.MaxBatch = r.IntN(4)
			c.timed = r.IntN(2) == 0
		}
		c.bulk = true
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
				s := c.sim(t, mode, seed)
				log := transcript(s.run())
				again := transcript(c.sim(t, mode, seed).run())
				require.Equal(t, log, again, "%s: the same calls gave different steps", mode)
			}
		})
	}
}

// randomShared returns random groups of g's kinds that share calls: most
// of the kinds of each batch key, a group with, at times, a kind of
// another key or of none too.
func randomShared(r *rand.Rand, g *graph.Graph) [][]string {
	var out [][]string
	byKey := map[string][]string{}
	var keys, loose []string
	for _, k := range r.Perm(g.Kinds()) {
		key, _ := g.BatchKey(k)
		if key == "" || r.IntN(4) == 0 {
			loose = append(loose, g.KindName(k))
			continue
		}
		if byKey[key] == nil {
			keys = append(keys, key)
		}
		byKey[key] = append(byKey[key], g.KindName(k))
	}
	slices.Sort(keys)
	for _, key := range keys {
		grp := byKey[key]
		if len(loose) > 0 && r.IntN(2) == 0 {
			grp, loose = append(grp, loose[0]), loose[1:]
		}
		if len(grp) >= 2 {
			out = append(out, grp)
		}
	}
	return out
}

// TestPropertySharedSnapshotRestore is TestPropertySnapshotRestore's
// check with random kinds that share calls.
func TestPropertySharedSnapshotRestore(t *testing.T) {
	seeds := uint64(150)
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		for _, c := range snapshotCases(t, seed) {
			r := rand.New(rand.NewPCG(seed, 12))
			c.cfg.Shared = randomShared(r, c.plan.Graph)
			if c.cfg.MaxBatch == 0 {
				c.cfg.MaxBatch = r.IntN(4)
			}
			t.Run(fmt.Sprintf("seed=%d/%s", seed, c.name), func(t *testing.T) {
				checkSnapshotRestore(t, c, seed)
			})
		}
	}
}

// TestSharedCallSnapshotRestores: with MaxBatch, a snapshot holds each
// running node's call; a call of kinds that share calls restores, and
// the restored machine counts it as the snapshotted one does. Restore
// refused such a snapshot, its call taken for one of another kind.
func TestSharedCallSnapshotRestores(t *testing.T) {
	g := build(t, tmpl(batched(per("a"), "k", 4), batched(per("b"), "k", 4)), 20)
	p := planOf(t, g)
	cfg := schedule.Config{Shared: [][]string{{"a", "b"}}, MaxBatch: 3}
	m := newMachine(t, p, cfg)
	require.Equal(t, []string{"a:segment[0]", "a:segment[1]", "b:segment[0]"}, bulk(t, m, g, t0))
	snap := m.Snapshot()
	data, err := json.Marshal(snap)
	require.NoError(t, err)
	var back schedule.Snapshot
	require.NoError(t, json.Unmarshal(data, &back))
	r, err := schedule.Restore(p, cfg, back)
	require.NoError(t, err)
	again, err := json.Marshal(r.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, string(data), string(again), "the restored machine's snapshot")
	for _, mm := range []*schedule.Machine{m, r} {
		_, ok := mm.More(t0, node(t, g, "b:segment[0]"))
		assert.False(t, ok, "the call has MaxBatch nodes")
		assert.Equal(t, []string{"b:segment[1]"}, bulk(t, mm, g, t0), "a call of its own, in the key's last slot")
	}
}
