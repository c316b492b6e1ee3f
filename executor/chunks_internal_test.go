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
