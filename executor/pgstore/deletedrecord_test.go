package pgstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// A graph deleted during a run (DeleteGraph deletes its states and its
// run records): the run stops with ErrGraphDeleted, and no longer writes
// its record again at its end, so the store keeps no record of the
// deleted graph, and a Resume of the run finds none (ErrNotFound).
func TestDeleteGraphDuringARunLeavesNoRecord(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	key := testenv.UniqueName(t)
	g := build(t, 60)
	p := newProvider()
	p.hook = onFirst(graph.KindVideo, func(context.Context) {
		_, err := s.DeleteGraph(t.Context(), key)
		assert.NoError(t, err)
	})
	e := newExecutor(t, s, p.registry())
	rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
	require.ErrorIs(t, err, executor.ErrGraphDeleted)
	assert.Equal(t, executor.RunCancelled, rep.Record.Status, "the Report keeps the record")

	got, err := s.GetRun(t.Context(), rep.Record.ID)
	require.ErrorIs(t, err, executor.ErrNotFound, "the deleted graph's run record was written again: %+v", got)
	runs, err := s.ListRuns(t.Context(), key)
	require.NoError(t, err)
	assert.Empty(t, runs)
	_, err = e.Resume(t.Context(), g, rep.Record.ID)
	require.ErrorIs(t, err, executor.ErrNotFound)
}
