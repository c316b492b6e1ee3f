package pgstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/internal/testgraph"
)

func ids(kind string, segs ...int) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = fmt.Sprintf("%s:segment[%d]", kind, s)
	}
	return out
}

// TestExecutorCustomTemplate runs the podcast on the Postgres stores: a
// new episode, an edited transcript, a failed summary that skips exactly
// what depends on it, its rerun, and the episode grown by a chapter.
func TestExecutorCustomTemplate(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	g, err := graph.Build(testgraph.Podcast(), 40) // 4 chapters
	require.NoError(t, err)
	var kinds []string
	for i := range g.Kinds() {
		kinds = append(kinds, g.KindName(i))
	}
	gen := fake.New(fake.Options{})
	failing := fake.New(fake.Options{Fail: map[string]bool{"ch.summary:segment[2]": true}})
	reg := gen.Registry(kinds...)
	var failSummary bool
	reg["ch.summary"] = executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if failSummary {
			return failing.Generate(ctx, req)
		}
		return gen.Generate(ctx, req)
	})
	e := newExecutor(t, s, reg)
	key := testenv.UniqueName(t)

	rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
	require.NoError(t, err)
	assert.Len(t, rep.Generated, g.Len())
	requireAllClean(t, s, g, key)

	rep, err = e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g,
		Marks: []dirty.Mark{{ID: "ch/transcript:segment[1]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	assert.Equal(t, slices.Concat(ids("ch.summary", 1, 2, 3), ids("ch/transcript", 1), ids("ch:voice", 1),
		ids("ch_bed", 0, 1, 2, 3), []string{"final-mix", "publish", "show-notes"}), rep.Generated)
	requireAllClean(t, s, g, key)

	failSummary = true
	rep, err = e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g,
		Marks: []dirty.Mark{{ID: "ch/transcript:segment[0]", Reason: dirty.ReasonEdited}}})
	require.ErrorIs(t, err, fake.ErrFailed)
	assert.Equal(t, []string{"ch.summary:segment[2]"}, rep.Failed)
	assert.Equal(t, slices.Concat(ids("ch.summary", 3), ids("ch_bed", 0, 1, 2, 3), []string{"final-mix", "publish", "show-notes"}), rep.Skipped)
	rec, err := s.GetRun(t.Context(), rep.Record.ID)
	require.NoError(t, err)
	assert.Equal(t, executor.RunFailed, rec.Status)
	assert.Equal(t, []string{"ch.summary:segment[2]"}, rec.Failed)

	failSummary = false
	run, err := e.RerunFailed(t.Context(), g, rep.Record.ID)
	require.NoError(t, err)
	rep, err = run.Wait()
	require.NoError(t, err)
	assert.Equal(t, slices.Concat(ids("ch.summary", 2, 3), ids("ch_bed", 0, 1, 2, 3), []string{"final-mix", "publish", "show-notes"}), rep.Generated)
	requireAllClean(t, s, g, key)

	// A fifth chapter: its own nodes, the notes (a new summary), every
	// bed (they read the notes) and what reads them; nothing else.
	g5, err := graph.Build(testgraph.Podcast(), 50)
	require.NoError(t, err)
	rep, err = e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g5})
	require.NoError(t, err)
	assert.Equal(t, slices.Concat(ids("ch.summary", 4), ids("ch/transcript", 4), ids("ch:voice", 4),
		ids("ch_bed", 0, 1, 2, 3, 4), []string{"final-mix", "publish", "show-notes"}), rep.Generated)
	requireAllClean(t, s, g5, key)

}
