package storetest_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

func TestMemoryStores(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		States:   func(*testing.T) executor.StateStore { return executor.NewMemoryStates() },
		Assets:   func(*testing.T) executor.AssetStore { return executor.NewMemoryAssets() },
		Runs:     func(*testing.T) executor.RunStore { return executor.NewMemoryRuns() },
		Retainer: func(*testing.T) storetest.Retainer { return executor.NewMemoryStore() },
	})
}

func TestFakeStoresWithoutBugsPass(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		States:   func(*testing.T) executor.StateStore { return newFakeStates("") },
		Assets:   func(*testing.T) executor.AssetStore { return newFakeAssets("") },
		Runs:     func(*testing.T) executor.RunStore { return newFakeRuns("") },
		Retainer: func(*testing.T) storetest.Retainer { return newFakeRetainer("") },
	})
}

// bugs are mistakes a store could make, each with the kit's subtests
// that must catch it.
var bugs = []kitBug{
	{"StateStore", "no-cas", []string{"StaleCommitConflicts", "FirstCommitAtWrongVersion", "ConcurrentCommits"}},
	{"StateStore", "racy-cas", []string{"ConcurrentCommits"}},
	{"StateStore", "apply-then-check", []string{"StaleCommitConflicts", "FirstCommitAtWrongVersion"}},
	{"StateStore", "wrong-actual", []string{"StaleCommitConflicts"}},
	{"StateStore", "plain-error", []string{"StaleCommitConflicts"}},
	{"StateStore", "shared-map", []string{"LoadIsolatedFromCaller", "LoadIsolatedFromCommits"}},
	{"StateStore", "empty-commit-noop", []string{"EmptyCommitBumpsVersion"}},
	{"StateStore", "replace-all", []string{"CommitChangesOnlyNamedNodes"}},
	{"StateStore", "first-change-wins", []string{"LastChangeWins"}},
	{"StateStore", "seconds", []string{"RoundTrip"}},
	{"StateStore", "drop-zero", []string{"RoundTrip"}},
	{"StateStore", "fold-case", []string{"KeysAreExact"}},
	{"StateStore", "fold-unicode", []string{"KeysAreExact"}},
	{"StateStore", "round-micro", []string{"SubMicrosecondTimes"}},
	{"StateStore", "torn-load", []string{"LoadIsOneSnapshot"}},
	{"StateStore", "conflict-version", []string{"StaleCommitConflicts", "GraphsIndependent", "ConcurrentCommits"}},
	{"StateStore", "ignore-ctx", []string{"CancelledContext"}},
	{"AssetStore", "no-copy", []string{"CallerMayReuseInput"}},
	{"AssetStore", "unknown-is-zero", []string{"UnknownRef"}},
	{"AssetStore", "content-addressed", []string{"DistinctKeys"}},
	{"AssetStore", "put-once", []string{"SameKeyAgain"}},
	{"AssetStore", "keep-first", []string{"SameKeyReplaces"}},
	{"AssetStore", "prefix-lies", []string{"NearMissRefs"}},
	{"AssetStore", "fold-unicode", []string{"KeysAreExact"}},
	{"AssetStore", "exists-error", []string{"Exists"}},
	{"AssetStore", "text-data", []string{"BinaryData"}},
	{"AssetStore", "ignore-ctx", []string{"CancelledContext"}},
	{"AssetStore", "many-sorted", []string{"GetManyAgreesWithGet"}},
	{"AssetStore", "many-shared", []string{"GetManyAgreesWithGet"}},
	{"AssetStore", "many-zero-missing", []string{"GetManyAgreesWithGet"}},
	{"AssetStore", "many-ignore-ctx", []string{"GetManyAgreesWithGet"}},
	{"RunStore", "unsorted", []string{"ListOrder"}},
	{"RunStore", "wall-clock-order", []string{"ListOrder"}},
	{"RunStore", "append", []string{"Replace"}},
	{"RunStore", "prefix-filter", []string{"ListFiltersByGraph"}},
	{"RunStore", "no-copy", []string{"Copies"}},
	{"RunStore", "unknown-is-zero", []string{"NotFound"}},
	{"RunStore", "epoch-end", []string{"RunningRecord"}},
	{"RunStore", "epoch-start", []string{"ZeroTimes"}},
	{"RunStore", "round-micro", []string{"SubMicrosecondTimes"}},
	{"RunStore", "ignore-ctx", []string{"CancelledContext"}},
	{"RunStore", "drop-graph", []string{"RoundTrip", "RunningRecord", "Replace"}},
	{"RunStore", "keep-first-graph", []string{"Replace"}},
	{"RunStore", "drop-resumes", []string{"RoundTrip", "RunningRecord", "Text", "Replace"}},
	{"RunStore", "keep-first-resumes", []string{"Replace"}},
	{"RunStore", "drop-cancelled-by", []string{"CancelledBy"}},
	{"RunStore", "keep-first-cancelled-by", []string{"CancelledBy"}},
	{"RunStore", "list-drop-cancelled-by", []string{"CancelledBy"}},
	{"RunStore", "short-cancelled-by", []string{"CancelledBy"}},
	{"RunStore", "status-drop-cancelled-by", []string{"CancelledBy"}},
	{"RunStore", "status-unsorted", []string{"RunsByStatus"}},
	{"RunStore", "status-first-put", []string{"RunsByStatus"}},
	{"RunStore", "status-one-graph", []string{"RunsByStatus"}},
	{"RunStore", "status-no-copy", []string{"RunsByStatus"}},
	{"RunStore", "status-ignore-ctx", []string{"RunsByStatus"}},
	{"Retention", "drop-graph", []string{"DeleteGraph", "DeleteGraphNeverReusesVersions"}},
	{"Retention", "keep-runs", []string{"DeleteGraph", "DeleteGraphOfRunsOnly"}},
	{"Retention", "prefix-delete", []string{"DeleteGraph", "PruneAssetsAfterDeleteGraph"}},
	{"Retention", "tombstone-never-committed", []string{"DeleteGraph", "DeleteGraphOfRunsOnly"}},
	{"Retention", "racy-delete", []string{"DeleteGraphWhileCommitting"}},
	{"Retention", "prune-referenced", []string{"PruneAssetsKeepsReferenced", "PruneAssetsAfterReplace"}},
	{"Retention", "prune-young", []string{"PruneAssetsKeepsYoung"}},
	{"Retention", "no-release", []string{"PruneAssetsAfterRelease", "PruneAssetsKeepsTheAge"}},
	{"Retention", "count-zero", []string{"PruneAssetsKeepsReferenced"}},
	{"Retention", "prune-clean-only", []string{"PruneAssetsKeepsEveryReference"}},
	{"Retention", "prune-own-graph", []string{"PruneAssetsKeepsEveryReference"}},
	{"Retention", "runs-by-start", []string{"PruneRuns"}},
	{"Retention", "timeless-old", []string{"PruneRuns"}},
	{"Retention", "prune-runs-at-age", []string{"PruneRunsKeepsTheAge"}},
	{"Retention", "prune-running", []string{"PruneRunsKeepsRunning"}},
	{"Retention", "prune-assets-at-age", []string{"PruneAssetsKeepsTheAge"}},
	{"Retention", "prune-toctou", []string{"PruneAssetsWhilePutting"}},
	{"Retention", "prune-after-put", []string{"PruneAssetsWhilePutting"}},
	{"Retention", "same-put-keeps-age", []string{"PruneAssetsAfterRelease", "PruneAssetsAfterPutAgain"}},
	{"Retention", "negative-age", []string{"NegativeAge"}},
	{"Retention", "ignore-ctx", []string{"CancelledContext"}},
}

