package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// StateStore checks a StateStore against the contract, in one subtest per
// property, each on a store from newStore.
func StateStore(t *testing.T, newStore func(t *testing.T) executor.StateStore) {
	t.Helper()
	runChecks(t, newStore, []check[executor.StateStore]{
		{"EmptyGraph", testEmptyGraph},
		{"VersionsCountUp", testVersionsCountUp},
		{"EmptyCommitBumpsVersion", testEmptyCommit},
		{"RoundTrip", testStateRoundTrip},
		{"SubMicrosecondTimes", testStateSubMicrosecond},
		{"Text", testStateText},
		{"CommitChangesOnlyNamedNodes", testCommitChangesOnlyNamed},
		{"LastChangeWins", testLastChangeWins},
		{"CommitLeavesChanges", testCommitLeavesChanges},
		{"StaleCommitConflicts", testStaleCommit},
		{"FirstCommitAtWrongVersion", testFirstCommitWrongVersion},
		{"GraphsIndependent", testGraphsIndependent},
		{"KeysAreExact", testKeysAreExact},
		{"LongKeys", testStateLongKeys},
		{"LoadIsolatedFromCommits", testLoadIsolatedFromCommits},
		{"LoadIsolatedFromCaller", testLoadIsolatedFromCaller},
		{"LoadIsOneSnapshot", testLoadIsOneSnapshot},
		{"ConcurrentCommits", testConcurrentCommits},
		{"ConcurrentGraphs", testConcurrentGraphs},
		{"ManyNodes", testManyNodes},
		{"CancelledContext", testStatesCancelled},
	})
}

// statuses are all the node statuses.
var statuses = []dirty.Status{
	dirty.StatusMissing, dirty.StatusClean, dirty.StatusDirty,
	dirty.StatusRunning, dirty.StatusFailed, dirty.StatusCancelled,
}

// nodeID returns a node ID shaped like the lecture graph's.
func nodeID(i int) string {
	kinds := []string{"asset:narration", "asset:image", "asset:video", "script:segment"}
	return fmt.Sprintf("%s:segment[%d]", kinds[i%len(kinds)], i)
}

// hash returns a hex SHA-256 hash of seed.
func hash(seed string) string {
	h := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(h[:])
}

// state returns a state with every field set, distinct for each i.
func state(i int, status dirty.Status) dirty.State {
	return dirty.State{
		Status:     status,
		Rev:        int64(i) + 1,
		InputHash:  hash(fmt.Sprintf("in-%d", i)),
		OutputHash: hash(fmt.Sprintf("out-%d", i)),
		AssetRef:   fmt.Sprintf("ref/%d/%s", i, hash(fmt.Sprintf("out-%d", i))),
		Attempts:   i%5 + 1,
		LastError:  fmt.Sprintf("attempt %d: provider said \"no\" ✗", i),
		UpdatedAt:  baseTime.Add(time.Duration(i) * 1001 * time.Microsecond),
	}
}

// change returns a change setting node id to s.
func change(id string, s dirty.State) executor.Change {
	return executor.Change{ID: id, State: s}
}

// load loads the graph and fails the test on error.
func load(t *testing.T, s executor.StateStore, key string) executor.Snapshot {
	t.Helper()
	snap, err := s.Load(t.Context(), key)
	require.NoError(t, err, "Load(%s)", short(key))
	return snap
}

// commit commits at expect, and fails the test unless it succeeds with
// version expect+1.
func commit(t *testing.T, s executor.StateStore, key string, expect int64, changes ...executor.Change) {
	t.Helper()
	v, err := s.Commit(t.Context(), key, expect, changes)
	require.NoError(t, err, "Commit(%s) at version %d", short(key), expect)
	require.Equal(t, expect+1, v, "Commit(%s) at version %d: new version", short(key), expect)
}

// requireSnapshot fails the test unless the graph is at version with
// exactly the states want.
func requireSnapshot(t *testing.T, s executor.StateStore, key string, version int64, want map[string]dirty.State) {
	t.Helper()
	requireSnapshotWhy(t, s, key, version, want, "")
}

