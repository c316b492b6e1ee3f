package executor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
)

// room returns the elements that the chunks of s have room for.
func room[T any](s *chunks[T]) int {
	n := 0
	for _, c := range s.c {
		n += cap(c)
	}
	return n
}

// shardWatch drives one assetShard with hashes given by hand, against a
// map of what it should hold, and counts its compactions (a compaction is
// the one change that lowers its slot count) and the slots they walked.
type shardWatch struct {
	t     *testing.T
	s     assetShard
	want  map[string]memAsset // by reference
	hash  map[string]uint64
	refs  []string // the keys of want, for picking one
	ops   int      // puts and removes
	rems  int      // removes
	packs int      // compactions
	moved int      // slots that compactions walked
}

func newShardWatch(t *testing.T) *shardWatch {
	return &shardWatch{t: t, want: map[string]memAsset{}, hash: map[string]uint64{}}
}

// put stores the asset ref with payload v, as MemoryAssets.put does.
func (w *shardWatch) put(ref string, h uint64, v string) {
	w.ops++
	if _, ok := w.want[ref]; !ok {
		w.refs = append(w.refs, ref)
		w.hash[ref] = h
	}
	e := memAsset{ref: ref, at: int64(w.ops), a: Asset{Hash: v, Data: []byte(v)}}
	w.want[ref] = e
	w.s.put(w.hash[ref], e)
}

// remove deletes the k-th reference of refs, as MemoryAssets.Delete does.
func (w *shardWatch) remove(k int) {
	w.ops++
	w.rems++
	ref := w.refs[k]
	w.refs[k] = w.refs[len(w.refs)-1]
	w.refs = w.refs[:len(w.refs)-1]
	delete(w.want, ref)
	i, ok := w.s.find(w.hash[ref], ref)
	require.True(w.t, ok, "find %q before its removal", ref)
	slots := w.s.assets.len()
	w.s.remove(w.hash[ref], i)
	w.s.shrink()
	if w.s.assets.len() < slots {
		w.packs++
		w.moved += int(slots)
	}
}

// check fails the test unless the shard holds exactly the assets of
// want, each findable, and its free list the other slots.
func (w *shardWatch) check(step string) {
	w.t.Helper()
	s := &w.s
	require.Equal(w.t, len(w.want), s.index.len(), "%s: index length", step)
	for ref, e := range w.want {
		i, ok := s.find(w.hash[ref], ref)
		require.True(w.t, ok, "%s: find %q", step, ref)
		if got := s.assets.at(i); got.ref != e.ref || got.at != e.at || got.a.Hash != e.a.Hash || string(got.a.Data) != e.a.Hash {
			require.Empty(w.t, cmp.Diff(e, *got, cmp.AllowUnexported(memAsset{})), "%s: the asset of %q", step, ref)
		}
	}
	require.Equal(w.t, int(s.assets.len()), len(w.want)+len(s.free), "%s: slots: the assets and the free ones", step)
	for _, i := range s.free {
		require.Empty(w.t, s.assets.at(i).ref, "%s: free slot %d holds an asset", step, i)
	}
}

// A shard compacts itself as its assets go, and keeps every asset that
// is left, findable under its reference, with its data and time: random
// puts (new and again), and removes, in phases that grow the shard and
// shrink it, with hashes crowded into a few homes and tags (runs of
// entries are long, wrap around the table's end, and share tags), checked
// against a map of the same assets after every step.
func TestAssetShardShrinkAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 4 {
		w := newShardWatch(t)
		checked := 0
		for phase := range 8 {
			target := rng.IntN(2500)
			if phase%2 == 1 {
				target = rng.IntN(200)
			}
			for step := 0; len(w.want) != target; step++ {
				switch r := rng.IntN(10); {
				case len(w.refs) > 0 && (len(w.want) > target && r < 7 || len(w.want) < target && r < 2):
					w.remove(rng.IntN(len(w.refs)))
				case r < 9 || len(w.refs) == 0:
					ref := fmt.Sprint("r", round, "-", phase, "-", step)
					h := uint64(rng.IntN(4))<<62 | uint64(rng.IntN(3))<<32 | uint64(rng.Uint32())
					if rng.IntN(2) == 0 {
						h |= 0xffff << 40
					}
					w.put(ref, h, ref)
				default: // the same reference again, with other data
					w.put(w.refs[rng.IntN(len(w.refs))], 0, fmt.Sprint("again-", round, "-", phase, "-", step))
				}
				// At each compaction, and every 250th step.
				if packs := w.packs; step%250 == 0 || packs != checked {
					w.check(fmt.Sprintf("round %d, phase %d, step %d", round, phase, step))
					checked = packs
				}
			}
			w.check(fmt.Sprintf("round %d, end of phase %d", round, phase))
		}
		assert.Positive(t, w.packs, "round %d: compactions", round)
		// Amortised O(1): each compaction walks its slots, and follows
		// three quarters of them removed.
		assert.LessOrEqual(t, w.moved, 4*w.rems/3+1, "round %d: slots walked by compactions, for %d removes", round, w.rems)
	}
}

