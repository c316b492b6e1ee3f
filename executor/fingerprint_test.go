package executor_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// Hosts could not compute the fingerprint that Record.Graph holds, so
// they could not tell which of their templates and lengths a run was made
// with before they called Resume. Fingerprint is what the records hold,
// and it is pinned: records written by a release are read by the next,
// so the same layout must keep its fingerprint.
func TestFingerprint(t *testing.T) {
	lecture60 := mustBuild(t, graph.Lecture(), 60)
	t.Run("pinned", func(t *testing.T) {
		// The fingerprints of releases before Fingerprint was exported:
		// a change here breaks every stored record and graph state.
		for _, tc := range []struct {
			name string
			g    *graph.Graph
			want string
		}{
			{"lecture 60 s", lecture60, "bbdcca7324326ca9bb56417121dc7f11601b17dfc79686eaabdaf030bd9a1b5b"},
			{"lecture 120 s", mustBuild(t, graph.Lecture(), 120), "b39207dfdf796fa348a7d293ea9a170f963f4a49334ca994eea4ebdd6356d372"},
			{"podcast 30 s", mustBuild(t, testgraph.Podcast(), 30), "ba335c9aeba8dd117547482fffa3bbd5ec02192f75b54c988651bcdbaf687640"},
		} {
			assert.Equal(t, tc.want, executor.Fingerprint(tc.g), tc.name)
		}
	})
	t.Run("what counts", func(t *testing.T) {
		tmpl := graph.Lecture()
		reordered := tmpl.Clone()
		for i, j := 0, len(reordered.Kinds)-1; i < j; i, j = i+1, j-1 {
			reordered.Kinds[i], reordered.Kinds[j] = reordered.Kinds[j], reordered.Kinds[i]
		}
		rekeyed := tmpl.Clone()
		for i := range rekeyed.Kinds {
			rekeyed.Kinds[i].BatchKey, rekeyed.Kinds[i].Concurrency = "", 0
		}
		for _, tc := range []struct {
			name string
			g    *graph.Graph
			same bool
		}{
			{"the same layout built again", mustBuild(t, graph.Lecture(), 60), true},
			{"the kinds listed in another order", mustBuild(t, reordered, 60), true},
			{"other batch keys and concurrency", mustBuild(t, rekeyed, 60), true},
			{"another length", mustBuild(t, graph.Lecture(), 70), false},
			{"another template", mustBuild(t, testgraph.Podcast(), 60), false},
		} {
			if tc.same {
				assert.Equal(t, executor.Fingerprint(lecture60), executor.Fingerprint(tc.g), tc.name)
			} else {
				assert.NotEqual(t, executor.Fingerprint(lecture60), executor.Fingerprint(tc.g), tc.name)
			}
		}
		assert.Empty(t, executor.Fingerprint(nil), "a nil graph")
	})
	t.Run("Resume's refusal says how to find the graph", func(t *testing.T) {
		e := lectureExecutor(t)
		rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: "l", Graph: lecture60})
		require.NoError(t, err)
		other := mustBuild(t, testgraph.Podcast(), 60)
		_, err = e.Resume(t.Context(), other, rep.Record.ID)
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, "the one whose Fingerprint is Record.Graph")
	})
	t.Run("what records hold", func(t *testing.T) {
		e := lectureExecutor(t)
		rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: "l", Graph: lecture60})
		require.NoError(t, err)
		assert.Equal(t, executor.Fingerprint(lecture60), rep.Record.Graph, "Record.Graph")
		snap, err := e.States().Load(t.Context(), "l")
		require.NoError(t, err)
		assert.Equal(t, executor.Fingerprint(lecture60), snap.States[executor.GraphStateID].InputHash, "the graph state")
	})
}

// lectureExecutor returns an executor on the embedded default stores
// whose generators make every lecture kind at once, closed at the test's
// end.
func lectureExecutor(t *testing.T) *executor.Executor {
	t.Helper()
	e, err := executor.New(executor.Options{Generators: lectureRegistry()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	return e
}

// mustBuild builds the graph of tmpl for a piece of the given seconds,
// failing the test if it cannot.
func mustBuild(t *testing.T, tmpl graph.Template, seconds int) *graph.Graph {
	t.Helper()
	g, err := graph.Build(tmpl, seconds)
	require.NoError(t, err)
	return g
}

// lectureRegistry gives every kind of the lecture a generator whose output
// depends on the node and its revision only.
func lectureRegistry() executor.Registry {
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: fmt.Appendf(nil, "%s@%d", req.NodeID, req.Rev), Length: graph.SegmentLength}, nil
	})
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	return reg
}
