package executor_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// A host recovering a run had to rebuild its graph by hand, from
// Record.Seconds and its templates, comparing Fingerprint with
// Record.Graph itself (an embedder's friction); GraphOf does it.
func TestGraphOf(t *testing.T) {
	ctx := context.Background()
	e := lectureExecutor(t)
	g, err := graph.Build(graph.Lecture(), 60)
	require.NoError(t, err)
	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "k", Graph: g})
	require.NoError(t, err)
	rec := rep.Record

	got, err := executor.GraphOf(rec, graph.Options{}, testgraph.Podcast(), graph.Lecture())
	require.NoError(t, err)
	assert.Equal(t, executor.Fingerprint(g), executor.Fingerprint(got), "the lecture, after the podcast did not match")
	r, err := e.Resume(ctx, got, rec.ID)
	require.NoError(t, err, "Resume takes it")
	_, err = r.Wait()
	require.NoError(t, err)

	// A record without Record.Graph (an older release's) matches the
	// first template that builds at its duration.
	old := rec
	old.Graph = ""
	got, err = executor.GraphOf(old, graph.Options{}, graph.Lecture())
	require.NoError(t, err)
	assert.Equal(t, 6, got.Segments())

	for _, tc := range []struct {
		name      string
		rec       executor.Record
		templates []graph.Template
		want      string
	}{
		{"no template", rec, nil, "no template given"},
		{"none matches", rec, []graph.Template{testgraph.Podcast()}, "is of none of the templates given: template 0: fingerprint"},
		{"a duration no template builds", executor.Record{ID: "r", Seconds: 15, Graph: rec.Graph}, []graph.Template{graph.Lecture()}, "template 0: graph:"},
		// An older release's record has no fingerprint: the message said
		// "fingerprint )", as if it had an empty one.
		{"a record without Graph no template builds", executor.Record{ID: "r", Seconds: 15}, []graph.Template{graph.Lecture()},
			`the graph of run "r" (15 s, no fingerprint: an older release's record) is of none of the templates given: template 0: graph:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := executor.GraphOf(tc.rec, graph.Options{}, tc.templates...)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
