package storetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// Retainer is a store that keeps node states, assets and run records
// together and deletes what the executor leaves behind, as
// executor.MemoryStore and pgstore.Store do. The executor never deletes
// anything itself: a host calls these methods, from a timer or when a
// user deletes a graph. [Retention] checks one.
//
// A commit that stops referring to an asset releases it, and the release
// restarts the asset's age for PruneAssets, as a Put does: a run that
// started before the commit may still read the asset, as the output of a
// node it loaded then. So PruneAssets with an age longer than the
// longest run is safe while runs go on; a store that counted the age
// from the Put only would delete an asset that a run still reads, at
// any age.
type Retainer interface {
	executor.StateStore
	executor.AssetStore
	executor.RunStore
	// DeleteGraph removes the graph's node states and run records, and
	// reports whether there were any: false for a graph with a version
	// but neither (committed with no changes only, or deleted already),
	// whose version may move on all the same, as MemoryStore's and
	// pgstore's do, but never back. The graph's version moves on and is
	// kept, as a tombstone, so that a version number is never used twice:
	// a run that loaded the graph before the deletion cannot commit over
	// the graph re-created after it. The assets its states referred to
	// are then released: PruneAssets deletes each once no other state
	// refers to it and it is old, its age counted from its last Put or
	// commit's release. DeleteGraph need not restart that age, and
	// MemoryStore's and pgstore's do not (a run of the deleted graph still
	// going stops at its next commit); a store may restart it, keeping
	// those assets up to olderThan longer. The kit accepts both.
	DeleteGraph(ctx context.Context, graphKey string) (bool, error)
	// PruneAssets deletes the assets that no node state refers to and
	// that were put, or released by a commit that stopped referring to
	// them, more than olderThan ago, and returns how many it deleted: an
	// asset exactly olderThan old is kept. It runs while runs Put and
	// Commit: an asset that a Put renews, or that a commit refers to,
	// after PruneAssets found it old and unreferenced must stay, so it
	// decides and deletes in one step (one lock, one statement), or
	// checks each asset again as it deletes it.
	PruneAssets(ctx context.Context, olderThan time.Duration) (int64, error)
	// PruneRuns deletes the run records that ended more than olderThan
	// ago, and those that never ended but started more than olderThan
	// ago, and returns how many it deleted: a record exactly olderThan old
	// is kept. It never deletes a record whose Status is
	// executor.RunRunning, whatever its age: its run may go on still (a
	// long run), or its process may have died, and the record is what a
	// recovery resumes it from.
	PruneRuns(ctx context.Context, olderThan time.Duration) (int64, error)
}

// Retention checks a [Retainer] against the retention contract, in one
// subtest per property, each on a store from newStore. The checks prune
// the whole store, so each store must be one of its own: no other test
// may use it at the same time. The kit cannot make a store's clock move,
// so it checks asset ages at 0 (any unreferenced asset put before the
// call goes), at an hour (what was just put or released stays), and once
// in real time at a second (an asset put 1.5 s before, released just now,
// stays; skipped with -short); a store's own tests check the other ages.
// It checks that a run record, and an asset put or released, exactly the
// age old are kept on the fake clock of a testing/synctest bubble, which
// stands still, when the store reads the process's clock; a store that
// reads another (a database's) is checked there by its own tests.
func Retention(t *testing.T, newStore func(t *testing.T) Retainer) {
	t.Helper()
	runChecks(t, newStore, []check[Retainer]{
		{"DeleteGraph", testDeleteGraph},
		{"DeleteGraphNeverReusesVersions", testDeleteGraphVersions},
		{"DeleteGraphOfRunsOnly", testDeleteGraphRunsOnly},
		{"DeleteGraphWhileCommitting", testDeleteGraphWhileCommitting},
		{"DeleteGraphWhileLoading", testDeleteGraphWhileLoading},
		{"PruneAssetsKeepsReferenced", testPruneAssetsReferenced},
		{"PruneAssetsKeepsYoung", testPruneAssetsYoung},
		{"PruneAssetsAfterRelease", testPruneAssetsAfterRelease},
		{"PruneAssetsAfterReplace", testPruneAssetsReplaced},
		{"PruneAssetsAfterDeleteGraph", testPruneAssetsDeletedGraph},
		{"PruneAssetsKeepsEveryReference", testPruneAssetsEveryReference},
		{"PruneAssetsKeepsShared", testPruneAssetsShared},
		{"PruneAssetsSeenByReads", testPruneAssetsReads},
		{"PruneAssetsSeenByBatchReads", testPruneAssetsBatchReads},
		{"PruneAssetsWhilePutting", testPruneAssetsWhilePutting},
		{"PruneAssetsAfterPutAgain", testPruneAssetsPutAgain},
		{"PruneRuns", testPruneRuns},
		{"PruneRunsKeepsTheAge", testPruneRunsAge},
		{"PruneRunsKeepsRunning", testPruneRunsRunning},
		{"PruneAssetsKeepsTheAge", testPruneAssetsAge},
		{"NegativeAge", testRetentionNegativeAge},
		{"CancelledContext", testRetentionCancelled},
	})
}

// refState returns a clean state whose asset is ref.
func refState(ref string) dirty.State {
	return dirty.State{Status: dirty.StatusClean, Rev: 1, OutputHash: hash(ref), AssetRef: ref, Attempts: 1,
		UpdatedAt: baseTime}
}

// clearedState returns a state with no asset reference, as Executor.Forget
// commits for a node no longer in the graph: a commit of it releases the
// node's asset.
func clearedState() dirty.State {
	return dirty.State{Status: dirty.StatusMissing, Rev: 1, UpdatedAt: baseTime}
}

// exist reports which of refs the store holds.
func exist(t *testing.T, s executor.AssetStore, refs ...string) []bool {
	t.Helper()
	out := make([]bool, len(refs))
	for i, ref := range refs {
		ok, err := s.Exists(t.Context(), ref)
		require.NoError(t, err, "Exists(%q)", ref)
		out[i] = ok
	}
	return out
}

// prune runs PruneAssets and fails the test unless it deleted want.
func prune(t *testing.T, s Retainer, olderThan time.Duration, want int64, why string) {
	t.Helper()
	n, err := s.PruneAssets(t.Context(), olderThan)
	require.NoError(t, err, "PruneAssets(%v)", olderThan)
	require.Equal(t, want, n, "PruneAssets(%v): assets deleted (%s)", olderThan, why)
}

// deleteGraph runs DeleteGraph and fails the test unless it reports want.
func deleteGraph(t *testing.T, s Retainer, key string, want bool, why string) {
	t.Helper()
	ok, err := s.DeleteGraph(t.Context(), key)
	require.NoError(t, err, "DeleteGraph(%q)", key)
	require.Equal(t, want, ok, "DeleteGraph(%q): something deleted (%s)", key, why)
}

// notByStatus checks, when s is an [executor.RunStatusLister], that
// RunsByStatus lists none of the records that call deleted, whatever
// their status: a host that resumes the runs it lists as running would
// resume a deleted one.
func notByStatus(t *testing.T, s Retainer, call string, deleted ...executor.Record) {
	t.Helper()
	l, ok := s.(executor.RunStatusLister)
	if !ok {
		return
	}
	for _, status := range []executor.RunStatus{executor.RunRunning, executor.RunSucceeded, executor.RunFailed,
		executor.RunCancelled, executor.RunInterrupted} {
		rs, err := l.RunsByStatus(t.Context(), status)
		require.NoError(t, err, "RunsByStatus(%q)", status)
		for _, r := range deleted {
			assert.NotContains(t, ids(rs), r.ID, "RunsByStatus(%q) lists record %q after %s deleted it", status, r.ID, call)
		}
	}
}

