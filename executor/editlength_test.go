package executor_test

import (
	"errors"
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

// A host that saved a node's new parameters and then called Edit with the
// graph it held (a 10-segment lecture) while a run of the lecture made
// longer (12 segments) had started got a plain ErrInvalidRequest: the
// revision was not bumped, the next run made nothing again, and the edit
// was lost for good. The executor now finds the key's graph itself (from
// the newest record of its graph and the template of the graph given)
// and edits its node of the same ID; an edit naming a node that graph
// has not, or of a graph it cannot find, is refused with a
// *GraphMismatchError that names the key's fingerprint, so that a host
// can reload it and retry.
func TestEditOfAGraphOfAnotherLengthLandsOnTheKeys(t *testing.T) {
	l100, l120 := mustBuild(t, graph.Lecture(), 100), mustBuild(t, graph.Lecture(), 120)
	const n3 = "asset:narration:segment[3]"

	t.Run("the node is the key's graph's too", func(t *testing.T) {
		ctx := t.Context()
		e := lectureExecutor(t)
		for _, g := range []*graph.Graph{l100, l120} {
			_, err := e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: g})
			require.NoError(t, err)
		}
		before, err := e.States().Load(ctx, "l")
		require.NoError(t, err)

		v, err := e.Edit(ctx, l100, "l", n3) // the UI still holds the shorter lecture
		require.NoError(t, err)

		after, err := e.States().Load(ctx, "l")
		require.NoError(t, err)
		assert.Equal(t, before.Version+1, v)
		assert.Equal(t, before.States[n3].Rev+1, after.States[n3].Rev)
		assert.Equal(t, dirty.StatusDirty, after.States[n3].Status)
		assert.Equal(t, before.States[executor.GraphStateID], after.States[executor.GraphStateID], "the key's graph is still the longer one")
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: l120})
		require.NoError(t, err)
		assert.Contains(t, rep.Generated, n3, "the next run of the key's graph made the edited node again")
	})

	for _, tc := range []struct {
		name    string
		made    *graph.Graph
		edit    *graph.Graph
		ids     []string
		missing []string
	}{
		{name: "a node the key's graph has not", made: l100, edit: l120,
			ids:     []string{n3, "asset:narration:segment[11]", "asset:video:segment[10]"},
			missing: []string{"asset:narration:segment[11]", "asset:video:segment[10]"}}, // in node order
		{name: "another template", made: l100, edit: mustBuild(t, testgraph.Podcast(), 100), ids: []string{"brief"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			e := lectureExecutor(t)
			_, err := e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: tc.made})
			require.NoError(t, err)
			before, err := e.States().Load(ctx, "l")
			require.NoError(t, err)

			v, err := e.Edit(ctx, tc.edit, "l", tc.ids...)

			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			var me *executor.GraphMismatchError
			require.True(t, errors.As(err, &me), "not a *GraphMismatchError: %v", err)
			assert.Equal(t, executor.GraphMismatchError{GraphKey: "l", Given: executor.Fingerprint(tc.edit),
				Current: executor.Fingerprint(tc.made), Missing: tc.missing}, *me)
			for _, id := range tc.missing {
				assert.ErrorContains(t, err, id)
			}
			assert.Zero(t, v)
			after, err := e.States().Load(ctx, "l")
			require.NoError(t, err)
			assert.Empty(t, cmp.Diff(before, after), "a refused edit changed the states")

			// EditChanges, which has no run records to find the key's
			// graph by, refuses it with the same error, Missing unknown.
			_, err = executor.EditChanges(tc.edit, "l", before, time.Now(), tc.ids...)
			require.True(t, errors.As(err, &me), "not a *GraphMismatchError: %v", err)
			assert.Equal(t, executor.Fingerprint(tc.made), me.Current)
			assert.Nil(t, me.Missing)
		})
	}
}
