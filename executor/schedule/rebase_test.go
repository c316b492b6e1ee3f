package schedule_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// TestRestoreSaysWhatDiffers: a snapshot refused for another plan or
// Config names, in SnapshotError.Differs, what differs: the plan, or the
// Config's fields; a snapshot of version 1, which does not say, names
// nothing.
func TestRestoreSaysWhatDiffers(t *testing.T) {
	p := lecturePlan(t, 20)
	cfg := schedule.Config{Workers: 3, MaxBatch: 2, Caps: map[string]int{graph.KindImage: 1},
		Rates:   map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 3 * time.Second}},
		Windows: map[string]time.Duration{graph.KindVideo: 4 * time.Second}}
	m := newMachine(t, p, cfg)
	st, ok := m.Next(t0)
	require.True(t, ok)
	_, err := m.Succeed(st.Node)
	require.NoError(t, err)
	_, ok = m.Next(t0)
	require.True(t, ok)
	s := m.Snapshot()
	with := func(edit func(c *schedule.Config)) schedule.Config {
		c := cfg
		edit(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  schedule.Config
		edit bool // the plan edited
		want []string
	}{
		{name: "another plan", cfg: cfg, edit: true, want: []string{"plan"}},
		{name: "another plan and workers", cfg: with(func(c *schedule.Config) { c.Workers = 4 }), edit: true, want: []string{"plan", "Workers"}},
		{name: "mode", cfg: with(func(c *schedule.Config) { c.Mode = schedule.Staged }), want: []string{"Mode", "Windows"}},
		{name: "workers", cfg: with(func(c *schedule.Config) { c.Workers = 0 }), want: []string{"Workers"}},
		{name: "caps", cfg: with(func(c *schedule.Config) { c.Caps = nil }), want: []string{"Caps"}},
		{name: "a window", cfg: with(func(c *schedule.Config) { c.Windows = map[string]time.Duration{graph.KindVideo: time.Second} }), want: []string{"Windows"}},
		{name: "max batch", cfg: with(func(c *schedule.Config) { c.MaxBatch = 3 }), want: []string{"MaxBatch"}},
		{name: "workers and rates", cfg: with(func(c *schedule.Config) {
			c.Workers = 5
			c.Rates = map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: time.Second}}
		}), want: []string{"Workers", "Rates"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := p
			if tc.edit {
				plan = lecturePlan(t, 20, "asset:image:segment[0]")
			}
			got, err := schedule.Restore(plan, tc.cfg, s)
			require.Nil(t, got)
			var se *schedule.SnapshotError
			require.True(t, errors.As(err, &se), "a *SnapshotError: %v", err)
			assert.True(t, se.Mismatch)
			assert.Equal(t, tc.want, se.Differs)
			assert.ErrorContains(t, err, fmt.Sprintf("taken of another plan or Config (differs: %s)", joinDiffers(tc.want)))
		})
	}
	t.Run("version 1 does not say", func(t *testing.T) {
		v1 := editSnapshot(t, s, func(f obj) { f["version"] = 1; delete(f, "parts") })
		require.Equal(t, 1, v1.Version())
		back, err := schedule.Restore(p, cfg, v1)
		require.NoError(t, err, "a snapshot of version 1 restores under the same plan and Config")
		assert.Equal(t, schedule.SnapshotVersion, back.Snapshot().Version())
		assert.Equal(t, string(marshal(t, s)), string(marshal(t, back.Snapshot())), "it writes the current version")
		_, err = schedule.Restore(p, with(func(c *schedule.Config) { c.Workers = 4 }), v1)
		var se *schedule.SnapshotError
		require.True(t, errors.As(err, &se), "a *SnapshotError: %v", err)
		assert.True(t, se.Mismatch)
		assert.Nil(t, se.Differs)
		assert.ErrorContains(t, err, "taken of another plan or Config: its fingerprint is")
	})
}

func joinDiffers(d []string) string {
	out := ""
	for i, s := range d {
		if i > 0 {
			out += ", "
		}
		if s != "plan" {
			s = "Config." + s
		}
		out += s
	}
	return out
}