func testDeleteGraph(t *testing.T, s Retainer) {
	a := Unique(t, "a")
	ab := a + "/b" // a is a prefix of it: deleting a must leave it alone
	n0, n1 := change(nodeID(0), state(0, dirty.StatusClean)), change(nodeID(1), state(1, dirty.StatusDirty))
	commit(t, s, a, 0, n0)
	commit(t, s, a, 1, n1)
	commit(t, s, ab, 0, n0)
	ra, rab := record(Unique(t, "run-a"), a, baseTime), record(Unique(t, "run-ab"), ab, baseTime)
	putRun(t, s, ra)
	putRun(t, s, rab)

	deleteGraph(t, s, a, true, "a graph with states and runs")
	snap := load(t, s, a)
	assert.Empty(t, snap.States, "Load(%q) after DeleteGraph: states", a)
	assert.Greater(t, snap.Version, int64(2), "Load(%q) after DeleteGraph: the version must move on, never back", a)
	assert.Empty(t, listRuns(t, s, a), "ListRuns(%q) after DeleteGraph", a)
	_, err := s.GetRun(t.Context(), ra.ID)
	require.ErrorIs(t, err, executor.ErrNotFound, "GetRun of a deleted graph's run")
	notByStatus(t, s, fmt.Sprintf("DeleteGraph(%q)", a), ra)

	requireSnapshotWhy(t, s, ab, 1, map[string]dirty.State{n0.ID: n0.State},
		fmt.Sprintf("DeleteGraph(%q) leaves alone the graph of a key that it prefixes, its states and its version", a))
	assert.Equal(t, []string{rab.ID}, ids(listRuns(t, s, ab)), "ListRuns(%q): another graph's runs", ab)

	deleteGraph(t, s, a, false, "a second delete finds nothing")
	after := load(t, s, a)
	assert.GreaterOrEqual(t, after.Version, snap.Version, "a second DeleteGraph moved the version back")

	// A graph with a version but no states nor runs (committed with no
	// changes only): nothing to delete, and the version never goes back.
	bare := Unique(t, "bare")
	commit(t, s, bare, 0)
	deleteGraph(t, s, bare, false, "a graph with a version but no states nor run records")
	assert.GreaterOrEqual(t, load(t, s, bare).Version, int64(1),
		"Load(%q) after DeleteGraph of a graph at version 1 with no states: the version never goes back", bare)

	never := Unique(t, "never")
	deleteGraph(t, s, never, false, "a graph never committed")
	requireSnapshotWhy(t, s, never, 0, nil,
		"a DeleteGraph of a graph never committed leaves it so, at version 0, with no tombstone: a run of it under way makes it by its first commit, at version 0, as a run started after the deletion would")

	// The graph is re-created by a commit at the version it loads at.
	commit(t, s, a, after.Version, n1)
	requireSnapshotWhy(t, s, a, after.Version+1, map[string]dirty.State{n1.ID: n1.State},
		fmt.Sprintf("a deleted graph is made again by a commit at the version it loads at (%d), which bumps it, as any commit does", after.Version))

	// Keys that a LIKE pattern ('_' for any character) or a comparison
	// without case would match with the deleted one: their graphs stay.
	like := Unique(t, "like")
	gone, twins := like+"-a_b", []string{like + "-axb", like + "-A_B"}
	for i, k := range append([]string{gone}, twins...) {
		commit(t, s, k, 0, n0)
		putRun(t, s, record(Unique(t, fmt.Sprint("like-run-", i)), k, baseTime))
	}
	deleteGraph(t, s, gone, true, "a graph with states and runs")
	for _, k := range twins {
		requireSnapshotWhy(t, s, k, 1, map[string]dirty.State{n0.ID: n0.State},
			fmt.Sprintf("DeleteGraph(%q) leaves alone a graph whose key its key matches as a LIKE pattern or but for case: keys are compared exactly", gone))
		assert.Len(t, listRuns(t, s, k), 1, "ListRuns(%q) after DeleteGraph(%q)", k, gone)
	}
}

// testDeleteGraphVersions checks that a version is never used twice: a
// run that loaded a graph before it was deleted cannot commit after it,
// however far the re-created graph got, at its version nor at any other
// the graph had before the deletion.
func testDeleteGraphVersions(t *testing.T, s Retainer) {
	for _, tc := range []struct {
		name      string
		before    int // commits before the deletion
		recreated int // commits after it
	}{
		{"stale run at 1, new graph at 1", 1, 1},
		{"stale run at 1, new graph past it", 1, 3},
		{"stale run at 3, new graph at 3", 3, 3},
		{"stale run at 3, new graph short of it", 3, 1},
		{"stale run at 2, graph not re-created", 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := Unique(t, "")
			for i := range tc.before {
				commit(t, s, key, int64(i), change(nodeID(0), state(i, dirty.StatusClean)))
			}
			stale := load(t, s, key) // a run loads the graph
			deleteGraph(t, s, key, true, "a graph with states")
			// Someone else re-creates the graph, as the executor does: load,
			// then commit at the version loaded.
			for i := range tc.recreated {
				snap := load(t, s, key)
				if i == 0 {
					assert.Empty(t, snap.States, "Load(%q) of a deleted graph: states", key)
					assert.Greater(t, snap.Version, stale.Version, "Load(%q) of a deleted graph: its version moved on", key)
				}
				commit(t, s, key, snap.Version, change(nodeID(0), state(100+i, dirty.StatusDirty)))
			}
			now := load(t, s, key)
			for expect := stale.Version; expect >= 0; expect-- {
				v, err := s.Commit(t.Context(), key, expect, []executor.Change{change(nodeID(0), state(-1, dirty.StatusClean))})
				assertConflict(t, v, err, key, expect, now.Version)
			}
			requireSnapshotWhy(t, s, key, now.Version, now.States,
				"commits at the versions the graph had before its deletion conflict, and change nothing")
		})
	}
}

