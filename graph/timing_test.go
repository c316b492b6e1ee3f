package graph_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

func TestTimingConstants(t *testing.T) {
	assert.Equal(t, 10*time.Second, graph.SegmentLength)
	assert.Equal(t, 9.5, float64(graph.NarrationMinSeconds))
	assert.Equal(t, 10.5, float64(graph.NarrationMaxSeconds))
}

func TestCheckNarration(t *testing.T) {
	for _, s := range []float64{9.5, 9.50000001, 10, 10.2, 10.49999, 10.5} {
		assert.NoError(t, graph.CheckNarration(s), "%v", s)
	}
	refused := []struct {
		secs float64
		msg  string
	}{
		{9.4999, "graph: narration length out of tolerance: 9.4999s is outside 9.5s to 10.5s (10s ± 5%)"},
		{10.5001, "10.5001s is outside 9.5s to 10.5s"},
		{math.Nextafter(9.5, 0), "is outside 9.5s to 10.5s"},
		{math.Nextafter(10.5, 11), "is outside 9.5s to 10.5s"},
		{0, "0s is outside"},
		{-10, "-10s is outside"},
		{math.Copysign(0, -1), "-0s is outside"},
		{math.NaN(), "NaNs is outside"},
		{math.Inf(1), "+Infs is outside"},
		{math.Inf(-1), "-Infs is outside"},
		{1e300, "1e+300s is outside"},
	}
	for _, tc := range refused {
		t.Run(tc.msg, func(t *testing.T) {
			err := graph.CheckNarration(tc.secs)
			var ne *graph.NarrationError
			require.ErrorAs(t, err, &ne)
			require.ErrorIs(t, err, graph.ErrNarrationLength)
			requireErrorContains(t, err, tc.msg)
			if !math.IsNaN(tc.secs) {
				assert.Equal(t, tc.secs, ne.Seconds)
			}
		})
	}
}
