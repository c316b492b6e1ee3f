package executor_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// A host that saved a node's new parameters and then called Edit with the
// graph it held (a 10-segment lecture) while a run of the lecture made
// longer (12 segments) had started got a plain ErrInvalidRequest, whose
// text alone said what the key's graph was: the revision was not bumped,
// the next run made nothing again, and a host that could not tell this
// refusal from bad input dropped the edit for good. It is now a
// *GraphMismatchError that names the key's fingerprint, so that the host
// reloads the key's graph and edits again with it (see Edit's doc); Edit
// and EditChanges return the same.
func TestEditOfAGraphOfAnotherLengthSaysTheKeysGraph(t *testing.T) {
	build := func(tmpl graph.Template, seconds int) *graph.Graph {
		t.Helper()
		g, err := graph.Build(tmpl, seconds)
		require.NoError(t, err)
		return g
	}
	l100, l120 := build(graph.Lecture(), 100), build(graph.Lecture(), 120)
	const n3 = "asset:narration:segment[3]"
	for _, tc := range []struct {
		name string
		edit *graph.Graph
		ids  []string
	}{
		{name: "a graph of another length", edit: l100, ids: []string{n3}},
		{name: "another template", edit: build(testgraph.Podcast(), 100), ids: []string{"brief"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			e := lectureExecutor(t)
			for _, g := range []*graph.Graph{l100, l120} { // the user made the lecture longer
				_, err := e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: g})
				require.NoError(t, err)
			}
			before, err := e.States().Load(ctx, "l")
			require.NoError(t, err)

			v, err := e.Edit(ctx, tc.edit, "l", tc.ids...)

			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			var me *executor.GraphMismatchError
			require.True(t, errors.As(err, &me), "not a *GraphMismatchError: %v", err)
			assert.Equal(t, executor.GraphMismatchError{GraphKey: "l", Given: executor.Fingerprint(tc.edit),
				Current: executor.Fingerprint(l120)}, *me)
			assert.Zero(t, v)
			_, txErr := executor.EditChanges(tc.edit, "l", before, time.Now(), tc.ids...)
			assert.Equal(t, err, txErr, "EditChanges refuses it alike")
			after, err := e.States().Load(ctx, "l")
			require.NoError(t, err)
			assert.Empty(t, cmp.Diff(before, after), "a refused edit changed the states")

			// The recipe of Edit's doc: the newest record of the key's
			// graph, GraphOf, and the edit again.
			recs, err := e.Runs().ListRuns(ctx, "l")
			require.NoError(t, err)
			var rec executor.Record
			for _, r := range recs {
				if r.Graph == me.Current {
					rec = r
				}
			}
			g, err := executor.GraphOf(rec, graph.Options{}, graph.Lecture())
			require.NoError(t, err)
			_, err = e.Edit(ctx, g, "l", n3)
			require.NoError(t, err)
			rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: g})
			require.NoError(t, err)
			assert.Contains(t, rep.Generated, n3, "the next run of the key's graph made the edited node again")
		})
	}
}