// TestRestoreUnderNewRates: a snapshot restores under a Config whose
// rates alone differ. The new rates hold from then on: the starts of a
// key in the snapshot count against its new rate (the latest of them, up
// to its Starts), a key that lost its rate forgets its starts, one that
// gains a rate starts with none, and the restored machine's own snapshot
// restores under the new Config to the same bytes.
func TestRestoreUnderNewRates(t *testing.T) {
	p := lecturePlan(t, 40)
	g := p.Graph
	cfg := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 3, Per: 10 * time.Second}}}
	m := newMachine(t, p, cfg)
	st, ok := m.Next(t0)
	require.True(t, ok)
	_, err := m.Succeed(st.Node)
	require.NoError(t, err)
	// Three images start at 0s, 1s and 2s, and what Next gives before
	// each.
	var images []graph.Node
	for k := range 3 {
		now := t0.Add(time.Duration(k) * time.Second)
		for {
			st, ok := m.Next(now)
			require.True(t, ok)
			if st.Kind == graph.KindImage {
				images = append(images, st.Node)
				break
			}
		}
	}
	require.Len(t, images, 3)
	at := t0.Add(3 * time.Second)
	require.Equal(t, 7*time.Second, m.RateWait(graph.KindImage, at))
	s := m.Snapshot()

	for _, tc := range []struct {
		name     string
		rates    map[string]schedule.Rate
		imgWait  time.Duration // RateWait of images at 3s
		vidWait  time.Duration
		refunded bool // a Refund of the last image gives its start back
	}{
		{name: "fewer starts", rates: map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: 10 * time.Second}},
			imgWait: 9 * time.Second, refunded: true},
		{name: "a shorter period", rates: map[string]schedule.Rate{graph.KindImage: {Starts: 3, Per: 4 * time.Second}},
			imgWait: time.Second, refunded: true},
		{name: "more starts", rates: map[string]schedule.Rate{graph.KindImage: {Starts: 4, Per: 10 * time.Second}},
			refunded: true},
		{name: "no rate", rates: nil},
		{name: "a rate of another key", rates: map[string]schedule.Rate{graph.KindVideo: {Starts: 1, Per: time.Minute}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := schedule.Config{Rates: tc.rates}
			r, err := schedule.Restore(p, c, s)
			require.NoError(t, err)
			assert.Equal(t, tc.imgWait, r.RateWait(graph.KindImage, at), "the images' rate")
			assert.Equal(t, tc.vidWait, r.RateWait(graph.KindVideo, at), "the videos' rate")
			again, err := schedule.Restore(p, c, r.Snapshot())
			require.NoError(t, err, "the restored machine's snapshot restores under its Config")
			require.Equal(t, string(marshal(t, r.Snapshot())), string(marshal(t, again.Snapshot())))
			ok, err := r.Refund(images[2])
			require.NoError(t, err)
			assert.Equal(t, tc.refunded, ok, "Refund of %s", g.NodeID(images[2]))
			_, err = schedule.Restore(p, cfg, r.Snapshot())
			require.NoError(t, err, "and back under the old rates")
		})
	}
}

