package storetest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regengraph/regen/dirty"
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
	// PutRun kept a record's Graph, TriggeredBy and Seconds where the
	// replacement's were empty, as an upsert with COALESCE does: the kit
	// replaced a record with these fields left as they were.
	{"RunStore", "keep-empty", []string{"Replace"}},
	// PutRun stored Counts.Failed as Superseded and the other way round:
	// the kit's record had 3 of each.
	{"RunStore", "swap-counts", []string{"RoundTrip"}},
	// Put under a key already used kept the old asset's Data and Meta
	// where the new one had none (nil), as an upsert with COALESCE does:
	// the kit's replacements all had Data and Meta.
	{"AssetStore", "keep-null", []string{"SameKeyReplaces"}},
	// A commit that released an asset from one node marked it
	// unreferenced, though another state still referred to it, and so did
	// a DeleteGraph of one of the graphs referring to it: PruneAssets then
	// deleted an asset in use. The kit's assets each had one reference.
	{"Retention", "release-flag", []string{"PruneAssetsKeepsShared"}},
	// PruneRuns left the pruned records in an index by ID that GetRun
	// reads: the kit looked for them with ListRuns only.
	{"Retention", "prune-keeps-ids", []string{"PruneRuns"}},
	// DeleteGraph and PruneRuns left the records they deleted in an index
	// by status that RunsByStatus reads, so a host resumed a deleted run:
	// the kit never listed by status after them.
	{"Retention", "status-index", []string{"DeleteGraph", "PruneRuns"}},
	// Exists, Get, Missing and GetMany cached the references they found
	// missing, and a Put did not forget them: a node whose asset a prune
	// deleted was made again, and put under the same key, at every run.
	// The kit never looked a reference up before it was put, nor put
	// again an asset that a prune deleted.
	{"AssetStore", "negative-cache", []string{"FoundOncePut"}},
	{"Retention", "negative-cache", []string{"PruneAssetsSeenByReads", "PruneAssetsSeenByBatchReads"}},
	// ListRuns ordered a record by the StartedAt it was first put with,
	// as an index kept in order at insert and not moved at a replace: the
	// kit never replaced a record with another start.
	{"RunStore", "first-start", []string{"ListOrder"}},
	// Put kept Length in microseconds in 32 bits (a Postgres integer
	// column), which wraps past 35 minutes: the kit's longest asset was
	// 39 seconds, and a lecture's timeline may run for an hour.
	{"AssetStore", "int32-length", []string{"RoundTrip"}},
	// PutRun cut a record's Resumes to 1,000 bytes, where the contract
	// has it refused or kept whole as an ID: the kit's long IDs were
	// records' own only.
	{"RunStore", "truncate-resumes", []string{"LongKeys"}},
	// Commit merged a node's new state into its stored one field by
	// field, as Postgres's jsonb || does with the JSON of a State, whose
	// empty fields are left out: a failed node made clean kept its
	// LastError. Every state the kit committed over another had every
	// field set.
	{"StateStore", "merge-fields", []string{"CommitChangesOnlyNamedNodes"}},
	// PutRun and ListRuns took graph keys in Unicode normal form C, as a
	// column with a nondeterministic collation does: records of "café"
	// written with a combining accent were listed under the precomposed
	// key. The kit compared graph keys of records by case, spaces and
	// prefix only, and its keys were ASCII.
	{"RunStore", "fold-unicode-graph", []string{"ListFiltersByGraph"}},
	// DeleteGraph deleted a graph's states in batches, each in a
	// transaction of its own to keep locks short, and bumped the version
	// after: a Load meanwhile found some of the graph's states at its old
	// version, a graph that no commit made. The kit loaded a graph only
	// while commits went on, and committed during a DeleteGraph to a
	// graph of one node.
	{"Retention", "batched-delete", []string{"DeleteGraphWhileLoading"}},
	// DeleteGraph matched graph keys with SQL's LIKE, where '_' stands
	// for any character: it deleted the graph "a-axb" with "a-a_b". The
	// kit's other graph was one whose key the deleted one's prefixes.
	{"Retention", "like-delete", []string{"DeleteGraph"}},
	// A commit that stopped referring to an asset restarted its age only
	// when it referred to another instead, not when it left the node with
	// no reference (as Executor.Forget commits): the kit's releases all
	// set another reference.
	{"Retention", "no-release-at-clear", []string{"PruneAssetsAfterRelease", "PruneAssetsKeepsTheAge"}},
}

