package executor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
)

func TestMemoryStoreConformance(t *testing.T) {
	for _, tc := range []struct {
		name     string
		newStore func() *executor.MemoryStore
	}{
		{"New", executor.NewMemoryStore},
		{"ZeroValue", func() *executor.MemoryStore { return new(executor.MemoryStore) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, storetest.Factory{
				States:   func(*testing.T) executor.StateStore { return tc.newStore() },
				Assets:   func(*testing.T) executor.AssetStore { return tc.newStore() },
				Runs:     func(*testing.T) executor.RunStore { return tc.newStore() },
				Retainer: func(*testing.T) storetest.Retainer { return tc.newStore() },
			})
		})
	}
}

// storeHarness drives a MemoryStore in a test: each helper fails the test
// on an error.
type storeHarness struct {
	t *testing.T
	s *executor.MemoryStore
}

// put stores an asset under "<graph>/n/<name>" and returns its reference.
func (h storeHarness) put(graphKey, name string) string {
	h.t.Helper()
	ref, err := h.s.Put(h.t.Context(), graphKey+"/n/"+name, executor.Asset{Data: []byte(name), Hash: name})
	require.NoError(h.t, err)
	return ref
}

// commit sets the graph's nodes to the references, at the version it
// loads at, as the executor does.
func (h storeHarness) commit(graphKey string, refs map[string]string) {
	h.t.Helper()
	snap, err := h.s.Load(h.t.Context(), graphKey)
	require.NoError(h.t, err)
	var changes []executor.Change
	for id, ref := range refs {
		changes = append(changes, executor.Change{ID: id, State: dirty.State{Status: dirty.StatusClean,
			OutputHash: "h", AssetRef: ref, UpdatedAt: time.Now()}})
	}
	_, err = h.s.Commit(h.t.Context(), graphKey, snap.Version, changes)
	require.NoError(h.t, err)
}

// prune runs PruneAssets and fails the test unless it deleted want.
func (h storeHarness) prune(olderThan time.Duration, want int64) {
	h.t.Helper()
	n, err := h.s.PruneAssets(h.t.Context(), olderThan)
	require.NoError(h.t, err)
	require.Equal(h.t, want, n, "PruneAssets(%v): assets deleted", olderThan)
}

// exist reports which of refs the store holds.
func (h storeHarness) exist(refs ...string) []bool {
	h.t.Helper()
	out := make([]bool, len(refs))
	for i, ref := range refs {
		ok, err := h.s.Exists(h.t.Context(), ref)
		require.NoError(h.t, err)
		out[i] = ok
	}
	return out
}