// A shard whose size goes up and down around the point where it compacts
// compacts once, not at every turn; one whose size swings widely
// compacts twice a swing down (at a quarter of 4,096, then at a quarter
// of what was left), the walks of its compactions amortised over the
// removes.
func TestAssetShardShrinkHysteresis(t *testing.T) {
	for _, tc := range []struct {
		name             string
		first, high, low int // filled to first, then swings between low and high
		turns            int
		want             int // compactions
	}{
		{"around the quarter, by one", 4096, 1025, 1023, 2000, 1},
		{"around the quarter, by a few", 4096, 1030, 1020, 500, 1},
		{"just above it: never", 4096, 1100, 1024, 200, 0},
		{"wide swings: twice each", 4096, 4096, 100, 10, 20},
		{"under minShrink: never", minShrink - 1, minShrink - 1, 1, 50, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newShardWatch(t)
			next := 0
			fill := func(n int) {
				for len(w.want) < n {
					ref := fmt.Sprint("r", next)
					next++
					w.put(ref, keyHash(ref), ref)
				}
			}
			fill(tc.first)
			for range tc.turns {
				for len(w.want) > tc.low {
					w.remove(len(w.refs) - 1)
				}
				fill(tc.high)
			}
			w.check("after the turns")
			assert.Equal(t, tc.want, w.packs, "compactions in %d turns", tc.turns)
			assert.LessOrEqual(t, w.moved, 4*w.rems/3+1, "slots walked by compactions, for %d removes", w.rems)
		})
	}
}

