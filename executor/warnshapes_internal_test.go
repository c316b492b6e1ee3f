package executor

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// The shapes of graph already warned of (see warnUnknownKeys) were kept
// for the executor's life, each as the text of all its kinds' names and
// batch keys: a host that builds its templates (one per customer, say)
// grew the set without end, by the length of each template's names. The
// executor now keeps a bounded number of shapes, by a fixed-size hash.
func TestWarnedShapesBounded(t *testing.T) {
	e, err := New(Options{Generators: Registry{"x": GeneratorFunc(func(context.Context, Request) (Asset, error) { return Asset{}, nil })}, Logger: slog.New(slog.DiscardHandler),
		Kinds: map[string]KindOptions{"misspelt": {}}})
	require.NoError(t, err)
	for i := range maxWarnedShapes + 100 {
		g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: fmt.Sprintf("kind-%d", i)}}}, graph.SegmentSeconds)
		require.NoError(t, err)
		e.warnUnknownKeys(g, "run", "key")
	}
	assert.LessOrEqual(t, len(e.shapes), maxWarnedShapes)
}