// testDeleteGraphWhileCommitting deletes a graph while a run commits to
// it again and again, each time at the version its last commit returned,
// as a run does between its loads. The deletion must be one step, as a
// commit is: after it the graph has no states and a version above every
// one a commit returned, and the run's next commit conflicts. A
// DeleteGraph that read the version and then deleted apart let a commit
// in between, and then set a version that commit had already returned.
func testDeleteGraphWhileCommitting(t *testing.T, s Retainer) {
	const rounds = 10
	for round := range rounds {
		key := Unique(t, fmt.Sprint(round))
		commit(t, s, key, 0, change("n", state(0, dirty.StatusClean)))
		var (
			deleted  atomic.Bool
			started  = make(chan struct{})
			returned int64   // the highest version a commit returned
			after    []int64 // expected versions of commits issued after DeleteGraph returned, that succeeded
			wg       sync.WaitGroup
		)
		wg.Go(func() {
			defer func() {
				select {
				case <-started:
				default:
					close(started)
				}
			}()
			last := int64(1)
			for i := 1; ; i++ {
				if i == 3 {
					close(started) // a few commits in, the deletion begins
				}
				wasDeleted := deleted.Load()
				v, err := s.Commit(t.Context(), key, last, []executor.Change{change("n", state(i, dirty.StatusDirty))})
				if err != nil {
					assert.ErrorIs(t, err, executor.ErrConflict, "round %d: Commit(%q) at version %d while DeleteGraph ran", round, key, last)
					return
				}
				last, returned = v, v
				if wasDeleted {
					after = append(after, last-1)
					return
				}
			}
		})
		<-started
		ok, err := s.DeleteGraph(t.Context(), key)
		deleted.Store(true)
		// The run's goroutine reports to t: it must end before a check
		// can end the test.
		wg.Wait()
		require.NoError(t, err, "DeleteGraph(%q)", key)
		require.True(t, ok, "DeleteGraph(%q): something deleted (a graph with states, while a run commits to it)", key)
		if len(after) > 0 {
			t.Errorf("round %d: commits at versions %v succeeded after DeleteGraph(%q) returned, at versions the run had from before the deletion", round, after, key)
		}
		snap := load(t, s, key)
		assert.Empty(t, snap.States, "round %d: Load(%q) after DeleteGraph: states", round, key)
		assert.Greater(t, snap.Version, returned,
			"round %d: Load(%q) after DeleteGraph: the version must be above every version a commit returned before it", round, key)
	}
}

// testDeleteGraphWhileLoading deletes a graph of many nodes while other
// goroutines load it: each Load finds the graph whole at its version, or
// deleted, with no states at a later version, never some of its states.
// A DeleteGraph that deletes the states in batches, each in a transaction
// of its own (to keep locks short), and bumps the version after, shows a
// graph that no commit made, whose other nodes a run takes for missing.
func testDeleteGraphWhileLoading(t *testing.T, s Retainer) {
	const rounds, nodes, readers = 5, 60, 2
	for round := range rounds {
		key := Unique(t, fmt.Sprint(round))
		changes := make([]executor.Change, nodes)
		for i := range changes {
			changes[i] = change(nodeID(i), state(i, dirty.StatusClean))
		}
		commit(t, s, key, 0, changes...)
		var (
			wg    sync.WaitGroup
			ready sync.WaitGroup
			done  = make(chan struct{})
		)
		ready.Add(readers)
		for r := range readers {
			wg.Go(func() {
				started := sync.OnceFunc(ready.Done)
				defer started()
				for loads := 0; ; loads++ {
					snap, err := s.Load(t.Context(), key)
					if !assert.NoError(t, err, "Load(%q) while DeleteGraph ran", key) {
						return
					}
					whole := snap.Version == 1 && len(snap.States) == nodes
					deleted := snap.Version > 1 && len(snap.States) == 0
					if !whole && !deleted {
						t.Errorf("round %d, reader %d, load %d: Load(%q) while DeleteGraph ran found version %d with %d of the graph's %d states; "+
							"a DeleteGraph is one step, as a commit is: a Load finds the graph whole, or deleted", round, r, loads, key, snap.Version, len(snap.States), nodes)
						return
					}
					started()
					select {
					case <-done:
						return
					default:
					}
				}
			})
		}
		ready.Wait()
		ok, err := s.DeleteGraph(t.Context(), key)
		close(done)
		wg.Wait() // the readers report to t: they end before a check can end the test
		require.NoError(t, err, "DeleteGraph(%q)", key)
		require.True(t, ok, "DeleteGraph(%q): something deleted (a graph with states, while others load it)", key)
		snap := load(t, s, key)
		assert.Empty(t, snap.States, "round %d: Load(%q) after DeleteGraph: states", round, key)
	}
}

// testDeleteGraphRunsOnly checks that DeleteGraph of a graph that has run
// records but was never committed deletes the records.
func testDeleteGraphRunsOnly(t *testing.T, s Retainer) {
	key := Unique(t, "")
	putRun(t, s, record(Unique(t, "run"), key, baseTime))
	deleteGraph(t, s, key, true, "a graph with a run record")
	assert.Empty(t, listRuns(t, s, key), "ListRuns(%q) after DeleteGraph", key)
	requireSnapshotWhy(t, s, key, 0, nil,
		"a graph with run records but never committed gets no tombstone from DeleteGraph: it stays at version 0, where a run of it under way commits first")
}

func testPruneAssetsReferenced(t *testing.T, s Retainer) {
	a, b := Unique(t, "a"), Unique(t, "b")
	kept := put(t, s, a+"/n/"+hash("kept"), asset("kept"))
	other := put(t, s, b+"/n/"+hash("other"), asset("other"))
	loose1 := put(t, s, a+"/m/"+hash("loose1"), asset("loose1"))
	loose2 := put(t, s, b+"/m/"+hash("loose2"), asset("loose2"))
	commit(t, s, a, 0, change("n", refState(kept)), change("o", refState("https://cdn.example.com/elsewhere")))
	commit(t, s, b, 0, change("n", refState(other)))

	prune(t, s, 0, 2, "the two assets no state refers to")
	assert.Equal(t, []bool{true, true, false, false}, exist(t, s, kept, other, loose1, loose2),
		"assets left: referenced by graph a, by graph b, and two unreferenced")
	requireAsset(t, s, kept, asset("kept"))
	prune(t, s, 0, 0, "nothing left to prune")
}

func testPruneAssetsYoung(t *testing.T, s Retainer) {
	key := Unique(t, "")
	x := put(t, s, key+"/n/"+hash("x"), asset("x"))
	y := put(t, s, key+"/n/"+hash("y"), asset("y"))
	loose := put(t, s, key+"/m/"+hash("loose"), asset("loose"))
	commit(t, s, key, 0, change("n", refState(x)))
	commit(t, s, key, 1, change("n", refState(y))) // releases x
	prune(t, s, time.Hour, 0, "an asset put or released just now is younger than an hour")
	assert.Equal(t, []bool{true, true, true}, exist(t, s, x, y, loose), "assets left")
}

// releaseAge is the age at which testPruneAssetsAfterRelease prunes, and
// releaseWait how long it waits between a Put and the commit that
// releases the asset: longer than the age, with a margin.
const (
	releaseAge  = time.Second
	releaseWait = releaseAge + releaseAge/2
)

