package graph_test

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// BuildSegments builds the graph of a count of segments (slides,
// chapters): Build of that many times SegmentSeconds, and a count out of
// range is a *DurationError that speaks of segments, not seconds.
func TestBuildSegments(t *testing.T) {
	for _, n := range []int{1, 3, 12, 8640} {
		got, err := graph.BuildSegments(graph.Lecture(), n)
		require.NoError(t, err)
		want, err := graph.Build(graph.Lecture(), n*graph.SegmentSeconds)
		require.NoError(t, err)
		assert.Equal(t, n, got.Segments())
		assert.Equal(t, want.Len(), got.Len())
		assert.Equal(t, want.Edges(), got.Edges())
		if n < 100 {
			for v := range graph.Node(got.Len()) {
				assert.Equal(t, want.NodeID(v), got.NodeID(v))
				assert.Equal(t, want.Deps(v), got.Deps(v))
			}
		}
	}
	for _, tc := range []struct {
		name string
		opts graph.Options
		n    int
		want string
	}{
		{"none", graph.Options{}, 0, "graph: invalid duration: 0 segments is not a valid count: from 1 to 8640 segments"},
		{"negative", graph.Options{}, -3, "graph: invalid duration: -3 segments is not a valid count: from 1 to 8640 segments"},
		{"a limit of 1", graph.Options{MaxSeconds: 15}, 2, "graph: invalid duration: 2 segments exceeds the limit of 1 segment; Options.MaxSeconds raises it"},
		{"above the default limit", graph.Options{}, 8641, "graph: invalid duration: 8641 segments exceeds the limit of 8640 segments; Options.MaxSeconds raises it"},
		{"above the largest limit", graph.Options{MaxSeconds: graph.MaxSecondsLimit}, math.MaxInt, fmt.Sprintf("graph: invalid duration: %d segments exceeds the largest limit, MaxSecondsLimit: %d segments", math.MaxInt, graph.MaxSecondsLimit/graph.SegmentSeconds)},
		{"a bad MaxSeconds", graph.Options{MaxSeconds: 5}, 1, "graph: invalid duration: 5s is not a valid Options.MaxSeconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := tc.opts.BuildSegments(graph.Lecture(), tc.n)
			assert.Nil(t, g)
			require.ErrorIs(t, err, graph.ErrInvalidDuration)
			var de *graph.DurationError
			require.ErrorAs(t, err, &de)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, tc.name != "a bad MaxSeconds", de.Segments)
		})
	}
}

// FuzzBuildSegments: any count either builds the graph that Build builds
// of its seconds, or is refused with a *DurationError; never a panic.
func FuzzBuildSegments(f *testing.F) {
	for _, n := range []int{0, 1, 12, -1, 8640, 8641, math.MaxInt, math.MinInt} {
		f.Add(n, 0)
	}
	f.Add(3, 25)
	f.Fuzz(func(t *testing.T, n, maxSeconds int) {
		opts := graph.Options{MaxSeconds: maxSeconds, MaxNodes: 100_000}
		g, err := opts.BuildSegments(graph.Lecture(), n)
		if err != nil {
			var de *graph.DurationError
			var se *graph.SizeError
			if !errors.As(err, &de) && !errors.As(err, &se) {
				t.Fatalf("BuildSegments(%d) with MaxSeconds %d: %v: want a *DurationError or a *SizeError", n, maxSeconds, err)
			}
			return
		}
		if g.Segments() != n {
			t.Fatalf("BuildSegments(%d): %d segments", n, g.Segments())
		}
		want, err := opts.Build(graph.Lecture(), n*graph.SegmentSeconds)
		if err != nil || want.Len() != g.Len() || want.Edges() != g.Edges() {
			t.Fatalf("BuildSegments(%d) differs from Build(%d): %v", n, n*graph.SegmentSeconds, err)
		}
	})
}