// PruneAssets deletes an asset once no state refers to it and its last
// Put, or its last release by a commit, is more than olderThan ago: an
// asset exactly olderThan old is kept, as pgstore keeps it. A virtual
// clock makes the time pass.
func TestMemoryStorePruneAssetsAges(t *testing.T) {
	const olderThan = time.Hour
	for _, tc := range []struct {
		name string
		// script acts on the store, letting time pass, and returns the
		// references to check after a last PruneAssets(olderThan).
		script func(h storeHarness) []string
		pruned int64 // by the last PruneAssets
		want   []bool
	}{
		{"unreferenced, put a little less than olderThan ago: kept", func(h storeHarness) []string {
			x := h.put("g", "x")
			time.Sleep(olderThan - time.Second)
			return []string{x}
		}, 0, []bool{true}},
		{"unreferenced, put exactly olderThan ago: kept", func(h storeHarness) []string {
			x := h.put("g", "x")
			time.Sleep(olderThan)
			return []string{x}
		}, 0, []bool{true}},
		{"unreferenced, put a nanosecond more than olderThan ago: pruned", func(h storeHarness) []string {
			x := h.put("g", "x")
			time.Sleep(olderThan + time.Nanosecond)
			return []string{x}
		}, 1, []bool{false}},
		{"referenced, put long ago: kept", func(h storeHarness) []string {
			x := h.put("g", "x")
			h.commit("g", map[string]string{"n": x})
			time.Sleep(3 * olderThan)
			return []string{x}
		}, 0, []bool{true}},
		{"put again under its key since: kept until olderThan after that", func(h storeHarness) []string {
			x := h.put("g", "x")
			time.Sleep(2 * olderThan)
			require.Equal(h.t, x, h.put("g", "x"))
			time.Sleep(olderThan / 2)
			h.prune(olderThan, 0)
			time.Sleep(olderThan / 2)
			h.prune(olderThan, 0) // exactly olderThan after the Put
			time.Sleep(time.Nanosecond)
			return []string{x}
		}, 1, []bool{false}},
		{"released by a commit since: kept until olderThan after that", func(h storeHarness) []string {
			x, y := h.put("g", "x"), h.put("g", "y")
			h.commit("g", map[string]string{"n": x})
			time.Sleep(2 * olderThan)
			h.commit("g", map[string]string{"n": y}) // a run that loaded x may still read it
			time.Sleep(olderThan - time.Second)
			h.prune(olderThan, 0)
			time.Sleep(time.Second)
			h.prune(olderThan, 0) // exactly olderThan after the release
			time.Sleep(time.Nanosecond)
			return []string{x, y}
		}, 1, []bool{false, true}},
		{"released by a commit that sets several nodes: each replaced one renewed", func(h storeHarness) []string {
			x, y, z := h.put("g", "x"), h.put("g", "y"), h.put("g", "z")
			h.commit("g", map[string]string{"n": x, "m": y, "o": "s3://bucket/o"})
			time.Sleep(2 * olderThan)
			h.commit("g", map[string]string{"n": z, "m": y, "o": "s3://bucket/o2"})
			time.Sleep(olderThan / 2)
			h.prune(olderThan, 0)
			return []string{x, y, z}
		}, 0, []bool{true, true, true}},
		{"released by one graph, still referenced by another: kept", func(h storeHarness) []string {
			x, y := h.put("a", "x"), h.put("a", "y")
			h.commit("a", map[string]string{"n": x})
			h.commit("b", map[string]string{"n": x})
			time.Sleep(2 * olderThan)
			h.commit("a", map[string]string{"n": y})
			time.Sleep(2 * olderThan)
			return []string{x, y}
		}, 0, []bool{true, true}},
		{"of a deleted graph, put long ago: pruned at once", func(h storeHarness) []string {
			x, y := h.put("a", "x"), h.put("a/b", "y")
			h.commit("a", map[string]string{"n": x})
			h.commit("a/b", map[string]string{"n": y})
			time.Sleep(2 * olderThan)
			ok, err := h.s.DeleteGraph(h.t.Context(), "a")
			require.NoError(h.t, err)
			require.True(h.t, ok)
			return []string{x, y}
		}, 1, []bool{false, true}},
		{"put by a running node, not committed yet: kept until olderThan", func(h storeHarness) []string {
			// The executor puts a node's asset, then commits its state.
			x := h.put("g", "x")
			time.Sleep(olderThan - time.Second)
			h.prune(olderThan, 0)
			h.commit("g", map[string]string{"n": x})
			time.Sleep(2 * olderThan)
			return []string{x}
		}, 0, []bool{true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := storeHarness{t: t, s: executor.NewMemoryStore()}
				refs := tc.script(h)
				h.prune(olderThan, tc.pruned)
				assert.Equal(t, tc.want, h.exist(refs...), "assets left")
			})
		})
	}
}

