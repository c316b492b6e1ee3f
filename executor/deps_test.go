package executor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// readLog is an asset store over a MemoryAssets that records its reads,
// and can fail them.
type readLog struct {
	*executor.MemoryAssets
	mu    sync.Mutex
	gets  []string   // refs read with Get
	manys [][]string // refs read with GetMany, a call each
	// failMany fails GetMany with this error; short makes it return one
	// asset too few.
	failMany error
	short    bool
	// lost is a ref whose reads fail with ErrNotFound, as if the asset
	// went while the run went on.
	lost string
}

func (s *readLog) Get(ctx context.Context, ref string) (executor.Asset, error) {
	s.mu.Lock()
	s.gets = append(s.gets, ref)
	lost := ref == s.lost
	s.mu.Unlock()
	if lost {
		return executor.Asset{}, fmt.Errorf("get asset %q: %w", ref, executor.ErrNotFound)
	}
	return s.MemoryAssets.Get(ctx, ref)
}

func (s *readLog) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	s.mu.Lock()
	s.manys = append(s.manys, slices.Clone(refs))
	fail, short, lost := s.failMany, s.short, slices.Contains(refs, s.lost) && s.lost != ""
	s.mu.Unlock()
	switch {
	case fail != nil:
		return nil, fail
	case lost:
		return nil, fmt.Errorf("get asset %q: %w", s.lost, executor.ErrNotFound)
	}
	out, err := s.MemoryAssets.GetMany(ctx, refs)
	if short && len(out) > 0 {
		out = out[:len(out)-1]
	}
	return out, err
}

// getOnly hides GetMany: a store that is not an AssetBatchGetter.
type getOnly struct{ executor.AssetStore }

// depsRun runs a fresh 40-second lecture on assets, recording each
// request's dependencies. It returns the dependencies seen by node ID,
// the stored asset references by node ID, and the run's error.
func depsRun(t *testing.T, g *graph.Graph, assets executor.AssetStore) (map[string][]executor.Dep, map[string]string, error) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string][]executor.Dep{}
	gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		mu.Lock()
		seen[req.NodeID] = req.Deps
		mu.Unlock()
		return executor.Asset{Data: defaultData(req), Length: graph.SegmentLength}, nil
	})
	reg := registryFor(g, gen)
	states := executor.NewMemoryStates()
	e, err := executor.New(executor.Options{Generators: reg, Assets: assets, States: states})
	require.NoError(t, err)
	_, runErr := e.Run(t.Context(), executor.RunRequest{GraphKey: "lecture", Graph: g})
	require.NoError(t, e.Close(t.Context()))
	snap, err := states.Load(t.Context(), "lecture")
	require.NoError(t, err)
	refs := map[string]string{}
	for id, st := range snap.States {
		refs[id] = st.AssetRef
	}
	return seen, refs, runErr
}

// remoteLog is a readLog that does not live in the process, as a
// database's store: it forwards the calls of an AssetBatchGetter, and
// does not pass for an in-memory store.
type remoteLog struct{ log *readLog }

func (s remoteLog) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	return s.log.Put(ctx, key, a)
}
func (s remoteLog) Get(ctx context.Context, ref string) (executor.Asset, error) {
	return s.log.Get(ctx, ref)
}
func (s remoteLog) Exists(ctx context.Context, ref string) (bool, error) {
	return s.log.Exists(ctx, ref)
}
func (s remoteLog) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	return s.log.GetMany(ctx, refs)
}