// raceHoleBugs are bugs of holeBugs' kind that only the race detector
// sees: the kit catches them under go test -race only.
var raceHoleBugs = []kitBug{
	// Commit sorted the caller's changes in place, for a stable lock
	// order, and put them back as they were before it returned: the kit
	// looked at them only after Commit, and a caller reading them
	// meanwhile, as the contract lets it, read them out of order.
	{"StateStore", "sort-restore-changes", []string{"CommitLeavesChanges"}},
	// Missing and GetMany did the same to the caller's refs, which they
	// may not modify even temporarily either.
	{"AssetStore", "sort-restore-refs", []string{"MissingAgreesWithExists", "GetManyAgreesWithGet"}},
}

// TestHolesKitCatchesBugs runs the kit, in a child process, against each
// store of holeBugs (and of raceHoleBugs under the race detector), and
// checks that the subtests meant to catch its bug fail.
func TestHolesKitCatchesBugs(t *testing.T) {
	bugs := holeBugs
	if raceEnabled {
		bugs = append(slices.Clip(bugs), raceHoleBugs...)
	}
	checkKitCatches(t, "TestHolesBuggyStore", "STORETEST_HOLES_BUG", bugs)
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
	case "StateStore/sort-restore-changes":
		f.States = func(*testing.T) executor.StateStore { return sortRestoreChanges{executor.NewMemoryStates()} }
	case "AssetStore/sort-restore-refs":
		f.Assets = func(*testing.T) executor.AssetStore { return sortRestoreRefs{executor.NewMemoryAssets()} }
	case "AssetStore/negative-cache":
		f.Assets = func(*testing.T) executor.AssetStore { return newNegativeCache(executor.NewMemoryAssets()) }
	case "Retention/negative-cache":
		f.Retainer = func(*testing.T) storetest.Retainer {
			m := executor.NewMemoryStore()
			return negativeRetainer{m, newNegativeCache(m)}
		}
	case "RunStore/first-start":
		f.Runs = func(*testing.T) executor.RunStore { return &firstStart{MemoryRuns: executor.NewMemoryRuns()} }
	case "AssetStore/int32-length":
		f.Assets = func(*testing.T) executor.AssetStore { return int32Length{executor.NewMemoryAssets()} }
	case "RunStore/truncate-resumes":
		f.Runs = func(*testing.T) executor.RunStore { return truncResumes{executor.NewMemoryRuns()} }
	case "StateStore/merge-fields":
		f.States = func(*testing.T) executor.StateStore { return &mergeFields{MemoryStates: executor.NewMemoryStates()} }
	case "RunStore/fold-unicode-graph":
		f.Runs = func(*testing.T) executor.RunStore { return foldUnicodeGraph{executor.NewMemoryRuns()} }
	case "Retention/batched-delete":
		f.Retainer = func(*testing.T) storetest.Retainer { return newFakeRetainer("batched-delete") }
	case "Retention/like-delete":
		f.Retainer = func(*testing.T) storetest.Retainer {
			return &likeDelete{MemoryStore: executor.NewMemoryStore(), keys: map[string]bool{}}
		}
	case "Retention/no-release-at-clear":
		f.Retainer = func(*testing.T) storetest.Retainer { return newFakeRetainer("no-release-at-clear") }
	case "RunStore/keep-empty":
		f.Runs = func(*testing.T) executor.RunStore { return keepEmpty{executor.NewMemoryRuns()} }
	case "RunStore/swap-counts":
		f.Runs = func(*testing.T) executor.RunStore { return swapCounts{executor.NewMemoryRuns()} }
	case "AssetStore/keep-null":
		f.Assets = func(*testing.T) executor.AssetStore { return &keepNull{MemoryAssets: executor.NewMemoryAssets()} }
	case "Retention/release-flag":
		f.States = func(*testing.T) executor.StateStore { return newReleaseFlag() }
		f.Assets = func(*testing.T) executor.AssetStore { return newReleaseFlag() }
		f.Retainer = func(*testing.T) storetest.Retainer { return newReleaseFlag() }
	case "Retention/prune-keeps-ids", "Retention/status-index":
		_, bug, _ := strings.Cut(name, "/")
		newStore := func() *runIndex {
			return &runIndex{MemoryStore: executor.NewMemoryStore(), bug: bug, byID: map[string]executor.Record{}}
		}
		f.Runs = func(*testing.T) executor.RunStore { return newStore() }
		f.Retainer = func(*testing.T) storetest.Retainer { return newStore() }
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

// sortRestoreChanges sorts the caller's changes by node ID in place,
// keeping the order of one node's changes, commits them, and then puts
// them back in the caller's order.
type sortRestoreChanges struct{ *executor.MemoryStates }

func (s sortRestoreChanges) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	order := slices.Clone(changes)
	slices.SortStableFunc(changes, func(a, b executor.Change) int { return strings.Compare(a.ID, b.ID) })
	defer copy(changes, order)
	return s.MemoryStates.Commit(ctx, graphKey, expect, changes)
}