// A run that loaded a graph may read the assets it loaded for as long as
// olderThan, while writers replace them and PruneAssets runs: a commit
// renews the age of each asset it stops referring to. Afterwards, only
// the assets that states refer to are left.
func TestMemoryStoreReadersKeepTheirAssets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := executor.NewMemoryStore()
		h := storeHarness{t: t, s: s}
		const (
			olderThan = 10 * time.Minute
			every     = 15 * time.Minute // each graph's asset is replaced, older than olderThan
			read      = 5 * time.Minute  // a run reads its assets this long after it loaded them
			rounds    = 12
		)
		graphs := []string{"a", "b", "c"}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			refs []string // every asset put
		)
		stop := make(chan struct{})
		for _, key := range graphs {
			wg.Go(func() { // a writer
				for i := range rounds {
					ref, err := s.Put(ctx, fmt.Sprintf("%s/n/%d", key, i), executor.Asset{Data: []byte{byte(i)}})
					if !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					refs = append(refs, ref)
					mu.Unlock()
					snap, err := s.Load(ctx, key)
					if !assert.NoError(t, err) {
						return
					}
					_, err = s.Commit(ctx, key, snap.Version, []executor.Change{{ID: "n",
						State: dirty.State{Status: dirty.StatusClean, AssetRef: ref}}})
					if !assert.NoError(t, err) {
						return
					}
					time.Sleep(every)
				}
			})
			wg.Go(func() { // a reader: runs one after the other
				time.Sleep(time.Minute)
				for {
					select {
					case <-stop:
						return
					default:
					}
					snap, err := s.Load(ctx, key)
					if !assert.NoError(t, err) {
						return
					}
					time.Sleep(read)
					for id, st := range snap.States {
						_, err := s.Get(ctx, st.AssetRef)
						assert.NoError(t, err, "graph %s, node %s: an asset a run loaded %v ago", key, id, read)
					}
					time.Sleep(time.Minute)
				}
			})
		}
		wg.Go(func() { // the pruner
			for {
				select {
				case <-stop:
					return
				default:
				}
				time.Sleep(30 * time.Second)
				_, err := s.PruneAssets(ctx, olderThan)
				assert.NoError(t, err)
			}
		})
		time.Sleep(rounds * every)
		close(stop)
		wg.Wait()

		time.Sleep(olderThan)
		h.prune(olderThan, 0) // the pruner got all but the last ones
		last := map[string]bool{}
		for _, key := range graphs {
			last[fmt.Sprintf("mem:%s/n/%d", key, rounds-1)] = true
		}
		var want []bool
		for _, ref := range refs {
			want = append(want, last[ref])
		}
		assert.Equal(t, want, h.exist(refs...), "assets left: the last of each graph")
	})
}

// A host prunes on a timer while runs go on, with an age longer than its
// longest run: a run that starts long after the last one loses none of
// the assets it reads or puts to a prune in its middle, which deletes only
// the garbage; the assets that the edit replaced go once the age has
// passed, and the next run regenerates nothing.
func TestMemoryStorePruneDuringRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := executor.NewMemoryStore()
		g, err := graph.Build(graph.Lecture(), 60)
		require.NoError(t, err)
		gen := fake.New(fake.Options{Latency: fake.LectureMedians()})
		reg := gen.Registry()
		var pruned int64 = -1
		reg[graph.KindTimeline] = executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			// Every other node of the run has put its asset; some may not
			// be committed yet.
			n, err := s.PruneAssets(ctx, time.Hour)
			if err != nil {
				return executor.Asset{}, err
			}
			pruned = n
			return gen.Generate(ctx, req)
		})
		e, err := executor.New(executor.Options{Generators: reg, States: s, Assets: s, Runs: s})
		require.NoError(t, err)
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g})
		require.NoError(t, err)
		junk, err := s.Put(ctx, "lecture/junk/h", executor.Asset{Data: []byte("never committed")})
		require.NoError(t, err)

		time.Sleep(2 * time.Hour)
		edit := dirty.Mark{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g, Marks: []dirty.Mark{edit}})
		require.NoError(t, err)
		require.Len(t, rep.Generated, 3)
		assert.Equal(t, int64(1), pruned, "the prune in the run's middle deletes only the junk")
		ok, err := s.Exists(ctx, junk)
		require.NoError(t, err)
		assert.False(t, ok, "the junk asset")

		time.Sleep(time.Hour + time.Second) // the run's last commit released an asset: more than an hour ago now
		n, err := s.PruneAssets(ctx, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, int64(3), n, "the assets the edit replaced")
		calls := gen.Calls()
		rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g})
		require.NoError(t, err)
		assert.Empty(t, rep.Generated, "a run after the prune")
		assert.Equal(t, calls, gen.Calls(), "generator calls of a run after the prune")
	})
}

