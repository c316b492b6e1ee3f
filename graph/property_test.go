package graph_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

func TestPropertyRandomTemplates(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 2))
		tm := testgraph.RandomTemplate(r)
		secs := 10 * (1 + r.IntN(12))
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			g, err := graph.Build(tm, secs)
			require.NoError(t, err, "template %+v", tm)
			require.NoError(t, checkGraph(g))
			if diff := cmp.Diff(naiveDeps(tm, secs/10), graphDeps(g)); diff != "" {
				t.Fatalf("graph differs from the naive expansion of %+v (-want +got):\n%s", tm, diff)
			}
			if diff := cmp.Diff(tm, g.Template(), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("Template() (-want +got):\n%s", diff)
			}
			// The same input gives byte-identical exports.
			g2, err := graph.Build(tm.Clone(), secs)
			require.NoError(t, err)
			j1, err := json.Marshal(g)
			require.NoError(t, err)
			j2, err := json.Marshal(g2)
			require.NoError(t, err)
			require.Equal(t, string(j1), string(j2))
			// The template survives a JSON round trip.
			data, err := json.Marshal(tm)
			require.NoError(t, err)
			back, err := graph.ParseTemplate(data)
			require.NoError(t, err)
			if diff := cmp.Diff(tm, back, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("ParseTemplate(Marshal) (-want +got):\n%s", diff)
			}
		})
	}
}
