package executor

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// Under concurrent Puts, Gets, Deletes that compact the shards and
// prunes, every asset that is kept reads back as it was put, under the
// reference handed out before the compactions.
func TestMemReviewAssetsUnderCompaction(t *testing.T) {
	ctx := t.Context()
	s := NewMemoryStore()
	const keepers, junk = 400, 6000
	keep := make([]string, keepers)
	var changes []Change
	for i := range keepers {
		ref, err := s.Put(ctx, fmt.Sprint("g/keep/", i), Asset{Data: []byte(fmt.Sprint("keep", i))})
		require.NoError(t, err)
		keep[i] = ref
		changes = append(changes, Change{ID: fmt.Sprint("n", i), State: dirty.State{AssetRef: ref}})
	}
	_, err := s.Commit(ctx, "g", 0, changes)
	require.NoError(t, err)
	for round := range 4 {
		junkRefs := make([]string, junk)
		for i := range junk {
			ref, err := s.Put(ctx, fmt.Sprint("g/junk/", round, "/", i), Asset{Data: bytes.Repeat([]byte{'j'}, i%2000)})
			require.NoError(t, err)
			junkRefs[i] = ref
		}
		var wg, readers sync.WaitGroup
		var stop atomic.Bool
		for r := range 2 {
			readers.Go(func() {
				for i := 0; !stop.Load(); i++ {
					k := (i*7 + r) % keepers
					a, err := s.Get(ctx, keep[k])
					if !assert.NoError(t, err) || !assert.Equal(t, fmt.Sprint("keep", k), string(a.Data)) {
						return
					}
					as, err := s.GetMany(ctx, []string{keep[k], keep[(k+1)%keepers], keep[k]})
					if !assert.NoError(t, err) || !assert.Len(t, as, 3) {
						return
					}
					assert.Equal(t, fmt.Sprint("keep", k), string(as[2].Data))
				}
			})
		}
		wg.Go(func() {
			for i := 0; i < junk/2; i++ {
				s.assets.Delete(junkRefs[i])
			}
		})
		wg.Go(func() {
			for range 3 {
				_, err := s.PruneAssets(ctx, 0)
				assert.NoError(t, err)
			}
		})
		wg.Go(func() { // new assets, read at once
			for i := range 2000 {
				key := fmt.Sprint("g/new/", round, "/", i)
				ref, err := s.Put(ctx, key, Asset{Data: []byte(key)})
				if !assert.NoError(t, err) {
					return
				}
				a, err := s.Get(ctx, ref)
				if err == nil { // a prune may have taken it
					assert.Equal(t, key, string(a.Data))
				}
			}
		})
		wg.Wait()
		stop.Store(true)
		readers.Wait()
		_, err := s.PruneAssets(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, keepers, s.assets.Len(), "round %d: assets left", round)
		for i, ref := range keep {
			a, err := s.Get(ctx, ref)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint("keep", i), string(a.Data))
		}
	}
}

// Loads are never torn: each commit writes every node with the version
// it makes; a Load sees every node at its own version, while commits,
// deletions and loads race.
func TestMemReviewStatesLoadsNotTorn(t *testing.T) {
	ctx := t.Context()
	s := NewMemoryStore()
	const nodes = 50
	var wg sync.WaitGroup
	var maxSeen sync.Map
	for w := range 4 {
		wg.Go(func() {
			key := fmt.Sprint("k", w%2)
			last := int64(-1)
			for i := range 1500 {
				snap, err := s.Load(ctx, key)
				if !assert.NoError(t, err) {
					return
				}
				assert.GreaterOrEqual(t, snap.Version, last, "version went back")
				last = snap.Version
				for id, st := range snap.States {
					if st.Rev != snap.Version {
						assert.Equal(t, snap.Version, st.Rev, "node %s torn", id)
						return
					}
				}
				if w == 0 && i%50 == 0 {
					_, err := s.DeleteGraph(ctx, key)
					assert.NoError(t, err)
					continue
				}
				changes := make([]Change, nodes)
				for n := range changes {
					changes[n] = Change{ID: fmt.Sprint("n", n), State: dirty.State{Rev: snap.Version + 1}}
				}
				v, err := s.Commit(ctx, key, snap.Version, changes)
				if err != nil {
					var ce *ConflictError
					assert.ErrorAs(t, err, &ce)
					continue
				}
				if _, dup := maxSeen.LoadOrStore(fmt.Sprint(key, "@", v), true); dup {
					t.Errorf("version %d of %s made twice", v, key)
				}
			}
		})
	}
	wg.Wait()
}