// testPruneAssetsAfterRelease checks, in real time, that a commit that
// stops referring to an asset restarts its age: an asset put longer than
// the age ago, and released just now, stays. A run that started before
// the commit may still read it (it loaded the node's state before), so
// a store that counted the age from the Put only would make PruneAssets
// unsafe while runs go on, whatever the age. An asset put as long ago,
// that no state ever referred to, goes, so the store does count ages.
//
// The kit cannot make a store's clock move, so it waits: releaseWait,
// skipped with -short. A correct store keeps the asset when the commit
// and the prune take less than releaseAge together; if a loaded machine
// stalls them longer, the check tries again, twice, then skips.
func testPruneAssetsAfterRelease(t *testing.T, s Retainer) {
	if testing.Short() {
		t.Skipf("waits %v for an asset to age", releaseWait)
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		key := Unique(t, fmt.Sprint(attempt))
		x := put(t, s, key+"/n/"+hash("x"), asset("x"))
		w := put(t, s, key+"/o/"+hash("w"), asset("w"))
		loose := put(t, s, key+"/m/"+hash("loose"), asset("loose"))
		again := put(t, s, key+"/p/"+hash("again"), asset("again"))
		commit(t, s, key, 0, change("n", refState(x)), change("o", refState(w)))
		time.Sleep(releaseWait)
		y := put(t, s, key+"/n/"+hash("y"), asset("y"))
		released := time.Now()
		// The same asset put again under its key: its age starts again.
		put(t, s, key+"/p/"+hash("again"), asset("again"))
		// Releases x, for another reference, and w, for none, as a
		// Forget's commit does.
		commit(t, s, key, 1, change("n", refState(y)), change("o", clearedState()))
		_, err := s.PruneAssets(t.Context(), releaseAge)
		took := time.Since(released)
		require.NoError(t, err, "PruneAssets(%v)", releaseAge)
		if took >= releaseAge {
			if attempt < attempts {
				t.Logf("attempt %d: the releasing commit and the prune took %v, not less than the age %v: trying again", attempt, took, releaseAge)
				continue
			}
			t.Skipf("the releasing commit and the prune took %v, not less than the age %v, %d times: the machine is too slow for the check", took, releaseAge, attempts)
		}
		left := exist(t, s, x, w, y, loose)
		for i, ref := range []string{x, w} {
			if !left[i] {
				t.Errorf("PruneAssets(%v) deleted %q, put %v or more before it but released by a commit less than %v before it (%s): "+
					"a commit that stops referring to an asset restarts its age, since a run that started before the commit may still read it",
					releaseAge, ref, releaseWait, took, []string{"for another reference", "for no reference"}[i])
			}
		}
		assert.True(t, left[2], "PruneAssets(%v) deleted %q, which a state refers to", releaseAge, y)
		assert.False(t, left[3], "PruneAssets(%v) kept %q, put %v before it, that no state ever referred to", releaseAge, loose, releaseWait)
		assert.True(t, exist(t, s, again)[0], "PruneAssets(%v) deleted %q, put %v before it and put again, the same, less than %v before it: "+
			"a Put under a key already used restarts the asset's age, though the asset is the same (keys end with the content hash, so it always is), "+
			"since a run commits a state that refers to it next", releaseAge, again, releaseWait, took)
		return
	}
}

func testPruneAssetsReplaced(t *testing.T, s Retainer) {
	key := Unique(t, "")
	x := put(t, s, key+"/n/"+hash("x"), asset("x"))
	y := put(t, s, key+"/n/"+hash("y"), asset("y"))
	z := put(t, s, key+"/m/"+hash("z"), asset("z"))
	commit(t, s, key, 0, change("n", refState(x)), change("m", refState(z)))
	commit(t, s, key, 1, change("n", refState(y)), change("m", refState(z)))
	prune(t, s, 0, 1, "the asset the second commit stopped referring to")
	assert.Equal(t, []bool{false, true, true}, exist(t, s, x, y, z), "assets left: replaced, its replacement, kept")
}

func testPruneAssetsDeletedGraph(t *testing.T, s Retainer) {
	a := Unique(t, "a")
	ab := a + "/b"
	x := put(t, s, a+"/n/"+hash("x"), asset("x"))
	y := put(t, s, ab+"/n/"+hash("y"), asset("y"))
	commit(t, s, a, 0, change("n", refState(x)))
	commit(t, s, ab, 0, change("n", refState(y)))
	deleteGraph(t, s, a, true, "a graph with states")
	prune(t, s, 0, 1, "the deleted graph's asset")
	assert.Equal(t, []bool{false, true}, exist(t, s, x, y), "assets left: the deleted graph's, another graph's")
}

// testPruneAssetsEveryReference checks that a reference keeps its asset
// whatever the status of the state that holds it (a dirty or failed node
// keeps its last result), and whatever the graph: an asset put under one
// graph's key may be referred to by another's states only (a host that
// copies a graph), and then outlives the first graph.
func testPruneAssetsEveryReference(t *testing.T, s Retainer) {
	a, b := Unique(t, "a"), Unique(t, "b")
	var (
		changes []executor.Change
		refs    []string
	)
	for i, status := range statuses {
		ref := put(t, s, a+"/"+nodeID(i)+"/"+hash(nodeID(i)), asset(nodeID(i)))
		st := refState(ref)
		st.Status = status
		changes, refs = append(changes, change(nodeID(i), st)), append(refs, ref)
	}
	commit(t, s, a, 0, changes...)
	shared := put(t, s, a+"/n/"+hash("shared"), asset("shared"))
	commit(t, s, b, 0, change("n", refState(shared)))
	loose := put(t, s, a+"/m/"+hash("loose"), asset("loose"))

	prune(t, s, 0, 1, "the one asset that no state refers to, whatever the states' status and graph")
	want := make([]bool, len(refs))
	for i := range want {
		want[i] = true
	}
	assert.Equal(t, append(want, true, false), exist(t, s, append(refs, shared, loose)...),
		"assets left: those of a state of each status, one of graph a's referred to by graph b only, one unreferenced")

	deleteGraph(t, s, a, true, "a graph with states")
	prune(t, s, 0, int64(len(refs)), "the assets of the deleted graph's states, not the one another graph refers to")
	assert.Equal(t, []bool{true}, exist(t, s, shared), "an asset put under a deleted graph's key, that another graph refers to")
	requireAsset(t, s, shared, asset("shared"))
}

// testPruneAssetsShared checks that an asset that several states refer
// to stays while one of them does: a commit that stops one node
// referring to it, or a DeleteGraph of one graph that refers to it,
// leaves it to the others. A store that marks an asset unreferenced at
// each release (a flag, where it needs a count of the references) deletes
// an asset that a clean node still holds.
func testPruneAssetsShared(t *testing.T, s Retainer) {
	a, b := Unique(t, "a"), Unique(t, "b")
	x := put(t, s, a+"/n/"+hash("x"), asset("x"))
	y := put(t, s, a+"/o/"+hash("y"), asset("y"))
	commit(t, s, a, 0, change("n", refState(x)), change("m", refState(x)), change("o", refState(y)))
	commit(t, s, b, 0, change("o", refState(y)))
	// Node p takes x up, then n lets it go, in one commit; m still holds
	// it.
	commit(t, s, a, 1, change("p", refState(x)), change("n", refState("https://cdn.example.com/n")))
	prune(t, s, 0, 0, "assets that states still refer to, though a commit released one of them")
	assert.Equal(t, []bool{true, true}, exist(t, s, x, y), "assets left: one that a node let go and others hold, one that two graphs hold")

	deleteGraph(t, s, a, true, "a graph with states")
	prune(t, s, 0, 1, "the asset that only the deleted graph referred to")
	assert.Equal(t, []bool{false, true}, exist(t, s, x, y),
		"Exists of the assets left: one that only the deleted graph referred to, which PruneAssets(0) deleted and said so, "+
			"one that another graph still refers to; "+readsAfterPrune)
	requireAsset(t, s, y, asset("y"))
}

// readsAfterPrune is the rule that the checks of reads after a prune
// cite.
const readsAfterPrune = "reads answer as of the call: an asset that a prune deleted is not found, though a read found it " +
	"before the prune (a store that caches what its reads found drops an asset from the cache when it deletes it, " +
	"as when a Put replaces it), or the executor trusts a clean node whose asset is gone"