// requireSnapshotWhy is requireSnapshot, whose failure says why, the rule
// that makes version and want what they are.
func requireSnapshotWhy(t *testing.T, s executor.StateStore, key string, version int64, want map[string]dirty.State, why string) {
	t.Helper()
	snap := load(t, s, key)
	if why != "" {
		why = ": " + why
	}
	require.Equal(t, version, snap.Version, "Load(%s): version%s", short(key), why)
	if d := diffStates(want, snap.States); d != "" {
		t.Fatalf("Load(%s): states%s (-want +got):\n%s", short(key), why, d)
	}
}

// diffStates is diff for state maps, fast on thousands of equal states.
func diffStates(want, got map[string]dirty.State) string {
	if len(want) == len(got) {
		same := true
		for id, w := range want {
			g, ok := got[id]
			if !ok || !sameState(w, g) {
				same = false
				break
			}
		}
		if same {
			return ""
		}
	}
	return diff(want, got)
}

// sameState reports whether two states are equal, times by instant.
func sameState(a, b dirty.State) bool {
	if !a.UpdatedAt.Equal(b.UpdatedAt) {
		return false
	}
	a.UpdatedAt = b.UpdatedAt
	return a == b
}

// assertConflict checks that Commit's result, version v and err, reports
// a lost compare-and-swap with these versions: a [*executor.ConflictError]
// and version 0, as on any error.
func assertConflict(t *testing.T, v int64, err error, key string, expected, actual int64) bool {
	t.Helper()
	if !assert.Error(t, err, "Commit(%q) at version %d, graph at %d: want a conflict", key, expected, actual) {
		return false
	}
	ok := assert.Zero(t, v, "Commit(%q) at version %d: the version returned with a conflict, want 0", key, expected)
	ok = assert.ErrorIs(t, err, executor.ErrConflict, "Commit(%q) at version %d", key, expected) && ok
	var ce *executor.ConflictError
	if !assert.ErrorAs(t, err, &ce, "Commit(%q) at version %d", key, expected) {
		return false
	}
	ok = assert.Equal(t, key, ce.GraphKey, "ConflictError.GraphKey") && ok
	ok = assert.Equal(t, expected, ce.Expected, "ConflictError.Expected") && ok
	ok = assert.Equal(t, actual, ce.Actual, "ConflictError.Actual") && ok
	return ok
}

func testEmptyGraph(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	snap, err := s.Load(t.Context(), key)
	require.NoError(t, err, "Load of a graph never committed")
	assert.Zero(t, snap.Version, "version of a graph never committed")
	assert.Empty(t, snap.States, "states of a graph never committed")
}

func testVersionsCountUp(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	want := map[string]dirty.State{}
	for v := range int64(5) {
		c := change(nodeID(int(v)), state(int(v), dirty.StatusClean))
		commit(t, s, key, v, c)
		want[c.ID] = c.State
		requireSnapshot(t, s, key, v+1, want)
	}
}

func testEmptyCommit(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	commit(t, s, key, 0)
	requireSnapshot(t, s, key, 1, nil)
	v, err := s.Commit(t.Context(), key, 1, []executor.Change{})
	require.NoError(t, err, "empty Commit at version 1")
	require.Equal(t, int64(2), v, "empty Commit at version 1: new version")
	c := change("script", state(1, dirty.StatusClean))
	commit(t, s, key, 2, c)
	commit(t, s, key, 3)
	requireSnapshot(t, s, key, 4, map[string]dirty.State{c.ID: c.State})
	// An empty commit is a compare-and-swap too: at a stale version it
	// conflicts and bumps nothing. One that went through would tell its
	// caller that no one had committed since it loaded the graph.
	for _, expect := range []int64{3, 0, 5, -1} {
		v, err := s.Commit(t.Context(), key, expect, nil)
		assertConflict(t, v, err, key, expect, 4)
		requireSnapshot(t, s, key, 4, map[string]dirty.State{c.ID: c.State})
	}
}