// A MemoryAssets gives memory back once most of its assets are gone: the
// chunks, the index and the free list of each shard shrink to what is
// left (a shard left empty is made empty, as a new one), whether the
// assets go by Delete or by a MemoryStore's PruneAssets, and what is left
// reads as it was. Before, they kept the room of the peak for good.
func TestMemoryAssetsShrink(t *testing.T) {
	const n, keep = 20_000, 300
	for _, tc := range []struct {
		name   string
		remove func(t *testing.T, s *MemoryStore, refs []string) // all but the first keep
	}{
		{"Delete", func(t *testing.T, s *MemoryStore, refs []string) {
			for _, ref := range refs[keep:] {
				require.True(t, s.assets.Delete(ref))
			}
		}},
		{"PruneAssets", func(t *testing.T, s *MemoryStore, refs []string) {
			changes := make([]Change, keep)
			for i := range changes {
				changes[i] = Change{ID: fmt.Sprint("n", i), State: stateOf(refs[i])}
			}
			_, err := s.Commit(t.Context(), "g", 0, changes)
			require.NoError(t, err)
			pruned, err := s.PruneAssets(t.Context(), 0)
			require.NoError(t, err)
			require.EqualValues(t, n-keep, pruned)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := NewMemoryStore()
			refs := make([]string, n)
			for i := range refs {
				var err error
				refs[i], err = s.Put(ctx, fmt.Sprint("g/n", i, "/h"), Asset{Data: []byte(fmt.Sprint(i)), Hash: "h"})
				require.NoError(t, err)
			}
			peakRoom, peakIndex := shardRooms(s)
			require.GreaterOrEqual(t, peakRoom, n)

			tc.remove(t, s, refs)
			gotRoom, gotIndex := shardRooms(s)
			t.Logf("room for assets: %d at the peak, %d after; index entries: %d, %d", peakRoom, gotRoom, peakIndex, gotIndex)
			assert.Less(t, gotRoom, peakRoom/10, "room for assets, after")
			assert.Less(t, gotIndex, peakIndex/10, "index entries, after")
			for k := range s.assets.shards {
				// Each shard holds about keep/8 assets: it compacted until
				// it had fewer than minShrink slots.
				sh := &s.assets.shards[k]
				slots, live := int(sh.assets.len()), sh.index.len()
				assert.True(t, slots < minShrink || live >= slots/4, "shard %d: %d assets in %d slots", k, live, slots)
				assert.LessOrEqual(t, room(&sh.assets), max(slots, minShrink), "shard %d: room for assets", k)
			}
			for i, ref := range refs {
				a, err := s.Get(ctx, ref)
				if i >= keep {
					require.ErrorIs(t, err, ErrNotFound, "asset %d", i)
					continue
				}
				require.NoError(t, err, "asset %d", i)
				require.Equal(t, fmt.Sprint(i), string(a.Data), "asset %d", i)
			}

		})
	}

	// A prune that deletes all the assets of a shard of minShrink slots
	// or more leaves it empty, as a new one, which takes assets again.
	t.Run("all pruned", func(t *testing.T) {
		ctx := t.Context()
		s := NewMemoryStore()
		for i := range n {
			_, err := s.Put(ctx, fmt.Sprint("g/n", i, "/h"), Asset{Data: []byte("x")})
			require.NoError(t, err)
		}
		pruned, err := s.PruneAssets(ctx, 0)
		require.NoError(t, err)
		require.EqualValues(t, n, pruned)
		for k := range s.assets.shards {
			sh := &s.assets.shards[k]
			assert.False(t, sh.index.made(), "shard %d: index", k)
			assert.Nil(t, sh.assets.c, "shard %d: chunks", k)
			assert.Nil(t, sh.free, "shard %d: free slots", k)
		}
		ref, err := s.Put(ctx, "g/again/h", Asset{Data: []byte("again")})
		require.NoError(t, err)
		a, err := s.Get(ctx, ref)
		require.NoError(t, err)
		assert.Equal(t, "again", string(a.Data))
	})
}

// stateOf returns a clean state that refers to ref.
func stateOf(ref string) dirty.State {
	return dirty.State{Status: dirty.StatusClean, OutputHash: "h", AssetRef: ref, UpdatedAt: time.Now()}
}

// shardRooms returns the room for assets, and the index entries, of all
// of s's shards.
func shardRooms(s *MemoryStore) (slots, entries int) {
	for k := range s.assets.shards {
		sh := &s.assets.shards[k]
		sh.mu.Lock()
		slots += room(&sh.assets)
		entries += len(sh.index.e)
		sh.mu.Unlock()
	}
	return slots, entries
}

// A shard is not compacted under a prune's walk, which would move the
// slots it has yet to see to ones it has seen: here a Delete between the
// prune's first two batches of a shard (from its context check) finds
// the shard under a quarter full, after the first batch deleted 1,024
// of its 1,200 assets. Compacted then, the 175 left would move to
// slots 0 to 174 and the prune, going on from slot 1,024, would miss
// them. The shard is compacted once the prune is done.
func TestMemoryAssetsShrinkWaitsForWalks(t *testing.T) {
	ctx := t.Context()
	s := NewMemoryStore()
	sh := &s.assets.shards[0]
	n := 0
	for ; sh.assets.len() < 1200; n++ { // the others get about as many
		_, err := s.Put(ctx, fmt.Sprint("g/n", n, "/h"), Asset{Data: []byte("x")})
		require.NoError(t, err)
	}
	deleted := ""
	outer := &hookContext{Context: ctx, hook: func() {
		sh.mu.Lock()
		// Between batches of shard 0, once under a quarter full.
		if deleted != "" || sh.walkers == 0 || sh.index.len() >= int(sh.assets.len())/4 {
			sh.mu.Unlock()
			return
		}
		for i := int32(pruneBatch); i < sh.assets.len() && deleted == ""; i++ {
			deleted = sh.assets.at(i).ref
		}
		sh.mu.Unlock()
		require.True(t, s.assets.Delete(deleted))
	}}
	pruned, err := s.PruneAssets(outer, 0)
	require.NoError(t, err)
	require.NotEmpty(t, deleted)
	assert.EqualValues(t, n-1, pruned, "assets the prune deleted (one was deleted under it)")
	assert.Zero(t, s.assets.Len(), "assets left")
	assert.Zero(t, sh.walkers, "walkers of shard 0")
	assert.False(t, sh.index.made(), "shard 0 compacted, once the prune was done")
}

