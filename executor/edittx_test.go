package executor_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// editKey returns an executor on memory stores whose key "k" holds the
// states of one run of the 30-second lecture, and that lecture.
func editKey(t *testing.T) (*executor.Executor, *executor.MemoryStates, *graph.Graph) {
	t.Helper()
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	states := executor.NewMemoryStates()
	gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		a := executor.Asset{Data: []byte(req.NodeID)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second
		}
		return a, nil
	})
	e, err := executor.New(executor.Options{Generators: registryFor(g, gen), States: states})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Close(ctx))
	})
	_, err = e.Run(t.Context(), executor.RunRequest{GraphKey: "k", Graph: g})
	require.NoError(t, err)
	return e, states, g
}

// EditChanges, which pgstore's EditTx commits in the host's transaction,
// refuses what Edit refuses, with the same text, so that a host answers
// both alike; it returns no change.
func TestEditChangesRefusesWhatEditRefuses(t *testing.T) {
	e, states, g := editKey(t)
	longer, err := graph.Build(graph.Lecture(), 60)
	require.NoError(t, err)
	podcast, err := graph.Build(testgraph.Podcast(), 30)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		g    *graph.Graph
		key  string
		ids  []string
	}{
		{"a nil graph", nil, "k", []string{"script"}},
		{"an empty graph key", g, "", []string{"script"}},
		{"a graph key that is not text", g, "k\x00", []string{"script"}},
		{"no ID", g, "k", nil},
		{"a malformed ID", g, "k", []string{"script", "image["}},
		{"an unknown ID", g, "k", []string{"asset:image:segment[7]"}},
		{"another template", podcast, "k", []string{"brief"}},
		// Edit takes a lecture of another length for the key's lecture,
		// but for the nodes that this one has not, which it names.
		{"a longer lecture, on a node the key's has not", longer, "k", []string{"script", "asset:image:segment[5]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := states.Load(t.Context(), "k")
			require.NoError(t, err)
			changes, err := executor.EditChanges(tc.g, tc.key, before, time.Now(), tc.ids...)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.Nil(t, changes)
			_, editErr := e.Edit(t.Context(), tc.g, tc.key, tc.ids...)
			require.Error(t, editErr)
			var me *executor.GraphMismatchError
			if errors.As(editErr, &me) && me.Missing != nil {
				assert.Equal(t, []string{"asset:image:segment[5]"}, me.Missing)
				me.Missing = nil // EditChanges, without run records, cannot tell
			}
			assert.Equal(t, editErr.Error(), err.Error())
			after, err := states.Load(t.Context(), "k")
			require.NoError(t, err)
			assert.Equal(t, before, after, "a refused edit changed the states")
		})
	}
}

// EditChanges gives what Edit commits: each node named, once and in node
// order, with the next revision, dirty, the rest of its state kept; snap
// is left as it was.
func TestEditChangesAreEditsChanges(t *testing.T) {
	e, states, g := editKey(t)
	snap, err := states.Load(t.Context(), "k")
	require.NoError(t, err)
	kept := maps.Clone(snap.States)
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	ids := []string{"asset:narration:segment[2]", "script", "asset:narration:segment[2]"}

	changes, err := executor.EditChanges(g, "k", snap, now, ids...)
	require.NoError(t, err)
	assert.Equal(t, kept, snap.States, "EditChanges modified snap")
	want := make([]executor.Change, 0, 2)
	for _, id := range []string{"script", "asset:narration:segment[2]"} { // node order
		st := snap.States[id]
		st.Rev++
		st.Status = dirty.StatusDirty
		st.UpdatedAt = now
		want = append(want, executor.Change{ID: id, State: st})
	}
	require.Empty(t, cmp.Diff(want, changes))

	// Edit commits the same states, but for the time.
	v, err := e.Edit(t.Context(), g, "k", ids...)
	require.NoError(t, err)
	after, err := states.Load(t.Context(), "k")
	require.NoError(t, err)
	assert.Equal(t, snap.Version+1, v)
	for _, c := range changes {
		got := after.States[c.ID]
		assert.False(t, got.UpdatedAt.IsZero())
		got.UpdatedAt = c.State.UpdatedAt
		assert.Equal(t, c.State, got, c.ID)
	}

	// A key without states: the nodes get their first revision, and any
	// graph is the key's.
	changes, err = executor.EditChanges(g, "new", executor.Snapshot{}, now, "script")
	require.NoError(t, err)
	assert.Equal(t, []executor.Change{{ID: "script", State: dirty.State{Status: dirty.StatusDirty, Rev: 1, UpdatedAt: now}}}, changes)
}
