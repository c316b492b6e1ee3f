package executor_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/testgraph"
)

// episodeExecutor returns an executor on the given stores (the embedded
// default for zero Options) whose transcript of segment 2 fails for good.
func episodeExecutor(t *testing.T, opts executor.Options) *executor.Executor {
	t.Helper()
	gen := fake.New(fake.Options{Fail: map[string]bool{"transcript:segment[2]": true}})
	opts.Generators = gen.Registry("transcript", "subtitles")
	e, err := executor.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Close(ctx))
	})
	return e
}

// resumers are the two ways to take a run up again, which check the
// run's graph alike.
var resumers = []struct {
	name string
	call func(e *executor.Executor, ctx context.Context, g *graph.Graph, id string, opts ...executor.ResumeOptions) (*executor.Run, error)
}{
	{"Resume", (*executor.Executor).Resume},
	{"RerunFailed", (*executor.Executor).RerunFailed},
}

// The embedder's story: Resume and RerunFailed of a run checked only its
// duration. A graph of another template, of the same length, given for
// the key's latest run was refused with ErrGraphReplaced, saying the
// key's graph was now the run's own one, "not the run's" (the graph
// given); and once a run of that other template had gone on the key, the
// old run was resumed on it. Both are now refused with ErrInvalidRequest
// alone, saying the graph is not the run's, before anything is committed.
func TestResumeChecksTheRunsTemplate(t *testing.T) {
	for _, rs := range resumers {
		for _, st := range []struct {
			name string
			opts func() executor.Options
		}{
			{"MemoryStore", func() executor.Options { return executor.Options{} }},
			{"MemoryStates and MemoryRuns", func() executor.Options {
				return executor.Options{States: executor.NewMemoryStates(), Assets: executor.NewMemoryAssets(),
					Runs: executor.NewMemoryRuns()}
			}},
		} {
			t.Run(rs.name+"/"+st.name, func(t *testing.T) {
				ctx := t.Context()
				gA, gB, _ := testgraph.Episode(t)
				e := episodeExecutor(t, st.opts())
				load := func() executor.Snapshot {
					snap, err := e.States().Load(ctx, "ep")
					require.NoError(t, err)
					return snap
				}
				runs := func() int {
					recs, err := e.Runs().ListRuns(ctx, "ep")
					require.NoError(t, err)
					return len(recs)
				}
				rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "ep", Graph: gA})
				require.ErrorIs(t, err, executor.ErrRunFailed)

				// 1. The run is the key's latest: the key's graph is the run's,
				// and the graph given is not.
				before := load()
				_, err = rs.call(e, ctx, gB, rep.Record.ID)
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				assert.NotErrorIs(t, err, executor.ErrGraphReplaced, "nothing replaced the run's graph: %v", err)
				assert.ErrorContains(t, err, "it ran on a graph of another template than this one")
				assert.ErrorContains(t, err, "build the run's graph again from its template and Record.Seconds")
				assert.Equal(t, before, load(), "a refused resume committed")
				assert.Equal(t, 1, runs(), "a refused resume recorded a run")

				// 2. A run of template B goes on the key: the A-run is not
				// resumed on graph B.
				_, err = e.Run(ctx, executor.RunRequest{GraphKey: "ep", Graph: gB})
				require.ErrorIs(t, err, executor.ErrRunFailed)
				before = load()
				_, err = rs.call(e, ctx, gB, rep.Record.ID)
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				assert.NotErrorIs(t, err, executor.ErrGraphReplaced)
				assert.ErrorContains(t, err, "it ran on a graph of another template than this one")
				assert.Equal(t, before, load(), "a refused resume committed")
				assert.Equal(t, 2, runs(), "a refused resume recorded a run")

				// With its own graph, it is refused as replaced, as before:
				// the key's graph is now B's.
				_, err = rs.call(e, ctx, gA, rep.Record.ID)
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				require.ErrorIs(t, err, executor.ErrGraphReplaced)
				assert.Equal(t, before, load(), "a refused resume committed")

				// A run of A makes A the key's again; then its own graph
				// resumes the A-run.
				_, err = e.Run(ctx, executor.RunRequest{GraphKey: "ep", Graph: gA})
				require.ErrorIs(t, err, executor.ErrRunFailed)
				r, err := rs.call(e, ctx, gA, rep.Record.ID)
				require.NoError(t, err)
				_, err = r.Wait()
				require.ErrorIs(t, err, executor.ErrRunFailed, "transcript:segment[2] fails for good")
			})
		}
	}
}