// hookContext calls hook at each Err, as a prune checks its context
// before each batch.
type hookContext struct {
	context.Context
	hook func()
}

func (c *hookContext) Err() error {
	c.hook()
	return c.Context.Err()
}

// A MemoryRuns whose records are pruned or deleted gives back the room
// its maps grew to: the maps that lost three quarters of their peak are
// made anew, and the live heap falls by most of what the records took.
// Before, a Go map kept its room for good. What is left reads as it was.
func TestMemoryRunsShrink(t *testing.T) {
	ctx := context.Background()
	const n, graphs = 40_000, 4
	old, now := time.Now().Add(-48*time.Hour), time.Now()
	before := liveHeap()
	m := NewMemoryRuns()
	for i := range n {
		r := Record{ID: fmt.Sprint("run-", i), GraphKey: fmt.Sprint("g", i%graphs), StartedAt: old}
		if i < graphs { // one recent record a graph is kept
			r.StartedAt = now
		}
		require.NoError(t, m.PutRun(ctx, r))
	}
	peak := liveHeap()
	runsMap := mapID(m.runs)

	pruned, err := m.PruneRuns(ctx, time.Hour)
	require.NoError(t, err)
	require.EqualValues(t, n-graphs, pruned)
	after := liveHeap()
	runtime.KeepAlive(m)
	assert.NotEqual(t, runsMap, mapID(m.runs), "the map of records was made anew")
	assert.Equal(t, graphs, m.runsPeak, "the peak of the records' map, after it was made anew")
	for key, g := range m.byGraph {
		// Made anew down to a small map, which keeps its room.
		assert.Less(t, g.peak, minShrunk, "graph %s: the peak of its IDs", key)
	}
	t.Logf("live heap: %d KB before, %d KB with %d records, %d KB after the prune", before>>10, peak>>10, n, after>>10)
	assert.Less(t, int64(after)-int64(before), int64(peak-before)/10, "live heap after the prune, over what it was before the records")
	for i := range graphs {
		recs, err := m.ListRuns(ctx, fmt.Sprint("g", i))
		require.NoError(t, err)
		require.Len(t, recs, 1)
		assert.Equal(t, fmt.Sprint("run-", i), recs[0].ID)
	}
}

// mapID returns the address of m's header, which stays while m grows:
// a new one is a new map. (A uintptr, so as not to keep the map alive.)
func mapID[K comparable, V any](m map[K]V) uintptr {
	return uintptr(reflect.ValueOf(m).UnsafePointer())
}

// liveHeap returns the bytes of the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// shrunk makes a map anew only once it holds under a quarter of its
// peak, and not again until it has lost three quarters of its new peak:
// a map whose size goes up and down around the point is copied once.
func TestShrunk(t *testing.T) {
	for _, tc := range []struct {
		name             string
		first, high, low int // filled to first, then swings between low and high
		turns            int
		want             int // copies
	}{
		{"around the quarter, by one", 4096, 1025, 1023, 1000, 1},
		{"just above the quarter", 4096, 1024, 1024, 10, 0},
		{"wide swings: twice each", 4096, 4096, 10, 20, 40},
		{"a small map: never", minShrunk - 1, minShrunk - 1, 0, 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, peak, copies, next := map[int]int{}, 0, 0, 0
			fill := func(n int) {
				for len(m) < n {
					m[next] = -next
					next++
					grew(&peak, len(m))
				}
			}
			fill(tc.first)
			for range tc.turns {
				for k := range m {
					if len(m) <= tc.low {
						break
					}
					delete(m, k)
					c := shrunk(m, &peak)
					if mapID(c) != mapID(m) {
						copies++
						require.Equal(t, len(m), len(c), "a copy's length")
						for k, v := range m {
							require.Equal(t, v, c[k], "a copy's entry %d", k)
						}
					}
					m = c
				}
				fill(tc.high)
			}
			assert.Equal(t, tc.want, copies, "copies in %d turns", tc.turns)
		})
	}
}
