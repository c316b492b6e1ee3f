package executor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The first chunk grows as it fills up to the chunk size, and no further:
// grown by append, it took append's next size (159 or 212 slots of 128
// states instead of 128), so that a graph whose states outgrew its first
// commit's size (an edit before the first run, a lecture made longer)
// held more than the whole chunk it was meant to save.
func TestChunksFirstGrowsUpToChunkLen(t *testing.T) {
	for _, reserve := range []int{0, 1, 13, 100, chunkLen, 1000} {
		var s chunks[memState]
		s.reserve(reserve)
		pushes := (max(3*chunkLen, reserve) + chunkMask) &^ chunkMask // every chunk full
		for i := range pushes {
			require.Equal(t, int32(i), s.push(memState{id: string(rune('a' + i%26))}))
		}
		for i := range s.len() {
			require.Equal(t, string(rune('a'+i%26)), s.at(i).id, "reserve(%d): element %d", reserve, i)
		}
		for k, c := range s.c {
			assert.Equal(t, chunkLen, cap(c), "reserve(%d): room of chunk %d", reserve, k)
		}
	}
}

// A set reserved at its size is made in one allocation (and one for the
// list of its chunks), and pushes up to that size allocate nothing: the
// states of a new graph of 1,083 nodes took nine chunks, and each shard
// of a new MemoryStore's assets a chunk or two, grown as they filled.
func TestChunksReserveAllocatesOnce(t *testing.T) {
	for _, n := range []int{1, 13, chunkLen, chunkLen + 1, 1083} {
		allocs := testing.AllocsPerRun(10, func() {
			var s chunks[memState]
			s.reserve(n)
			for range n {
				s.push(memState{})
			}
		})
		assert.LessOrEqual(t, allocs, 2.0, "reserve(%d), then %d pushes", n, n)
	}
}

// A MemoryStore's first run announces its size, and the assets' shards
// are made that size: the run's Puts allocate the reference and the copy
// of the data (one allocation for both, for small data), and little more
// (a shard that gets more than its share grows), where the shards grew
// their maps and chunks as they filled.
func TestMemoryStoreReserveMakesRoomForAssets(t *testing.T) {
	ctx := context.Background()
	const n = 800
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("g/node", i, "/h")
	}
	data := []byte("x")
	stores := make([]*MemoryStore, 11)
	for i := range stores {
		stores[i] = NewMemoryStore()
		stores[i].reserve("g", n+1, stores[i])
	}
	next := 0
	allocs := testing.AllocsPerRun(10, func() {
		m := stores[next]
		next++
		for _, k := range keys {
			if _, err := m.Put(ctx, k, Asset{Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	})
	assert.LessOrEqual(t, allocs, 1.0*n+4*assetShards, "allocations of %d Puts", n)
	assert.Equal(t, n, stores[0].assets.Len())
	for _, k := range keys {
		_, err := stores[0].Get(ctx, memRefPrefix+k)
		require.NoError(t, err)
	}
}

// A slotIndex finds keys by their hash and checks the key in the slot,
// so keys with one hash must all be found, whichever is added or removed
// first. Real hashes of 64 bits never collide in a test, so the keys here
// are given one hash by hand.
func TestSlotIndexSameHash(t *testing.T) {
	var s assetShard
	s.index.reset(0)
	const h = 42 << 50
	slots := map[string]int32{}
	add := func(ref string) {
		i := s.assets.push(memAsset{ref: ref})
		s.index.add(h, i)
		slots[ref] = i
	}
	remove := func(ref string) {
		s.remove(h, slots[ref])
		delete(slots, ref)
	}
	check := func(step string, gone ...string) {
		t.Helper()
		for ref, want := range slots {
			i, ok := s.find(h, ref)
			if assert.True(t, ok, "%s: find %q", step, ref) {
				assert.Equal(t, want, i, "%s: slot of %q", step, ref)
			}
		}
		for _, ref := range gone {
			_, ok := s.find(h, ref)
			assert.False(t, ok, "%s: find %q, removed", step, ref)
		}
		assert.Equal(t, len(slots), s.index.len(), "%s: len", step)
	}
	add("a")
	add("b")
	add("c")
	check("three keys with one hash")
	remove("a")
	check("the first removed", "a")
	add("d")
	check("one more added", "a")
	remove("c")
	check("a key in the middle removed", "a", "c")
	remove("d")
	remove("b")
	check("all removed", "a", "b", "c", "d")
	add("e")
	s.index.remove(h, 99) // no entry: returns, and changes nothing
	check("an absent entry removed", "a", "b", "c", "d")

	var g memGraph
	g.index.reset(0)
	for _, id := range []string{"x", "y"} {
		g.index.add(h, g.states.push(memState{id: id}))
	}
	for want, id := range []string{"x", "y"} {
		i, ok := g.find(h, id)
		assert.True(t, ok, "graph: find %q", id)
		assert.Equal(t, int32(want), i, "graph: slot of %q", id)
	}
}

// A slotIndex's removals move entries back towards their homes; random
// adds and removes, with hashes crowded into a few homes so that runs of
// entries are long and wrap around the table's end, must keep every key
// findable, as a map of the same keys says.
func TestSlotIndexAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var s assetShard
		s.index.reset(rng.IntN(20))
		hashes := map[string]uint64{}
		want := map[string]int32{}
		var keys []string
		for step := range 2000 {
			if len(keys) > 0 && rng.IntN(3) == 0 {
				k := rng.IntN(len(keys))
				ref := keys[k]
				keys[k] = keys[len(keys)-1]
				keys = keys[:len(keys)-1]
				s.remove(hashes[ref], want[ref])
				delete(want, ref)
				continue
			}
			ref := fmt.Sprint("r", round, "-", step)
			// Homes at the table's start and end, and a few tags.
			h := uint64(rng.IntN(4))<<62 | uint64(rng.IntN(3))<<32 | uint64(rng.Uint32())
			if rng.IntN(2) == 0 {
				h |= 0xffff << 40
			}
			i := s.assets.push(memAsset{ref: ref})
			s.index.add(h, i)
			hashes[ref], want[ref] = h, i
			keys = append(keys, ref)
		}
		require.Equal(t, len(want), s.index.len(), "round %d: len", round)
		for ref, i := range want {
			got, ok := s.find(hashes[ref], ref)
			require.True(t, ok, "round %d: find %q", round, ref)
			require.Equal(t, i, got, "round %d: slot of %q", round, ref)
		}
	}
}