// MemoryStore.DeleteGraph deletes the graph's states and its run records
// at once, as pgstore's does in one transaction: no one sees the states
// deleted and the records still there. It deleted the states, let go of
// their lock, and only then took the records' lock: a run that loaded
// the deleted graph in between, made it again and recorded its start, or
// its end, lost that record to the deletion. Here the records' lock is
// held (read) until DeleteGraph waits for it; the states must then still
// be there, with the records.
func TestMemReviewDeleteGraphIsAtomic(t *testing.T) {
	ctx := t.Context()
	s := NewMemoryStore()
	v, err := s.Commit(ctx, "k", 0, []Change{{ID: "n", State: dirty.State{Rev: 1}}})
	require.NoError(t, err)
	require.NoError(t, s.PutRun(ctx, Record{ID: "r", GraphKey: "k", StartedAt: time.Now()}))

	s.runs.mu.RLock()
	done := make(chan bool)
	go func() {
		ok, err := s.DeleteGraph(ctx, "k")
		assert.NoError(t, err)
		done <- ok
	}()
	for s.runs.mu.TryRLock() { // until DeleteGraph waits to write the records
		s.runs.mu.RUnlock()
		runtime.Gosched()
	}
	snap, err := s.Load(ctx, "k")
	records := len(s.runs.byGraph["k"].ids)
	s.runs.mu.RUnlock()
	require.NoError(t, err)
	assert.Equal(t, 1, records, "the graph's run records, while DeleteGraph waits for them")
	assert.Equal(t, v, snap.Version, "the graph's version, while DeleteGraph waits for its run records")
	assert.True(t, <-done, "DeleteGraph")

	snap, err = s.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, Snapshot{Version: v + 1, States: map[string]dirty.State{}}, snap, "after DeleteGraph")
	runs, err := s.ListRuns(ctx, "k")
	require.NoError(t, err)
	assert.Empty(t, runs, "run records after DeleteGraph")
}

// A run announces its graph's size to a MemoryStore that holds its
// states; the store reserves asset slots only when it holds the run's
// assets too, so that one used for the states alone keeps no asset slots
// it never uses.
func TestMemoryStoreReservesAssetsOnlyForItsOwn(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 120)
	require.NoError(t, err)
	gen := GeneratorFunc(func(context.Context, Request) (Asset, error) {
		return Asset{Data: []byte("x"), Length: graph.SegmentLength}, nil
	})
	reg := Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	made := func(m *MemoryStore) (n int) {
		for k := range m.assets.shards {
			if m.assets.shards[k].index.made() {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		name   string
		assets func(m *MemoryStore) AssetStore
		want   int
	}{
		{"its own assets", func(m *MemoryStore) AssetStore { return m }, assetShards},
		{"assets elsewhere", func(*MemoryStore) AssetStore { return NewMemoryAssets() }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemoryStore()
			e, err := New(Options{Generators: reg, States: m, Assets: tc.assets(m), Runs: m})
			require.NoError(t, err)
			_, err = e.Run(context.Background(), RunRequest{GraphKey: "g", Graph: g})
			require.NoError(t, err)
			assert.Equal(t, tc.want, made(m), "asset shards with an index")
		})
	}
}