// TestKitCatchesBugs runs the kit, in a child process, against fake stores
// with one bug each, and checks that the subtests meant to catch that bug
// fail.
func TestKitCatchesBugs(t *testing.T) { checkKitCatches(t, "TestBuggyStore", "STORETEST_BUG", bugs) }

// kitBug is a store with one bug: its kind ("StateStore", "AssetStore",
// "RunStore" or "Retention"), the bug's name, and the kit's subtests
// meant to catch it.
type kitBug struct {
	store, bug string
	fails      []string
}

// checkKitCatches runs test, a test of this binary that runs the kit
// against the buggy store that env names, in a child process for each of
// bugs, and checks that the subtests meant to catch the bug fail.
func checkKitCatches(t *testing.T, test, env string, bugs []kitBug) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, b := range bugs {
		t.Run(b.store+"/"+b.bug, func(t *testing.T) {
			t.Parallel()
			run := fmt.Sprintf("^%s$/^%s$/^(%s)$", test, b.store, strings.Join(b.fails, "|"))
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run="+run, "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), env+"="+b.store+"/"+b.bug)
			out, err := cmd.CombinedOutput()
			assert.Error(t, err, "the kit passed a store with bug %q:\n%s", b.bug, out)
			for _, f := range b.fails {
				assert.Contains(t, string(out), "--- FAIL: "+test+"/"+b.store+"/"+f+" ",
					"subtest %s did not catch bug %q:\n%s", f, b.bug, out)
			}
		})
	}
}

