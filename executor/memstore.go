package executor

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Compile-time checks that a MemoryStore implements the interfaces.
var (
	_ StateStore       = (*MemoryStore)(nil)
	_ AssetStore       = (*MemoryStore)(nil)
	_ AssetChecker     = (*MemoryStore)(nil)
	_ AssetBatchGetter = (*MemoryStore)(nil)
	_ RunStore         = (*MemoryStore)(nil)
	_ RunStatusLister  = (*MemoryStore)(nil)
)

// ErrInvalidAge: a retention method got a negative age.
var ErrInvalidAge = errors.New("executor: invalid age")

// MemoryStore keeps node states, assets and run records in memory, as
// [MemoryStates], [MemoryAssets] and [MemoryRuns] do, and deletes what
// runs leave behind, as pgstore.Store does: [MemoryStore.DeleteGraph],
// [MemoryStore.PruneAssets] and [MemoryStore.PruneRuns], with the same
// names and meanings, so that a host can move from one to the other
// without surprises. It implements [StateStore], [AssetStore],
// [AssetChecker], [AssetBatchGetter], [RunStore] and [RunStatusLister], so one value fills
// all three store fields of [Options]; it knows what its states refer to
// only when it is the StateStore of every executor that puts assets into
// it. It is safe for concurrent use, and passes the [storetest] kit, its
// retention checks included.
//
// The executor deletes nothing: an asset's key ends with its content
// hash, so regenerating a node puts a new asset and leaves the old one
// behind, and results that were never committed (cancelled, superseded,
// failed commits) leave theirs. A long-running host calls PruneAssets and
// PruneRuns from a timer, and DeleteGraph when a user deletes a graph.
// Ages are measured by time.Now, so testing/synctest's virtual clock
// makes them pass in a test.
//
// Its methods cost what those of the three stores cost; a Put also reads
// the clock, and a commit that replaces a node's reference releases the
// asset it referred to (see [MemoryStore.PruneAssets]). The zero value is
// an empty store, ready to use.
//
// [storetest]: https://pkg.go.dev/github.com/regengraph/regen/executor/storetest
type MemoryStore struct {
	states MemoryStates
	assets MemoryAssets
	runs   MemoryRuns
}

// NewMemoryStore returns an empty [MemoryStore].
func NewMemoryStore() *MemoryStore {
	return new(MemoryStore)
}

func (m *MemoryStore) local() {} // see localAssets

// Load is [MemoryStates.Load]: a copy of the graph's states and its
// version.
func (m *MemoryStore) Load(ctx context.Context, graphKey string) (Snapshot, error) {
	return m.states.Load(ctx, graphKey)
}

// Commit is [MemoryStates.Commit], and releases the assets it stops
// referring to: for each node whose reference it replaces, the asset that
// the old reference points to, if the store holds one, has its age for
// PruneAssets start again now. A run that loaded the node's old state
// before the commit can then still read that asset for olderThan.
func (m *MemoryStore) Commit(ctx context.Context, graphKey string, expect int64, changes []Change) (int64, error) {
	return m.states.commit(ctx, graphKey, expect, changes, &m.assets)
}

// reserve announces a run of graphKey, which has no states, to the
// states, and to the assets if the run puts its assets in m too: it puts
// about one asset a node. (A store that holds only the states would keep
// asset slots it never uses.)
func (m *MemoryStore) reserve(graphKey string, nodes int, assets AssetStore) {
	m.states.reserve(graphKey, nodes, assets)
	if a, ok := assets.(*MemoryStore); ok && a == m {
		m.assets.reserve(nodes)
	}
}

// Put is [MemoryAssets.Put]: it stores a copy of a under key, and returns
// "mem:" + key. The asset's age for PruneAssets starts now, also when it
// replaces an asset under that key.
func (m *MemoryStore) Put(ctx context.Context, key string, a Asset) (string, error) {
	return m.assets.put(ctx, key, a, m.assets.sinceNow())
}

// Get is [MemoryAssets.Get]: the returned Data is the stored slice, which
// the caller must not modify.
func (m *MemoryStore) Get(ctx context.Context, ref string) (Asset, error) {
	return m.assets.Get(ctx, ref)
}

// Exists is [MemoryAssets.Exists].
func (m *MemoryStore) Exists(ctx context.Context, ref string) (bool, error) {
	return m.assets.Exists(ctx, ref)
}

// Missing is [MemoryAssets.Missing]; see [AssetChecker].
func (m *MemoryStore) Missing(ctx context.Context, refs []string) ([]string, error) {
	return m.assets.Missing(ctx, refs)
}

// GetMany is [MemoryAssets.GetMany]: the assets refs point to, in order.
func (m *MemoryStore) GetMany(ctx context.Context, refs []string) ([]Asset, error) {
	return m.assets.GetMany(ctx, refs)
}

// PutRun is [MemoryRuns.PutRun].
func (m *MemoryStore) PutRun(ctx context.Context, r Record) error {
	return m.runs.PutRun(ctx, r)
}

// GetRun is [MemoryRuns.GetRun].
func (m *MemoryStore) GetRun(ctx context.Context, id string) (Record, error) {
	return m.runs.GetRun(ctx, id)
}

