package storetest_test

import (
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

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
