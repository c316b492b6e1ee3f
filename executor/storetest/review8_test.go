package storetest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

// review8Bugs are contract violations that the kit let through before
// review 8: each a memory store wrapped to make one mistake, and the
// subtests that must catch it.
var review8Bugs = []struct {
	store, bug string
	fails      []string
}{
	// PutRun and GetRun matched IDs case-insensitively and without
	// trailing spaces, as a MySQL-style collation does: a record put under
	// "Run-1" replaced the one under "run-1".
	{"RunStore", "fold-ids", []string{"IDsAreExact"}},
	// ListRuns broke ties of StartedAt by a locale's collation (case and
	// punctuation ignored), not byte by byte.
	{"RunStore", "collated-ties", []string{"ListOrder"}},
}

// TestReview8KitCatchesBugs runs the kit, in a child process, against
// each store of review8Bugs, and checks that the subtests meant to catch
// its bug fail.
func TestReview8KitCatchesBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, b := range review8Bugs {
		t.Run(b.store+"/"+b.bug, func(t *testing.T) {
			t.Parallel()
			run := fmt.Sprintf("^TestReview8BuggyStore$/^%s$/^(%s)$", b.store, strings.Join(b.fails, "|"))
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run="+run, "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "STORETEST_REVIEW8_BUG="+b.store+"/"+b.bug)
			out, err := cmd.CombinedOutput()
			assert.Error(t, err, "the kit passed a store with bug %q:\n%s", b.bug, out)
			for _, f := range b.fails {
				assert.Contains(t, string(out), "--- FAIL: TestReview8BuggyStore/"+b.store+"/"+f+" ",
					"subtest %s did not catch bug %q:\n%s", f, b.bug, out)
			}
		})
	}
}

// TestReview8BuggyStore runs the kit against the buggy store that
// TestReview8KitCatchesBugs names in the environment.
func TestReview8BuggyStore(t *testing.T) {
	name := os.Getenv("STORETEST_REVIEW8_BUG")
	if name == "" {
		t.Skip("run by TestReview8KitCatchesBugs")
	}
	var f storetest.Factory
	switch name {
	case "RunStore/fold-ids":
		f.Runs = func(*testing.T) executor.RunStore { return &foldIDs{MemoryRuns: executor.NewMemoryRuns()} }
	case "RunStore/collated-ties":
		f.Runs = func(*testing.T) executor.RunStore { return collatedTies{executor.NewMemoryRuns()} }
	default:
		t.Fatalf("unknown bug %q", name)
	}
	storetest.Run(t, f)
}

// foldIDs keys records by their ID folded to lower case, trailing spaces
// trimmed: the row of the first ID put under a folded key is the one
// every later PutRun and GetRun of that key reads and writes.
type foldIDs struct {
	*executor.MemoryRuns
	mu    sync.Mutex
	first map[string]string // the first ID put, by folded ID
}

func fold(id string) string { return strings.ToLower(strings.TrimRight(id, " ")) }

// row returns the ID of the row that id is stored under.
func (s *foldIDs) row(id string, put bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		s.first = map[string]string{}
	}
	if first, ok := s.first[fold(id)]; ok {
		return first
	}
	if put {
		s.first[fold(id)] = id
	}
	return id
}

func (s *foldIDs) PutRun(ctx context.Context, r executor.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.ID = s.row(r.ID, true)
	return s.MemoryRuns.PutRun(ctx, r)
}

func (s *foldIDs) GetRun(ctx context.Context, id string) (executor.Record, error) {
	return s.MemoryRuns.GetRun(ctx, s.row(id, false))
}

// collatedTies sorts records that started at the same instant by their
// IDs in lower case, punctuation ignored.
type collatedTies struct{ *executor.MemoryRuns }

func (s collatedTies) ListRuns(ctx context.Context, graphKey string) ([]executor.Record, error) {
	rs, err := s.MemoryRuns.ListRuns(ctx, graphKey)
	collate := func(id string) string {
		return strings.Map(func(r rune) rune {
			if r == '-' || r == '_' || r == ' ' {
				return -1
			}
			return r
		}, strings.ToLower(id))
	}
	slices.SortStableFunc(rs, func(a, b executor.Record) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(collate(a.ID), collate(b.ID))
	})
	return rs, err
}
