package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// Edit took any graph: given one that is not the key's (a 60 s lecture
// for a key of a 120 s one, or another template), it committed states
// for nodes the key's graph does not have, and bumped the key's version,
// and the host learnt nothing of its mistake. It now refuses it with
// ErrInvalidRequest, naming both fingerprints and what to do, and
// commits nothing. The key's graph is the graph of its newest run, as
// for Run: a key without states takes any graph, and a new graph (the
// lecture made longer) is the key's once a run of it has started.
func TestEditRefusesAGraphNotTheKeys(t *testing.T) {
	l60, l120, podcast := mustBuild(t, graph.Lecture(), 60), mustBuild(t, graph.Lecture(), 120), mustBuild(t, testgraph.Podcast(), 60)
	const narration0, narration9 = "asset:narration:segment[0]", "asset:narration:segment[9]"
	for _, tc := range []struct {
		name  string
		made  *graph.Graph // the graph run on the key first; nil for none
		then  *graph.Graph // a graph run on the key next, or nil
		reset bool         // the key's graph deleted before the edit
		edit  *graph.Graph
		node  string
		want  string // a part of the refusal, or "" for an edit that goes through
	}{
		// Edit takes it for an edit of the key's graph: the IDs of a
		// lecture's nodes are the same at each length (see
		// TestEditOfAGraphOfAnotherLengthLandsOnTheKeys).
		{name: "a shorter lecture, on a node both have", made: l120, edit: l60, node: narration0},
		{name: "a longer lecture, on a node only it has", made: l60, edit: l120, node: narration9,
			want: "is not the key's graph"},
		{name: "another template", made: l60, edit: podcast, node: "brief",
			want: "start a run of the new graph"},
		{name: "the graph of a run the key's newest replaced", made: l120, then: l60, edit: l120, node: narration9,
			want: "is not the key's graph"},
		{name: "the key's graph", made: l60, edit: l60, node: narration0},
		{name: "the graph of the key's newest run", made: l120, then: l60, edit: l60, node: narration0},
		{name: "a key without states", edit: l120, node: narration9},
		{name: "a key whose graph was deleted", made: l60, reset: true, edit: l120, node: narration9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			e := lectureExecutor(t)
			for _, g := range []*graph.Graph{tc.made, tc.then} {
				if g != nil {
					_, err := e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: g})
					require.NoError(t, err)
				}
			}
			if tc.reset {
				_, err := e.States().(*executor.MemoryStore).DeleteGraph(ctx, "l")
				require.NoError(t, err)
			}
			before, err := e.States().Load(ctx, "l")
			require.NoError(t, err)

			v, err := e.Edit(ctx, tc.edit, "l", tc.node)

			after, lerr := e.States().Load(ctx, "l")
			require.NoError(t, lerr)
			if tc.want != "" {
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				assert.ErrorContains(t, err, tc.want)
				assert.ErrorContains(t, err, executor.Fingerprint(tc.edit)[:12], "names the graph given")
				assert.Zero(t, v)
				assert.Empty(t, cmp.Diff(before, after), "the edit changed the stored states")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, before.Version+1, v)
			st := after.States[tc.node]
			assert.Equal(t, before.States[tc.node].Rev+1, st.Rev, "the edit's new revision")
			assert.Equal(t, dirty.StatusDirty, st.Status)
			// A run of the graph edited takes the edit.
			rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: tc.edit})
			require.NoError(t, err)
			assert.Contains(t, rep.Generated, tc.node)
			assert.Empty(t, rep.Dirty)
		})
	}
}

// An Edit of a deleted graph (which it takes, with any graph, as the key
// has no graph then) left states without the key's graph state, which
// Resume and RerunFailed took for a key kept by an executor older than
// GraphStateID: a resume of a run of the deleted graph then went
// through, and made that graph the key's again, over the edit of
// another graph. A key without a graph state whose states hold no
// result of a run (only edits) is now no run's graph: such a resume is
// refused with ErrGraphDeleted, as it is before the edit.
func TestResumeAfterAnEditOfADeletedGraphIsRefused(t *testing.T) {
	podcast, err := graph.Build(testgraph.Podcast(), 30)
	require.NoError(t, err)
	for _, rs := range resumers {
		for _, edit := range []struct {
			name string
			g    func(l *lab) *graph.Graph
			node string
		}{
			{"with the deleted graph", func(l *lab) *graph.Graph { return l.g }, "script"},
			{"with another template", func(*lab) *graph.Graph { return podcast }, "brief"},
		} {
			t.Run(rs.name+"/"+edit.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ctx := context.Background()
					l := newLab(t, 30)
					l.set("asset:video:segment[1]", fail(executor.Permanent(errors.New("refused"))))
					e := l.executor(executor.Options{})
					rep, err := l.run(e)
					require.ErrorIs(t, err, executor.ErrRunFailed)
					l.set("asset:video:segment[1]", nil)
					_, err = l.states.DeleteGraph(ctx, "lecture")
					require.NoError(t, err)
					_, err = e.Edit(ctx, edit.g(l), "lecture", edit.node)
					require.NoError(t, err, "a deleted key takes any graph")
					before := l.snapshot()

					_, err = rs.call(e, ctx, l.g, rep.Record.ID)
					require.ErrorIs(t, err, executor.ErrInvalidRequest)
					require.ErrorIs(t, err, executor.ErrGraphDeleted)
					assert.Equal(t, before, l.snapshot(), "a refused resume changed the states")
				})
			})
		}
	}
}

// Edit with no node IDs committed an empty change: it bumped the key's
// version, which made every run of the key reload, and edited nothing.
// It is refused, and changes nothing.
func TestEditWithoutNodesIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		before := l.snapshot()
		_, err = e.Edit(context.Background(), l.g, "lecture")
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, `no node ID given: name the nodes whose parameters changed, such as "script"`)
		assert.Empty(t, cmp.Diff(before, l.snapshot()))
	})
}