// TestPropertyRestoreUnderNewRates drives lectures with random rates,
// restores them at a random point under other random rates, and runs the
// restored machine to its end: every start honours the new rates, counted
// with the starts the snapshot kept.
func TestPropertyRestoreUnderNewRates(t *testing.T) {
	p := lecturePlan(t, 60)
	keys := []string{graph.KindImage, graph.KindVideo, graph.KindNarration}
	randRates := func(r *rand.Rand) map[string]schedule.Rate {
		out := map[string]schedule.Rate{}
		for _, k := range keys {
			if r.IntN(3) > 0 {
				out[k] = schedule.Rate{Starts: 1 + r.IntN(3), Per: time.Duration(1+r.IntN(6)) * time.Second}
			}
		}
		return out
	}
	for seed := range uint64(100) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			old := schedule.Config{Workers: r.IntN(6), Rates: randRates(r)}
			m := newMachine(t, p, old)
			starts := map[string][]time.Time{} // by key, every start
			from := map[string]int{}           // by key, the first start that counts against the new rate
			var running []graph.Node
			now := t0
			record := func(st schedule.Step) {
				starts[st.Key] = append(starts[st.Key], now)
				running = append(running, st.Node)
			}
			cut := r.IntN(p.Len())
			step := func(m *schedule.Machine, check map[string]schedule.Rate) {
				if st, ok := m.Next(now); ok {
					record(st)
					if check != nil {
						if rt, ok := check[st.Key]; ok {
							ts := starts[st.Key][from[st.Key]:]
							if len(ts) > rt.Starts {
								require.GreaterOrEqual(t, now.Sub(ts[len(ts)-1-rt.Starts]), rt.Per,
									"key %q: more than %d starts within %v", st.Key, rt.Starts, rt.Per)
							}
						}
					}
					return
				}
				if len(running) > 0 && r.IntN(3) > 0 {
					k := r.IntN(len(running))
					_, err := m.SucceedAt(running[k], now)
					require.NoError(t, err)
					running = append(running[:k], running[k+1:]...)
					return
				}
				now = now.Add(time.Duration(1+r.IntN(1500)) * time.Millisecond)
			}
			for k := 0; k < cut && !m.Done(); k++ {
				step(m, nil)
			}
			nu := schedule.Config{Workers: old.Workers, Rates: randRates(r)}
			// The new rates count the starts still in the old rates'
			// windows; a key without an old rate, none before the restore.
			for _, k := range keys {
				ts := starts[k]
				from[k] = len(ts)
				if rt, ok := old.Rates[k]; ok {
					for from[k] > 0 && ts[from[k]-1].After(now.Add(-rt.Per)) {
						from[k]--
					}
				}
			}
			var back schedule.Snapshot
			require.NoError(t, back.UnmarshalJSON(marshal(t, m.Snapshot())))
			m, err := schedule.Restore(p, nu, back)
			require.NoError(t, err)
			for k := 0; !m.Done(); k++ {
				require.Less(t, k, 100*p.Len(), "the run does not end")
				step(m, nu.Rates)
			}
		})
	}
}

// TestRestoreWhereCapsHideTheConcurrency: a plan assembled by hand whose
// batch key has another concurrency, which the Config's cap lowers to the
// same limit, is the same to the machine (the fingerprint holds the
// limit): a snapshot restores under it, as a snapshot of version 1 does,
// though the digest of the plan, which holds the concurrency before the
// caps, differs.
func TestRestoreWhereCapsHideTheConcurrency(t *testing.T) {
	p := lecturePlan(t, 20)
	withConc := func(c int) *planner.Plan {
		out := &planner.Plan{Graph: p.Graph}
		for _, st := range p.Stages {
			groups := make([]planner.Group, len(st.Groups))
			for k, grp := range st.Groups {
				if grp.BatchKey == graph.KindImage {
					grp.Concurrency = c
				}
				groups[k] = grp
			}
			st.Groups = groups
			out.Stages = append(out.Stages, st)
		}
		return out
	}
	cfg := schedule.Config{Caps: map[string]int{graph.KindImage: 1}}
	m := newMachine(t, withConc(4), cfg)
	st, ok := m.Next(t0)
	require.True(t, ok)
	_, err := m.Succeed(st.Node)
	require.NoError(t, err)
	_, ok = m.Next(t0)
	require.True(t, ok)
	s := m.Snapshot()
	v1 := editSnapshot(t, s, func(f obj) { f["version"] = 1; delete(f, "parts") })
	for name, s := range map[string]schedule.Snapshot{"version 1": v1, "version 2": s} {
		t.Run(name, func(t *testing.T) {
			r, err := schedule.Restore(withConc(3), cfg, s)
			require.NoError(t, err)
			assert.Equal(t, fingerprintOf(t, s), fingerprintOf(t, r.Snapshot()))
			ref, err := schedule.Restore(withConc(4), cfg, s)
			require.NoError(t, err)
			assert.Equal(t, drain(ref, p.Graph, t0), drain(r, p.Graph, t0))
		})
	}
	// The plan's concurrency does differ: without the cap, Restore says so.
	_, err = schedule.Restore(withConc(3), schedule.Config{}, newMachine(t, withConc(4), schedule.Config{}).Snapshot())
	var se *schedule.SnapshotError
	require.True(t, errors.As(err, &se), "a *SnapshotError: %v", err)
	assert.Equal(t, []string{"plan"}, se.Differs)
}

