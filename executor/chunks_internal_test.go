package executor

import (
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
		for i := range 3 * chunkLen {
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

// A slotIndex finds keys by their hash, so two keys with one hash must
// both be found, whichever is added, removed or added again first: the
// hash of a key a lookup gets is checked against the key in the slot,
// and the other key is in clash. Real hashes of 64 bits never collide
// in a test, so the keys here are given one hash by hand.
func TestSlotIndexClashes(t *testing.T) {
	var s assetShard
	s.index.reset(0)
	const h = 42
	slots := map[string]int32{}
	add := func(ref string) {
		i := s.assets.push(memAsset{ref: ref})
		s.index.add(h, ref, i)
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
	check("a clashing key removed", "a", "c")
	remove("d")
	remove("b")
	check("all removed", "a", "b", "c", "d")

	var g memGraph
	g.index.reset(0)
	for _, id := range []string{"x", "y"} {
		g.index.add(h, id, g.states.push(memState{id: id}))
	}
	for want, id := range []string{"x", "y"} {
		i, ok := g.find(h, id)
		assert.True(t, ok, "graph: find %q", id)
		assert.Equal(t, int32(want), i, "graph: slot of %q", id)
	}
}