// A node with enough dependencies reads their assets in one GetMany
// call, in the graph's order: two or more from a store across a network,
// four or more from the in-memory stores, where a call saves no round
// trip; a node with fewer reads each with Get. The generators get the
// same dependencies as from a store without GetMany.
func TestDepsReadInOneCall(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 40)
	require.NoError(t, err)
	plain, _, err := depsRun(t, g, getOnly{executor.NewMemoryAssets()})
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		store func(*readLog) executor.AssetStore
		min   int
	}{
		{"in memory", func(l *readLog) executor.AssetStore { return l }, 4},
		{"remote", func(l *readLog) executor.AssetStore { return remoteLog{l} }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &readLog{MemoryAssets: executor.NewMemoryAssets()}
			batched, refs, err := depsRun(t, g, tc.store(log))
			require.NoError(t, err)

			var wantManys [][]string
			var wantGets []string
			for n := range graph.Node(g.Len()) {
				var want []string
				for _, d := range g.Deps(n) {
					want = append(want, refs[g.NodeID(d)])
				}
				if len(want) >= tc.min {
					wantManys = append(wantManys, want)
				} else {
					wantGets = append(wantGets, want...)
				}
			}
			require.NotEmpty(t, wantManys, "the lecture has nodes with several dependencies")
			byFirst := func(a, b []string) int { return slices.Compare(a, b) }
			log.mu.Lock()
			gotManys, gotGets := slices.SortedFunc(slices.Values(log.manys), byFirst), slices.Sorted(slices.Values(log.gets))
			log.mu.Unlock()
			slices.SortFunc(wantManys, byFirst)
			slices.Sort(wantGets)
			if d := cmp.Diff(wantManys, gotManys); d != "" {
				t.Errorf("GetMany calls: one per node with %d dependencies or more, its dependencies' refs in order (-want +got):\n%s", tc.min, d)
			}
			if d := cmp.Diff(wantGets, gotGets); d != "" {
				t.Errorf("Get calls: one per dependency of the other nodes (-want +got):\n%s", d)
			}
			if d := cmp.Diff(plain, batched); d != "" {
				t.Errorf("dependencies read with GetMany differ from those read with Get (-Get +GetMany):\n%s", d)
			}
		})
	}
}

// When GetMany fails, or returns a wrong number of assets, the
// dependencies are read one by one: a passing failure passes, and a lost
// asset fails only its dependents, with an error that names it.
func TestDepsReadFallsBack(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 40)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		log  *readLog
	}{
		{"transient", &readLog{failMany: errors.New("connection reset")}},
		{"short", &readLog{short: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.log.MemoryAssets = executor.NewMemoryAssets()
			got, _, err := depsRun(t, g, tc.log)
			require.NoError(t, err)
			want, _, err := depsRun(t, g, executor.NewMemoryAssets())
			require.NoError(t, err)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("dependencies (-want +got):\n%s", d)
			}
			tc.log.mu.Lock()
			defer tc.log.mu.Unlock()
			assert.NotEmpty(t, tc.log.manys, "GetMany was tried")
		})
	}
	t.Run("lost", func(t *testing.T) {
		log := &readLog{MemoryAssets: executor.NewMemoryAssets()}
		// The ref ends with the image's output hash: find it from a run
		// on another store first, as the output is deterministic.
		_, refs, _ := depsRun(t, g, executor.NewMemoryAssets())
		log.lost = refs["asset:image:segment[2]"]
		require.NotEmpty(t, log.lost)
		_, _, err := depsRun(t, g, log)
		var re *executor.RunError
		require.ErrorAs(t, err, &re)
		var failed []string
		for _, ne := range re.Failed {
			failed = append(failed, ne.Node)
			assert.ErrorIs(t, ne, executor.ErrNotFound, "%s", ne.Node)
			assert.Contains(t, ne.Error(), "read the output of asset:image:segment[2]", "%s", ne.Node)
		}
		assert.Equal(t, []string{"asset:video:segment[2]"}, failed, "the lost asset's dependents that read it")
	})
}

// Early cutoff needs only the dependencies' output hashes, which the
// states hold: a node that keeps its result reads none of its
// dependencies' assets (the timeline's 721 on the 360-segment lecture, a
// few hundred KB to MB each for real). An edit of a narration whose
// output does not change reads the narration's input only, the script,
// though its video and the timeline are planned.
func TestCutoffReadsNoDependencies(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 40)
	require.NoError(t, err)
	log := &readLog{MemoryAssets: executor.NewMemoryAssets()}
	gen := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte("same"), Length: graph.SegmentLength}, nil
	})
	e, err := executor.New(executor.Options{Generators: registryFor(g, gen), Assets: log})
	require.NoError(t, err)
	defer e.Close(t.Context())
	_, err = e.Run(t.Context(), executor.RunRequest{GraphKey: "lecture", Graph: g})
	require.NoError(t, err)
	log.mu.Lock()
	log.gets, log.manys = nil, nil
	log.mu.Unlock()

	rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: "lecture", Graph: g,
		Marks: []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	assert.Equal(t, []string{"asset:narration:segment[3]"}, rep.Generated)
	assert.ElementsMatch(t, []string{"asset:video:segment[3]", "timeline"}, rep.Unchanged)
	snap, err := e.States().Load(t.Context(), "lecture")
	require.NoError(t, err)
	log.mu.Lock()
	defer log.mu.Unlock()
	assert.Equal(t, []string{snap.States["script"].AssetRef}, log.gets, "the narration's input only")
	assert.Empty(t, log.manys, "the timeline reads nothing")
}
