package executor_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// Tests from a review of the graph fingerprint (GraphStateID), of the
// retries of a plan's commit and of the outputs kept for a Put (unput):
// each failed before its fix.

// A run whose graph was made again by newer runs while it ran, its
// fingerprint the same as before (the graph deleted and a run of it
// started again, as a host that resets a lecture does; or a longer
// lecture run, then the shorter one again), stops at its next commit as
// when its graph is replaced: newer runs made the key's graph since it
// started, and its results, planned from the graph before them, must not
// be committed into theirs.
func TestGraphMadeAgainStopsTheRun(t *testing.T) {
	for _, tc := range []struct {
		name      string
		meanwhile func(t *testing.T, l *lab, e *executor.Executor)
	}{
		{"deleted and run again", func(t *testing.T, l *lab, e *executor.Executor) {
			_, err := l.states.DeleteGraph(context.Background(), "lecture")
			assert.NoError(t, err)
			_, err = l.run(e)
			assert.NoError(t, err)
		}},
		{"replaced and run again", func(t *testing.T, l *lab, e *executor.Executor) {
			longer, err := graph.Build(graph.Lecture(), 60)
			assert.NoError(t, err)
			_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: longer})
			assert.NoError(t, err)
			_, err = l.run(e)
			assert.NoError(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				gen := l.onceAt("asset:video:segment[0]", func() {
					e2, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states,
						Assets: l.assets, Runs: l.runs})
					assert.NoError(t, err)
					tc.meanwhile(t, l, e2)
					assert.NoError(t, e2.Close(context.Background()))
				})
				// One worker: the run commits nothing while the newer
				// runs go on.
				e := l.executor(executor.Options{Generators: l.registry(gen), Workers: 1})
				rep, err := l.run(e)
				require.ErrorIs(t, err, executor.ErrCancelled)
				require.ErrorIs(t, err, executor.ErrGraphReplaced)
				assert.Equal(t, executor.RunCancelled, rep.Record.Status)
				// The nodes that ran before are its; none after.
				assert.NotContains(t, rep.Generated, "asset:video:segment[0]")
				assert.Empty(t, rep.Unchanged, "nodes of the graph made again counted as the run's")
			})
		})
	}
}

// A host resets a lecture while a run of it goes on: it deletes the
// graph and starts a run of it again, whose script (from the new
// parameters, at revision 0 again) takes longer than the older run's.
// The script that the older run made from the old parameters is not
// committed into the new lecture, where the newer run would keep it as
// current and make everything else from it.
func TestResetLectureKeepsNothingOfTheRunBefore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		fresh := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if req.NodeID != "script" {
				return l.Generate(ctx, req)
			}
			if err := pause(ctx, 30*time.Second); err != nil {
				return executor.Asset{}, err
			}
			return executor.Asset{Data: []byte("the new lecture's script")}, nil
		})
		e2 := l.executor(executor.Options{Generators: l.registry(fresh)})
		var newer *executor.Run
		gen := l.onceAt("script", func() {
			_, err := l.states.DeleteGraph(context.Background(), "lecture")
			assert.NoError(t, err)
			newer, err = e2.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			assert.NoError(t, err)
		})
		e := l.executor(executor.Options{Generators: l.registry(gen)})
		_, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrCancelled)
		require.ErrorIs(t, err, executor.ErrGraphReplaced)
		require.NotNil(t, newer)
		_, err = newer.Wait()
		require.NoError(t, err)
		l.requireAllClean()
		a, err := l.assets.Get(context.Background(), l.snapshot().States["script"].AssetRef)
		require.NoError(t, err)
		assert.Equal(t, "the new lecture's script", string(a.Data))
	})
}

// lostRecord is a run store whose first PutRun fails, as over a
// connection lost once.
type lostRecord struct {
	*executor.MemoryRuns
	failed atomic.Bool
}

func (s *lostRecord) PutRun(ctx context.Context, rec executor.Record) error {
	if s.failed.CompareAndSwap(false, true) {
		return errors.New("connection reset by peer")
	}
	return s.MemoryRuns.PutRun(ctx, rec)
}

// The record that a run puts when it starts is put again after a lost
// connection, as its final one is: the run's plan is committed by then
// (the key's graph is its graph, and an older run of another graph
// stops), so a Start that failed there would leave the key without any
// run making it.
func TestStartRecordIsPutAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		runs := &lostRecord{MemoryRuns: l.runs}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets, Runs: runs})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.True(t, runs.failed.Load(), "no PutRun failed")
		rec, err := l.runs.GetRun(context.Background(), rep.Record.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rec.Status)
		l.requireAllClean()
		require.NoError(t, e.Close(context.Background()))
	})
}

// resettingStates is a host's state store whose deletion removes a
// graph's row, version included, so that the graph re-created after it
// counts its versions from 0 again: the StateStore interface does not
// forbid it (tombstones are the Retainer's contract, not the
// StateStore's).
type resettingStates struct {
	mu     sync.Mutex
	graphs map[string]*executor.Snapshot
}

func (s *resettingStates) Load(_ context.Context, key string) (executor.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.graphs[key]
	if !ok {
		return executor.Snapshot{}, nil
	}
	return executor.Snapshot{Version: g.Version, States: maps.Clone(g.States)}, nil
}

func (s *resettingStates) Commit(_ context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.graphs[key]
	if !ok {
		g = &executor.Snapshot{States: map[string]dirty.State{}}
	}
	if g.Version != expect {
		return 0, &executor.ConflictError{GraphKey: key, Expected: expect, Actual: g.Version}
	}
	for _, c := range changes {
		g.States[c.ID] = c.State
	}
	g.Version++
	s.graphs[key] = g
	return g.Version, nil
}

func (s *resettingStates) delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.graphs, key)
}

// The graph made again while a run goes on is told from the one it
// started on also with a store that counts a re-created graph's versions
// from 0 again: the graph state records a making that no other can have,
// not the version it went over, which such a store uses twice. Before,
// the older run found its fingerprint under the same "v0" as when it
// started, went on, and committed its results into the new graph's.
func TestGraphMadeAgainOnAStoreThatResetsVersions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		states := &resettingStates{graphs: map[string]*executor.Snapshot{}}
		newer, err := executor.New(executor.Options{Generators: l.registry(l), States: states, Assets: l.assets, Runs: l.runs})
		require.NoError(t, err)
		gen := l.onceAt("asset:video:segment[0]", func() {
			states.delete("lecture")
			_, err := l.run(newer)
			assert.NoError(t, err)
		})
		e, err := executor.New(executor.Options{Generators: l.registry(gen), States: states, Assets: l.assets,
			Runs: l.runs, Workers: 1})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrCancelled)
		require.ErrorIs(t, err, executor.ErrGraphReplaced)
		assert.NotContains(t, rep.Generated, "asset:video:segment[0]")
		require.NoError(t, e.Close(context.Background()))
		require.NoError(t, newer.Close(context.Background()))
	})
}
