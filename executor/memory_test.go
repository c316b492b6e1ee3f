package executor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

func TestMemoryStoresConformance(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		States: func(*testing.T) executor.StateStore { return executor.NewMemoryStates() },
		Assets: func(*testing.T) executor.AssetStore { return executor.NewMemoryAssets() },
		Runs:   func(*testing.T) executor.RunStore { return executor.NewMemoryRuns() },
	})
}

func TestMemoryStoresZeroValueConformance(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		States: func(*testing.T) executor.StateStore { return new(executor.MemoryStates) },
		Assets: func(*testing.T) executor.AssetStore { return new(executor.MemoryAssets) },
		Runs:   func(*testing.T) executor.RunStore { return new(executor.MemoryRuns) },
	})
}

func TestMemoryAssetsRefAndDelete(t *testing.T) {
	ctx := t.Context()
	m := executor.NewMemoryAssets()
	assert.Equal(t, 0, m.Len())
	assert.False(t, m.Delete("mem:nothing"), "Delete of an unknown ref")

	ref, err := m.Put(ctx, "g/script/abc", executor.Asset{Data: []byte("x"), Hash: "abc"})
	require.NoError(t, err)
	assert.Equal(t, "mem:g/script/abc", ref)
	_, err = m.Put(ctx, "g/script/def", executor.Asset{Hash: "def"})
	require.NoError(t, err)
	assert.Equal(t, 2, m.Len())

	// Put under the same key replaces.
	ref2, err := m.Put(ctx, "g/script/abc", executor.Asset{Data: []byte("y"), Hash: "abc"})
	require.NoError(t, err)
	assert.Equal(t, ref, ref2)
	assert.Equal(t, 2, m.Len())

	assert.True(t, m.Delete(ref), "Delete of a stored ref")
	assert.False(t, m.Delete(ref), "second Delete of the same ref")
	assert.Equal(t, 1, m.Len())
	ok, err := m.Exists(ctx, ref)
	require.NoError(t, err)
	assert.False(t, ok, "Exists after Delete")
	_, err = m.Get(ctx, ref)
	require.ErrorIs(t, err, executor.ErrNotFound)
	assert.Equal(t, `get asset "mem:g/script/abc": executor: not found`, err.Error())
}

func TestMemoryAssetsGetCopiesMeta(t *testing.T) {
	ctx := t.Context()
	m := executor.NewMemoryAssets()
	ref, err := m.Put(ctx, "k", executor.Asset{Data: []byte("data"), Meta: map[string]string{"a": "1"}})
	require.NoError(t, err)
	a, err := m.Get(ctx, ref)
	require.NoError(t, err)
	a.Meta["a"] = "changed"
	a, err = m.Get(ctx, ref)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "1"}, a.Meta)

	// A nil Meta stays nil: no allocation on the hot path.
	ref, err = m.Put(ctx, "k2", executor.Asset{Data: []byte("data")})
	require.NoError(t, err)
	a, err = m.Get(ctx, ref)
	require.NoError(t, err)
	assert.Nil(t, a.Meta)
}

func TestMemoryStatesConflictError(t *testing.T) {
	ctx := t.Context()
	m := executor.NewMemoryStates()
	v, err := m.Commit(ctx, "lecture-1", 0, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), v)
	_, err = m.Commit(ctx, "lecture-1", 0, nil)
	require.ErrorIs(t, err, executor.ErrConflict)
	assert.Equal(t, `executor: version conflict: graph "lecture-1" is at version 1, not 0`, err.Error())
}

func TestMemoryStatesCommitKeepsCallerSlice(t *testing.T) {
	ctx := t.Context()
	m := executor.NewMemoryStates()
	changes := []executor.Change{{ID: "script", State: dirty.State{Status: dirty.StatusClean, Rev: 1}}}
	_, err := m.Commit(ctx, "g", 0, changes)
	require.NoError(t, err)
	changes[0].State.Rev = 99
	snap, err := m.Load(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, int64(1), snap.States["script"].Rev, "a commit's states changed with the caller's slice")
}

func TestMemoryStatesLoadEmptyMapIsUsable(t *testing.T) {
	snap, err := executor.NewMemoryStates().Load(t.Context(), "new")
	require.NoError(t, err)
	require.NotNil(t, snap.States, "the caller may add to the snapshot of a new graph")
	snap.States["script"] = dirty.State{}
}