// sortRestoreRefs sorts the caller's refs in place for Missing and
// GetMany, and puts them back in the caller's order before it returns.
type sortRestoreRefs struct{ *executor.MemoryAssets }

func (s sortRestoreRefs) Missing(ctx context.Context, refs []string) ([]string, error) {
	order := slices.Clone(refs)
	slices.Sort(refs)
	defer copy(refs, order)
	return s.MemoryAssets.Missing(ctx, refs)
}

func (s sortRestoreRefs) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	order := slices.Clone(refs)
	slices.Sort(refs)
	defer copy(refs, order)
	got, err := s.MemoryAssets.GetMany(ctx, refs)
	if err != nil {
		return got, err
	}
	// The assets in the caller's order.
	byRef := make(map[string]executor.Asset, len(refs))
	for i, ref := range refs {
		byRef[ref] = got[i]
	}
	out := make([]executor.Asset, len(order))
	for i, ref := range order {
		a := byRef[ref]
		a.Meta = maps.Clone(a.Meta)
		out[i] = a
	}
	return out, nil
}

// batchAssets is an asset store with both batch reads.
type batchAssets interface {
	executor.AssetStore
	executor.AssetChecker
	executor.AssetBatchGetter
}

// negativeCache remembers the references that its reads found missing,
// and answers for them without asking the store, until forever: a Put
// does not forget them.
type negativeCache struct {
	batchAssets
	mu      sync.Mutex
	missing map[string]bool
}

func newNegativeCache(s batchAssets) *negativeCache {
	return &negativeCache{batchAssets: s, missing: map[string]bool{}}
}

// cached reports whether ref is known missing; found records what a read
// found.
func (s *negativeCache) cached(ref string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missing[ref]
}

func (s *negativeCache) found(ref string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		s.missing[ref] = true
	}
}

func (s *negativeCache) Exists(ctx context.Context, ref string) (bool, error) {
	if s.cached(ref) && ctx.Err() == nil {
		return false, nil
	}
	ok, err := s.batchAssets.Exists(ctx, ref)
	if err == nil {
		s.found(ref, ok)
	}
	return ok, err
}

func (s *negativeCache) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if s.cached(ref) && ctx.Err() == nil {
		return executor.Asset{}, fmt.Errorf("asset %q: %w", ref, executor.ErrNotFound)
	}
	a, err := s.batchAssets.Get(ctx, ref)
	if errors.Is(err, executor.ErrNotFound) {
		s.found(ref, false)
	}
	return a, err
}

func (s *negativeCache) Missing(ctx context.Context, refs []string) ([]string, error) {
	missing, err := s.batchAssets.Missing(ctx, refs)
	if err != nil {
		return missing, err
	}
	for _, ref := range missing {
		s.found(ref, false)
	}
	for _, ref := range refs {
		if s.cached(ref) && !slices.Contains(missing, ref) {
			missing = append(missing, ref)
		}
	}
	return missing, nil
}

func (s *negativeCache) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	for _, ref := range refs {
		if s.cached(ref) && ctx.Err() == nil {
			return nil, fmt.Errorf("asset %q: %w", ref, executor.ErrNotFound)
		}
	}
	return s.batchAssets.GetMany(ctx, refs)
}

// negativeRetainer is a MemoryStore whose reads go through a
// negativeCache.
type negativeRetainer struct {
	*executor.MemoryStore
	c *negativeCache
}

func (s negativeRetainer) Exists(ctx context.Context, ref string) (bool, error) {
	return s.c.Exists(ctx, ref)
}

func (s negativeRetainer) Get(ctx context.Context, ref string) (executor.Asset, error) {
	return s.c.Get(ctx, ref)
}

func (s negativeRetainer) Missing(ctx context.Context, refs []string) ([]string, error) {
	return s.c.Missing(ctx, refs)
}