// TestBuggyStore runs the kit against the buggy store that
// TestKitCatchesBugs names in the environment.
func TestBuggyStore(t *testing.T) {
	name := os.Getenv("STORETEST_BUG")
	if name == "" {
		t.Skip("run by TestKitCatchesBugs")
	}
	store, bug, _ := strings.Cut(name, "/")
	var f storetest.Factory
	switch store {
	case "StateStore":
		f.States = func(*testing.T) executor.StateStore { return newFakeStates(bug) }
	case "AssetStore":
		f.Assets = func(*testing.T) executor.AssetStore { return newFakeAssets(bug) }
	case "RunStore":
		f.Runs = func(*testing.T) executor.RunStore { return newFakeRuns(bug) }
	case "Retention":
		f.Retainer = func(*testing.T) storetest.Retainer { return newFakeRetainer(bug) }
	}
	storetest.Run(t, f)
}

// fakeStates is a StateStore that makes the mistake named by bug, or none.
type fakeStates struct {
	bug    string
	mu     sync.Mutex
	graphs map[string]*fakeGraph
	// release, if not nil, is called with the asset reference that a
	// change stops referring to, with mu held.
	release func(ref string)
	// keepAgeAtClear, if set, has a change to a state without an asset
	// reference not call release.
	keepAgeAtClear bool
}

type fakeGraph struct {
	version int64
	states  map[string]dirty.State
}

func newFakeStates(bug string) *fakeStates {
	return &fakeStates{bug: bug, graphs: map[string]*fakeGraph{}}
}

func (f *fakeStates) key(k string) string {
	switch f.bug {
	case "fold-case":
		return strings.ToLower(strings.TrimSpace(k))
	case "fold-unicode":
		return nfc(k)
	}
	return k
}

// nfc is a toy Unicode normalisation to NFC: it composes "e" and a
// combining acute accent into "é", as a store that normalises keys would.
func nfc(s string) string { return strings.ReplaceAll(s, "e\u0301", "\u00e9") }

func (f *fakeStates) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return executor.Snapshot{}, err
	}
	if f.bug == "torn-load" {
		// Reads the states, then the version, in two critical sections.
		f.mu.Lock()
		var states map[string]dirty.State
		if g := f.graphs[key]; g != nil {
			states = maps.Clone(g.states)
		}
		f.mu.Unlock()
		runtime.Gosched()
		time.Sleep(time.Millisecond)
		f.mu.Lock()
		defer f.mu.Unlock()
		var version int64
		if g := f.graphs[key]; g != nil {
			version = g.version
		}
		return executor.Snapshot{Version: version, States: states}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.graphs[f.key(key)]
	if g == nil {
		return executor.Snapshot{}, nil
	}
	if f.bug == "shared-map" {
		return executor.Snapshot{Version: g.version, States: g.states}, nil
	}
	return executor.Snapshot{Version: g.version, States: maps.Clone(g.states)}, nil
}

