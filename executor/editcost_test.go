package executor_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// listCounter is a run store that counts its ListRuns calls.
type listCounter struct {
	*executor.MemoryRuns
	lists atomic.Int64
}

func (s *listCounter) ListRuns(ctx context.Context, graphKey string) ([]executor.Record, error) {
	s.lists.Add(1)
	return s.MemoryRuns.ListRuns(ctx, graphKey)
}

// An Edit with the graph of another length of the key's template (676a807)
// found the key's graph by reading every record of the key (ListRuns: for
// pgstore, 100,000 records took 730 ms and 375 MiB), at each such Edit,
// though the key's fingerprint and the template given say which graph it
// is: it is the template's graph at the one number of segments whose
// fingerprint is the key's, which the key's states bound. Edit now finds
// it so, and reads the records only when that fails.
func TestEditOfAnotherLengthReadsNoRecords(t *testing.T) {
	build := func(seconds int) *graph.Graph {
		t.Helper()
		g, err := graph.Build(graph.Lecture(), seconds)
		require.NoError(t, err)
		return g
	}
	l100, l120 := build(100), build(120)
	const n3 = "asset:narration:segment[3]"
	for _, tc := range []struct {
		name       string
		made, edit []*graph.Graph
	}{
		{"made longer", []*graph.Graph{l100, l120}, []*graph.Graph{l100}},
		{"made shorter", []*graph.Graph{l120, l100}, []*graph.Graph{l120}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			runs := &listCounter{MemoryRuns: executor.NewMemoryRuns()}
			states := executor.NewMemoryStates()
			e, err := executor.New(executor.Options{Generators: lectureRegistry(), Runs: runs, States: states})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
			for _, g := range tc.made {
				_, err := e.Run(ctx, executor.RunRequest{GraphKey: "l", Graph: g})
				require.NoError(t, err)
			}
			before, err := states.Load(ctx, "l")
			require.NoError(t, err)
			lists := runs.lists.Load()

			v, err := e.Edit(ctx, tc.edit[0], "l", n3)
			require.NoError(t, err)
			assert.Equal(t, lists, runs.lists.Load(), "Edit read the key's records")
			after, err := states.Load(ctx, "l")
			require.NoError(t, err)
			assert.Equal(t, before.Version+1, v)
			assert.Equal(t, before.States[n3].Rev+1, after.States[n3].Rev)
			assert.Equal(t, dirty.StatusDirty, after.States[n3].Status)
			assert.Equal(t, before.States[executor.GraphStateID], after.States[executor.GraphStateID], "the key's graph is as it was")
		})
	}
}

// A template of global kinds only has the same nodes at each length, and
// its key's states bound no number of segments: Edit finds its key's
// graph from the records, as before.
func TestEditOfAnotherLengthOfGlobalKindsReadsTheRecords(t *testing.T) {
	ctx := t.Context()
	tmpl := graph.Template{Kinds: []graph.Kind{{Name: "brief"},
		{Name: "script", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}}}}
	build := func(seconds int) *graph.Graph {
		t.Helper()
		g, err := graph.Build(tmpl, seconds)
		require.NoError(t, err)
		return g
	}
	g10, g20 := build(10), build(20)
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	runs := &listCounter{MemoryRuns: executor.NewMemoryRuns()}
	states := executor.NewMemoryStates()
	e, err := executor.New(executor.Options{Generators: executor.Registry{"brief": gen, "script": gen}, Runs: runs, States: states})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	for _, g := range []*graph.Graph{g10, g20} {
		_, err := e.Run(ctx, executor.RunRequest{GraphKey: "k", Graph: g})
		require.NoError(t, err)
	}
	before, err := states.Load(ctx, "k")
	require.NoError(t, err)

	_, err = e.Edit(ctx, g10, "k", "script")
	require.NoError(t, err)
	assert.Positive(t, runs.lists.Load(), "Edit read the key's records")
	after, err := states.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, before.States["script"].Rev+1, after.States["script"].Rev)
	assert.Equal(t, before.States[executor.GraphStateID], after.States[executor.GraphStateID])
}