// testPruneAssetsReads checks that Exists and Get do not find an asset
// that a prune deleted, though they found it before the prune: a store
// that caches their positive answers, and forgets them at a Put but not
// at a prune, has the executor trust a clean node whose asset is gone.
func testPruneAssetsReads(t *testing.T, s Retainer) {
	key := Unique(t, "")
	kept := put(t, s, key+"/n/"+hash("kept"), asset("kept"))
	loose := put(t, s, key+"/m/"+hash("loose"), asset("loose"))
	commit(t, s, key, 0, change("n", refState(kept)))
	// A run's check and reads, before the prune.
	require.Equal(t, []bool{true, true}, exist(t, s, kept, loose), "Exists before a prune")
	requireAsset(t, s, kept, asset("kept"))
	requireAsset(t, s, loose, asset("loose"))

	prune(t, s, 0, 1, "the asset no state refers to")
	assert.Equal(t, []bool{true, false}, exist(t, s, kept, loose),
		"Exists of the asset a state refers to, and of %q, which a prune deleted and said so: %s", loose, readsAfterPrune)
	if _, err := s.Get(t.Context(), loose); err == nil {
		t.Errorf("Get(%q) found the asset after a prune deleted it: %s", loose, readsAfterPrune)
	} else {
		assert.ErrorIs(t, err, executor.ErrNotFound, "Get(%q) after a prune deleted it", loose)
	}
	requireAsset(t, s, kept, asset("kept"))

	// The asset is made again and put under its key, as the executor
	// does for a node whose asset a prune deleted: the reads find it, as
	// a store that remembered the reads' misses would not.
	again := put(t, s, key+"/m/"+hash("loose"), asset("loose"))
	assert.Equal(t, []bool{true}, exist(t, s, again),
		"Exists(%q) of an asset put again under its key after a prune deleted it, and reads found it missing", again)
	requireAsset(t, s, again, asset("loose"))
}

// testPruneAssetsBatchReads checks that the optional batch reads,
// [executor.AssetChecker] and [executor.AssetBatchGetter], see what a
// prune deleted, as Exists and Get do (testPruneAssetsReads), though they
// read the assets before it.
func testPruneAssetsBatchReads(t *testing.T, s Retainer) {
	c, checks := s.(executor.AssetChecker)
	bg, gets := s.(executor.AssetBatchGetter)
	if !checks && !gets {
		t.Skip("the store is neither an executor.AssetChecker nor an executor.AssetBatchGetter")
	}
	key := Unique(t, "")
	kept := put(t, s, key+"/n/"+hash("kept"), asset("kept"))
	loose := put(t, s, key+"/m/"+hash("loose"), asset("loose"))
	commit(t, s, key, 0, change("n", refState(kept)))
	both := []string{kept, loose}
	if checks { // a run's check, before the prune
		missing, err := c.Missing(t.Context(), both)
		require.NoError(t, err, "Missing(%q)", both)
		assert.Empty(t, missing, "Missing(%q) before a prune", both)
	}
	if gets { // a run's read, before the prune
		_, err := bg.GetMany(t.Context(), both)
		require.NoError(t, err, "GetMany(%q)", both)
	}

	prune(t, s, 0, 1, "the asset no state refers to")
	if checks {
		missing, err := c.Missing(t.Context(), append(both, loose))
		require.NoError(t, err, "Missing(%q)", both)
		assert.Equal(t, []string{loose}, missing, "Missing(%q) after a prune deleted %q: %s", both, loose, readsAfterPrune)
	}
	if gets {
		got, err := bg.GetMany(t.Context(), both)
		assert.ErrorIs(t, err, executor.ErrNotFound, "GetMany(%q) after a prune deleted %q: got %+v; %s", both, loose, got, readsAfterPrune)
		got, err = bg.GetMany(t.Context(), []string{kept})
		require.NoError(t, err, "GetMany(%q) after a prune", kept)
		assert.Empty(t, diff([]executor.Asset{asset("kept")}, got), "GetMany(%q) after a prune", kept)
	}

	// The asset is put again under its key, as the executor does for a
	// node whose asset was missing: the batch reads find it.
	again := put(t, s, key+"/m/"+hash("loose"), asset("loose"))
	both = []string{kept, again}
	if checks {
		missing, err := c.Missing(t.Context(), both)
		require.NoError(t, err, "Missing(%q)", both)
		assert.Empty(t, missing, "Missing(%q) after %q was put again under its key, once a prune had deleted it", both, again)
	}
	if gets {
		got, err := bg.GetMany(t.Context(), both)
		if assert.NoError(t, err, "GetMany(%q) after %q was put again under its key, once a prune had deleted it", both, again) {
			assert.Empty(t, diff([]executor.Asset{asset("kept"), asset("loose")}, got), "GetMany(%q) after a Put again", both)
		}
	}
}

// testPruneAssetsWhilePutting checks that PruneAssets, while a run puts
// old assets again under their keys and commits states that refer to
// them, deletes none of them: an asset's key ends with its content hash,
// so a node that makes the same output again puts under the same key,
// and the Put renews the asset (its age starts again), and the commit
// refers to it. A store that decides which assets are old and
// unreferenced, lets its lock (or transaction) go, and then deletes them
// deletes an asset renewed and taken up in between: Get of a clean
// state's AssetRef then finds nothing, and the executor regenerates the
// node, or a run reading it fails.
//
// Each round puts assets, lets them age past the age, then prunes while
// another goroutine puts each again once, a few at a time, and commits
// them, until the prune has returned. A race cannot be made to happen,
// only likely: the rounds are many, on the fake clock of a
// testing/synctest bubble, so that the assets age without a wait. A store that reads another clock
// (a database's) finds nothing old there, as a first prune in the bubble
// shows, one call at a time (a pool of connections that grew inside the
// bubble would be used outside it); the check then runs once in real
// time, as testPruneAssetsAfterRelease does (skipped with -short).
func testPruneAssetsWhilePutting(t *testing.T, s Retainer) {
	const rounds = 10
	callTogether(t, s)
	otherClock := false
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		key := Unique(t, "clock")
		loose := key + "/n/" + hash("loose")
		ref, err := s.Put(ctx, loose, asset("loose"))
		if err != nil {
			t.Fatalf("Put(%s): %v", short(loose), err)
		}
		time.Sleep(2 * time.Hour)
		if _, err := s.PruneAssets(ctx, time.Hour); err != nil {
			t.Fatalf("PruneAssets(1h): %v", err)
		}
		if otherClock, err = s.Exists(ctx, ref); err != nil {
			t.Fatalf("Exists(%s): %v", short(ref), err)
		}
		if otherClock {
			return // nothing aged on the bubble's clock
		}
		for round := range rounds {
			r, err := racePrune(ctx, s, Unique(t, fmt.Sprint(round)), 256, 2*time.Hour, time.Hour)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if r.took >= time.Hour {
				t.Logf("round %d: the race took %v on the bubble's clock, not less than the age: not judged", round, r.took)
				continue
			}
			if !r.check(t, fmt.Sprintf("round %d", round), time.Hour) {
				return
			}
		}
	})
	if !otherClock || t.Failed() {
		return
	}
	if testing.Short() {
		t.Skipf("the store reads another clock than the bubble's, and the check in real time waits %v for assets to age", releaseWait)
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		r, err := racePrune(t.Context(), s, Unique(t, fmt.Sprint("real-", attempt)), 256, releaseWait, releaseAge)
		require.NoError(t, err)
		if r.took >= releaseAge {
			if attempt < attempts {
				t.Logf("attempt %d: the puts, commits and prune took %v, not less than the age %v: trying again", attempt, r.took, releaseAge)
				continue
			}
			t.Skipf("the puts, commits and prune took %v, not less than the age %v, %d times: the machine is too slow for the check", r.took, releaseAge, attempts)
		}
		r.check(t, "in real time", releaseAge)
		return
	}
}

