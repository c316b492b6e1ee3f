package storetest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

// review8Bugs are contract violations that the kit let through before
// review 8: each a memory store wrapped to make one mistake, and the
// subtests that must catch it.
var review8Bugs = []kitBug{
	// PutRun and GetRun matched IDs case-insensitively and without
	// trailing spaces, as a MySQL-style collation does: a record put under
	// "Run-1" replaced the one under "run-1".
	{"RunStore", "fold-ids", []string{"IDsAreExact"}},
	// ListRuns broke ties of StartedAt by a locale's collation (case and
	// punctuation ignored), not byte by byte.
	{"RunStore", "collated-ties", []string{"ListOrder"}},
	// Graph keys and node IDs, asset keys, run IDs and graph keys of
	// records were cut to 1,000 bytes: two keys that differ past it were
	// one. The kit's keys were at most 200 bytes.
	{"StateStore", "truncate-keys", []string{"LongKeys"}},
	{"AssetStore", "truncate-keys", []string{"LongKeys"}},
	{"RunStore", "truncate-ids", []string{"LongKeys"}},
	// A commit of a key over the store's limit was refused, but with an
	// error that is not executor.Permanent: the executor retries it.
	{"StateStore", "long-not-permanent", []string{"LongKeys"}},
	// GetRun and ListRuns of an ID or graph key over the store's limit
	// failed with an error, where they must find nothing.
	{"RunStore", "long-lookup-fails", []string{"LongKeys"}},
	// A state's LastError and a record's Error and Reason were cut to
	// 8 KiB, though the executor records up to MaxEventText (32 KiB):
	// the kit's longest text was 4.6 KB.
	{"StateStore", "cap-text", []string{"Text"}},
	{"RunStore", "cap-text", []string{"Text"}},
	// Record.Failed was kept as a set, sorted: the kit's list was sorted
	// already, so its order, the Report's, was never checked.
	{"RunStore", "sort-failed", []string{"RoundTrip"}},
	// GetMany answered from a cache that a Put under the same key did not
	// update: the executor read a replaced result.
	{"AssetStore", "many-cache", []string{"GetManyAgreesWithGet"}},
	// GetMany put the assets of its second page of references (past 256)
	// in the wrong places: the kit read at most 4 at once, the executor
	// reads hundreds for a timeline.
	{"AssetStore", "many-paged", []string{"GetManyAgreesWithGet"}},
	// Missing checked the first 1,000 references only: the kit checked
	// 10, the executor checks every clean node's in one call.
	{"AssetStore", "missing-capped", []string{"MissingAgreesWithExists"}},
	// Missing answered from the references Put returned, which a prune
	// did not forget: the kit never pruned and then called Missing, and
	// a clean node whose asset was pruned stayed clean.
	{"Retention", "missing-cache", []string{"PruneAssetsSeenByBatchReads"}},
	// Lookups of a reference that is not valid UTF-8 or holds NUL failed
	// with an error, as a store that passes it to a Postgres text
	// parameter does, where Exists must report false and Get, Missing and
	// GetMany not found: one such reference in a state stops every run.
	// Mark reasons after the first three came back as the zero Reason:
	// the kit's record used three of the ten.
	{"RunStore", "old-reasons", []string{"RoundTrip"}},
	{"AssetStore", "text-refs", []string{"Exists", "UnknownRef", "MissingAgreesWithExists", "GetManyAgreesWithGet"}},
}