func (f *fakeStates) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return 0, err
	}
	key = f.key(key)
	if f.bug == "racy-cas" {
		// Checks the version, then applies in a second critical section.
		f.mu.Lock()
		actual := f.graph(key).version
		f.mu.Unlock()
		if actual != expect {
			return 0, &executor.ConflictError{GraphKey: key, Expected: expect, Actual: actual}
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
		f.mu.Lock()
		defer f.mu.Unlock()
		g := f.graph(key)
		f.apply(g, changes)
		g.version = expect + 1
		return g.version, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.graph(key)
	if f.bug == "apply-then-check" {
		f.apply(g, changes)
	}
	if g.version != expect && f.bug != "no-cas" {
		switch f.bug {
		case "wrong-actual":
			return 0, &executor.ConflictError{GraphKey: key, Expected: expect, Actual: expect}
		case "plain-error":
			return 0, fmt.Errorf("version is %d, not %d", g.version, expect)
		case "conflict-version":
			return g.version, &executor.ConflictError{GraphKey: key, Expected: expect, Actual: g.version}
		}
		return 0, &executor.ConflictError{GraphKey: key, Expected: expect, Actual: g.version}
	}
	if f.bug == "replace-all" {
		g.states = map[string]dirty.State{}
	}
	if f.bug != "apply-then-check" {
		f.apply(g, changes)
	}
	if len(changes) > 0 || f.bug != "empty-commit-noop" {
		g.version++
	}
	return g.version, nil
}

// graph returns the graph under key, creating it. f.mu is held.
func (f *fakeStates) graph(key string) *fakeGraph {
	g := f.graphs[key]
	if g == nil {
		g = &fakeGraph{states: map[string]dirty.State{}}
		f.graphs[key] = g
	}
	return g
}

// apply applies changes to g. f.mu is held.
func (f *fakeStates) apply(g *fakeGraph, changes []executor.Change) {
	for _, c := range changes {
		id, st := f.key(c.ID), c.State
		old, ok := g.states[id]
		if ok && f.bug == "first-change-wins" {
			continue
		}
		if ok && f.release != nil && old.AssetRef != st.AssetRef && (st.AssetRef != "" || !f.keepAgeAtClear) {
			f.release(old.AssetRef)
		}
		if st == (dirty.State{}) && f.bug == "drop-zero" {
			continue
		}
		switch f.bug {
		case "seconds":
			st.UpdatedAt = st.UpdatedAt.Truncate(time.Second)
		case "round-micro":
			st.UpdatedAt = st.UpdatedAt.Round(time.Microsecond)
		}
		g.states[id] = st
	}
}

// fakeAssets is an AssetStore that makes the mistake named by bug, or
// none.
type fakeAssets struct {
	bug    string
	mu     sync.Mutex
	assets map[string]executor.Asset
	putAt  map[string]time.Time // by reference
}

func newFakeAssets(bug string) *fakeAssets {
	return &fakeAssets{bug: bug, assets: map[string]executor.Asset{}, putAt: map[string]time.Time{}}
}

func (f *fakeAssets) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return "", err
	}
	ref := "fake:" + key
	switch f.bug {
	case "content-addressed":
		ref = "fake:" + path.Base(key)
	case "fold-unicode":
		ref = "fake:" + nfc(key)
	case "text-data":
		a.Data = []byte(strings.ToValidUTF8(string(a.Data), "?"))
	}
	if f.bug != "no-copy" {
		a.Data = slices.Clone(a.Data)
		a.Meta = maps.Clone(a.Meta)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.assets[ref]; ok {
		switch f.bug {
		case "put-once":
			return "", fmt.Errorf("asset %q exists", key)
		case "keep-first":
			return ref, nil
		}
	}
	f.assets[ref] = a
	f.putAt[ref] = time.Now()
	return ref, nil
}