func testStateRoundTrip(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	want := map[string]dirty.State{}
	var changes []executor.Change
	add := func(id string, st dirty.State) {
		changes = append(changes, change(id, st))
		want[id] = st
	}
	for i, st := range statuses {
		add(nodeID(i), state(i, st))
	}
	// The zero state, zero time included, is still an entry.
	add("zero", dirty.State{})
	// The executor's state of the graph itself, under an ID no node has.
	add(executor.GraphStateID, dirty.State{Status: dirty.StatusClean, InputHash: hash("graph")})
	// Values at the edges of their types, and long, many-line text.
	long := strings.Repeat("line with “quotes”, 'apostrophes', \\backslashes\\, tabs\t and ünïcødé ✓\n", 60)
	add("edges", dirty.State{
		Status:     dirty.StatusFailed,
		Rev:        math.MaxInt64,
		InputHash:  strings.Repeat("f", 64),
		OutputHash: strings.Repeat("0", 64),
		AssetRef:   "s3://bucket/graphs/lecture-1/asset:video:segment[359]/" + strings.Repeat("a", 64) + "?v=1&x=%2F",
		Attempts:   1000,
		LastError:  long,
		UpdatedAt:  time.Date(1999, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
	})
	// A time far from the reference, in another zone.
	add("far", dirty.State{
		Status:    dirty.StatusClean,
		Rev:       7,
		UpdatedAt: time.Date(2100, 1, 1, 0, 0, 0, 1000, time.FixedZone("UTC-08", -8*3600)),
	})
	commit(t, s, key, 0, changes...)
	requireSnapshot(t, s, key, 1, want)
}

func testStateSubMicrosecond(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	var changes []executor.Change
	for i, tm := range subMicrosecondTimes {
		st := state(i, dirty.StatusClean)
		st.UpdatedAt = tm
		changes = append(changes, change(nodeID(i), st))
	}
	commit(t, s, key, 0, changes...)
	snap := load(t, s, key)
	for _, c := range changes {
		got, ok := snap.States[c.ID]
		if !assert.True(t, ok, "Load(%q): node %s missing", key, c.ID) {
			continue
		}
		assert.True(t, keptTime(c.State.UpdatedAt, got.UpdatedAt),
			"node %s: UpdatedAt %v came back as %v; want it, or it truncated to the microsecond (%v), never rounded",
			c.ID, c.State.UpdatedAt, got.UpdatedAt, c.State.UpdatedAt.Truncate(time.Microsecond))
		got.UpdatedAt = c.State.UpdatedAt
		assert.Equal(t, c.State, got, "node %s: the fields other than UpdatedAt", c.ID)
	}
}

// testStateText commits text of every kind, and a LastError as long as
// the executor records ([executor.MaxEventText] bytes): it comes back
// byte for byte, not cut, trimmed nor cleaned.
func testStateText(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	long := state(1, dirty.StatusFailed)
	long.LastError = text(executor.MaxEventText)
	short := state(2, dirty.StatusClean)
	short.InputHash, short.OutputHash = text(100), text(64)
	short.AssetRef = "https://cdn.example.com/🎬/a b.mp4?x=ü&y=%2F"
	short.LastError = " \t\r\n "
	want := map[string]dirty.State{"long": long, "🎬 node\t\x01 ": short}
	var changes []executor.Change
	for id, st := range want {
		changes = append(changes, change(id, st))
	}
	commit(t, s, key, 0, changes...)
	requireSnapshot(t, s, key, 1, want)
}

func testCommitChangesOnlyNamed(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	want := map[string]dirty.State{}
	var first []executor.Change
	for i := range 4 {
		c := change(nodeID(i), state(i, dirty.StatusClean))
		first = append(first, c)
		want[c.ID] = c.State
	}
	commit(t, s, key, 0, first...)
	// Update one node, add one; the others stay as they were.
	upd := change(nodeID(1), state(10, dirty.StatusDirty))
	add := change(nodeID(9), state(9, dirty.StatusRunning))
	commit(t, s, key, 1, upd, add)
	want[upd.ID], want[add.ID] = upd.State, add.State
	requireSnapshot(t, s, key, 2, want)

	// A change replaces a node's state whole, its empty fields too: a
	// failed node made clean has no LastError left, as a store that merges
	// the new state's fields into the old (Postgres's jsonb ||, given a
	// State's JSON, which leaves out the empty ones) would leave.
	bare := change(nodeID(2), dirty.State{Status: dirty.StatusClean, Rev: 3, UpdatedAt: baseTime})
	zero := change(nodeID(3), dirty.State{})
	commit(t, s, key, 2, bare, zero)
	want[bare.ID], want[zero.ID] = bare.State, zero.State
	requireSnapshot(t, s, key, 3, want)
}

func testLastChangeWins(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	a, b := nodeID(0), nodeID(1)
	commit(t, s, key, 0,
		change(a, state(1, dirty.StatusRunning)),
		change(b, state(2, dirty.StatusRunning)),
		change(a, state(3, dirty.StatusFailed)),
		change(a, state(4, dirty.StatusClean)),
	)
	requireSnapshot(t, s, key, 1, map[string]dirty.State{
		a: state(4, dirty.StatusClean),
		b: state(2, dirty.StatusRunning),
	})
	// Same in a commit that updates stored nodes.
	commit(t, s, key, 1,
		change(b, state(5, dirty.StatusDirty)),
		change(b, state(6, dirty.StatusClean)),
	)
	requireSnapshot(t, s, key, 2, map[string]dirty.State{
		a: state(4, dirty.StatusClean),
		b: state(6, dirty.StatusClean),
	})
}

// testCommitLeavesChanges checks that Commit neither modifies the
// caller's changes, not even to reorder them, nor keeps them once it
// returns, on success and on a conflict: the executor reads the slice
// after Commit, change i for node i of its own list, and reuses it for
// its next commit. Nor may Commit write into them while it runs, though
// it puts them back before it returns: another goroutine reads them
// meanwhile, and the race detector reports the write. A store that sorts the changes by ID in place (for a
// stable lock order, say) made the executor record each node's result
// as another node's.
func testCommitLeavesChanges(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	// Out of ID order, and a node twice, as the executor's commits are.
	changes := []executor.Change{
		change("script", state(3, dirty.StatusClean)),
		change(nodeID(2), state(2, dirty.StatusRunning)),
		change("asset:music", state(1, dirty.StatusFailed)),
		change("script", state(4, dirty.StatusDirty)),
		change(nodeID(0), state(0, dirty.StatusClean)),
	}
	before := slices.Clone(changes)
	assertChangesLeft := func(call string) {
		t.Helper()
		d := diff(before, changes)
		if d == "" {
			return
		}
		if ib, ia := changeIDs(before), changeIDs(changes); !slices.Equal(ib, ia) {
			d = fmt.Sprintf("node IDs in order, before: %q\nafter: %q", ib, ia)
		} else {
			d = "(-before +after):\n" + d
		}
		t.Errorf("%s modified the caller's changes, which the executor reads after it returns "+
			"(a store that sorts or otherwise rearranges them works on a copy); %s", call, d)
	}
	whileReading(t, "Commit", "changes", changes, func() { commit(t, s, key, 0, changes...) })
	assertChangesLeft(fmt.Sprintf("Commit(%q) at version 0", key))
	want := map[string]dirty.State{}
	for _, c := range before {
		want[c.ID] = c.State
	}
	// The caller reuses the slice: the store must not have kept it.
	for i := range changes {
		changes[i] = change("reused", state(9, dirty.StatusCancelled))
	}
	commit(t, s, key, 1)
	requireSnapshot(t, s, key, 2, want)

	// A commit that conflicts leaves them alone too.
	copy(changes, before)
	var (
		v   int64
		err error
	)
	whileReading(t, "Commit", "changes", changes, func() { v, err = s.Commit(t.Context(), key, 1, changes) })
	assertConflict(t, v, err, key, 1, 2)
	assertChangesLeft(fmt.Sprintf("Commit(%q) at a stale version", key))
	requireSnapshot(t, s, key, 2, want)
}

// changeIDs returns the node IDs of changes, in order.
func changeIDs(changes []executor.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.ID
	}
	return out
}