// DeleteGraph of a MemoryStates of its own deletes the graph's states and
// keeps its version, moved on, as a tombstone.
func TestMemoryStatesDeleteGraph(t *testing.T) {
	ctx := t.Context()
	m := executor.NewMemoryStates()
	st := dirty.State{Status: dirty.StatusClean, Rev: 1}
	_, err := m.Commit(ctx, "g", 0, []executor.Change{{ID: "n", State: st}})
	require.NoError(t, err)
	_, err = m.Commit(ctx, "g", 1, nil)
	require.NoError(t, err)
	_, err = m.Commit(ctx, "g/h", 0, []executor.Change{{ID: "n", State: st}})
	require.NoError(t, err)

	_, err = m.DeleteGraph(cancelledContext(t), "g")
	require.ErrorIs(t, err, context.Canceled)
	for _, tc := range []struct {
		key         string
		deleted     bool
		wantVersion int64
	}{
		{"g", true, 3},
		{"g", false, 4}, // a second delete still moves the version on
		{"never", false, 0},
	} {
		ok, err := m.DeleteGraph(ctx, tc.key)
		require.NoError(t, err)
		assert.Equal(t, tc.deleted, ok, "DeleteGraph(%q)", tc.key)
		snap, err := m.Load(ctx, tc.key)
		require.NoError(t, err)
		assert.Equal(t, executor.Snapshot{Version: tc.wantVersion, States: map[string]dirty.State{}}, snap, "Load(%q)", tc.key)
	}
	_, err = m.Commit(ctx, "g", 2, nil)
	require.ErrorIs(t, err, executor.ErrConflict, "a commit at a version from before the deletion")
	v, err := m.Commit(ctx, "g", 4, []executor.Change{{ID: "m", State: st}})
	require.NoError(t, err)
	assert.Equal(t, int64(5), v)
	snap, err := m.Load(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, map[string]dirty.State{"m": st}, snap.States, "the re-created graph")
	snap, err = m.Load(ctx, "g/h")
	require.NoError(t, err)
	assert.Equal(t, executor.Snapshot{Version: 1, States: map[string]dirty.State{"n": st}}, snap, "another graph")
}

// PruneRuns of a MemoryRuns of its own deletes the records that ended, or
// never ended but started, more than olderThan ago: one that ended
// exactly olderThan ago is kept (it was deleted, unlike pgstore's). It
// keeps the records that say running, whatever their age: it deleted
// that of a run that crashed 3 hours ago, which a recovery would have
// resumed, and a long run's, which went on without it.
func TestMemoryRunsPruneRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		m := executor.NewMemoryRuns()
		now := time.Now()
		for _, r := range []executor.Record{
			{ID: "ended-long-ago", GraphKey: "g", StartedAt: now.Add(-3 * time.Hour), EndedAt: now.Add(-2 * time.Hour)},
			{ID: "ended-an-hour-ago", GraphKey: "g", StartedAt: now.Add(-3 * time.Hour), EndedAt: now.Add(-time.Hour)},
			{ID: "ended-recently", GraphKey: "g", StartedAt: now.Add(-3 * time.Hour), EndedAt: now.Add(-time.Minute)},
			{ID: "crashed", GraphKey: "h", Status: executor.RunRunning, StartedAt: now.Add(-3 * time.Hour)},
			{ID: "running", GraphKey: "h", Status: executor.RunRunning, StartedAt: now.Add(-time.Minute)},
			{ID: "interrupted", GraphKey: "h", Status: executor.RunInterrupted, StartedAt: now.Add(-3 * time.Hour)},
			{ID: "no-times", GraphKey: "h"},
		} {
			require.NoError(t, m.PutRun(ctx, r))
		}
		_, err := m.PruneRuns(ctx, -time.Second)
		require.ErrorIs(t, err, executor.ErrInvalidAge)
		_, err = m.PruneRuns(cancelledContext(t), time.Hour)
		require.ErrorIs(t, err, context.Canceled)

		n, err := m.PruneRuns(ctx, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, int64(2), n, "records deleted: ended long ago, interrupted (no end) started long ago")
		var left []string
		for _, g := range []string{"g", "h"} {
			rs, err := m.ListRuns(ctx, g)
			require.NoError(t, err)
			for _, r := range rs {
				left = append(left, r.ID)
			}
		}
		assert.ElementsMatch(t, []string{"ended-an-hour-ago", "ended-recently", "crashed", "no-times", "running"}, left)
		rs, err := m.RunsByStatus(ctx, executor.RunRunning)
		require.NoError(t, err)
		var running []string
		for _, r := range rs {
			running = append(running, r.ID)
		}
		assert.ElementsMatch(t, []string{"crashed", "running"}, running, "RunsByStatus(running) after the prune")
	})
}

