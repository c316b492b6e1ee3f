package executor_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// These tests check what a host that embeds one executor for weeks keeps:
// the memory held is bounded by what is live (graphs, their states and
// assets, the records not pruned), never by the runs that came and went.
// They measure the heap after a collection, against bounds proportional
// to the live objects, never times.

// heapNow returns the bytes of live heap objects, after a collection.
func heapNow() int64 {
	runtime.GC()
	runtime.GC() // the first may leave finalizers' objects for the second
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// A MemoryStates holding many small graphs (the states of short
// lectures) costs memory in proportion to their states. Before, each
// graph's states sat in a chunk of 128 slots whatever its size: about
// 18 KB for a 30-second lecture's 12 states, 1.5 KB a state.
func TestMemoryStatesCostPerState(t *testing.T) {
	const graphs, nodes = 2000, 12
	ids := make([]string, nodes)
	for i := range ids {
		ids[i] = fmt.Sprintf("asset:image:segment[%d]", i)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		store func() executor.StateStore
	}{
		{"MemoryStates", func() executor.StateStore { return executor.NewMemoryStates() }},
		{"MemoryStore", func() executor.StateStore { return executor.NewMemoryStore() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := heapNow()
			s := tc.store()
			for g := range graphs {
				changes := make([]executor.Change, nodes)
				for i, id := range ids {
					changes[i] = executor.Change{ID: id, State: dirty.State{Status: dirty.StatusClean, Rev: 1,
						InputHash: "in", OutputHash: "out", AssetRef: "mem:ref"}}
				}
				_, err := s.Commit(ctx, "lecture-"+strconv.Itoa(g), 0, changes)
				require.NoError(t, err)
			}
			perState := (heapNow() - before) / (graphs * nodes)
			runtime.KeepAlive(s)
			t.Logf("%d bytes a state", perState)
			// A state's slot is 144 bytes, its index entry a few dozen,
			// and a graph's map and headers shared by its 12 states.
			assert.Less(t, perState, int64(400), "bytes of heap a stored state")
		})
	}
}