// testPruneAssetsPutAgain checks that a Put under a key already used
// restarts the asset's age, though the asset is the same as the one
// there: keys end with the content hash, so a node that makes the same
// output again puts the same asset under the same key, and commits a
// state that refers to it. A store that skips such a Put, and keeps the
// old age, lets a prune between the Put and the commit delete the asset
// the commit refers to. It puts an asset and another, waits past the age
// on the fake clock of a testing/synctest bubble, puts the first again,
// and prunes: the first stays, the second goes. A store that reads
// another clock deletes neither there: the check is then skipped, and
// PruneAssetsAfterRelease checks it in real time.
func testPruneAssetsPutAgain(t *testing.T, s Retainer) {
	key := Unique(t, "")
	var left []bool
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var refs []string
		for _, name := range []string{"again", "loose"} {
			k := key + "/" + name + "/" + hash(name)
			ref, err := s.Put(ctx, k, asset(name))
			if err != nil {
				t.Fatalf("Put(%s): %v", short(k), err)
			}
			refs = append(refs, ref)
		}
		time.Sleep(2 * time.Hour)
		k := key + "/again/" + hash("again")
		if _, err := s.Put(ctx, k, asset("again")); err != nil {
			t.Fatalf("Put(%s) again: %v", short(k), err)
		}
		if _, err := s.PruneAssets(ctx, time.Hour); err != nil {
			t.Fatalf("PruneAssets(1h): %v", err)
		}
		for _, ref := range refs {
			ok, err := s.Exists(ctx, ref)
			if err != nil {
				t.Fatalf("Exists(%s): %v", short(ref), err)
			}
			left = append(left, ok)
		}
	})
	if t.Failed() {
		return
	}
	if left[1] {
		t.Skip("PruneAssets(1h) kept an asset put 2 h before on the bubble's clock: the store reads another clock (a database's), and PruneAssetsAfterRelease checks a Put again in real time")
	}
	assert.True(t, left[0], "PruneAssets(1h) deleted an asset put 2 h before and put again, the same, just before the prune: "+
		"a Put under a key already used restarts the asset's age, though the asset is the same (keys end with the content hash, so it always is), "+
		"since a run commits a state that refers to it next")
}