// ListRuns is [MemoryRuns.ListRuns].
func (m *MemoryStore) ListRuns(ctx context.Context, graphKey string) ([]Record, error) {
	return m.runs.ListRuns(ctx, graphKey)
}

// RunsByStatus is [MemoryRuns.RunsByStatus]; see [RunStatusLister].
func (m *MemoryStore) RunsByStatus(ctx context.Context, status RunStatus) ([]Record, error) {
	return m.runs.RunsByStatus(ctx, status)
}

// DeleteGraph deletes a graph's node states and its run records, and
// reports whether there were any. Other graphs are untouched, whatever
// their keys (a graph "a" is not a prefix of "a/b").
//
// The graph's version stays, as a tombstone that moves on by one, so that
// a version number is never used twice: a run that loaded the graph before
// the deletion cannot commit over the graph re-created after it (see
// [MemoryStates.DeleteGraph]). A graph never committed gets no tombstone.
//
// The graph's assets are not deleted here: once no node state refers to
// them, [MemoryStore.PruneAssets] deletes them like any other
// unreferenced asset. A run of the graph still going finds it deleted at
// its next commit: it stops, with [ErrGraphDeleted], and commits nothing
// more, so the graph stays deleted. (Its assets may then still be put;
// PruneAssets deletes them.) The states and the records go at once, as
// in one transaction: a record put once the states are gone (by a run of
// the graph made again) is kept. It returns ctx.Err(), with no effect, if
// ctx is done.
func (m *MemoryStore) DeleteGraph(ctx context.Context, graphKey string) (bool, error) {
	// The records' lock is held across both; no path takes it while it
	// holds the states' lock.
	m.runs.mu.Lock()
	defer m.runs.mu.Unlock()
	states, err := m.states.DeleteGraph(ctx, graphKey)
	if err != nil {
		return false, err
	}
	runs := m.runs.deleteGraph(graphKey)
	return states || runs > 0, nil
}

// PruneAssets deletes the assets that no node state of the store refers
// to and that were put, or released, more than olderThan ago, and returns
// how many it deleted: an asset exactly olderThan old is kept, as
// pgstore keeps it. Regenerating a node puts a new asset and releases
// the old one; deleted graphs, and results that were never committed,
// leave theirs behind too. PruneAssets is the garbage collector for all of
// them. A commit that replaces a node's reference releases the asset it
// referred to, and a Put of an existing key renews it: either starts its
// age again.
//
// It is safe while runs are in progress when olderThan is longer than the
// longest run: every asset that a run may still read, or has put and not
// yet committed (the executor puts a node's asset before it commits its
// state), is referred to by a node state, or was put or released after
// the run started. (PruneAssets reads the clock before it reads the
// states, so an asset that a commit refers to after that read was put less
// than the run's length before the clock reading.) With a shorter
// olderThan, a run may find a dependency's asset gone: that node fails,
// and the next run regenerates what is missing (unless the executor's
// SkipAssetCheck is set).
//
// It costs O(states + assets), however few assets it deletes (about 4 ms
// for 90,000 assets and 15,000 states), with a transient set of the
// references that the states hold. It holds a lock for one graph's states
// or for one batch of a shard's assets at a time, so runs go on meanwhile;
// the exception is a shard that it leaves under a quarter full, which it
// compacts to give memory back: that holds the shard's lock for
// O(its assets left), about 100 ns each (milliseconds for a shard of tens
// of thousands), once, after a prune that deleted most of the shard.
// It returns ctx.Err() if ctx ends before it is done, with the count of
// the assets deleted so far. A negative olderThan is an error wrapping
// [ErrInvalidAge].
//
// It reads every state rather than keep track of the unreferenced assets
// as commits go, on purpose: that needs each asset's count of the states
// that refer to it, and so a commit would look up the asset of each
// reference it sets, as it does the one it releases. Measured, that one
// lookup slowed the store's work on a run by 6% (BenchmarkMemoryStoreRun,
// about 40 ns a node); logging the references that commits set, to count
// them at the next prune, would instead keep 32 bytes a change until then
// (without bound for a host that never prunes). A prune on a timer costs
// less than either.
func (m *MemoryStore) PruneAssets(ctx context.Context, olderThan time.Duration) (int64, error) {
	if err := checkAge("prune assets", olderThan); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// The clock first: see the doc.
	cutoff := time.Now().Add(-olderThan)
	inUse, err := m.states.assetRefs(ctx, memRefPrefix)
	if err != nil {
		return 0, err
	}
	return m.assets.prune(ctx, cutoff, inUse)
}

// PruneRuns is [MemoryRuns.PruneRuns]: it deletes the run records that
// ended, or that never ended but started, more than olderThan ago, and
// returns how many it deleted. It never deletes a record that says
// running ([RunRunning]), whatever its age: its run may still go on, or
// wait, its process gone, for a recovery to resume it.
func (m *MemoryStore) PruneRuns(ctx context.Context, olderThan time.Duration) (int64, error) {
	return m.runs.PruneRuns(ctx, olderThan)
}

// checkAge refuses a negative age, with an error wrapping [ErrInvalidAge].
func checkAge(what string, age time.Duration) error {
	if age < 0 {
		return fmt.Errorf("%w: %s older than %v: want 0 or more", ErrInvalidAge, what, age)
	}
	return nil
}
