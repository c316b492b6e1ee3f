package storetest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

// mutationBugs are contract violations that a mutation test of the kit
// found it let through: each a memory store wrapped to make one mistake,
// and the subtests that must catch it.
var mutationBugs = []kitBug{
	// Commit applied the changes before the first node ID over its limit,
	// then refused that one with a permanent error: the kit's long ID came
	// first in its commit, so there was nothing before it to apply.
	{"StateStore", "apply-before-long", []string{"LongKeys"}},
	// RunsByStatus matched statuses case-insensitively, without
	// surrounding spaces, as a collation does, or as a prefix, as a LIKE
	// does, where the status must be exactly the one asked for: the kit
	// asked for the statuses themselves and for one no record had.
	{"RunStore", "status-fold", []string{"RunsByStatus"}},
	{"RunStore", "status-prefix", []string{"RunsByStatus"}},
	// RunsByStatus listed a record that a PutRun had moved to another
	// graph key under its old key too, as a store whose index of the
	// records by status is kept per graph, and not updated when a
	// record's graph changes, does: the kit never moved a record there.
	{"RunStore", "status-moved", []string{"RunsByStatus"}},
	// DeleteGraph deleted, but reported that it had found nothing: the
	// kit's check of a deletion while a run commits stopped at that
	// report and left the run's goroutine committing, which then
	// reported to the ended test, a panic that ended the kit's process
	// with no subtest's verdict.
	{"Retention", "delete-reports-nothing", []string{"DeleteGraph", "DeleteGraphNeverReusesVersions", "DeleteGraphOfRunsOnly",
		"DeleteGraphWhileCommitting", "PruneAssetsAfterDeleteGraph", "PruneAssetsKeepsEveryReference"}},
	// Put trimmed the white space at the ends of an asset's Data, as a
	// store that keeps it as text does, though Data may hold any bytes:
	// the kit's data never began or ended with white space.
	{"AssetStore", "trim-data", []string{"BinaryData"}},
}

// TestMutationKitCatchesBugs runs the kit, in a child process, against
// each store of mutationBugs, and checks that the subtests meant to catch
// its bug fail.
func TestMutationKitCatchesBugs(t *testing.T) {
	checkKitCatches(t, "TestMutationBuggyStore", "STORETEST_MUTATION_BUG", mutationBugs)
}

// TestMutationBuggyStore runs the kit against the buggy store that
// TestMutationKitCatchesBugs names in the environment.
func TestMutationBuggyStore(t *testing.T) {
	name := os.Getenv("STORETEST_MUTATION_BUG")
	if name == "" {
		t.Skip("run by TestMutationKitCatchesBugs")
	}
	var f storetest.Factory
	switch name {
	case "StateStore/apply-before-long":
		f.States = func(*testing.T) executor.StateStore { return applyBeforeLong{executor.NewMemoryStates()} }
	case "RunStore/status-fold":
		f.Runs = func(*testing.T) executor.RunStore { return statusFold{executor.NewMemoryRuns()} }
	case "RunStore/status-prefix":
		f.Runs = func(*testing.T) executor.RunStore { return statusPrefix{executor.NewMemoryRuns()} }
	case "RunStore/status-moved":
		f.Runs = func(*testing.T) executor.RunStore {
			return &statusMoved{MemoryRuns: executor.NewMemoryRuns(), old: map[string]executor.Record{}}
		}
	case "Retention/delete-reports-nothing":
		f.Retainer = func(*testing.T) storetest.Retainer { return deleteReportsNothing{executor.NewMemoryStore()} }
	case "AssetStore/trim-data":
		f.Assets = func(*testing.T) executor.AssetStore { return trimData{executor.NewMemoryAssets()} }
	default:
		t.Fatalf("unknown bug %q", name)
	}
	storetest.Run(t, f)
}

// applyBeforeLong refuses a node ID over maxKey bytes with a permanent
// error, as the contract allows, but only once it has committed the
// changes before it, as a store that writes each change as it checks it,
// outside a transaction, does.
type applyBeforeLong struct{ *executor.MemoryStates }

func (s applyBeforeLong) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	for i, c := range changes {
		if len(c.ID) <= maxKey {
			continue
		}
		if i > 0 {
			if _, err := s.MemoryStates.Commit(ctx, graphKey, expect, changes[:i]); err != nil {
				return 0, err
			}
		}
		return 0, executor.Permanent(fmt.Errorf("commit graph %.20q: node ID longer than %d bytes", graphKey, maxKey))
	}
	return s.MemoryStates.Commit(ctx, graphKey, expect, changes)
}

// statusFold lists the records whose status is the one asked for, in
// lower case and without surrounding spaces.
type statusFold struct{ *executor.MemoryRuns }

func (s statusFold) RunsByStatus(ctx context.Context, status executor.RunStatus) ([]executor.Record, error) {
	return s.MemoryRuns.RunsByStatus(ctx, executor.RunStatus(strings.ToLower(strings.TrimSpace(string(status)))))
}

// statusPrefix lists the records whose status starts with the one asked
// for, as a LIKE 'status%' does.
type statusPrefix struct{ *executor.MemoryRuns }

func (s statusPrefix) RunsByStatus(ctx context.Context, status executor.RunStatus) ([]executor.Record, error) {
	var out []executor.Record
	for _, st := range []executor.RunStatus{executor.RunRunning, executor.RunSucceeded, executor.RunFailed,
		executor.RunCancelled, executor.RunInterrupted} {
		if !strings.HasPrefix(string(st), string(status)) {
			continue
		}
		rs, err := s.MemoryRuns.RunsByStatus(ctx, st)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// statusMoved keeps listing, in RunsByStatus, a record whose graph key a
// PutRun changed, as it was under its old key.
type statusMoved struct {
	*executor.MemoryRuns
	mu  sync.Mutex
	old map[string]executor.Record // by ID
}

func (s *statusMoved) PutRun(ctx context.Context, r executor.Record) error {
	prev, err := s.MemoryRuns.GetRun(ctx, r.ID)
	if err := s.MemoryRuns.PutRun(ctx, r); err != nil {
		return err
	}
	if err == nil && prev.GraphKey != r.GraphKey {
		s.mu.Lock()
		s.old[r.ID] = prev
		s.mu.Unlock()
	}
	return nil
}

func (s *statusMoved) RunsByStatus(ctx context.Context, status executor.RunStatus) ([]executor.Record, error) {
	rs, err := s.MemoryRuns.RunsByStatus(ctx, status)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.old {
		if r.Status == status {
			rs = append(rs, r)
		}
	}
	slices.SortStableFunc(rs, func(a, b executor.Record) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return rs, nil
}

// deleteReportsNothing deletes a graph, and reports that it found
// nothing to delete.
type deleteReportsNothing struct{ *executor.MemoryStore }

func (s deleteReportsNothing) DeleteGraph(ctx context.Context, graphKey string) (bool, error) {
	_, err := s.MemoryStore.DeleteGraph(ctx, graphKey)
	return false, err
}

// trimData keeps an asset's Data without the white space at its ends.
type trimData struct{ *executor.MemoryAssets }

func (s trimData) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	a.Data = bytes.TrimSpace(a.Data)
	return s.MemoryAssets.Put(ctx, key, a)
}
