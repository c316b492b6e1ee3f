package executor_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
)

// TestZeroGraphIsAnInvalidRequest: a zero graph.Graph, which no Build
// made, is no graph to run, as a nil one is not: Run, Start and Plan
// refuse it with ErrInvalidRequest, which a host answers as bad input,
// and store nothing.
func TestZeroGraphIsAnInvalidRequest(t *testing.T) {
	ctx := context.Background()
	e, err := executor.New(executor.Options{Generators: fake.New(fake.Options{}).Registry()})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Close(ctx))
	})
	for _, marks := range [][]dirty.Mark{nil, {{ID: "script", Reason: dirty.ReasonEdited}}} {
		req := executor.RunRequest{GraphKey: "lecture", Graph: &graph.Graph{}, Marks: marks}
		_, err := e.Run(ctx, req)
		require.ErrorIs(t, err, executor.ErrInvalidRequest, "Run")
		assert.Contains(t, err.Error(), "RunRequest.Graph")
		_, err = e.Start(ctx, req)
		require.ErrorIs(t, err, executor.ErrInvalidRequest, "Start")
		_, _, err = e.Plan(ctx, req)
		require.ErrorIs(t, err, executor.ErrInvalidRequest, "Plan")
	}
	recs, err := e.Runs().ListRuns(ctx, "lecture")
	require.NoError(t, err)
	assert.Empty(t, recs, "no run was recorded")
	snap, err := e.States().Load(ctx, "lecture")
	require.NoError(t, err)
	assert.Empty(t, snap.States, "nothing was committed")
}