// callTogether calls s from two goroutines at once, a few times, before
// the rounds call it so in a bubble: a store on a pool of connections
// then opens the second one it needs here, outside the bubble. One that
// it opened inside, and used outside later, would make the runtime abort
// the whole test binary, as pgx's pool does ("WaitGroup.Add called from
// inside and outside synctest bubble"). A pool that opens one only when
// two calls overlap, and these did not, or that drops idle ones at
// once, may still open one there: a store on a pool keeps two open
// (pgxpool's MinConns), or reads its database's clock.
func callTogether(t *testing.T, s Retainer) {
	key := Unique(t, "together")
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			<-start
			for range 4 {
				if _, err := s.Load(t.Context(), key); err != nil {
					t.Errorf("Load(%s): %v", short(key), err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
}

// pruneRace is the outcome of one round of racePrune.
type pruneRace struct {
	key       string   // the graph
	committed int      // the nodes committed, the first ones
	lost      []string // the nodes whose committed state's asset is gone
	took      time.Duration
}

// racePrune puts an asset for each of nodes nodes of graph key, sleeps
// for wait, then runs PruneAssets(age) while it puts the nodes' assets
// again under their keys, pruneChunk at a time, and commits each
// chunk's states, as a run does, until the prune has returned or every
// asset is put again. Each asset is put again once: a later Put would
// bring back an asset that the prune deleted after the first, and hide
// the loss. It yields between chunks, so that the prune gets to run
// though the machine is busy. It then reads the states committed, and
// the asset each refers to. took is the time from the start of the
// prune to the end of both. (In a bubble, whose clock stands still
// while this goroutine runs, a store that sleeps in PruneAssets returns
// only once every asset is put again.)
func racePrune(ctx context.Context, s Retainer, key string, nodes int, wait, age time.Duration) (pruneRace, error) {
	r := pruneRace{key: key}
	keys := make([]string, nodes)
	for i := range keys {
		keys[i] = key + "/" + nodeID(i) + "/" + hash(nodeID(i))
		if _, err := s.Put(ctx, keys[i], asset(nodeID(i))); err != nil {
			return r, fmt.Errorf("Put(%s): %w", short(keys[i]), err)
		}
	}
	time.Sleep(wait)

	start := time.Now()
	var (
		pruneErr error
		done     = make(chan struct{})
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		defer close(done)
		_, pruneErr = s.PruneAssets(ctx, age)
	})
	runtime.Gosched() // let the prune start first
	version := int64(0)
	var putErr error
put:
	for from := 0; from < nodes; from += pruneChunk {
		changes := make([]executor.Change, 0, pruneChunk)
		for i := from; i < min(from+pruneChunk, nodes); i++ {
			ref, err := s.Put(ctx, keys[i], asset(nodeID(i)))
			if err != nil {
				putErr = fmt.Errorf("Put(%s) while PruneAssets ran: %w", short(keys[i]), err)
				break put
			}
			changes = append(changes, change(nodeID(i), refState(ref)))
		}
		v, err := s.Commit(ctx, key, version, changes)
		if err != nil {
			putErr = fmt.Errorf("Commit(%s) at version %d while PruneAssets ran: %w", short(key), version, err)
			break put
		}
		version = v
		r.committed += len(changes)
		select {
		case <-done:
			break put
		default:
			runtime.Gosched()
		}
	}
	wg.Wait()
	r.took = time.Since(start)
	if err := errors.Join(putErr, pruneErr); err != nil {
		return r, err
	}
	snap, err := s.Load(ctx, key)
	if err != nil {
		return r, fmt.Errorf("Load(%s): %w", short(key), err)
	}
	if len(snap.States) != r.committed {
		return r, fmt.Errorf("Load(%s): %d states, want the %d committed", short(key), len(snap.States), r.committed)
	}
	for i := range r.committed {
		id := nodeID(i)
		_, err := s.Get(ctx, snap.States[id].AssetRef)
		switch {
		case errors.Is(err, executor.ErrNotFound):
			r.lost = append(r.lost, id)
		case err != nil:
			return r, fmt.Errorf("Get(%s): %w", short(snap.States[id].AssetRef), err)
		}
	}
	return r, nil
}

// pruneChunk is how many assets racePrune puts again before each commit.
const pruneChunk = 8

// check fails the test, and returns false, if the round lost an asset.
func (r pruneRace) check(t *testing.T, round string, age time.Duration) bool {
	t.Helper()
	if len(r.lost) == 0 {
		return true
	}
	t.Errorf("%s: Get of the AssetRef of %d of the %d nodes committed of graph %s (%q first), clean states, finds no asset: PruneAssets(%v) deleted it, "+
		"though a Put under its key renewed it (its age starts again) and a commit referred to it while the prune ran. "+
		"Asset keys end with the content hash, so a run that makes the same output again puts under the same key: "+
		"a prune must decide that an asset is old and unreferenced, and delete it, in one step (one lock, one statement), "+
		"or check again as it deletes it", round, len(r.lost), r.committed, short(r.key), r.lost[0], age)
	return false
}

func testPruneRuns(t *testing.T, s Retainer) {
	g, h := Unique(t, "g"), Unique(t, "h")
	now := time.Now().Truncate(time.Microsecond)
	old, recent := now.Add(-48*time.Hour), now.Add(-time.Minute)
	run := func(id, key string, status executor.RunStatus, started, ended time.Time) executor.Record {
		r := record(Unique(t, id), key, started)
		r.Status, r.EndedAt = status, ended
		return r
	}
	endedOld := run("ended-old", g, executor.RunSucceeded, old, old.Add(time.Minute))
	endedRecent := run("ended-recent", g, executor.RunFailed, old, recent)
	// A record that never ended, and does not say running (testPruneRunsRunning
	// checks those): its start is its age.
	unendedOld := run("unended-old", h, executor.RunInterrupted, old, time.Time{})
	unended := run("unended", h, executor.RunInterrupted, recent, time.Time{})
	timeless := run("no-times", h, executor.RunInterrupted, time.Time{}, time.Time{})
	for _, r := range []executor.Record{endedOld, endedRecent, unendedOld, unended, timeless} {
		putRun(t, s, r)
	}
	left := func() []string {
		return append(ids(listRuns(t, s, g)), ids(listRuns(t, s, h))...)
	}
	// gone checks that GetRun does not find the records pruned, nor
	// RunsByStatus list them, as ListRuns does not.
	gone := func(call string, pruned ...executor.Record) {
		t.Helper()
		for _, r := range pruned {
			_, err := s.GetRun(t.Context(), r.ID)
			assert.ErrorIs(t, err, executor.ErrNotFound, "GetRun(%q) after %s deleted it", r.ID, call)
		}
		notByStatus(t, s, call, pruned...)
	}

	n, err := s.PruneRuns(t.Context(), 24*time.Hour)
	require.NoError(t, err, "PruneRuns(24h)")
	assert.Equal(t, int64(2), n, "PruneRuns(24h): records deleted (ended 2 days ago; never ended, started 2 days ago)")
	assert.ElementsMatch(t, []string{endedRecent.ID, unended.ID, timeless.ID}, left(), "records left after PruneRuns(24h)")
	gone("PruneRuns(24h)", endedOld, unendedOld)
	requireRun(t, s, endedRecent)

	n, err = s.PruneRuns(t.Context(), 0)
	require.NoError(t, err, "PruneRuns(0)")
	assert.Equal(t, int64(2), n, "PruneRuns(0): records deleted (every one with a time)")
	assert.Equal(t, []string{timeless.ID}, left(), "records left after PruneRuns(0): one with no time has no age")
	gone("PruneRuns(0)", endedRecent, unended)
}

// keepsRunningRule is the rule that testPruneRunsRunning checks, which
// its failures cite.
const keepsRunningRule = "PruneRuns never deletes a record that says running, whatever its age: " +
	"its run may still go on (a long run, whose record would vanish from GetRun and RunsByStatus until its end), " +
	"or its process may have died, and the recovery of the runs left running " +
	"(RunsByStatus(RunRunning), then Resume) needs the record, which nothing writes again"

// testPruneRunsRunning checks that PruneRuns keeps the records that say
// running, however old: a long run still going, and one whose process
// died, to be resumed, with no end time, and one whose end time is set
// (the status decides, not the times), at the age of a day and at 0,
// while it deletes the old records that ended beside them.
func testPruneRunsRunning(t *testing.T, s Retainer) {
	key := Unique(t, "")
	now := time.Now().Truncate(time.Microsecond)
	old := now.Add(-48 * time.Hour)
	run := func(id string, status executor.RunStatus, started, ended time.Time) executor.Record {
		r := record(Unique(t, id), key, started)
		r.Status, r.EndedAt = status, ended
		putRun(t, s, r)
		return r
	}
	longRun := run("long-run", executor.RunRunning, old, time.Time{})
	crashed := run("crashed", executor.RunRunning, old.Add(-24*time.Hour), time.Time{})
	timed := run("running-with-an-end-time", executor.RunRunning, old, old.Add(time.Minute))
	ended := run("ended", executor.RunSucceeded, old, old.Add(time.Minute))
	running := []executor.Record{longRun, crashed, timed}

	for _, age := range []time.Duration{24 * time.Hour, 0} {
		call := fmt.Sprintf("PruneRuns(%v)", age)
		n, err := s.PruneRuns(t.Context(), age)
		require.NoError(t, err, call)
		left := ids(listRuns(t, s, key))
		var byStatus []string // nil: the store lists no statuses
		if l, ok := s.(executor.RunStatusLister); ok {
			rs, err := l.RunsByStatus(t.Context(), executor.RunRunning)
			require.NoError(t, err, "RunsByStatus(%q)", executor.RunRunning)
			byStatus = ids(rs)
		}
		for _, r := range running {
			if !slices.Contains(left, r.ID) {
				t.Errorf("%s deleted record %s, which says running (started %v ago, ended %s): %s",
					call, short(r.ID), now.Sub(r.StartedAt), endedText(now, r.EndedAt), keepsRunningRule)
				continue
			}
			requireRun(t, s, r)
			if byStatus != nil {
				assert.Contains(t, byStatus, r.ID, "RunsByStatus(%q) after %s does not list record %s, which ListRuns lists: %s",
					executor.RunRunning, call, short(r.ID), keepsRunningRule)
			}
		}
		if age > 0 {
			assert.Equal(t, int64(1), n, "%s: records deleted (one that ended 2 days ago, beside three old ones that say running)", call)
			assert.NotContains(t, left, ended.ID, "%s kept a record that ended 2 days ago", call)
		} else {
			assert.Zero(t, n, "%s: records deleted (only records that say running were left)", call)
		}
	}
}

// endedText says when a record ended, for a failure's message.
func endedText(now, ended time.Time) string {
	if ended.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%v ago", now.Sub(ended))
}

// testPruneRunsAge checks that PruneRuns(age) keeps a record that ended,
// or never ended but started, exactly age ago: it is not older than age.
// The kit can tell only on a clock that stands still, the fake clock of a
// testing/synctest bubble, so it calls the store in one. A store that
// reads another clock (a database's, pgstore's) deletes the record that
// ended after the age too, the bubble's time being long past for it:
// the check is then skipped, and is for the store's own tests.
func testPruneRunsAge(t *testing.T, s Retainer) {
	const age = 24 * time.Hour
	key := Unique(t, "")
	var (
		before, atAge, after, startedAtAge executor.Record
		n                                  int64
		err                                error
		left                               []string
		still                              bool
	)
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		now := time.Now()
		cutoff := now.Add(-age)
		run := func(id string, started, ended time.Time) executor.Record {
			r := record(Unique(t, id), key, started)
			r.EndedAt = ended
			if ended.IsZero() {
				// Never ended, and not running, which is never pruned.
				r.Status = executor.RunInterrupted
			}
			if err := s.PutRun(ctx, r); err != nil {
				t.Fatalf("PutRun(%q): %v", r.ID, err)
			}
			return r
		}
		before = run("ended-before-the-age", cutoff.Add(-time.Hour), cutoff.Add(-time.Microsecond))
		atAge = run("ended-at-the-age", cutoff.Add(-time.Hour), cutoff)
		after = run("ended-after-the-age", cutoff.Add(-time.Hour), cutoff.Add(time.Microsecond))
		startedAtAge = run("unended-started-at-the-age", cutoff, time.Time{})
		n, err = s.PruneRuns(ctx, age)
		still = time.Now().Equal(now)
		rs, lerr := s.ListRuns(ctx, key)
		if lerr != nil {
			t.Fatalf("ListRuns(%q): %v", key, lerr)
		}
		left = ids(rs)
	})
	require.NoError(t, err, "PruneRuns(%v)", age)
	switch {
	case !still:
		t.Skip("the bubble's clock moved during PruneRuns (the store waited on a timer): the kit cannot check the records exactly at the age")
	case !slices.Contains(left, after.ID):
		t.Skipf("PruneRuns(%v) deleted a record that ended less than the age ago on the bubble's clock: the store reads another clock (a database's), and its own tests check the records exactly at the age", age)
	}
	assert.Equal(t, int64(1), n, "PruneRuns(%v): records deleted (one that ended a microsecond before the age)", age)
	assert.ElementsMatch(t, []string{atAge.ID, after.ID, startedAtAge.ID}, left,
		"records left after PruneRuns(%v): a record that ended, or never ended but started, exactly %v ago is not older than %v", age, age, age)
	assert.NotContains(t, left, before.ID, "PruneRuns(%v) kept a record that ended a microsecond more than %v ago", age, age)
}