func testStaleCommit(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	a, b := nodeID(0), nodeID(1)
	commit(t, s, key, 0, change(a, state(1, dirty.StatusClean)))
	commit(t, s, key, 1, change(b, state(2, dirty.StatusClean)))
	want := map[string]dirty.State{a: state(1, dirty.StatusClean), b: state(2, dirty.StatusClean)}

	// A stale commit that changes a stored node and adds one.
	for _, expect := range []int64{0, 1, 3, 100, -1} {
		v, err := s.Commit(t.Context(), key, expect, []executor.Change{
			change(a, state(7, dirty.StatusDirty)),
			change(nodeID(8), state(8, dirty.StatusDirty)),
		})
		assertConflict(t, v, err, key, expect, 2)
		requireSnapshot(t, s, key, 2, want) // applied nothing
	}
	// The graph still takes commits at its version.
	commit(t, s, key, 2, change(a, state(9, dirty.StatusDirty)))
	want[a] = state(9, dirty.StatusDirty)
	requireSnapshot(t, s, key, 3, want)
}

func testFirstCommitWrongVersion(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	for _, expect := range []int64{1, 2, -1} {
		v, err := s.Commit(t.Context(), key, expect, []executor.Change{change(nodeID(0), state(0, dirty.StatusClean))})
		assertConflict(t, v, err, key, expect, 0)
		requireSnapshot(t, s, key, 0, nil)
	}
	v, err := s.Commit(t.Context(), key, 1, nil)
	assertConflict(t, v, err, key, 1, 0)
	requireSnapshot(t, s, key, 0, nil)
	commit(t, s, key, 0)
	requireSnapshot(t, s, key, 1, nil)
}