func (f *fakeAssets) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return executor.Asset{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.assets[ref]
	if !ok && f.bug != "unknown-is-zero" && (f.bug != "prefix-lies" || !strings.HasPrefix(ref, "fake:")) {
		return executor.Asset{}, executor.ErrNotFound
	}
	a.Meta = maps.Clone(a.Meta)
	return a, nil
}

func (f *fakeAssets) Exists(ctx context.Context, ref string) (bool, error) {
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.assets[ref]
	switch {
	case !ok && f.bug == "exists-error":
		return false, executor.ErrNotFound
	case f.bug == "prefix-lies":
		return strings.HasPrefix(ref, "fake:"), nil
	}
	return ok, nil
}

// GetMany is an AssetBatchGetter made of Gets, with the bugs named
// "many-...".
func (f *fakeAssets) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	if err := ctx.Err(); err != nil && f.bug != "many-ignore-ctx" {
		return nil, err
	}
	if f.bug == "many-sorted" { // the order of the store, not of refs
		refs = slices.Sorted(slices.Values(refs))
	}
	out := make([]executor.Asset, len(refs))
	first := map[string]int{}
	for i, ref := range refs {
		if j, ok := first[ref]; ok && f.bug == "many-shared" {
			out[i] = out[j]
			continue
		}
		first[ref] = i
		a, err := f.Get(context.WithoutCancel(ctx), ref)
		if err != nil && f.bug != "many-zero-missing" {
			return nil, fmt.Errorf("get asset %q: %w", ref, err)
		}
		out[i] = a
	}
	return out, nil
}

// fakeRuns is a RunStore that makes the mistake named by bug, or none.
type fakeRuns struct {
	bug   string
	mu    sync.Mutex
	runs  []executor.Record             // in the order put
	first map[string]executor.RunStatus // the status each ID was first put with
}

func newFakeRuns(bug string) *fakeRuns { return &fakeRuns{bug: bug} }

func (f *fakeRuns) copy(r executor.Record) executor.Record {
	if f.bug != "no-copy" {
		r.Marks, r.Failed = slices.Clone(r.Marks), slices.Clone(r.Failed)
	}
	return r
}

func (f *fakeRuns) PutRun(ctx context.Context, r executor.Record) error {
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return err
	}
	r = f.copy(r)
	switch f.bug {
	case "epoch-end":
		if r.EndedAt.IsZero() {
			r.EndedAt = time.Unix(0, 0)
		}
	case "epoch-start":
		if r.StartedAt.IsZero() {
			r.StartedAt = time.Unix(0, 0)
		}
	case "round-micro":
		r.StartedAt, r.EndedAt = r.StartedAt.Round(time.Microsecond), r.EndedAt.Round(time.Microsecond)
	case "drop-graph": // a store without a column for Record.Graph
		r.Graph = ""
	case "drop-resumes": // a store without a column for Record.Resumes
		r.Resumes = ""
	case "drop-cancelled-by": // a store without a column for Record.CancelledBy
		r.CancelledBy = ""
	case "short-cancelled-by": // a column for Record.CancelledBy of 32 characters, which cuts longer codes
		if len(r.CancelledBy) > 32 {
			r.CancelledBy = r.CancelledBy[:32]
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.first[r.ID]; !ok {
		if f.first == nil {
			f.first = map[string]executor.RunStatus{}
		}
		f.first[r.ID] = r.Status
	}
	if i := slices.IndexFunc(f.runs, func(x executor.Record) bool { return x.ID == r.ID }); i >= 0 && f.bug != "append" {
		if f.bug == "keep-first-graph" { // an upsert that does not set the column
			r.Graph = f.runs[i].Graph
		}
		if f.bug == "keep-first-resumes" {
			r.Resumes = f.runs[i].Resumes
		}
		if f.bug == "keep-first-cancelled-by" && r.CancelledBy == "" {
			r.CancelledBy = f.runs[i].CancelledBy
		}
		f.runs[i] = r
		return nil
	}
	f.runs = append(f.runs, r)
	return nil
}

func (f *fakeRuns) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return executor.Record{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.runs) - 1; i >= 0; i-- {
		if f.runs[i].ID == id {
			return f.copy(f.runs[i]), nil
		}
	}
	if f.bug == "unknown-is-zero" {
		return executor.Record{}, nil
	}
	return executor.Record{}, fmt.Errorf("run %q: %w", id, executor.ErrNotFound)
}