func TestMemoryStoreInvalidAge(t *testing.T) {
	s := executor.NewMemoryStore()
	for _, tc := range []struct {
		name  string
		prune func(context.Context, time.Duration) (int64, error)
		want  string
	}{
		{"PruneAssets", s.PruneAssets, "executor: invalid age: prune assets older than -1s: want 0 or more"},
		{"PruneRuns", s.PruneRuns, "executor: invalid age: prune runs older than -1s: want 0 or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.prune(t.Context(), -time.Second)
			require.ErrorIs(t, err, executor.ErrInvalidAge)
			assert.EqualError(t, err, tc.want)
		})
	}
}

// A prune walks the assets in batches, past batches that delete nothing,
// and gets them all.
func TestMemoryStorePruneManyAssets(t *testing.T) {
	h := storeHarness{t: t, s: executor.NewMemoryStore()}
	const n = 20_000
	refs := map[string]string{}
	for i := range n {
		ref := h.put("g", fmt.Sprint(i))
		if i%3 == 0 {
			refs[fmt.Sprint("n", i)] = ref
		}
	}
	h.commit("g", refs)
	h.prune(0, int64(n-len(refs)))
	h.prune(0, 0)
	// The freed slots take new assets.
	for i := range n {
		h.put("g", fmt.Sprint("again-", i))
	}
	h.prune(0, n)
}

// cancelledContext returns a context that is already cancelled.
func cancelledContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// BenchmarkMemoryStoreOverhead is BenchmarkOverhead's executor case on
// a MemoryStore, beside the default stores: a Put reads the clock, and a
// commit releases the assets it stops referring to. Each run is on a new
// graph, so its commits release nothing: "regenerate" runs the graph
// again with every node forced, and a new output for each, so that every
// commit of that run releases its nodes' old assets.
func BenchmarkMemoryStoreOverhead(b *testing.B) {
	g, err := graph.Build(graph.Lecture(), 3600)
	if err != nil {
		b.Fatal(err)
	}
	var rev atomic.Int64 // a new output for each run
	gen := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: noopData, Hash: fmt.Sprint("h", rev.Load()), Length: graph.SegmentLength}, nil
	})
	reg := registryFor(g, gen)
	force := make([]dirty.Mark, g.Len())
	for n := range force {
		force[n] = dirty.Mark{ID: g.NodeID(graph.Node(n)), Reason: dirty.ReasonForced}
	}
	for _, tc := range []struct {
		name       string
		store      func() *executor.MemoryStore // nil for the defaults
		regenerate bool
	}{
		{"defaults", nil, false},
		{"store", executor.NewMemoryStore, false},
		{"defaults-regenerate", nil, true},
		{"store-regenerate", executor.NewMemoryStore, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			opts := executor.Options{Generators: reg}
			newExecutor := func() *executor.Executor {
				o := opts
				if tc.store != nil {
					s := tc.store()
					o.States, o.Assets, o.Runs = s, s, s
				}
				e, err := executor.New(o)
				if err != nil {
					b.Fatal(err)
				}
				return e
			}
			e := newExecutor()
			req := executor.RunRequest{GraphKey: "l", Graph: g}
			if tc.regenerate {
				if _, err := e.Run(context.Background(), req); err != nil {
					b.Fatal(err)
				}
				req.Marks = force
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if !tc.regenerate {
					e, req.GraphKey = newExecutor(), fmt.Sprint("l", i)
				}
				rev.Store(int64(i))
				rep, err := e.Run(context.Background(), req)
				if err != nil || len(rep.Generated) != g.Len() {
					b.Fatalf("run: %v", err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(g.Len()), "ns/node")
		})
	}
}

