package storetest_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

// review4Bugs are contract violations that the kit let through: each a
// memory store with one mistake, and the subtest that must catch it.
var review4Bugs = []kitBug{
	// Put with a done context replaced the asset under its key, then
	// returned the context's error: the kit said it could not check Put,
	// whose reference it did not know, but it knows it for a replacement.
	{"AssetStore", "put-applies-cancelled", []string{"CancelledContext"}},
	// PutRun of a record with a new graph key (same ID) left it listed
	// under its old graph, as a store that indexes records by graph and
	// adds the new entry without removing the old one does.
	{"RunStore", "stale-graph-index", []string{"Replace"}},
	// Commit with a done context returned the error with a version other
	// than 0, though "on error the returned version is 0".
	{"StateStore", "cancel-version", []string{"CancelledContext"}},
}

// TestReview4KitCatchesBugs runs the kit, in a child process, against
// each store of review4Bugs, and checks that the subtest meant to catch
// its bug fails.
func TestReview4KitCatchesBugs(t *testing.T) {
	checkKitCatches(t, "TestReview4BuggyStore", "STORETEST_REVIEW4_BUG", review4Bugs)
}

// TestReview4BuggyStore runs the kit against the buggy store that
// TestReview4KitCatchesBugs names in the environment.
func TestReview4BuggyStore(t *testing.T) {
	name := os.Getenv("STORETEST_REVIEW4_BUG")
	if name == "" {
		t.Skip("run by TestReview4KitCatchesBugs")
	}
	var f storetest.Factory
	switch name {
	case "AssetStore/put-applies-cancelled":
		f.Assets = func(*testing.T) executor.AssetStore { return putAppliesCancelled{executor.NewMemoryAssets()} }
	case "RunStore/stale-graph-index":
		f.Runs = func(*testing.T) executor.RunStore { return &staleGraphIndex{MemoryRuns: executor.NewMemoryRuns()} }
	case "StateStore/cancel-version":
		f.States = func(*testing.T) executor.StateStore { return cancelVersion{executor.NewMemoryStates()} }
	default:
		t.Fatalf("unknown bug %q", name)
	}
	storetest.Run(t, f)
}

// putAppliesCancelled puts even when ctx is done, then returns its error.
type putAppliesCancelled struct{ *executor.MemoryAssets }

func (s putAppliesCancelled) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	ref, err := s.MemoryAssets.Put(context.WithoutCancel(ctx), key, a)
	if err == nil {
		err = ctx.Err()
	}
	return ref, err
}

// staleGraphIndex lists a record under every graph key it was put with.
type staleGraphIndex struct {
	*executor.MemoryRuns
	mu      sync.Mutex
	byGraph map[string][]string // IDs by every graph key they were put with
}

func (s *staleGraphIndex) PutRun(ctx context.Context, r executor.Record) error {
	if err := s.MemoryRuns.PutRun(ctx, r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byGraph == nil {
		s.byGraph = map[string][]string{}
	}
	if !slices.Contains(s.byGraph[r.GraphKey], r.ID) {
		s.byGraph[r.GraphKey] = append(s.byGraph[r.GraphKey], r.ID)
	}
	return nil
}

func (s *staleGraphIndex) ListRuns(ctx context.Context, graphKey string) ([]executor.Record, error) {
	rs, err := s.MemoryRuns.ListRuns(ctx, graphKey)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ids := slices.Clone(s.byGraph[graphKey])
	s.mu.Unlock()
	for _, id := range ids {
		if slices.ContainsFunc(rs, func(r executor.Record) bool { return r.ID == id }) {
			continue
		}
		if r, err := s.GetRun(ctx, id); err == nil {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b executor.Record) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return rs, nil
}

// cancelVersion returns the version expected with a done context's error.
type cancelVersion struct{ *executor.MemoryStates }

func (s cancelVersion) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	if err := ctx.Err(); err != nil {
		return expect, err
	}
	return s.MemoryStates.Commit(ctx, graphKey, expect, changes)
}
