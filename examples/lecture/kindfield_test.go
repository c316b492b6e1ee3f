package main

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// The display counts a node in the bar of the kind that its events name
// (Event.Kind, which the executor sets on every event about a node),
// without parsing the node's ID: an ID that says no kind adds no bar of
// its own.
func TestDisplayBarsFollowTheEventsKind(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	d := newDisplay(io.Discard)
	p, err := plan(context.Background(), executor.NewMemoryStates(), g, nil)
	require.NoError(t, err)
	d.begin("run 1", p)
	bars := len(d.bars)
	require.NoError(t, d.Publish(context.Background(),
		progress.Event{Type: progress.NodeStarted, Node: "image 0", Kind: graph.KindImage, Stage: 1, Done: 0, Total: 12},
		progress.Event{Type: progress.NodeSucceeded, Node: "image 0", Kind: graph.KindImage, Stage: 1, Done: 1, Total: 12}))
	assert.Len(t, d.bars, bars, "no bar of its own for the node's ID")
	assert.Equal(t, 1, d.byKind[graph.KindImage].done, "the node counted in its kind's bar")
}
