package executor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// A lecture made shorter left its dropped segments' states in the store
// for good, and they kept their assets from PruneAssets: only DeleteGraph
// removed them (an embedder's finding). Forget drops them, and a prune
// then deletes their assets; the key's own nodes, and their assets, stay.
// A lecture made longer again regenerates the dropped nodes, with their
// revisions kept.
func TestForgetDroppedNodes(t *testing.T) {
	ctx := context.Background()
	build := func(seconds int) *graph.Graph {
		g, err := graph.Build(graph.Lecture(), seconds)
		require.NoError(t, err)
		return g
	}
	long, short := build(60), build(30)
	e := lectureExecutor(t)
	store := e.States().(*executor.MemoryStore)
	const key = "lecture"
	_, err := e.Run(ctx, executor.RunRequest{GraphKey: key, Graph: long})
	require.NoError(t, err)
	_, err = e.Edit(ctx, long, key, "asset:narration:segment[4]") // revision 1
	require.NoError(t, err)
	_, err = e.Run(ctx, executor.RunRequest{GraphKey: key, Graph: long})
	require.NoError(t, err)
	_, err = e.Run(ctx, executor.RunRequest{GraphKey: key, Graph: short})
	require.NoError(t, err)

	var dropped []string
	for seg := 3; seg < 6; seg++ {
		for _, kind := range []string{graph.KindNarration, graph.KindImage, graph.KindVideo} {
			dropped = append(dropped, fmt.Sprintf("%s:segment[%d]", kind, seg))
		}
	}
	before, err := store.Load(ctx, key)
	require.NoError(t, err)
	refs := map[string]string{}
	for id, st := range before.States {
		refs[id] = st.AssetRef
	}

	// Not the key's graph: refused, and nothing changes.
	_, err = e.Forget(ctx, long, key)
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	assert.ErrorContains(t, err, "is not the key's graph")
	podcast, err := graph.Build(testgraph.Podcast(), 30)
	require.NoError(t, err)
	_, err = e.Forget(ctx, podcast, key)
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	_, err = e.Forget(ctx, short, "never run")
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	assert.ErrorContains(t, err, "the key has no graph yet")
	_, err = e.Forget(ctx, nil, key)
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	unchanged, err := store.Load(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, before, unchanged)

	n, err := e.Forget(ctx, short, key)
	require.NoError(t, err)
	assert.Equal(t, len(dropped), n)
	after, err := store.Load(ctx, key)
	require.NoError(t, err)
	for _, id := range dropped {
		st := after.States[id]
		assert.Equal(t, dirty.StatusMissing, st.Status, id)
		assert.Empty(t, st.AssetRef, id)
		assert.Empty(t, st.OutputHash, id)
	}
	assert.Equal(t, int64(1), after.States["asset:narration:segment[4]"].Rev, "its revision stays")
	n, err = e.Forget(ctx, short, key)
	require.NoError(t, err)
	assert.Zero(t, n, "dropped already")

	_, err = store.PruneAssets(ctx, 0)
	require.NoError(t, err)
	delete(refs, executor.GraphStateID) // it has no asset
	for id, ref := range refs {
		ok, err := store.Exists(ctx, ref)
		require.NoError(t, err)
		if _, err := short.Lookup(id); err == nil {
			assert.True(t, ok, "%s: the key's node keeps its asset", id)
		} else {
			assert.False(t, ok, "%s: the dropped node's asset is pruned", id)
		}
	}

	// Longer again: the dropped nodes are made again, with their revisions.
	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: key, Graph: long})
	require.NoError(t, err)
	for _, id := range dropped {
		assert.Contains(t, rep.Generated, id)
	}
	final, err := store.Load(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, int64(1), final.States["asset:narration:segment[4]"].Rev)
	assert.Equal(t, dirty.StatusClean, final.States["asset:narration:segment[4]"].Status)
}

// Forget retried a commit whose reply was lost (a connection reset after
// the store applied it): the reload found the nodes dropped already, and
// it returned 0, so a host told its user that nothing was dropped, and
// logged no prune to make, though Forget had dropped every node.
func TestForgetCountsACommitWhoseReplyWasLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, e, short := shrunkOnOutage(t)
		const key = "lecture"

		s.mu.Lock()
		s.lost = map[int]bool{s.commits + 1: true}
		s.mu.Unlock()
		n, err := e.Forget(ctx, short, key)
		require.NoError(t, err)
		assert.Equal(t, 9, n, "the nodes of segments 3 to 5 (narration, image, video)")
		snap, err := s.MemoryStates.Load(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, dirty.StatusMissing, snap.States["asset:video:segment[5]"].Status)
	})
}

// A Forget whose ctx ended while it waited to commit again, after a
// failed commit, returned the store's error alone ("connection reset"),
// without ctx's: a host that tells a cancel from a store failure with
// errors.Is(err, context.Canceled) saw a store failure.
func TestForgetCancelledInItsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e, short := shrunkOnOutage(t)
		const key = "lecture"

		s.mu.Lock()
		s.failAll = true
		s.mu.Unlock()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := e.Forget(ctx, short, key)
			done <- err
		}()
		synctest.Wait() // in its backoff, after a failed commit
		cancel()
		err := <-done
		require.ErrorIs(t, err, context.Canceled)
		assert.ErrorContains(t, err, "connection reset", "and the failure it was retrying")
	})
}

// shrunkOnOutage runs a 60 s lecture, then a 30 s one, on key "lecture" of
// an executor whose states are s, a store whose failures the test sets;
// it returns them and the 30 s graph. The executor is closed when the
// test ends.
func shrunkOnOutage(t *testing.T) (*editOutage, *executor.Executor, *graph.Graph) {
	t.Helper()
	ctx := context.Background()
	s := &editOutage{MemoryStates: executor.NewMemoryStates(), err: errors.New("connection reset")}
	e, err := executor.New(executor.Options{Generators: lectureRegistry(), States: s})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	var short *graph.Graph
	for _, seconds := range []int{60, 30} {
		g, err := graph.Build(graph.Lecture(), seconds)
		require.NoError(t, err)
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g})
		require.NoError(t, err)
		short = g
	}
	return s, e, short
}

// Forget calls the stores, so a closed executor refuses it with
// ErrClosed, as Close's callers read in the package doc and the README,
// which named only Resume, RerunFailed, Edit and Plan.
func TestForgetAfterCloseIsRefused(t *testing.T) {
	ctx := context.Background()
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	e := lectureExecutor(t)
	_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g})
	require.NoError(t, err)
	require.NoError(t, e.Close(ctx))
	_, err = e.Forget(ctx, g, "lecture")
	require.ErrorIs(t, err, executor.ErrClosed)
}