func testGraphsIndependent(t *testing.T, s executor.StateStore) {
	ka, kb := Unique(t, "a"), Unique(t, "b")
	a, b := change(nodeID(0), state(0, dirty.StatusClean)), change(nodeID(1), state(1, dirty.StatusDirty))
	commit(t, s, ka, 0, a)
	commit(t, s, ka, 1, a)
	// b is at version 0 although a is at 2.
	commit(t, s, kb, 0, b)
	// A conflict on a leaves b alone.
	v, err := s.Commit(t.Context(), ka, 0, []executor.Change{b})
	assertConflict(t, v, err, ka, 0, 2)
	requireSnapshot(t, s, ka, 2, map[string]dirty.State{a.ID: a.State})
	requireSnapshot(t, s, kb, 1, map[string]dirty.State{b.ID: b.State})
	requireSnapshot(t, s, Unique(t, "c"), 0, nil)
}

func testKeysAreExact(t *testing.T, s executor.StateStore) {
	// Graph keys that a case-insensitive or space-padding collation, a
	// prefix scan, or a Unicode normalisation would mix up ("café" with a
	// combining accent, NFD, and precomposed, NFC). Each first commit at 0
	// must succeed.
	base := Unique(t, "")
	keys := []string{
		base + "-graph", base + "-Graph", base + "-GRAPH", base + "-graph ",
		base + "-graph/sub", base + "-graph:sub", base + "-graph%", base + "-graph_", base + "-gräph",
		base + "-cafe\u0301", base + "-caf\u00e9",
	}
	for i, k := range keys {
		commit(t, s, k, 0, change("n", state(i, dirty.StatusClean)))
	}
	for i, k := range keys {
		requireSnapshot(t, s, k, 1, map[string]dirty.State{"n": state(i, dirty.StatusClean)})
	}
	// Node IDs within one graph, the same way.
	key := Unique(t, "nodes")
	// The executor's own state is kept like any node's.
	ids := []string{"node", "Node", "NODE", "node ", " node", "nöde", "node[1]", "node[1] ", "cafe\u0301", "caf\u00e9",
		executor.GraphStateID}
	want := map[string]dirty.State{}
	var changes []executor.Change
	for i, id := range ids {
		changes = append(changes, change(id, state(i, dirty.StatusClean)))
		want[id] = state(i, dirty.StatusClean)
	}
	commit(t, s, key, 0, changes...)
	requireSnapshot(t, s, key, 1, want)
}