// TestReview8KitCatchesBugs runs the kit, in a child process, against
// each store of review8Bugs, and checks that the subtests meant to catch
// its bug fail.
func TestReview8KitCatchesBugs(t *testing.T) {
	checkKitCatches(t, "TestReview8BuggyStore", "STORETEST_REVIEW8_BUG", review8Bugs)
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
	case "StateStore/truncate-keys":
		f.States = func(*testing.T) executor.StateStore { return truncStates{executor.NewMemoryStates()} }
	case "StateStore/long-not-permanent":
		f.States = func(*testing.T) executor.StateStore { return plainRefusal{executor.NewMemoryStates()} }
	case "AssetStore/truncate-keys":
		f.Assets = func(*testing.T) executor.AssetStore { return truncAssets{executor.NewMemoryAssets()} }
	case "RunStore/truncate-ids":
		f.Runs = func(*testing.T) executor.RunStore { return truncRuns{executor.NewMemoryRuns()} }
	case "RunStore/long-lookup-fails":
		f.Runs = func(*testing.T) executor.RunStore { return longLookupFails{executor.NewMemoryRuns()} }
	case "StateStore/cap-text":
		f.States = func(*testing.T) executor.StateStore { return capStateText{executor.NewMemoryStates()} }
	case "RunStore/sort-failed":
		f.Runs = func(*testing.T) executor.RunStore { return sortFailed{executor.NewMemoryRuns()} }
	case "RunStore/cap-text":
		f.Runs = func(*testing.T) executor.RunStore { return capRunText{executor.NewMemoryRuns()} }
	case "AssetStore/many-cache":
		f.Assets = func(*testing.T) executor.AssetStore { return &cachedMany{MemoryAssets: executor.NewMemoryAssets()} }
	case "AssetStore/many-paged":
		f.Assets = func(*testing.T) executor.AssetStore { return pagedMany{executor.NewMemoryAssets()} }
	case "AssetStore/missing-capped":
		f.Assets = func(*testing.T) executor.AssetStore { return cappedMissing{executor.NewMemoryAssets()} }
	case "Retention/missing-cache":
		f.Retainer = func(*testing.T) storetest.Retainer { return &knownRefs{MemoryStore: executor.NewMemoryStore()} }
	case "AssetStore/text-refs":
		f.Assets = func(*testing.T) executor.AssetStore { return textRefs{executor.NewMemoryAssets()} }
	case "RunStore/old-reasons":
		f.Runs = func(*testing.T) executor.RunStore { return oldReasons{executor.NewMemoryRuns()} }
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

// maxKey is the key length of the stores below that limit keys.
const maxKey = 1000

// trunc cuts s to maxKey bytes.
func trunc(s string) string { return s[:min(len(s), maxKey)] }

// truncStates keeps graph keys and node IDs cut to maxKey bytes.
type truncStates struct{ *executor.MemoryStates }

func (s truncStates) Load(ctx context.Context, graphKey string) (executor.Snapshot, error) {
	return s.MemoryStates.Load(ctx, trunc(graphKey))
}

func (s truncStates) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	cut := make([]executor.Change, len(changes))
	for i, c := range changes {
		cut[i] = executor.Change{ID: trunc(c.ID), State: c.State}
	}
	return s.MemoryStates.Commit(ctx, trunc(graphKey), expect, cut)
}

// plainRefusal refuses keys over maxKey bytes with an error that is not
// executor.Permanent: the executor retries it.
type plainRefusal struct{ *executor.MemoryStates }

func (s plainRefusal) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	long := len(graphKey) > maxKey
	for _, c := range changes {
		long = long || len(c.ID) > maxKey
	}
	if long {
		return 0, fmt.Errorf("commit graph %.20q: key longer than %d bytes", graphKey, maxKey)
	}
	return s.MemoryStates.Commit(ctx, graphKey, expect, changes)
}

// truncAssets keeps asset keys cut to maxKey bytes.
type truncAssets struct{ *executor.MemoryAssets }

func (s truncAssets) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	return s.MemoryAssets.Put(ctx, trunc(key), a)
}

// truncRuns keeps run IDs and graph keys cut to maxKey bytes.
type truncRuns struct{ *executor.MemoryRuns }

func (s truncRuns) PutRun(ctx context.Context, r executor.Record) error {
	r.ID, r.GraphKey = trunc(r.ID), trunc(r.GraphKey)
	return s.MemoryRuns.PutRun(ctx, r)
}

func (s truncRuns) GetRun(ctx context.Context, id string) (executor.Record, error) {
	return s.MemoryRuns.GetRun(ctx, trunc(id))
}

func (s truncRuns) ListRuns(ctx context.Context, graphKey string) ([]executor.Record, error) {
	return s.MemoryRuns.ListRuns(ctx, trunc(graphKey))
}

// longLookupFails refuses IDs and graph keys over maxKey bytes, rightly,
// but then fails GetRun and ListRuns of one with an error, rather than
// finding nothing.
type longLookupFails struct{ *executor.MemoryRuns }

var errTooLong = errors.New("key too long")

func (s longLookupFails) PutRun(ctx context.Context, r executor.Record) error {
	if len(r.ID) > maxKey || len(r.GraphKey) > maxKey {
		return executor.Permanent(errTooLong)
	}
	return s.MemoryRuns.PutRun(ctx, r)
}

func (s longLookupFails) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if len(id) > maxKey {
		return executor.Record{}, errTooLong
	}
	return s.MemoryRuns.GetRun(ctx, id)
}

func (s longLookupFails) ListRuns(ctx context.Context, graphKey string) ([]executor.Record, error) {
	if len(graphKey) > maxKey {
		return nil, errTooLong
	}
	return s.MemoryRuns.ListRuns(ctx, graphKey)
}

// capStateText keeps 8 KiB of a state's LastError.
type capStateText struct{ *executor.MemoryStates }

func (s capStateText) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	cut := slices.Clone(changes)
	for i := range cut {
		cut[i].State.LastError = cut[i].State.LastError[:min(len(cut[i].State.LastError), 8<<10)]
	}
	return s.MemoryStates.Commit(ctx, graphKey, expect, cut)
}

// sortFailed keeps Record.Failed sorted, as a set.
type sortFailed struct{ *executor.MemoryRuns }

