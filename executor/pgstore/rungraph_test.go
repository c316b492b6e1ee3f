package pgstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/testgraph"
)

// The embedder's story on Postgres: Resume and RerunFailed of a run
// checked only its duration, as its record kept nothing of its template.
// A graph of another template, of the same length, given for the key's
// latest run was refused with ErrGraphReplaced, which nothing had
// replaced; once a run of that template had gone on the key, the old run
// was resumed on it. The record now keeps the graph's fingerprint, and
// both are refused with ErrInvalidRequest alone. A record written before
// layout 4, without it, is checked by its duration, as before.
func TestResumeChecksTheRunsTemplate(t *testing.T) {
	gA, gB, gA60 := testgraph.Episode(t)
	for _, rs := range []struct {
		name string
		call func(e *executor.Executor, ctx context.Context, g *graph.Graph, id string, opts ...executor.ResumeOptions) (*executor.Run, error)
	}{
		{"Resume", (*executor.Executor).Resume},
		{"RerunFailed", (*executor.Executor).RerunFailed},
	} {
		t.Run(rs.name, func(t *testing.T) {
			t.Parallel() // each test has its own schema
			s, pg := newStore(t)
			ctx := t.Context()
			gen := fake.New(fake.Options{Fail: map[string]bool{"transcript:segment[2]": true}})
			e := newExecutor(t, s, gen.Registry("transcript", "subtitles"))
			load := func() executor.Snapshot {
				snap, err := s.Load(ctx, "ep")
				require.NoError(t, err)
				return snap
			}
			runs := func() int {
				recs, err := s.ListRuns(ctx, "ep")
				require.NoError(t, err)
				return len(recs)
			}
			rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "ep", Graph: gA})
			require.ErrorIs(t, err, executor.ErrRunFailed)
			stored, err := s.GetRun(ctx, rep.Record.ID)
			require.NoError(t, err)
			require.NotEmpty(t, stored.Graph, "the stored record keeps the graph's fingerprint")
			assert.Equal(t, rep.Record.Graph, stored.Graph)

			// 1. The run is the key's latest: the key's graph is the run's,
			// and the graph given is not.
			before := load()
			_, err = rs.call(e, ctx, gB, rep.Record.ID)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.NotErrorIs(t, err, executor.ErrGraphReplaced, "nothing replaced the run's graph: %v", err)
			assert.ErrorContains(t, err, "it ran on a graph of another template than this one")
			assert.Equal(t, before, load(), "a refused resume committed")
			assert.Equal(t, 1, runs(), "a refused resume recorded a run")

			// 2. A run of template B goes on the key: the A-run is not
			// resumed on graph B, and with its own graph it is refused as
			// replaced.
			_, err = e.Run(ctx, executor.RunRequest{GraphKey: "ep", Graph: gB})
			require.ErrorIs(t, err, executor.ErrRunFailed)
			before = load()
			_, err = rs.call(e, ctx, gB, rep.Record.ID)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.NotErrorIs(t, err, executor.ErrGraphReplaced)
			assert.ErrorContains(t, err, "it ran on a graph of another template than this one")
			_, err = rs.call(e, ctx, gA, rep.Record.ID)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			require.ErrorIs(t, err, executor.ErrGraphReplaced)
			assert.Equal(t, before, load(), "a refused resume committed")
			assert.Equal(t, 2, runs(), "a refused resume recorded a run")

			// A record of before layout 4 has no fingerprint: its duration
			// is checked, and its own graph resumes it once A is the key's
			// again.
			_, err = pg.Pool.Exec(ctx, `UPDATE "`+pg.Schema+`".runs SET graph = '' WHERE id = $1`, rep.Record.ID)
			require.NoError(t, err)
			_, err = e.Run(ctx, executor.RunRequest{GraphKey: "ep", Graph: gA})
			require.ErrorIs(t, err, executor.ErrRunFailed)
			_, err = rs.call(e, ctx, gA60, rep.Record.ID)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.ErrorContains(t, err, "it ran on a graph of 30 s, and this one is of 60 s")
			r, err := rs.call(e, ctx, gA, rep.Record.ID)
			require.NoError(t, err)
			again, err := r.Wait()
			require.ErrorIs(t, err, executor.ErrRunFailed, "transcript:segment[2] fails for good")
			assert.Equal(t, stored.Graph, again.Record.Graph, "the resume's record")
		})
	}
}

// A schema of layout 3, which this release has not migrated yet (a
// deployment that starts before its Migrate), has no graph column: the
// run records' calls say that the store is not migrated, as they do for
// a missing table, rather than give a bare driver error; once migrated,
// they work.
func TestRunsOfAnUnmigratedLayoutSayNotMigrated(t *testing.T) {
	s, pg := newStore(t)
	ctx := t.Context()
	for _, sql := range []string{
		`ALTER TABLE "` + pg.Schema + `".runs DROP COLUMN graph`,
		`DELETE FROM "` + pg.Schema + `".schema_version`,
		`INSERT INTO "` + pg.Schema + `".schema_version (version) VALUES (3)`,
	} {
		_, err := pg.Pool.Exec(ctx, sql)
		require.NoError(t, err)
	}
	rec := executor.Record{ID: "r", GraphKey: "g", Seconds: 30, Graph: "fingerprint", Status: executor.RunRunning}
	calls := []struct {
		name string
		call func() error
	}{
		{"PutRun", func() error { return s.PutRun(ctx, rec) }},
		{"GetRun", func() error { _, err := s.GetRun(ctx, rec.ID); return err }},
		{"ListRuns", func() error { _, err := s.ListRuns(ctx, rec.GraphKey); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			require.ErrorIs(t, err, pgstore.ErrNotMigrated)
			assert.ErrorContains(t, err, "graph")
		})
	}
	require.NoError(t, s.Migrate(ctx))
	for _, c := range calls {
		assert.NoError(t, c.call(), "%s after Migrate", c.name)
	}
}
