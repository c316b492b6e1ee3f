package executor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
)

// A deleted graph leaves a tombstone of a hash and a version, whatever
// its key's length, and the map of graphs gives back the room of the
// deleted ones: a tombstone held the key, its memGraph and its map entry,
// about 200 bytes with a 36-byte key, for good.
func TestMemoryStatesTombstonesAreSmall(t *testing.T) {
	ctx := t.Context()
	const n = 20_000
	key := func(i int) string { return fmt.Sprintf("lecture-%08d-0000-0000-0000-000000000000", i) } // 36 bytes
	st := dirty.State{Status: dirty.StatusClean, OutputHash: "h", AssetRef: "mem:x"}
	before := liveHeap()
	m := NewMemoryStates()
	for i := range n {
		_, err := m.Commit(ctx, key(i), 0, []Change{{ID: "script", State: st}})
		require.NoError(t, err)
	}
	for i := range n {
		ok, err := m.DeleteGraph(ctx, key(i))
		require.NoError(t, err)
		require.True(t, ok)
	}
	after := liveHeap()
	runtime.KeepAlive(m)
	per := float64(int64(after)-int64(before)) / n
	t.Logf("live heap: %d KB before, %d KB after %d graphs deleted: %.1f bytes a tombstone", before>>10, after>>10, n, per)
	assert.Less(t, per, 48.0, "bytes a tombstone")
	assert.Empty(t, m.graphs, "graphs")
	assert.Len(t, m.tombs, n, "tombstones")
	assert.Less(t, m.graphsPeak, minShrunk, "the peak of the map of graphs, made anew")
	for i := range n {
		snap, err := m.Load(ctx, key(i))
		require.NoError(t, err)
		require.Equal(t, Snapshot{Version: 2, States: map[string]dirty.State{}}, snap, "Load(%q)", key(i))
	}
}

// The guarantee that tombstones keep: a graph's version never goes back,
// and a commit at a version loaded before a deletion conflicts, however
// far the graph made again got. Random commits (at the version loaded,
// as the executor's), deletions, loads and stale commits over a few keys,
// checked against what each key was seen at.
func TestMemoryStatesTombstonesKeepVersions(t *testing.T) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(5, 6))
	m := NewMemoryStates()
	const keys = 12
	seen := make([]int64, keys)    // the highest version seen of each key
	stale := make([][]int64, keys) // versions loaded before a deletion of each key
	deleted := map[string]bool{}
	st := dirty.State{Status: dirty.StatusClean, Rev: 1}
	for step := range 5000 {
		k := rng.IntN(keys)
		key := fmt.Sprint("g", k)
		snap, err := m.Load(ctx, key)
		require.NoError(t, err)
		require.GreaterOrEqual(t, snap.Version, seen[k], "step %d: Load(%q): the version went back", step, key)
		seen[k] = snap.Version
		switch r := rng.IntN(10); {
		case r < 5:
			v, err := m.Commit(ctx, key, snap.Version, []Change{{ID: fmt.Sprint("n", rng.IntN(5)), State: st}})
			require.NoError(t, err, "step %d: commit to %q at the version loaded", step, key)
			seen[k] = v
		case r < 7:
			stale[k] = append(stale[k], snap.Version)
			ok, err := m.DeleteGraph(ctx, key)
			require.NoError(t, err)
			deleted[key] = true
			if ok {
				assert.Positive(t, snap.Version, "step %d: DeleteGraph(%q) found states at version 0", step, key)
			}
			after, err := m.Load(ctx, key)
			require.NoError(t, err)
			require.Empty(t, after.States, "step %d: Load(%q) after DeleteGraph", step, key)
			if snap.Version > 0 {
				require.Greater(t, after.Version, snap.Version, "step %d: Load(%q) after DeleteGraph: the version moved on", step, key)
			}
		default:
			if len(stale[k]) == 0 {
				continue
			}
			v := stale[k][rng.IntN(len(stale[k]))]
			if v == 0 && snap.Version == 0 {
				continue // deleted before its first commit, and never made: no tombstone
			}
			_, err := m.Commit(ctx, key, v, []Change{{ID: "stale", State: st}})
			var ce *ConflictError
			require.True(t, errors.As(err, &ce), "step %d: commit to %q at version %d, loaded before a deletion: %v", step, key, v, err)
			require.Equal(t, snap.Version, ce.Actual, "step %d: the conflict's version", step)
		}
	}
	assert.LessOrEqual(t, len(m.tombs), len(deleted), "tombstones: one a key deleted at most")
	for key, g := range m.graphs {
		assert.True(t, g.index.made(), "graph %q in graphs: made", key)
	}
}