// TestRestoreUnderALongerPeriod: a snapshot holds a key's starts from the
// first that was in its rate's window at the key's last start, as it has
// no clock: under a longer Per, those count until the new Per after them,
// though they may have left the old window since, while a start that had
// left it by the key's last start counts no more.
func TestRestoreUnderALongerPeriod(t *testing.T) {
	p := lecturePlan(t, 40)
	cfg := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: time.Second}}}
	m := newMachine(t, p, cfg)
	st, ok := m.Next(t0)
	require.True(t, ok)
	_, err := m.Succeed(st.Node)
	require.NoError(t, err)
	startImage := func(now time.Time) {
		t.Helper()
		for {
			st, ok := m.Next(now)
			require.True(t, ok, "an image starts at %v", now)
			if st.Kind == graph.KindImage {
				return
			}
		}
	}
	startImage(t0)
	at := t0.Add(20 * time.Second)
	longer := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: time.Minute}}}
	r, err := schedule.Restore(p, longer, m.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, 40*time.Second, r.RateWait(graph.KindImage, at),
		"the start at 0s, the key's last, counts under the new period, though it left the old window at 1s")

	startImage(t0.Add(5 * time.Second))
	longer.Rates[graph.KindImage] = schedule.Rate{Starts: 2, Per: time.Minute}
	r, err = schedule.Restore(p, longer, m.Snapshot())
	require.NoError(t, err)
	assert.Zero(t, r.RateWait(graph.KindImage, at), "the start at 0s had left the window by the start at 5s: it counts no more")
	longer.Rates[graph.KindImage] = schedule.Rate{Starts: 1, Per: time.Minute}
	r, err = schedule.Restore(p, longer, m.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, 45*time.Second, r.RateWait(graph.KindImage, at), "the start at 5s counts")
}

// TestRestoreTakesRateStartsByTime: a snapshot whose rate starts are not
// in ascending order (a hand-edited one, or one a driver that passes
// time.Now() wrote across a step back of the wall clock, as the snapshot
// holds wall times) is taken by time: it reads back with its starts
// ascending, a start that has left the window counts no more wherever
// it was listed, and under other rates the latest starts are kept, not
// the last listed.
func TestRestoreTakesRateStartsByTime(t *testing.T) {
	p := lecturePlan(t, 40)
	cfg := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	m := newMachine(t, p, cfg)
	st, ok := m.Next(t0)
	require.True(t, ok)
	_, err := m.Succeed(st.Node)
	require.NoError(t, err)
	for _, at := range []time.Duration{time.Second, 5 * time.Second} {
		for {
			st, ok := m.Next(t0.Add(at))
			require.True(t, ok)
			if st.Kind == graph.KindImage {
				break
			}
		}
	}
	s := m.Snapshot()
	require.Contains(t, string(marshal(t, s)), `"rates":[{"key":"asset:image","starts":["2025-01-01T00:00:01Z","2025-01-01T00:00:05Z"]}]`)
	swapped := editSnapshot(t, s, func(f obj) {
		starts := f["rates"].([]any)[0].(obj)["starts"].([]any)
		starts[0], starts[1] = starts[1], starts[0]
	})
	assert.Equal(t, string(marshal(t, s)), string(marshal(t, swapped)), "the starts read back ascending")

	r, err := schedule.Restore(p, cfg, swapped)
	require.NoError(t, err)
	assert.Zero(t, r.RateWait(graph.KindImage, t0.Add(12*time.Second)), "the start at 1s left the window at 11s")
	one := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 1, Per: 10 * time.Second}}}
	r, err = schedule.Restore(p, one, swapped)
	require.NoError(t, err)
	assert.Equal(t, 9*time.Second, r.RateWait(graph.KindImage, t0.Add(6*time.Second)), "under one start, the start at 5s is kept")
}