// A run's record keeps its graph's fingerprint, from its start to its
// end: the same for two runs of one graph, another for another template
// or duration; a resume's record keeps the graph it resumed on.
func TestRunRecordKeepsItsGraph(t *testing.T) {
	for _, rs := range resumers {
		t.Run(rs.name, func(t *testing.T) {
			ctx := t.Context()
			gA, gB, gA60 := testgraph.Episode(t)
			e := episodeExecutor(t, executor.Options{})
			fps := map[string]string{}
			for _, tc := range []struct {
				key string
				g   *graph.Graph
			}{{"a", gA}, {"a-again", gA}, {"b", gB}, {"a60", gA60}} {
				rep, err := e.Run(ctx, executor.RunRequest{GraphKey: tc.key, Graph: tc.g})
				require.ErrorIs(t, err, executor.ErrRunFailed)
				require.NotEmpty(t, rep.Record.Graph, "run of %s", tc.key)
				stored, err := e.Runs().GetRun(ctx, rep.Record.ID)
				require.NoError(t, err)
				assert.Equal(t, rep.Record.Graph, stored.Graph, "the stored record of %s", tc.key)
				fps[tc.key] = rep.Record.Graph
			}
			assert.Equal(t, fps["a"], fps["a-again"], "two runs of one graph")
			assert.NotEqual(t, fps["a"], fps["b"], "another template")
			assert.NotEqual(t, fps["a"], fps["a60"], "another duration")

			recs, err := e.Runs().ListRuns(ctx, "a")
			require.NoError(t, err)
			require.Len(t, recs, 1)
			r, err := rs.call(e, ctx, gA, recs[0].ID)
			require.NoError(t, err)
			rep, err := r.Wait()
			require.ErrorIs(t, err, executor.ErrRunFailed)
			assert.Equal(t, fps["a"], rep.Record.Graph, "the resume's record")
		})
	}
}

// A record written before Record.Graph existed has no fingerprint: Resume
// and RerunFailed check its duration, as before, and take the run's
// graph; the resuming run's own record keeps its graph's fingerprint.
func TestResumeOfAnOlderRecordChecksItsDuration(t *testing.T) {
	for _, rs := range resumers {
		t.Run(rs.name, func(t *testing.T) {
			ctx := t.Context()
			gA, gB, gA60 := testgraph.Episode(t)
			e := episodeExecutor(t, executor.Options{})
			rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "ep", Graph: gA})
			require.ErrorIs(t, err, executor.ErrRunFailed)
			old := rep.Record
			fp := old.Graph
			old.Graph = ""
			require.NoError(t, e.Runs().PutRun(ctx, old))

			_, err = rs.call(e, ctx, gA60, old.ID)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.NotErrorIs(t, err, executor.ErrGraphReplaced)
			assert.ErrorContains(t, err, "it ran on a graph of 30 s, and this one is of 60 s")
			// Another template of the same duration passes the record's
			// check; the key's graph, A's, then refuses it.
			_, err = rs.call(e, ctx, gB, old.ID)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)

			r, err := rs.call(e, ctx, gA, old.ID)
			require.NoError(t, err)
			again, err := r.Wait()
			require.ErrorIs(t, err, executor.ErrRunFailed, "transcript:segment[2] fails for good")
			assert.Equal(t, fp, again.Record.Graph, "the resume's record")
			kept, err := e.Runs().GetRun(ctx, old.ID)
			require.NoError(t, err)
			assert.Empty(t, kept.Graph, "the older record is left as it was")
		})
	}
}