// testPruneAssetsAge checks that PruneAssets(age) keeps an asset that no
// state refers to and that was put, or released by a commit, exactly age
// ago: it is not older than age. As testPruneRunsAge does, it calls the
// store in a testing/synctest bubble, whose fake clock moves only when
// every goroutine of the bubble waits: the test puts an asset and
// releases another a microsecond before it puts and releases two more,
// then sleeps for the age and prunes. A store that reads another clock (a database's, pgstore's) finds every
// asset just put, and deletes none: the check is then skipped, and is for
// the store's own tests.
func testPruneAssetsAge(t *testing.T, s Retainer) {
	const age = 24 * time.Hour
	key := Unique(t, "")
	var (
		putBefore, releasedBefore, putAtAge, releasedAtAge string
		n                                                  int64
		err                                                error
		left                                               []bool
		still                                              bool
	)
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		putAsset := func(node, seed string) string {
			k := key + "/" + node + "/" + hash(seed)
			ref, err := s.Put(ctx, k, asset(seed))
			if err != nil {
				t.Fatalf("Put(%q): %v", k, err)
			}
			return ref
		}
		version := int64(0)
		refer := func(node, ref string) {
			v, err := s.Commit(ctx, key, version, []executor.Change{change(node, refState(ref))})
			if err != nil {
				t.Fatalf("Commit(%q, %d): %v", key, version, err)
			}
			version = v
		}
		// Two assets referred to, and so kept, until a commit releases
		// them later.
		releasedBefore = putAsset("n", "released-before-the-age")
		releasedAtAge = putAsset("m", "released-at-the-age")
		refer("n", releasedBefore)
		refer("m", releasedAtAge)
		time.Sleep(time.Second)
		putBefore = putAsset("o", "put-before-the-age")
		refer("n", "https://cdn.example.com/n") // releases releasedBefore
		time.Sleep(time.Microsecond)
		putAtAge = putAsset("p", "put-at-the-age")
		// Releases releasedAtAge, for no reference, as a Forget's commit
		// does.
		if _, cerr := s.Commit(ctx, key, version, []executor.Change{change("m", clearedState())}); cerr != nil {
			t.Fatalf("Commit(%q, %d): %v", key, version, cerr)
		}
		time.Sleep(age)
		now := time.Now()
		n, err = s.PruneAssets(ctx, age)
		still = time.Now().Equal(now)
		for _, ref := range []string{putBefore, releasedBefore, putAtAge, releasedAtAge} {
			ok, err := s.Exists(ctx, ref)
			if err != nil {
				t.Fatalf("Exists(%q): %v", ref, err)
			}
			left = append(left, ok)
		}
	})
	require.NoError(t, err, "PruneAssets(%v)", age)
	switch {
	case !still:
		t.Skip("the bubble's clock moved during PruneAssets (the store waited on a timer): the kit cannot check the assets exactly at the age")
	case n == 0 && left[0] && left[1]:
		t.Skipf("PruneAssets(%v) deleted no asset put or released more than the age ago on the bubble's clock: the store reads another clock (a database's), and its own tests check the assets exactly at the age", age)
	}
	assert.Equal(t, int64(2), n, "PruneAssets(%v): assets deleted (one put, one released, a microsecond more than %v ago)", age, age)
	assert.Equal(t, []bool{false, false, true, true}, left,
		"assets left after PruneAssets(%v): put a microsecond more than %v ago, released then, put exactly %v ago, released then (an asset exactly %v old is not older than %v)",
		age, age, age, age, age)
}

func testRetentionNegativeAge(t *testing.T, s Retainer) {
	key := Unique(t, "")
	loose := put(t, s, key+"/n/"+hash("loose"), asset("loose"))
	r := record(Unique(t, "run"), key, time.Now().Truncate(time.Microsecond).Add(-48*time.Hour))
	putRun(t, s, r)
	n, err := s.PruneAssets(t.Context(), -time.Nanosecond)
	assert.Error(t, err, "PruneAssets(-1ns)")
	assert.Zero(t, n, "PruneAssets(-1ns)")
	n, err = s.PruneRuns(t.Context(), -time.Hour)
	assert.Error(t, err, "PruneRuns(-1h)")
	assert.Zero(t, n, "PruneRuns(-1h)")
	assert.Equal(t, []bool{true}, exist(t, s, loose), "an asset after a refused PruneAssets")
	requireRun(t, s, r)
}

func testRetentionCancelled(t *testing.T, s Retainer) {
	key := Unique(t, "")
	x := put(t, s, key+"/n/"+hash("x"), asset("x"))
	loose := put(t, s, key+"/m/"+hash("loose"), asset("loose"))
	commit(t, s, key, 0, change("n", refState(x)))
	r := record(Unique(t, "run"), key, time.Now().Truncate(time.Microsecond).Add(-48*time.Hour))
	putRun(t, s, r)
	ctx := cancelled(t)

	_, err := s.DeleteGraph(ctx, key)
	assert.ErrorIs(t, err, context.Canceled, "DeleteGraph with a cancelled context")
	_, err = s.PruneAssets(ctx, 0)
	assert.ErrorIs(t, err, context.Canceled, "PruneAssets with a cancelled context")
	_, err = s.PruneRuns(ctx, 0)
	assert.ErrorIs(t, err, context.Canceled, "PruneRuns with a cancelled context")

	requireSnapshot(t, s, key, 1, map[string]dirty.State{"n": refState(x)})
	assert.Equal(t, []bool{true, true}, exist(t, s, x, loose), "assets after cancelled prunes")
	requireRun(t, s, r)
}