// BenchmarkMemoryStorePruneAssets is the cost of a prune that deletes
// nothing, the usual case on a timer: 10 graphs of benchNodes nodes, each
// node's asset and 5 older ones per node (so 90,000 assets).
func BenchmarkMemoryStorePruneAssets(b *testing.B) {
	ctx := context.Background()
	s := executor.NewMemoryStore()
	a := executor.Asset{Data: make([]byte, 64), Hash: "h"}
	for gi := range 10 {
		key := fmt.Sprint("lecture-", gi)
		changes := make([]executor.Change, benchNodes)
		for i := range changes {
			id := fmt.Sprintf("asset:image:segment[%d]", i)
			var ref string
			for h := range 6 {
				var err error
				if ref, err = s.Put(ctx, fmt.Sprintf("%s/%s/%d", key, id, h), a); err != nil {
					b.Fatal(err)
				}
			}
			changes[i] = executor.Change{ID: id, State: dirty.State{Status: dirty.StatusClean, AssetRef: ref}}
		}
		if _, err := s.Commit(ctx, key, 0, changes); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if n, err := s.PruneAssets(ctx, time.Hour); err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
}

func ExampleMemoryStore() {
	g, _ := graph.Build(graph.Lecture(), 60) // 6 segments, 21 nodes
	// A fake generator for every kind, whose output changes with its inputs.
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		a := executor.Asset{Data: []byte(req.IdempotencyKey)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second
		}
		return a, nil
	})
	reg := executor.Registry{}
	for i := range g.Kinds() {
		reg[g.KindName(i)] = gen
	}
	// One store fills the three store fields, as a pgstore.Store does.
	store := executor.NewMemoryStore()
	e, _ := executor.New(executor.Options{Generators: reg, States: store, Assets: store, Runs: store})
	ctx := context.Background()
	_, _ = e.Run(ctx, executor.RunRequest{GraphKey: "lecture-1", Graph: g})
	_, _ = e.Run(ctx, executor.RunRequest{GraphKey: "lecture-1", Graph: g,
		Marks: []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}})

	// A host prunes on a timer, with an age longer than its longest run;
	// 0 here, as no run is going on.
	n, _ := store.PruneAssets(ctx, 0)
	fmt.Println("assets the edit replaced:", n)
	n, _ = store.PruneRuns(ctx, 0)
	fmt.Println("run records:", n)

	// The user deletes the lecture: its states go, then its assets.
	before, _ := store.Load(ctx, "lecture-1")
	deleted, _ := store.DeleteGraph(ctx, "lecture-1")
	n, _ = store.PruneAssets(ctx, 0)
	fmt.Println("deleted:", deleted, "assets:", n)
	// Its version moved on and stays, so that a run that loaded the graph
	// before cannot commit over it.
	after, _ := store.Load(ctx, "lecture-1")
	fmt.Println("states:", len(after.States), "version moved on:", after.Version > before.Version)
	_, err := store.Commit(ctx, "lecture-1", before.Version, nil)
	fmt.Println(errors.Is(err, executor.ErrConflict))
	// Output:
	// assets the edit replaced: 3
	// run records: 2
	// deleted: true assets: 21
	// states: 0 version moved on: true
	// true
}

// An executor with no stores given runs on one MemoryStore, so that its
// host can prune what runs leave behind.
func TestDefaultStoresAreOneMemoryStore(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.IdempotencyKey), Length: graph.SegmentLength}, nil
	})
	reg := registryFor(g, gen)
	e, err := executor.New(executor.Options{Generators: reg})
	require.NoError(t, err)
	store, ok := e.States().(*executor.MemoryStore)
	require.True(t, ok, "States is %T", e.States())
	assert.Same(t, store, e.Assets())
	assert.Same(t, store, e.Runs())
	ctx := t.Context()
	_, err = e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: g})
	require.NoError(t, err)
	_, err = e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: g,
		Marks: []dirty.Mark{{ID: "asset:narration:segment[1]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	n, err := store.PruneAssets(ctx, 0)
	require.NoError(t, err)
	assert.EqualValues(t, 3, n, "the assets the edit replaced: the narration, its video and the timeline")
	snap, err := store.Load(ctx, "l")
	require.NoError(t, err)
	for id, st := range snap.States {
		if id == executor.GraphStateID {
			continue // the graph's fingerprint, not a node
		}
		ok, err := store.Exists(ctx, st.AssetRef)
		require.NoError(t, err)
		assert.True(t, ok, "%s keeps its asset", id)
	}

	// Stores given by the host are kept as they are.
	states := executor.NewMemoryStates()
	e, err = executor.New(executor.Options{Generators: reg, States: states})
	require.NoError(t, err)
	assert.Same(t, states, e.States())
	_, ok = e.Assets().(*executor.MemoryAssets)
	assert.True(t, ok, "Assets is %T", e.Assets())
}