func (s sortFailed) PutRun(ctx context.Context, r executor.Record) error {
	r.Failed = slices.Sorted(slices.Values(r.Failed))
	return s.MemoryRuns.PutRun(ctx, r)
}

// capRunText keeps 8 KiB of a record's Error and Reason.
type capRunText struct{ *executor.MemoryRuns }

func (s capRunText) PutRun(ctx context.Context, r executor.Record) error {
	r.Error, r.Reason = r.Error[:min(len(r.Error), 8<<10)], r.Reason[:min(len(r.Reason), 8<<10)]
	return s.MemoryRuns.PutRun(ctx, r)
}

// cachedMany answers GetMany from a cache of the assets it read before,
// which a Put under the same key does not update.
type cachedMany struct {
	*executor.MemoryAssets
	mu    sync.Mutex
	cache map[string]executor.Asset
}

func (s *cachedMany) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = map[string]executor.Asset{}
	}
	out := make([]executor.Asset, len(refs))
	for i, ref := range refs {
		a, ok := s.cache[ref]
		if !ok {
			var err error
			if a, err = s.MemoryAssets.Get(ctx, ref); err != nil {
				return nil, err
			}
			s.cache[ref] = a
		}
		a.Meta = maps.Clone(a.Meta)
		out[i] = a
	}
	return out, nil
}

// pagedMany reads in pages of 256 references, and returns the assets of
// each page after the first in the order of their references sorted, as
// a query by key without ORDER BY whose rows are taken by position.
type pagedMany struct{ *executor.MemoryAssets }

func (s pagedMany) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	var out []executor.Asset
	for page := 0; page*256 < len(refs); page++ {
		refs := refs[page*256 : min(len(refs), page*256+256)]
		if page > 0 {
			refs = slices.Sorted(slices.Values(refs))
		}
		got, err := s.MemoryAssets.GetMany(ctx, refs)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, ctx.Err()
}

// cappedMissing checks the first 1,000 references only, as a store that
// caps the list it sends in one query.
type cappedMissing struct{ *executor.MemoryAssets }

func (s cappedMissing) Missing(ctx context.Context, refs []string) ([]string, error) {
	return s.MemoryAssets.Missing(ctx, refs[:min(len(refs), 1000)])
}

// knownRefs answers Missing from the references it returned from Put,
// which a prune does not forget.
type knownRefs struct {
	*executor.MemoryStore
	mu  sync.Mutex
	put map[string]bool
}

func (s *knownRefs) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	ref, err := s.MemoryStore.Put(ctx, key, a)
	if err == nil {
		s.mu.Lock()
		if s.put == nil {
			s.put = map[string]bool{}
		}
		s.put[ref] = true
		s.mu.Unlock()
	}
	return ref, err
}

func (s *knownRefs) Missing(ctx context.Context, refs []string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	seen := map[string]bool{}
	for _, ref := range refs {
		if !s.put[ref] && !seen[ref] {
			missing = append(missing, ref)
		}
		seen[ref] = true
	}
	return missing, nil
}

// textRefs fails the lookups of a reference that is not valid UTF-8 or
// holds NUL, as a store that passes it to a Postgres text parameter does
// ("invalid byte sequence for encoding UTF8").
type textRefs struct{ *executor.MemoryAssets }

func checkRef(refs ...string) error {
	for _, ref := range refs {
		if !utf8.ValidString(ref) || strings.ContainsRune(ref, 0) {
			return fmt.Errorf("ERROR: invalid byte sequence for encoding \"UTF8\" (SQLSTATE 22021)")
		}
	}
	return nil
}

func (s textRefs) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if err := checkRef(ref); err != nil {
		return executor.Asset{}, err
	}
	return s.MemoryAssets.Get(ctx, ref)
}

func (s textRefs) Exists(ctx context.Context, ref string) (bool, error) {
	if err := checkRef(ref); err != nil {
		return false, err
	}
	return s.MemoryAssets.Exists(ctx, ref)
}

func (s textRefs) Missing(ctx context.Context, refs []string) ([]string, error) {
	if err := checkRef(refs...); err != nil {
		return nil, err
	}
	return s.MemoryAssets.Missing(ctx, refs)
}

func (s textRefs) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	if err := checkRef(refs...); err != nil {
		return nil, err
	}
	return s.MemoryAssets.GetMany(ctx, refs)
}

// oldReasons keeps the mark reasons of its first release only (edited,
// forced, asset missing): a later one comes back as the zero Reason.
type oldReasons struct{ *executor.MemoryRuns }

func (s oldReasons) PutRun(ctx context.Context, r executor.Record) error {
	r.Marks = slices.Clone(r.Marks)
	for i := range r.Marks {
		if r.Marks[i].Reason > dirty.ReasonAssetMissing {
			r.Marks[i].Reason = 0
		}
	}
	return s.MemoryRuns.PutRun(ctx, r)
}
