package storetest_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

// trialBugs are contract violations that the kit let through in an
// embedder's trial, which planted bugs in a store of its own one at a
// time: each a memory store wrapped to make one mistake, and the subtests
// that must catch it.
var trialBugs = []kitBug{
	// Commit sorted the caller's changes by node ID in place, for a
	// stable lock order: the executor, which reads change i as its node
	// i's after Commit, recorded each node's result as another's.
	{"StateStore", "sort-changes", []string{"CommitLeavesChanges"}},
	// Commit kept the caller's slice, as a write-behind cache that Load
	// reads: the executor's next commit, reusing the slice, changed what
	// the store held.
	{"StateStore", "retain-changes", []string{"CommitLeavesChanges"}},
	// Exists and Get answered from a cache of what they found, which a
	// Put updated but a prune did not: the kit checked only Missing and
	// GetMany after a prune.
	{"Retention", "read-cache", []string{"PruneAssetsSeenByReads"}},
	// PutRun replaced a record with a DELETE and then an INSERT, outside
	// a transaction: a GetRun in between found no record. And PutRun
	// wrote the record's file in place: a GetRun meanwhile read half of
	// it. The kit never read a record while it was replaced.
	{"RunStore", "delete-insert", []string{"ReplaceIsAtomic"}},
	{"RunStore", "write-in-place", []string{"ReplaceIsAtomic"}},
	// Get handed out the store's own copy of an asset's Meta, which a
	// caller's write then changed: only GetMany's check of a repeated
	// reference caught a shared Meta, so a plain AssetStore passed.
	{"AssetStore", "shared-get-meta", []string{"CallerMayChangeMeta"}},
	// Missing sorted the caller's refs in place, for its query, as the
	// trial's Commit did its changes: Missing's answer is a set, so the
	// kit passed it, and the executor, which read refs[i] as node i's
	// after the call, took one node's asset for lost and another's for
	// there. (GetMany doing the same failed the kit's later reads, as a
	// wrong order only.)
	{"AssetStore", "sort-refs", []string{"MissingAgreesWithExists", "GetManyAgreesWithGet"}},
}

// TestTrialKitCatchesBugs runs the kit, in a child process, against each
// store of trialBugs, and checks that the subtests meant to catch its bug
// fail.
func TestTrialKitCatchesBugs(t *testing.T) {
	checkKitCatches(t, "TestTrialBuggyStore", "STORETEST_TRIAL_BUG", trialBugs)
}

// TestTrialBuggyStore runs the kit against the buggy store that
// TestTrialKitCatchesBugs names in the environment.
func TestTrialBuggyStore(t *testing.T) {
	name := os.Getenv("STORETEST_TRIAL_BUG")
	if name == "" {
		t.Skip("run by TestTrialKitCatchesBugs")
	}
	var f storetest.Factory
	switch name {
	case "StateStore/sort-changes":
		f.States = func(*testing.T) executor.StateStore { return sortChanges{executor.NewMemoryStates()} }
	case "StateStore/retain-changes":
		f.States = func(*testing.T) executor.StateStore { return &retainChanges{MemoryStates: executor.NewMemoryStates()} }
	case "Retention/read-cache":
		f.Retainer = func(*testing.T) storetest.Retainer { return &readCache{MemoryStore: executor.NewMemoryStore()} }
	case "RunStore/delete-insert", "RunStore/write-in-place":
		_, bug, _ := strings.Cut(name, "/")
		f.Runs = func(*testing.T) executor.RunStore {
			return &twoStepRuns{MemoryRuns: executor.NewMemoryRuns(), bug: bug}
		}
	case "AssetStore/shared-get-meta":
		f.Assets = func(*testing.T) executor.AssetStore {
			return plainAssets{&sharedGetMeta{MemoryAssets: executor.NewMemoryAssets()}}
		}
	case "AssetStore/sort-refs":
		f.Assets = func(*testing.T) executor.AssetStore { return sortRefs{executor.NewMemoryAssets()} }
	default:
		t.Fatalf("unknown bug %q", name)
	}
	storetest.Run(t, f)
}

// sortChanges sorts the caller's changes by node ID in place, keeping
// the order of one node's changes, before it commits them.
type sortChanges struct{ *executor.MemoryStates }

func (s sortChanges) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	slices.SortStableFunc(changes, func(a, b executor.Change) int { return strings.Compare(a.ID, b.ID) })
	return s.MemoryStates.Commit(ctx, graphKey, expect, changes)
}

// retainChanges keeps each graph's last committed changes, the caller's
// slice, as a cache that Load applies over the stored states.
type retainChanges struct {
	*executor.MemoryStates
	mu   sync.Mutex
	last map[string][]executor.Change
}

func (s *retainChanges) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	v, err := s.MemoryStates.Commit(ctx, graphKey, expect, changes)
	if err == nil && len(changes) > 0 {
		s.mu.Lock()
		if s.last == nil {
			s.last = map[string][]executor.Change{}
		}
		s.last[graphKey] = changes
		s.mu.Unlock()
	}
	return v, err
}