func (s negativeRetainer) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	return s.c.GetMany(ctx, refs)
}

// firstStart lists a graph's records by the StartedAt each was first
// put with, then ID.
type firstStart struct {
	*executor.MemoryRuns
	mu    sync.Mutex
	first map[string]time.Time // by ID
}

func (s *firstStart) PutRun(ctx context.Context, r executor.Record) error {
	if err := s.MemoryRuns.PutRun(ctx, r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		s.first = map[string]time.Time{}
	}
	if _, ok := s.first[r.ID]; !ok {
		s.first[r.ID] = r.StartedAt
	}
	return nil
}

func (s *firstStart) ListRuns(ctx context.Context, graphKey string) ([]executor.Record, error) {
	rs, err := s.MemoryRuns.ListRuns(ctx, graphKey)
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.SortStableFunc(rs, func(a, b executor.Record) int {
		if c := s.first[a.ID].Compare(s.first[b.ID]); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return rs, err
}

// int32Length keeps an asset's Length as a 32-bit count of
// microseconds, which wraps.
type int32Length struct{ *executor.MemoryAssets }

func (s int32Length) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	a.Length = time.Duration(int32(a.Length/time.Microsecond)) * time.Microsecond
	return s.MemoryAssets.Put(ctx, key, a)
}

// truncResumes keeps a record's Resumes cut to 1,000 bytes.
type truncResumes struct{ *executor.MemoryRuns }

func (s truncResumes) PutRun(ctx context.Context, r executor.Record) error {
	r.Resumes = r.Resumes[:min(len(r.Resumes), 1000)]
	return s.MemoryRuns.PutRun(ctx, r)
}

// mergeFields commits each change as the JSON of its state merged into
// that of the node's stored state, key by key.
type mergeFields struct {
	*executor.MemoryStates
	mu sync.Mutex // one Commit at a time, from its Load to its Commit
}

func (s *mergeFields) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.Load(ctx, graphKey)
	if err != nil {
		return 0, err
	}
	merged := make([]executor.Change, len(changes))
	for i, c := range changes {
		merged[i] = c
		old, ok := snap.States[c.ID]
		if !ok {
			continue
		}
		var obj map[string]json.RawMessage
		b, _ := json.Marshal(old)
		_ = json.Unmarshal(b, &obj)
		b, _ = json.Marshal(c.State)
		_ = json.Unmarshal(b, &obj) // the new keys over the old
		b, _ = json.Marshal(obj)
		var st dirty.State
		if err := json.Unmarshal(b, &st); err != nil {
			return 0, err
		}
		merged[i].State = st
		if snap.States == nil {
			snap.States = map[string]dirty.State{}
		}
		snap.States[c.ID] = st
	}
	return s.MemoryStates.Commit(ctx, graphKey, expect, merged)
}

// foldUnicodeGraph keeps and lists records by graph keys in normal
// form C.
type foldUnicodeGraph struct{ *executor.MemoryRuns }

func (s foldUnicodeGraph) PutRun(ctx context.Context, r executor.Record) error {
	r.GraphKey = nfc(r.GraphKey)
	return s.MemoryRuns.PutRun(ctx, r)
}

func (s foldUnicodeGraph) ListRuns(ctx context.Context, graphKey string) ([]executor.Record, error) {
	return s.MemoryRuns.ListRuns(ctx, nfc(graphKey))
}

// likeDelete deletes, at a DeleteGraph, every graph whose key matches
// the one given as a LIKE pattern without '%': '_' matches any one byte.
type likeDelete struct {
	*executor.MemoryStore
	mu   sync.Mutex
	keys map[string]bool // every graph key committed or put
}

func (s *likeDelete) saw(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = true
}

func (s *likeDelete) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	s.saw(graphKey)
	return s.MemoryStore.Commit(ctx, graphKey, expect, changes)
}

func (s *likeDelete) PutRun(ctx context.Context, r executor.Record) error {
	s.saw(r.GraphKey)
	return s.MemoryStore.PutRun(ctx, r)
}

