package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// Executor.Forget on Postgres: the dropped nodes of a lecture made
// shorter are stored as missing, without an output, and PruneAssets then
// deletes their assets, and only theirs.
func TestForgetDroppedNodes(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	e := newExecutor(t, s, newProvider().registry())
	long, short := build(t, 60), build(t, 30)
	_, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: long})
	require.NoError(t, err)
	_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: short})
	require.NoError(t, err)
	before, err := s.Load(ctx, "lecture")
	require.NoError(t, err)

	n, err := e.Forget(ctx, short, "lecture")
	require.NoError(t, err)
	assert.Equal(t, 9, n, "3 segments of 3 nodes")
	after, err := s.Load(ctx, "lecture")
	require.NoError(t, err)
	pruned, err := s.PruneAssets(ctx, 0)
	require.NoError(t, err)
	// Theirs, and the 60 s lecture's timeline, which the 30 s one's
	// replaced.
	assert.Equal(t, int64(10), pruned)
	for id, st := range before.States {
		if st.AssetRef == "" {
			continue
		}
		ok, err := s.Exists(ctx, st.AssetRef)
		require.NoError(t, err)
		if _, err := short.Lookup(id); err == nil {
			assert.True(t, ok, id)
			assert.Equal(t, st.AssetRef, after.States[id].AssetRef, id)
		} else {
			assert.False(t, ok, id)
			assert.Equal(t, dirty.StatusMissing, after.States[id].Status, id)
			assert.Empty(t, after.States[id].AssetRef, id)
		}
	}
}