func (s *retainChanges) Load(ctx context.Context, graphKey string) (executor.Snapshot, error) {
	snap, err := s.MemoryStates.Load(ctx, graphKey)
	if err != nil {
		return snap, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.last[graphKey] {
		snap.States[c.ID] = c.State
	}
	return snap, nil
}

// readCache answers Get and Exists from a cache of the assets they found,
// which a Put under the same reference updates and a prune does not.
type readCache struct {
	*executor.MemoryStore
	mu    sync.Mutex
	cache map[string]executor.Asset
}

func (s *readCache) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	ref, err := s.MemoryStore.Put(ctx, key, a)
	s.mu.Lock()
	delete(s.cache, ref)
	s.mu.Unlock()
	return ref, err
}

func (s *readCache) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if err := ctx.Err(); err != nil {
		return executor.Asset{}, err
	}
	s.mu.Lock()
	a, ok := s.cache[ref]
	s.mu.Unlock()
	if ok {
		a.Meta = maps.Clone(a.Meta)
		return a, nil
	}
	a, err := s.MemoryStore.Get(ctx, ref)
	if err == nil {
		s.mu.Lock()
		if s.cache == nil {
			s.cache = map[string]executor.Asset{}
		}
		s.cache[ref] = a
		s.mu.Unlock()
		a.Meta = maps.Clone(a.Meta)
	}
	return a, err
}

func (s *readCache) Exists(ctx context.Context, ref string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	_, ok := s.cache[ref]
	s.mu.Unlock()
	if ok {
		return true, nil
	}
	if _, err := s.Get(ctx, ref); err != nil {
		return false, nil
	}
	return true, nil
}

// twoStepRuns replaces a record in two steps, between which a reader
// finds, for bug "delete-insert", no record (a DELETE then an INSERT
// outside a transaction), or for "write-in-place" a record it cannot
// decode (a file written in place, read half written).
type twoStepRuns struct {
	*executor.MemoryRuns
	bug  string
	mu   sync.Mutex
	busy map[string]int // the IDs being replaced
}

func (s *twoStepRuns) PutRun(ctx context.Context, r executor.Record) error {
	if _, err := s.MemoryRuns.GetRun(ctx, r.ID); err != nil {
		return s.MemoryRuns.PutRun(ctx, r) // a new record: one step
	}
	s.mu.Lock()
	if s.busy == nil {
		s.busy = map[string]int{}
	}
	s.busy[r.ID]++
	s.mu.Unlock()
	time.Sleep(20 * time.Microsecond) // the round trip between the two steps
	err := s.MemoryRuns.PutRun(ctx, r)
	s.mu.Lock()
	s.busy[r.ID]--
	s.mu.Unlock()
	return err
}

// replacing reports whether the record id is being replaced.
func (s *twoStepRuns) replacing(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[id] > 0
}

func (s *twoStepRuns) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if s.replacing(id) {
		if s.bug == "write-in-place" {
			return executor.Record{}, fmt.Errorf("run %q: decode: unexpected end of JSON input", id)
		}
		return executor.Record{}, fmt.Errorf("run %q: %w", id, executor.ErrNotFound)
	}
	return s.MemoryRuns.GetRun(ctx, id)
}

func (s *twoStepRuns) ListRuns(ctx context.Context, graphKey string) ([]executor.Record, error) {
	rs, err := s.MemoryRuns.ListRuns(ctx, graphKey)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if s.replacing(r.ID) && s.bug == "write-in-place" {
			return nil, fmt.Errorf("run %q: decode: unexpected end of JSON input", r.ID)
		}
	}
	return slices.DeleteFunc(rs, func(r executor.Record) bool { return s.replacing(r.ID) }), nil
}

// plainAssets hides the optional methods of the AssetStore it embeds.
type plainAssets struct{ executor.AssetStore }

// sharedGetMeta is an AssetStore that keeps a copy of each asset's Meta,
// and returns that copy from Get.
type sharedGetMeta struct {
	*executor.MemoryAssets
	mu   sync.Mutex
	meta map[string]map[string]string // by reference
}

func (s *sharedGetMeta) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	ref, err := s.MemoryAssets.Put(ctx, key, a)
	if err == nil {
		s.mu.Lock()
		if s.meta == nil {
			s.meta = map[string]map[string]string{}
		}
		s.meta[ref] = maps.Clone(a.Meta)
		s.mu.Unlock()
	}
	return ref, err
}

func (s *sharedGetMeta) Get(ctx context.Context, ref string) (executor.Asset, error) {
	a, err := s.MemoryAssets.Get(ctx, ref)
	if err == nil {
		s.mu.Lock()
		a.Meta = s.meta[ref]
		s.mu.Unlock()
	}
	return a, err
}

// sortRefs sorts the caller's refs in place before it checks or reads
// them.
type sortRefs struct{ *executor.MemoryAssets }

func (s sortRefs) Missing(ctx context.Context, refs []string) ([]string, error) {
	slices.Sort(refs)
	return s.MemoryAssets.Missing(ctx, refs)
}

func (s sortRefs) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	slices.Sort(refs)
	return s.MemoryAssets.GetMany(ctx, refs)
}
