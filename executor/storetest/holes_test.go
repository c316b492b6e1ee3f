package storetest_test

import (
	"context"
	"os"
	"testing"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

// holeBugs are contract violations that the kit let through until a
// review that planted, for each documented point of the stores'
// contract, a store breaking it: each a memory store wrapped to make one
// mistake, and the subtests that must catch it.
var holeBugs = []kitBug{
	// Commit of an empty change list to a graph already committed
	// bumped the version without comparing it with the one expected: the
	// kit's empty commits were all at the right version, and its stale
	// ones all had changes.
	{"StateStore", "empty-skips-cas", []string{"EmptyCommitBumpsVersion"}},
}

// TestHolesKitCatchesBugs runs the kit, in a child process, against each
// store of holeBugs, and checks that the subtests meant to catch its bug
// fail.
func TestHolesKitCatchesBugs(t *testing.T) {
	checkKitCatches(t, "TestHolesBuggyStore", "STORETEST_HOLES_BUG", holeBugs)
}

// TestHolesBuggyStore runs the kit against the buggy store that
// TestHolesKitCatchesBugs names in the environment.
func TestHolesBuggyStore(t *testing.T) {
	name := os.Getenv("STORETEST_HOLES_BUG")
	if name == "" {
		t.Skip("run by TestHolesKitCatchesBugs")
	}
	var f storetest.Factory
	switch name {
	case "StateStore/empty-skips-cas":
		f.States = func(*testing.T) executor.StateStore { return emptySkipsCAS{executor.NewMemoryStates()} }
	default:
		t.Fatalf("unknown bug %q", name)
	}
	storetest.Run(t, f)
}

// emptySkipsCAS commits an empty change list to a graph already
// committed at the graph's version, whatever version the caller expects:
// with nothing to write, it bumps the version without comparing it.
type emptySkipsCAS struct{ *executor.MemoryStates }

func (s emptySkipsCAS) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	if len(changes) == 0 {
		if snap, err := s.Load(ctx, graphKey); err == nil && snap.Version > 0 {
			expect = snap.Version
		}
	}
	return s.MemoryStates.Commit(ctx, graphKey, expect, changes)
}