// testStateLongKeys commits long graph keys and node IDs: a store keeps
// each exactly, or refuses the commit with a permanent error and applies
// nothing, and then finds no graph under the refused key. A store that
// cut keys to a length would mix up two that differ past it.
func testStateLongKeys(t *testing.T, s executor.StateStore) {
	for _, n := range longKeyLengths {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			sa, sb := state(1, dirty.StatusClean), state(2, dirty.StatusDirty)
			ka, kb := longKeys(Unique(t, "graph-"), n)
			v, err := s.Commit(t.Context(), ka, 0, []executor.Change{change("n", sa)})
			if err != nil {
				assertPermanent(t, err, fmt.Sprintf("Commit of a %d-byte graph key", n))
				assert.Zero(t, v, "Commit of a %d-byte graph key failed: the version returned with an error, want 0", n)
				requireSnapshot(t, s, ka, 0, nil) // a graph never committed
			} else {
				require.Equal(t, int64(1), v, "Commit of a %d-byte graph key at version 0: new version", n)
				commit(t, s, kb, 0, change("n", sb))
				requireSnapshot(t, s, ka, 1, map[string]dirty.State{"n": sa})
				requireSnapshot(t, s, kb, 1, map[string]dirty.State{"n": sb})
			}

			// The long IDs come after a change of a stored node and one of
			// a new node: a store that refuses the commit applies neither,
			// though it finds the long ID only after them.
			key := Unique(t, "nodes")
			commit(t, s, key, 0, change("n", sa))
			ia, ib := longKeys("node-", n)
			v, err = s.Commit(t.Context(), key, 1, []executor.Change{change("n", sb), change("m", sa), change(ia, sa), change(ib, sb)})
			if err != nil {
				assertPermanent(t, err, fmt.Sprintf("Commit of %d-byte node IDs", n))
				assert.Zero(t, v, "Commit of %d-byte node IDs failed: the version returned with an error, want 0", n)
				requireSnapshot(t, s, key, 1, map[string]dirty.State{"n": sa}) // applied nothing
				return
			}
			require.Equal(t, int64(2), v, "Commit of %d-byte node IDs at version 1: new version", n)
			requireSnapshot(t, s, key, 2, map[string]dirty.State{"n": sb, "m": sa, ia: sa, ib: sb})
		})
	}
}

func testLoadIsolatedFromCommits(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	a := change(nodeID(0), state(0, dirty.StatusClean))
	commit(t, s, key, 0, a)
	snap := load(t, s, key)
	commit(t, s, key, 1,
		change(a.ID, state(5, dirty.StatusDirty)),
		change(nodeID(1), state(1, dirty.StatusRunning)),
	)
	assert.Equal(t, int64(1), snap.Version, "version of a snapshot loaded before a commit")
	if d := diffStates(map[string]dirty.State{a.ID: a.State}, snap.States); d != "" {
		t.Errorf("a snapshot changed after a later commit (-want +got):\n%s", d)
	}
}