func (s *likeDelete) DeleteGraph(ctx context.Context, graphKey string) (bool, error) {
	s.mu.Lock()
	var matched []string
	for k := range s.keys {
		if len(k) == len(graphKey) && k != graphKey {
			like := true
			for i := range len(k) {
				if graphKey[i] != '_' && graphKey[i] != k[i] {
					like = false
					break
				}
			}
			if like {
				matched = append(matched, k)
			}
		}
	}
	s.mu.Unlock()
	deleted, err := s.MemoryStore.DeleteGraph(ctx, graphKey)
	if err != nil {
		return false, err
	}
	for _, k := range matched {
		if ok, err := s.MemoryStore.DeleteGraph(ctx, k); err != nil {
			return false, err
		} else if ok {
			deleted = true
		}
	}
	return deleted, nil
}

// keepEmpty replaces a record but keeps the old one's Graph, TriggeredBy
// and Seconds where the new one's are empty, as an upsert that keeps a
// column's old value where the new one is empty (COALESCE and NULLIF),
// so that a writer that predates the column does not erase it.
type keepEmpty struct{ *executor.MemoryRuns }

func (s keepEmpty) PutRun(ctx context.Context, r executor.Record) error {
	if old, err := s.GetRun(ctx, r.ID); err == nil {
		if r.Graph == "" {
			r.Graph = old.Graph
		}
		if r.TriggeredBy == "" {
			r.TriggeredBy = old.TriggeredBy
		}
		if r.Seconds == 0 {
			r.Seconds = old.Seconds
		}
	}
	return s.MemoryRuns.PutRun(ctx, r)
}

// swapCounts stores a record's Counts.Failed in the column of
// Superseded and the other way round, as an INSERT whose column list
// and values disagree.
type swapCounts struct{ *executor.MemoryRuns }

func (s swapCounts) PutRun(ctx context.Context, r executor.Record) error {
	r.Counts.Failed, r.Counts.Superseded = r.Counts.Superseded, r.Counts.Failed
	return s.MemoryRuns.PutRun(ctx, r)
}

// keepNull replaces an asset but keeps the old one's Data and Meta where
// the new one has none (nil), as an upsert that sets
// data = COALESCE(EXCLUDED.data, assets.data).
type keepNull struct {
	*executor.MemoryAssets
	mu   sync.Mutex
	refs map[string]string // by key
}

func (s *keepNull) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ref, ok := s.refs[key]; ok {
		if old, err := s.Get(ctx, ref); err == nil {
			if a.Data == nil {
				a.Data = old.Data
			}
			if a.Meta == nil {
				a.Meta = old.Meta
			}
		}
	}
	ref, err := s.MemoryAssets.Put(ctx, key, a)
	if err == nil {
		if s.refs == nil {
			s.refs = map[string]string{}
		}
		s.refs[key] = ref
	}
	return ref, err
}

// releaseFlag keeps, for each asset reference, a flag that says whether
// a state refers to it, as a column of the assets' table: a commit that
// sets a reference raises it, one that stops referring to it (and a
// DeleteGraph of a graph that referred to it) lowers it, whatever other
// states still refer to the asset. PruneAssets deletes the assets whose
// flag is down, as well as those that no state ever referred to. Deleted
// assets are hidden from reads, rather than deleted, until put again.
type releaseFlag struct {
	*executor.MemoryStore
	mu         sync.Mutex
	referenced map[string]bool      // by reference: the flag
	releasedAt map[string]time.Time // by reference: when its flag went down
	deleted    map[string]bool      // by reference
}

func newReleaseFlag() *releaseFlag {
	return &releaseFlag{MemoryStore: executor.NewMemoryStore(), referenced: map[string]bool{},
		releasedAt: map[string]time.Time{}, deleted: map[string]bool{}}
}

func (s *releaseFlag) release(ref string) {
	if ref != "" {
		s.referenced[ref] = false
		s.releasedAt[ref] = time.Now()
	}
}

func (s *releaseFlag) Commit(ctx context.Context, graphKey string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.MemoryStore.Load(ctx, graphKey)
	if err != nil {
		return 0, err
	}
	v, err := s.MemoryStore.Commit(ctx, graphKey, expect, changes)
	if err != nil {
		return v, err
	}
	cur := map[string]string{}
	for id, st := range snap.States {
		cur[id] = st.AssetRef
	}
	for _, c := range changes {
		if old := cur[c.ID]; old != c.State.AssetRef {
			s.release(old)
		}
		cur[c.ID] = c.State.AssetRef
		if c.State.AssetRef != "" {
			s.referenced[c.State.AssetRef] = true
		}
	}
	return v, nil
}

