package executor_test

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/testenv"
)

// reordering is a StateStore whose Commit writes the changes in another
// order than given, reversing the caller's slice, as a SQL store may sort
// it for a stable lock order, against StateStore's contract; it takes a
// round trip's time, so that results queue up for one commit.
type reordering struct{ *executor.MemoryStates }

func (s reordering) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	slices.Reverse(changes)
	time.Sleep(2 * time.Millisecond)
	return s.MemoryStates.Commit(ctx, key, expect, changes)
}

// inputChecker returns l's generator, which also notes each input that
// is not its dependency's own output (the lab's outputs start with their
// node's ID), and what it noted, by "node <- dependency".
func inputChecker(l *lab) (executor.Generator, func() map[string]string) {
	mixed := map[string]string{}
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		for _, d := range req.Deps {
			if !strings.HasPrefix(string(d.Asset.Data), d.NodeID+"@") {
				l.mu.Lock()
				mixed[req.NodeID+" <- "+d.NodeID] = string(d.Asset.Data)
				l.mu.Unlock()
			}
		}
		return l.Generate(ctx, req)
	})
	return gen, func() map[string]string {
		l.mu.Lock()
		defer l.mu.Unlock()
		return maps.Clone(mixed)
	}
}

// A store that reorders the changes it is given breaks its contract, but
// it must not make the run hand a node another node's output as its
// input, nor record a node with another's: the run's view of the states
// follows the store's, not the slice it gave.
func TestAStoreThatReordersTheChangesMixesNoOutputs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		gen, mixed := inputChecker(l)
		logs := &testenv.LogBuffer{}
		e, err := executor.New(executor.Options{Generators: l.registry(gen), States: reordering{l.states},
			Assets: l.assets, Runs: l.runs, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		rep, err := l.run(e)
		require.NoError(t, err)
		require.Len(t, rep.Generated, l.g.Len())
		require.Empty(t, mixed(), "inputs that are another node's output")
		snap := l.snapshot()
		for id, st := range snap.States {
			if id == executor.GraphStateID {
				continue
			}
			a, err := l.assets.Get(context.Background(), st.AssetRef)
			require.NoError(t, err)
			require.Equal(t, dirty.StatusClean, st.Status, id)
			require.True(t, strings.HasPrefix(string(a.Data), id+"@"), "%s holds %q", id, a.Data)
		}
		_, set, err := e.Plan(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		require.Zero(t, set.Len(), "nodes to remake after a run that made them all")
		require.Equal(t, 1, strings.Count(logs.String(), "reordered the changes"), "warnings:\n%s", logs)
	})
}

// renaming is a StateStore whose Commit changes the node IDs of the
// changes it was given, after it stored them as given.
type renaming struct{ *executor.MemoryStates }

func (s renaming) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	v, err := s.MemoryStates.Commit(ctx, key, expect, changes)
	for i := range changes {
		changes[i].ID = "renamed"
	}
	return v, err
}

// A store that changes the IDs of the changes it is given leaves the run
// unable to tell whose each state is: the results it was given are not
// counted as made, and the run fails saying why.
func TestAStoreThatRenamesTheChangesFailsTheirNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 10)
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: renaming{l.states},
			Assets: l.assets, Runs: l.runs})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		require.ErrorContains(t, err, "changed the node IDs")
		require.Empty(t, rep.Generated)
	})
}

// reversingChecker is an AssetStore whose Missing reverses the refs it
// is given before it answers, against AssetChecker's contract.
type reversingChecker struct{ *executor.MemoryAssets }

func (s reversingChecker) Missing(ctx context.Context, refs []string) ([]string, error) {
	slices.Reverse(refs)
	return s.MemoryAssets.Missing(ctx, refs)
}

// A store that reorders the refs given to Missing must not make the run
// take another node's asset for the one lost.
func TestAStoreThatReordersMissingsRefsLosesNoOtherAsset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		_, err := l.run(l.executor(executor.Options{}))
		require.NoError(t, err)
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states,
			Assets: reversingChecker{l.assets}, Runs: l.runs})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		lost := "asset:image:segment[0]"
		require.True(t, l.assets.Delete(l.snapshot().States[lost].AssetRef))
		_, set, err := e.Plan(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		var missing []string
		for _, n := range set.Nodes() {
			if why, _ := set.Why(n); why.Reason == dirty.ReasonAssetMissing {
				missing = append(missing, l.g.NodeID(n))
			}
		}
		require.Equal(t, []string{lost}, missing)
	})
}

// sortingGetter is an AssetStore whose GetMany sorts the refs it is
// given, and answers in that order, against AssetBatchGetter's contract.
type sortingGetter struct{ *executor.MemoryAssets }

func (s sortingGetter) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	slices.Sort(refs)
	return s.MemoryAssets.GetMany(ctx, refs)
}

// A store that reorders the refs given to GetMany must not make the run
// hand a node one dependency's output as another's: the timeline reads
// its 4 dependencies (3 videos and the music) with one GetMany.
func TestAStoreThatReordersGetManysRefsMixesNoInputs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		gen, mixed := inputChecker(l)
		e, err := executor.New(executor.Options{Generators: l.registry(gen), States: l.states,
			Assets: sortingGetter{l.assets}, Runs: l.runs})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		_, err = l.run(e)
		require.NoError(t, err)
		require.Empty(t, mixed(), "inputs that are another node's output")
	})
}
