package pgstore_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/testenv"
)

// newExecutor returns an executor on s for all three stores, closed when
// the test ends.
func newExecutor(t *testing.T, s *pgstore.Store, reg executor.Registry) *executor.Executor {
	t.Helper()
	return newExecutorOf(t, executor.Options{Generators: reg, States: s, Assets: s, Runs: s})
}

// newExecutorOf returns an executor of opts, closed when the test ends.
func newExecutorOf(t *testing.T, opts executor.Options) *executor.Executor {
	t.Helper()
	e, err := executor.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Close(ctx))
	})
	return e
}

// lecture returns the 2-minute lecture graph: 12 segments, 39 nodes.
func lecture(t *testing.T) *graph.Graph {
	t.Helper()
	g, err := graph.Build(graph.Lecture(), 120)
	require.NoError(t, err)
	return g
}

// requireAllClean fails the test unless every node of g is recorded
// clean, with an asset the store holds.
func requireAllClean(t *testing.T, s *pgstore.Store, g *graph.Graph, key string) executor.Snapshot {
	t.Helper()
	snap, err := s.Load(t.Context(), key)
	require.NoError(t, err)
	require.Len(t, snap.States, g.Len()+1, "the nodes, and the graph's fingerprint")
	for id, st := range snap.States {
		if id == executor.GraphStateID {
			continue
		}
		require.Equal(t, dirty.StatusClean, st.Status, "node %s", id)
		require.True(t, strings.HasPrefix(st.AssetRef, pgstore.RefPrefix), "node %s: asset ref %q", id, st.AssetRef)
		ok, err := s.Exists(t.Context(), st.AssetRef)
		require.NoError(t, err)
		require.True(t, ok, "node %s: asset %s is not stored", id, st.AssetRef)
	}
	return snap
}

// TestExecutorLecture runs the lecture on the Postgres stores, then edits
// one narration and runs again: only the narration, its video and the
// timeline are regenerated, and everything else keeps its state.
func TestExecutorLecture(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	g := lecture(t)
	gen := fake.New(fake.Options{})
	e := newExecutor(t, s, gen.Registry())
	key := testenv.UniqueName(t)

	rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g, TriggeredBy: "test"})
	require.NoError(t, err)
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	assert.Len(t, rep.Generated, g.Len())
	assert.Equal(t, g.Len(), gen.Calls())
	before := requireAllClean(t, s, g, key)

	// The edit.
	narration3 := dirty.Mark{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}
	rep2, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g, Marks: []dirty.Mark{narration3},
		TriggeredBy: "test", Reason: "shorter narration"})
	require.NoError(t, err)
	changed := []string{"asset:narration:segment[3]", "asset:video:segment[3]", "timeline"}
	assert.ElementsMatch(t, changed, rep2.Generated)
	assert.Equal(t, g.Len()+len(changed), gen.Calls(), "the second run called the generators for other nodes")
	after := requireAllClean(t, s, g, key)
	assert.Greater(t, after.Version, before.Version)
	assert.Equal(t, before.States[narration3.ID].Rev+1, after.States[narration3.ID].Rev)
	for id, st := range before.States {
		if slices.Contains(changed, id) {
			assert.NotEqual(t, st.OutputHash, after.States[id].OutputHash, id)
			continue
		}
		assert.Equal(t, st, after.States[id], "node %s changed without an edit upstream", id)
	}

	// The audit trail, from Postgres.
	runs, err := s.ListRuns(t.Context(), key)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	assert.Equal(t, []string{rep.Record.ID, rep2.Record.ID}, []string{runs[0].ID, runs[1].ID})
	assert.Equal(t, executor.RunSucceeded, runs[1].Status)
	assert.Equal(t, []dirty.Mark{narration3}, runs[1].Marks)
	assert.Equal(t, "shorter narration", runs[1].Reason)
	assert.Equal(t, len(changed), runs[1].Counts.Generated)
	assert.False(t, runs[1].EndedAt.Before(runs[1].StartedAt))
}

// TestExecutorCancelled cancels runs on the Postgres stores while the
// videos generate, by the run's context and by Run.Cancel: the run ends
// cancelled, its record and states say so, no node is left running, and
// a later run regenerates only what was not done.
func TestExecutorCancelled(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, tc := range []struct {
		name   string
		cancel func(cancelCtx context.CancelFunc, r *executor.Run)
	}{
		{"context", func(cancel context.CancelFunc, _ *executor.Run) { cancel() }},
		{"Run.Cancel", func(_ context.CancelFunc, r *executor.Run) { r.Cancel() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t)
			g := lecture(t)
			gen := fake.New(fake.Options{})
			reg := gen.Registry()
			// Videos block until their attempt is cancelled.
			started := make(chan struct{})
			var once sync.Once
			reg[graph.KindVideo] = executor.GeneratorFunc(func(ctx context.Context, _ executor.Request) (executor.Asset, error) {
				once.Do(func() { close(started) })
				<-ctx.Done()
				return executor.Asset{}, ctx.Err()
			})
			e := newExecutor(t, s, reg)
			key := testenv.UniqueName(t)

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r, err := e.Start(ctx, executor.RunRequest{GraphKey: key, Graph: g})
			require.NoError(t, err)
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("no video started within 10s")
			}
			tc.cancel(cancel, r)
			rep, err := r.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
			assert.Equal(t, executor.RunCancelled, rep.Record.Status)
			assert.NotEmpty(t, rep.Cancelled)

			rec, err := s.GetRun(t.Context(), r.ID())
			require.NoError(t, err)
			assert.Equal(t, executor.RunCancelled, rec.Status)
			assert.False(t, rec.EndedAt.IsZero(), "a cancelled run's record has an end")

			snap, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			var done []string
			for id, st := range snap.States {
				assert.NotEqual(t, dirty.StatusRunning, st.Status, "node %s left running", id)
				if st.Status == dirty.StatusClean && id != executor.GraphStateID {
					done = append(done, id)
				}
			}
			for _, id := range rep.Cancelled {
				assert.Equal(t, dirty.StatusCancelled, snap.States[id].Status, "node %s", id)
			}
			require.NotEmpty(t, done, "nothing finished before the videos")

			// Run again with working videos: the rest, and only the rest.
			e2 := newExecutor(t, s, gen.Registry())
			rep2, err := e2.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
			require.NoError(t, err)
			assert.Len(t, rep2.Generated, g.Len()-len(done))
			for _, id := range done {
				assert.NotContains(t, rep2.Generated, id)
			}
			requireAllClean(t, s, g, key)
		})
	}
}