func (s *releaseFlag) DeleteGraph(ctx context.Context, graphKey string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.MemoryStore.Load(ctx, graphKey)
	if err != nil {
		return false, err
	}
	ok, err := s.MemoryStore.DeleteGraph(ctx, graphKey)
	if err == nil {
		for _, st := range snap.States {
			s.release(st.AssetRef)
		}
	}
	return ok, err
}

func (s *releaseFlag) PruneAssets(ctx context.Context, olderThan time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.MemoryStore.PruneAssets(ctx, olderThan)
	if err != nil {
		return n, err
	}
	cutoff := time.Now().Add(-olderThan)
	for ref, up := range s.referenced {
		if up || s.deleted[ref] || !s.releasedAt[ref].Before(cutoff) { // exactly the age old is kept
			continue
		}
		// MemoryStore kept it: a state refers to it.
		if ok, _ := s.MemoryStore.Exists(ctx, ref); ok {
			s.deleted[ref] = true
			n++
		}
	}
	return n, nil
}

func (s *releaseFlag) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	ref, err := s.MemoryStore.Put(ctx, key, a)
	if err == nil {
		s.mu.Lock()
		delete(s.deleted, ref)
		s.mu.Unlock()
	}
	return ref, err
}

func (s *releaseFlag) isDeleted(ref string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[ref]
}

func (s *releaseFlag) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if s.isDeleted(ref) && ctx.Err() == nil {
		return executor.Asset{}, fmt.Errorf("asset %q: %w", ref, executor.ErrNotFound)
	}
	return s.MemoryStore.Get(ctx, ref)
}

func (s *releaseFlag) Exists(ctx context.Context, ref string) (bool, error) {
	if s.isDeleted(ref) && ctx.Err() == nil {
		return false, nil
	}
	return s.MemoryStore.Exists(ctx, ref)
}

func (s *releaseFlag) Missing(ctx context.Context, refs []string) ([]string, error) {
	missing, err := s.MemoryStore.Missing(ctx, refs)
	if err != nil {
		return missing, err
	}
	for _, ref := range refs {
		if s.isDeleted(ref) && !slices.Contains(missing, ref) {
			missing = append(missing, ref)
		}
	}
	return missing, nil
}

func (s *releaseFlag) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	for _, ref := range refs {
		if s.isDeleted(ref) && ctx.Err() == nil {
			return nil, fmt.Errorf("asset %q: %w", ref, executor.ErrNotFound)
		}
	}
	return s.MemoryStore.GetMany(ctx, refs)
}

// runIndex keeps a copy of each record by ID, as a second index (a
// cache, a table by status), which GetRun (bug "prune-keeps-ids") or
// RunsByStatus (bug "status-index") reads. DeleteGraph and PruneRuns
// leave it: for "prune-keeps-ids", only PruneRuns does.
type runIndex struct {
	*executor.MemoryStore
	bug  string
	mu   sync.Mutex
	byID map[string]executor.Record
}

func (s *runIndex) PutRun(ctx context.Context, r executor.Record) error {
	if err := s.MemoryStore.PutRun(ctx, r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Marks, r.Failed = slices.Clone(r.Marks), slices.Clone(r.Failed)
	s.byID[r.ID] = r
	return nil
}

func (s *runIndex) DeleteGraph(ctx context.Context, graphKey string) (bool, error) {
	ok, err := s.MemoryStore.DeleteGraph(ctx, graphKey)
	if err == nil && s.bug == "prune-keeps-ids" {
		s.mu.Lock()
		defer s.mu.Unlock()
		for id, r := range s.byID {
			if r.GraphKey == graphKey {
				delete(s.byID, id)
			}
		}
	}
	return ok, err
}

func (s *runIndex) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if s.bug != "prune-keeps-ids" || ctx.Err() != nil {
		return s.MemoryStore.GetRun(ctx, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[id]
	if !ok {
		return executor.Record{}, fmt.Errorf("run %q: %w", id, executor.ErrNotFound)
	}
	r.Marks, r.Failed = slices.Clone(r.Marks), slices.Clone(r.Failed)
	return r, nil
}

func (s *runIndex) RunsByStatus(ctx context.Context, status executor.RunStatus) ([]executor.Record, error) {
	if s.bug != "status-index" || ctx.Err() != nil {
		return s.MemoryStore.RunsByStatus(ctx, status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []executor.Record
	for _, r := range s.byID {
		if r.Status == status {
			r.Marks, r.Failed = slices.Clone(r.Marks), slices.Clone(r.Failed)
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b executor.Record) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}