func testLoadIsolatedFromCaller(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	a, b := change(nodeID(0), state(0, dirty.StatusClean)), change(nodeID(1), state(1, dirty.StatusClean))
	commit(t, s, key, 0, a, b)
	want := map[string]dirty.State{a.ID: a.State, b.ID: b.State}

	snap := load(t, s, key)
	require.NotNil(t, snap.States)
	delete(snap.States, a.ID)
	snap.States[b.ID] = state(9, dirty.StatusDirty)
	snap.States["added"] = state(8, dirty.StatusDirty)
	requireSnapshot(t, s, key, 1, want)

	// Two snapshots do not share a map either.
	s1, s2 := load(t, s, key), load(t, s, key)
	s1.States["added"] = state(8, dirty.StatusDirty)
	assert.NotContains(t, s2.States, "added", "two snapshots share their States map")

	// An empty graph's snapshot, if its map is not nil, is the caller's too.
	empty := Unique(t, "empty")
	if es := load(t, s, empty); es.States != nil {
		es.States["added"] = state(8, dirty.StatusDirty)
	}
	requireSnapshot(t, s, empty, 0, nil)
}

func testLoadIsOneSnapshot(t *testing.T, s executor.StateStore) {
	// A writer commits the same few nodes again and again, each time with
	// states whose Rev is the version the commit makes, while readers load
	// the graph. Every snapshot must be one version's: its states and its
	// version read at one instant. A Load that reads them apart (two SQL
	// statements in READ COMMITTED, two critical sections) returns states
	// of one version with the number of another.
	const commits, readers = 60, 2
	key := Unique(t, "")
	ids := []string{nodeID(0), nodeID(1), nodeID(2)}
	stateAt := func(version int64, i int) dirty.State {
		st := state(int(version)*len(ids)+i, dirty.StatusClean)
		st.Rev = version
		return st
	}
	// consistent returns what is wrong with snap, or "".
	consistent := func(snap executor.Snapshot) string {
		if snap.Version == 0 {
			if len(snap.States) > 0 {
				return fmt.Sprintf("version 0 with %d states", len(snap.States))
			}
			return ""
		}
		if len(snap.States) != len(ids) {
			return fmt.Sprintf("version %d with %d states, want %d", snap.Version, len(snap.States), len(ids))
		}
		for i, id := range ids {
			got, ok := snap.States[id]
			switch {
			case !ok:
				return fmt.Sprintf("version %d without node %s", snap.Version, id)
			case got.Rev != snap.Version:
				return fmt.Sprintf("version %d with node %s of version %d", snap.Version, id, got.Rev)
			case !sameState(stateAt(snap.Version, i), got):
				return fmt.Sprintf("version %d with node %s not as committed: %+v", snap.Version, id, got)
			}
		}
		return ""
	}

	var (
		wg    sync.WaitGroup
		ready sync.WaitGroup
		done  = make(chan struct{})
	)
	ready.Add(readers)
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stop()
	for r := range readers {
		wg.Go(func() {
			ready.Done()
			for loads := 0; ; loads++ {
				select {
				case <-done:
					return
				default:
				}
				snap, err := s.Load(t.Context(), key)
				if !assert.NoError(t, err, "Load(%q) while another goroutine commits", key) {
					return
				}
				if what := consistent(snap); what != "" {
					t.Errorf("reader %d, load %d: Load(%q) returned a snapshot that no commit made: %s", r, loads, key, what)
					return
				}
			}
		})
	}
	ready.Wait()
	for v := range int64(commits) {
		changes := make([]executor.Change, len(ids))
		for i, id := range ids {
			changes[i] = change(id, stateAt(v+1, i))
		}
		commit(t, s, key, v, changes...)
		runtime.Gosched() // let the readers in between commits too
	}
	stop()
	want := map[string]dirty.State{}
	for i, id := range ids {
		want[id] = stateAt(commits, i)
	}
	requireSnapshot(t, s, key, commits, want)
}

