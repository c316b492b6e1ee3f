package executor_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// outputLecture runs a 30 s lecture (3 segments) on key "lecture" of a new
// executor on the in-memory stores, and returns the executor.
func outputLecture(t *testing.T) *executor.Executor {
	t.Helper()
	e := lectureExecutor(t)
	g := mustBuild(t, graph.Lecture(), 30)
	_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: g})
	require.NoError(t, err)
	return e
}

// setStatus commits status for node id of key, keeping its other fields.
func setStatus(t *testing.T, e *executor.Executor, key, id string, status dirty.Status) {
	t.Helper()
	ctx := context.Background()
	snap, err := e.States().Load(ctx, key)
	require.NoError(t, err)
	st := snap.States[id]
	st.Status = status
	_, err = e.States().Commit(ctx, key, snap.Version, []executor.Change{{ID: id, State: st}})
	require.NoError(t, err)
}

// A host that exported a key's outputs went through the stores itself:
// States().Load, the node's AssetRef, Assets().Get, skipping GraphStateID
// and minding not to modify the Data shared with the store (Courseforge's
// finding). Output reads a clean node's asset in one call, and its Data
// is the caller's.
func TestOutputReadsACleanNodesAsset(t *testing.T) {
	ctx := context.Background()
	e := outputLecture(t)
	const id = "asset:narration:segment[1]"
	a, err := e.Output(ctx, "lecture", id)
	require.NoError(t, err)
	assert.Equal(t, id+"@0", string(a.Data))
	assert.Equal(t, graph.SegmentLength, a.Length)

	a.Data[0] = 'X' // the caller's: the store's copy stays
	again, err := e.Output(ctx, "lecture", id)
	require.NoError(t, err)
	assert.Equal(t, id+"@0", string(again.Data))
}

// Output refuses what is no clean node's output with an error that says
// which and that a host can branch on.
func TestOutputRefusals(t *testing.T) {
	ctx := context.Background()
	e := outputLecture(t)
	setStatus(t, e, "lecture", "script", dirty.StatusFailed)
	setStatus(t, e, "lecture", "asset:image:segment[2]", dirty.StatusDirty)
	setStatus(t, e, "lecture", "asset:video:segment[0]", dirty.StatusMissing)

	for _, c := range []struct {
		name, key, id string
		is            []error
		says          string
	}{
		{"the executor's own state", "lecture", executor.GraphStateID, []error{executor.ErrInvalidRequest}, `"~graph"`},
		{"a malformed node ID", "lecture", "asset:image:segment[x]", []error{executor.ErrInvalidRequest, graph.ErrMalformedID}, "segment[x]"},
		{"an empty node ID", "lecture", "", []error{executor.ErrInvalidRequest, graph.ErrMalformedID}, "empty"},
		{"an empty graph key", "", "script", []error{executor.ErrInvalidRequest}, "graph key is empty"},
		{"a graph key not valid UTF-8", "lec\xffture", "script", []error{executor.ErrInvalidRequest}, "UTF-8"},
		{"a key never run", "other", "script", []error{executor.ErrNotFound}, `"other"`},
		{"a node of no segment made", "lecture", "asset:image:segment[7]", []error{executor.ErrNotFound}, "segment[7]"},
		{"a node recorded missing", "lecture", "asset:video:segment[0]", []error{executor.ErrNotFound}, "missing"},
		{"a failed node", "lecture", "script", []error{executor.ErrNotClean}, "failed"},
		{"a dirty node", "lecture", "asset:image:segment[2]", []error{executor.ErrNotClean}, "dirty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := e.Output(ctx, c.key, c.id)
			require.Error(t, err)
			for _, want := range c.is {
				assert.ErrorIs(t, err, want)
			}
			assert.ErrorContains(t, err, c.says)
			assert.Zero(t, a)
		})
	}
	_, err := e.Output(ctx, "lecture", "bad id!")
	var idErr *graph.IDError
	require.ErrorAs(t, err, &idErr)
	assert.Equal(t, "bad id!", idErr.ID)
}

// Outputs yields a key's clean outputs in node-ID order, without
// GraphStateID or a node that is not clean, and stops when told.
func TestOutputsInNodeIDOrder(t *testing.T) {
	ctx := context.Background()
	e := outputLecture(t)
	setStatus(t, e, "lecture", "asset:image:segment[2]", dirty.StatusDirty)
	snap, err := e.States().Load(ctx, "lecture")
	require.NoError(t, err)
	var want []string
	for id, st := range snap.States {
		if id != executor.GraphStateID && st.Status == dirty.StatusClean {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	require.Len(t, want, 3*3+3-1, "the lecture's 12 nodes but the dirty one")

	var got []string
	for o, err := range e.Outputs(ctx, "lecture") {
		require.NoError(t, err)
		assert.Equal(t, o.NodeID+"@0", string(o.Asset.Data))
		got = append(got, o.NodeID)
	}
	assert.Equal(t, want, got)

	n := 0
	for range e.Outputs(ctx, "lecture") {
		n++
		if n == 2 {
			break
		}
	}
	assert.Equal(t, 2, n)

	for o, err := range e.Outputs(ctx, "never run") {
		t.Fatalf("a key never run yielded %+v, %v", o, err)
	}
	for _, err := range e.Outputs(ctx, "") {
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
	}
}

// Output and Outputs call the stores, so a closed executor refuses them.
func TestOutputAfterCloseIsRefused(t *testing.T) {
	ctx := context.Background()
	e := outputLecture(t)
	require.NoError(t, e.Close(ctx))
	_, err := e.Output(ctx, "lecture", "script")
	require.ErrorIs(t, err, executor.ErrClosed)
	n := 0
	for _, err := range e.Outputs(ctx, "lecture") {
		require.ErrorIs(t, err, executor.ErrClosed)
		n++
	}
	assert.Equal(t, 1, n, "one error, then the end")
}

// A lost connection on Output's Load is retried within Options.StoreRetry,
// as the executor's other store calls are.
func TestOutputRetriesAFailedLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := &editOutage{MemoryStates: executor.NewMemoryStates(), err: errors.New("connection reset")}
		e, err := executor.New(executor.Options{Generators: lectureRegistry(), States: s})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: mustBuild(t, graph.Lecture(), 30)})
		require.NoError(t, err)

		s.mu.Lock()
		s.loadFails = s.loads + 2
		s.mu.Unlock()
		a, err := e.Output(ctx, "lecture", "script")
		require.NoError(t, err)
		assert.Equal(t, "script@0", string(a.Data))

		s.mu.Lock()
		s.loadFails = s.loads + 100
		s.mu.Unlock()
		_, err = e.Output(ctx, "lecture", "script")
		require.ErrorContains(t, err, "connection reset", "beyond StoreRetry")
	})
}