func TestMemoryRunsListEmptyIsNotNil(t *testing.T) {
	rs, err := executor.NewMemoryRuns().ListRuns(t.Context(), "none")
	require.NoError(t, err)
	assert.NotNil(t, rs, "an empty list, so that it encodes as [] in JSON")
	assert.Empty(t, rs)
}

// benchNodes is about the node count of the 360-segment lecture.
const benchNodes = 1500

func BenchmarkMemoryStatesCommit(b *testing.B) {
	ctx := context.Background()
	m := executor.NewMemoryStates()
	ids := make([]string, benchNodes)
	for i := range ids {
		ids[i] = fmt.Sprintf("asset:image:segment[%d]", i)
	}
	st := dirty.State{Status: dirty.StatusClean, Rev: 1, OutputHash: "h", AssetRef: "mem:x", UpdatedAt: time.Now()}
	changes := make([]executor.Change, 1)
	var v int64
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		changes[0] = executor.Change{ID: ids[i%len(ids)], State: st}
		var err error
		if v, err = m.Commit(ctx, "lecture", v, changes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryStatesLoad(b *testing.B) {
	ctx := context.Background()
	m := executor.NewMemoryStates()
	changes := make([]executor.Change, benchNodes)
	for i := range changes {
		changes[i] = executor.Change{ID: fmt.Sprintf("asset:image:segment[%d]", i), State: dirty.State{Status: dirty.StatusClean}}
	}
	if _, err := m.Commit(ctx, "lecture", 0, changes); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Load(ctx, "lecture"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryAssetsPut(b *testing.B) {
	ctx := context.Background()
	m := executor.NewMemoryAssets()
	keys := make([]string, benchNodes)
	for i := range keys {
		keys[i] = fmt.Sprintf("lecture/asset:image:segment[%d]/h", i)
	}
	a := executor.Asset{Data: make([]byte, 64), Hash: "h"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := m.Put(ctx, keys[i%len(keys)], a); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryAssetsGet(b *testing.B) {
	ctx := context.Background()
	m := executor.NewMemoryAssets()
	ref, err := m.Put(ctx, "lecture/script/h", executor.Asset{Data: make([]byte, 64), Hash: "h"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Get(ctx, ref); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleMemoryStates() {
	ctx := context.Background()
	states := executor.NewMemoryStates()

	snap, _ := states.Load(ctx, "lecture-1")
	v, _ := states.Commit(ctx, "lecture-1", snap.Version, []executor.Change{
		{ID: "script", State: dirty.State{Status: dirty.StatusClean, Rev: 1}},
	})
	fmt.Println("version", v)

	// A writer that loaded before that commit loses the compare-and-swap.
	_, err := states.Commit(ctx, "lecture-1", snap.Version, nil)
	fmt.Println(err)
	// Output:
	// version 1
	// executor: version conflict: graph "lecture-1" is at version 1, not 0
}

// Missing gives each missing reference once, in the order of refs, both
// while it compares a missing reference with the few found before it
// and after it made a set of them (past 16), and finds the references
// that are there, repeated or not.
func TestMemoryAssetsMissingRepeats(t *testing.T) {
	ctx := t.Context()
	m := executor.NewMemoryAssets()
	there, err := m.Put(ctx, "g/n/h", executor.Asset{Data: []byte("x")})
	require.NoError(t, err)
	for _, n := range []int{1, 3, 16, 17, 40} {
		var refs, want []string
		for i := range n {
			ref := fmt.Sprint("mem:g/gone", i)
			refs = append(refs, there, ref, ref)
			want = append(want, ref)
		}
		refs = append(refs, want...)
		got, err := m.Missing(ctx, refs)
		require.NoError(t, err)
		assert.Equal(t, want, got, "%d missing, each three times", n)
	}
}

// Missing of references that are all there allocates nothing: it made a
// set of every reference, 106 KB for a lecture's 1,083 at each run of a
// graph with states.
func TestMemoryAssetsMissingAllThereAllocatesNothing(t *testing.T) {
	ctx := t.Context()
	m := executor.NewMemoryAssets()
	var refs []string
	for i := range 100 {
		ref, err := m.Put(ctx, fmt.Sprint("g/n", i, "/h"), executor.Asset{Data: []byte("x")})
		require.NoError(t, err)
		refs = append(refs, ref)
	}
	allocs := testing.AllocsPerRun(10, func() {
		if missing, err := m.Missing(ctx, refs); err != nil || len(missing) > 0 {
			t.Fatal(missing, err)
		}
	})
	assert.Zero(t, allocs)
}