func testConcurrentCommits(t *testing.T, s executor.StateStore) {
	const racers, rounds = 8, 4
	key := Unique(t, "")
	// racerChanges are what racer i commits in a round: a node that every
	// racer sets, and one of its own.
	racerChanges := func(round, i int) []executor.Change {
		st := state(round*100+i, dirty.StatusClean)
		st.LastError = fmt.Sprintf("round %d racer %d", round, i)
		return []executor.Change{
			change("shared", st),
			change(fmt.Sprintf("racer-%d-%d", round, i), st),
		}
	}
	want := map[string]dirty.State{}
	// Round 0 races on a graph never committed: every racer commits at 0.
	for round := range rounds {
		version := int64(round)
		type result struct {
			v   int64
			err error
		}
		results := make([]result, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				v, err := s.Commit(t.Context(), key, version, racerChanges(round, i))
				results[i] = result{v, err}
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, r := range results {
			if r.err != nil {
				assertConflict(t, r.v, r.err, key, version, version+1)
				continue
			}
			if winner >= 0 {
				t.Errorf("round %d: racers %d and %d both committed at version %d", round, winner, i, version)
			}
			winner = i
			assert.Equal(t, version+1, r.v, "round %d: the winner's new version", round)
		}
		require.GreaterOrEqual(t, winner, 0, "round %d: no racer committed at version %d", round, version)
		for _, c := range racerChanges(round, winner) {
			want[c.ID] = c.State
		}
		requireSnapshot(t, s, key, version+1, want)
	}
}

func testConcurrentGraphs(t *testing.T, s executor.StateStore) {
	const graphs, commits = 8, 10
	keys := make([]string, graphs)
	for g := range keys {
		keys[g] = Unique(t, fmt.Sprint(g))
	}
	var wg sync.WaitGroup
	for g, key := range keys {
		wg.Go(func() {
			for v := range int64(commits) {
				got, err := s.Commit(t.Context(), key, v, []executor.Change{change(nodeID(int(v)), state(g, dirty.StatusClean))})
				if !assert.NoError(t, err, "Commit(%q) at version %d, with other graphs committing", key, v) {
					return
				}
				assert.Equal(t, v+1, got, "Commit(%q) at version %d: new version", key, v)
			}
		})
	}
	wg.Wait()
	for g, key := range keys {
		want := map[string]dirty.State{}
		for v := range commits {
			want[nodeID(v)] = state(g, dirty.StatusClean)
		}
		requireSnapshot(t, s, key, commits, want)
	}
}

func testManyNodes(t *testing.T, s executor.StateStore) {
	// A whole long lecture committed at once.
	const n = 4000
	key := Unique(t, "")
	changes := make([]executor.Change, n)
	want := make(map[string]dirty.State, n)
	for i := range changes {
		changes[i] = change(nodeID(i), state(i, statuses[i%len(statuses)]))
		want[changes[i].ID] = changes[i].State
	}
	commit(t, s, key, 0, changes...)
	snap := load(t, s, key)
	require.Equal(t, int64(1), snap.Version)
	require.Len(t, snap.States, n, "Load after committing %d nodes", n)
	if d := diffStates(want, snap.States); d != "" {
		t.Fatalf("Load after committing %d nodes (-want +got):\n%s", n, d)
	}
}

func testStatesCancelled(t *testing.T, s executor.StateStore) {
	key := Unique(t, "")
	a := change(nodeID(0), state(0, dirty.StatusClean))
	commit(t, s, key, 0, a)
	ctx := cancelled(t)

	_, err := s.Load(ctx, key)
	assert.ErrorIs(t, err, context.Canceled, "Load with a cancelled context")
	v, err := s.Commit(ctx, key, 1, []executor.Change{change(a.ID, state(1, dirty.StatusDirty)), change(nodeID(1), state(1, dirty.StatusDirty))})
	assert.ErrorIs(t, err, context.Canceled, "Commit with a cancelled context")
	assert.Zero(t, v, "Commit with a cancelled context: the version returned with an error, want 0")
	requireSnapshot(t, s, key, 1, map[string]dirty.State{a.ID: a.State})

	// Nor on a graph never committed.
	fresh := Unique(t, "fresh")
	v, err = s.Commit(ctx, fresh, 0, []executor.Change{a})
	assert.ErrorIs(t, err, context.Canceled, "Commit with a cancelled context")
	assert.Zero(t, v, "Commit with a cancelled context: the version returned with an error, want 0")
	requireSnapshot(t, s, fresh, 0, nil)
}