func (f *fakeRuns) ListRuns(ctx context.Context, key string) ([]executor.Record, error) {
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []executor.Record
	for _, r := range f.runs {
		if r.GraphKey == key || (f.bug == "prefix-filter" && strings.HasPrefix(r.GraphKey, key)) {
			r = f.copy(r)
			if f.bug == "list-drop-cancelled-by" { // a list query that misses the column
				r.CancelledBy = ""
			}
			out = append(out, r)
		}
	}
	switch f.bug {
	case "unsorted":
	case "wall-clock-order":
		slices.SortStableFunc(out, func(a, b executor.Record) int {
			return strings.Compare(a.StartedAt.Format(time.DateTime), b.StartedAt.Format(time.DateTime))
		})
	default:
		slices.SortStableFunc(out, func(a, b executor.Record) int {
			if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
	}
	return out, nil
}

// RunsByStatus is a RunStatusLister with the bugs named "status-...".
func (f *fakeRuns) RunsByStatus(ctx context.Context, status executor.RunStatus) ([]executor.Record, error) {
	if err := ctx.Err(); err != nil && f.bug != "status-ignore-ctx" {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []executor.Record
	for _, r := range f.runs {
		if f.bug == "status-first-put" { // an index of the status first put
			r.Status = f.first[r.ID]
		}
		if r.Status != status || (f.bug == "status-one-graph" && len(out) > 0 && out[0].GraphKey != r.GraphKey) {
			continue
		}
		if f.bug != "status-no-copy" {
			r = f.copy(r)
		}
		if f.bug == "status-drop-cancelled-by" {
			r.CancelledBy = ""
		}
		out = append(out, r)
	}
	if f.bug != "status-unsorted" {
		slices.SortStableFunc(out, func(a, b executor.Record) int {
			if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
	}
	return out, nil
}

// fakeRetainer is a Retainer made of the fake stores, whose retention
// methods make the mistake named by bug, or none. A commit that stops
// referring to an asset restarts its age, but for bug "no-release" (and
// for "no-release-at-clear", a commit to a state with no reference).
type fakeRetainer struct {
	bug string
	*fakeStates
	*fakeAssets
	*fakeRuns
	// For bug "prune-after-put": the channels, made in its
	// testing/synctest bubble by a PruneAssets that waits, on which the
	// next Put hands it a channel to close once it deleted (Put waits
	// for that), and each Commit tells it; nil when none waits.
	hookMu     sync.Mutex
	putHook    chan chan struct{}
	commitHook chan struct{}
}

// Put is fakeAssets.Put; the first Put after a PruneAssets with bug
// "prune-after-put" began to wait returns once it deleted.
func (f *fakeRetainer) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	var age time.Time
	if f.bug == "same-put-keeps-age" {
		// Skips an asset the same as the one under the key, and so
		// keeps its age.
		f.fakeAssets.mu.Lock()
		if old, ok := f.fakeAssets.assets["fake:"+key]; ok && slices.Equal(old.Data, a.Data) {
			age = f.fakeAssets.putAt["fake:"+key]
		}
		f.fakeAssets.mu.Unlock()
	}
	ref, err := f.fakeAssets.Put(ctx, key, a)
	if !age.IsZero() {
		f.fakeAssets.mu.Lock()
		f.fakeAssets.putAt[ref] = age
		f.fakeAssets.mu.Unlock()
	}
	f.hookMu.Lock()
	c := f.putHook
	f.putHook = nil
	f.hookMu.Unlock()
	if c != nil {
		deleted := make(chan struct{})
		c <- deleted // c has room for one
		<-deleted
	}
	return ref, err
}

// Commit is fakeStates.Commit, which tells a PruneAssets with bug
// "prune-after-put" that waits for commits.
func (f *fakeRetainer) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	v, err := f.fakeStates.Commit(ctx, key, expect, changes)
	f.hookMu.Lock()
	c := f.commitHook
	f.hookMu.Unlock()
	if c != nil && err == nil {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	return v, err
}

// deleteAfterPut deletes victims, as del does, just after the next Put
// (or, with none, after a second, on a bubble's clock, once every other
// goroutine waits), then waits for two commits, or a second.
func (f *fakeRetainer) deleteAfterPut(del func()) {
	put, commits := make(chan chan struct{}, 1), make(chan struct{}, 2)
	f.hookMu.Lock()
	f.putHook = put
	f.hookMu.Unlock()
	select {
	case deleted := <-put:
		del()
		f.hookMu.Lock()
		f.commitHook = commits
		f.hookMu.Unlock()
		close(deleted)
	case <-time.After(time.Second):
		f.hookMu.Lock()
		f.putHook = nil
		f.hookMu.Unlock()
		select { // a Put that took the hook meanwhile
		case deleted := <-put:
			defer close(deleted)
		default:
		}
		del()
		return
	}
	timeout := time.After(time.Second)
	for range 2 {
		select {
		case <-commits:
		case <-timeout:
		}
	}
	f.hookMu.Lock()
	f.commitHook = nil
	f.hookMu.Unlock()
}

func newFakeRetainer(bug string) *fakeRetainer {
	f := &fakeRetainer{bug: bug, fakeStates: newFakeStates(""), fakeAssets: newFakeAssets(""), fakeRuns: newFakeRuns("")}
	f.fakeStates.keepAgeAtClear = bug == "no-release-at-clear"
	if bug != "no-release" {
		f.fakeStates.release = func(ref string) {
			f.fakeAssets.mu.Lock()
			defer f.fakeAssets.mu.Unlock()
			if _, ok := f.fakeAssets.putAt[ref]; ok {
				f.fakeAssets.putAt[ref] = time.Now()
			}
		}
	}
	return f
}

func (f *fakeRetainer) age(olderThan time.Duration) error {
	if olderThan < 0 && f.bug != "negative-age" {
		return fmt.Errorf("older than %v: want 0 or more", olderThan)
	}
	return nil
}

func (f *fakeRetainer) DeleteGraph(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return false, err
	}
	deleted := false
	f.fakeStates.mu.Lock()
	for k, g := range f.fakeStates.graphs {
		if k != key && (f.bug != "prefix-delete" || !strings.HasPrefix(k, key)) {
			continue
		}
		deleted = deleted || len(g.states) > 0
		if f.bug == "batched-delete" {
			// Deletes the states ten at a time, each batch in a critical
			// section of its own, then bumps the version.
			for len(g.states) > 0 {
				n := 0
				for id := range g.states {
					if n == 10 {
						break
					}
					delete(g.states, id)
					n++
				}
				f.fakeStates.mu.Unlock()
				runtime.Gosched()
				time.Sleep(time.Millisecond)
				f.fakeStates.mu.Lock()
			}
			g.version++
			continue
		}
		if f.bug == "racy-delete" {
			// Reads the version, then deletes in a second critical
			// section, setting the version it read, plus one.
			read := g.version
			f.fakeStates.mu.Unlock()
			runtime.Gosched()
			time.Sleep(time.Millisecond)
			f.fakeStates.mu.Lock()
			g.states = map[string]dirty.State{}
			g.version = read + 1
			continue
		}
		if f.bug == "drop-graph" {
			delete(f.fakeStates.graphs, k)
			continue
		}
		g.states = map[string]dirty.State{}
		g.version++
	}
	if _, ok := f.fakeStates.graphs[key]; !ok && f.bug == "tombstone-never-committed" {
		f.fakeStates.graphs[key] = &fakeGraph{version: 1, states: map[string]dirty.State{}}
	}
	f.fakeStates.mu.Unlock()
	if f.bug == "keep-runs" {
		return deleted, nil
	}
	f.fakeRuns.mu.Lock()
	defer f.fakeRuns.mu.Unlock()
	kept := f.fakeRuns.runs[:0]
	for _, r := range f.fakeRuns.runs {
		if r.GraphKey == key || (f.bug == "prefix-delete" && strings.HasPrefix(r.GraphKey, key)) {
			deleted = true
			continue
		}
		kept = append(kept, r)
	}
	f.fakeRuns.runs = kept
	return deleted, nil
}

func (f *fakeRetainer) PruneAssets(ctx context.Context, olderThan time.Duration) (int64, error) {
	if err := f.age(olderThan); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return 0, err
	}
	cutoff := time.Now().Add(-olderThan)
	inUse := map[string]bool{}
	f.fakeStates.mu.Lock()
	for k, g := range f.fakeStates.graphs {
		for _, st := range g.states {
			if f.bug == "prune-clean-only" && st.Status != dirty.StatusClean {
				continue
			}
			if f.bug == "prune-own-graph" && !strings.HasPrefix(st.AssetRef, "fake:"+k+"/") {
				continue // only a graph's own assets count as its references
			}
			inUse[st.AssetRef] = f.bug != "prune-referenced"
		}
	}
	f.fakeStates.mu.Unlock()
	f.fakeAssets.mu.Lock()
	defer f.fakeAssets.mu.Unlock()
	var victims []string
	for ref, at := range f.fakeAssets.putAt {
		young := !at.Before(cutoff) // an asset exactly olderThan old is kept
		if f.bug == "prune-assets-at-age" {
			young = at.After(cutoff)
		}
		if inUse[ref] || (young && f.bug != "prune-young") {
			continue
		}
		victims = append(victims, ref)
	}
	if f.bug == "prune-toctou" {
		// Decides, then lets the lock go before it deletes, as a store
		// that scans under a read lock and deletes apart does: a Put
		// again and a commit that refers to the asset get in between.
		f.fakeAssets.mu.Unlock()
		runtime.Gosched()
		time.Sleep(time.Millisecond)
		f.fakeAssets.mu.Lock()
	}
	var n int64
	if f.bug == "prune-after-put" {
		// Decides, lets the lock go, and deletes just after a run put
		// an asset again (one it decided to delete, say); it returns
		// after two commits more, by which a run that puts each asset
		// more than once has put it yet again.
		f.fakeAssets.mu.Unlock()
		f.deleteAfterPut(func() {
			f.fakeAssets.mu.Lock()
			defer f.fakeAssets.mu.Unlock()
			for _, ref := range victims {
				delete(f.fakeAssets.assets, ref)
				delete(f.fakeAssets.putAt, ref)
				n++
			}
		})
		f.fakeAssets.mu.Lock()
		return n, nil
	}
	for _, ref := range victims {
		delete(f.fakeAssets.assets, ref)
		delete(f.fakeAssets.putAt, ref)
		n++
	}
	if f.bug == "count-zero" {
		return 0, nil
	}
	return n, nil
}

func (f *fakeRetainer) PruneRuns(ctx context.Context, olderThan time.Duration) (int64, error) {
	if err := f.age(olderThan); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil && f.bug != "ignore-ctx" {
		return 0, err
	}
	cutoff := time.Now().Add(-olderThan)
	f.fakeRuns.mu.Lock()
	defer f.fakeRuns.mu.Unlock()
	var n int64
	kept := f.fakeRuns.runs[:0]
	for _, r := range f.fakeRuns.runs {
		if r.Status == executor.RunRunning && f.bug != "prune-running" {
			kept = append(kept, r)
			continue
		}
		at := r.EndedAt
		if at.IsZero() || f.bug == "runs-by-start" {
			at = r.StartedAt
		}
		if (!at.IsZero() || f.bug == "timeless-old") && (at.Before(cutoff) || (f.bug == "prune-runs-at-age" && at.Equal(cutoff))) {
			n++
			continue
		}
		kept = append(kept, r)
	}
	f.fakeRuns.runs = kept
	return n, nil
}
