package executor

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/regengraph/regen/dirty"
)

// Compile-time checks that the memory stores implement the interfaces.
var (
	_ StateStore = (*MemoryStates)(nil)
	_ AssetStore = (*MemoryAssets)(nil)
	_ RunStore   = (*MemoryRuns)(nil)

	_ AssetChecker     = (*MemoryAssets)(nil)
	_ AssetBatchGetter = (*MemoryAssets)(nil)
	_ RunStatusLister  = (*MemoryRuns)(nil)
)

// MemoryStates is a [StateStore] that keeps every graph's states in
// memory: the embedded default for one process. It is safe for concurrent
// use. Commit costs O(len(changes)) under one lock; Load copies the
// graph's states, O(nodes). It passes the [storetest] kit.
//
// [MemoryStates.DeleteGraph] deletes a graph's states. A [MemoryStore]
// keeps states together with assets and run records, and can also prune
// the assets that no state refers to any more.
//
// The zero value is an empty store, ready to use.
//
// [storetest]: https://pkg.go.dev/github.com/regengraph/regen/executor/storetest
type MemoryStates struct {
	mu     sync.RWMutex
	graphs map[string]*memGraph // the graphs that have not been deleted
	// graphsPeak is the most graphs that graphs held since it was made
	// (see shrunk).
	graphsPeak int
	// tombs holds the version of each deleted graph that is not made
	// again, by the keyHash of its key (see DeleteGraph): the version a
	// graph not in graphs is at, or 0 if it is not there either.
	tombs map[uint64]int64
	// sizes are the node counts that runs announced for graphs with no
	// states yet (see reserve), until their first commit.
	sizes map[string]int
}

// reserver is implemented by the memory state stores. A run of a graph
// with no states yet tells the store the graph's size, so that the
// graph's index is made that size at its first commit instead of growing
// commit by commit, which cost a fresh lecture of 1,083 nodes a tenth of
// the executor's time.
type reserver interface {
	// reserve announces the run; assets is the run's asset store.
	reserve(graphKey string, nodes int, assets AssetStore)
}

var (
	_ reserver = (*MemoryStates)(nil)
	_ reserver = (*MemoryStore)(nil)
)

// maxSizes bounds the graph sizes that MemoryStates keeps for runs that
// never commit: past it, they are forgotten, all at once.
const maxSizes = 256

// reserve records that graphKey has nodes nodes, if the graph has no
// index yet; its first commit makes the index that size.
func (m *MemoryStates) reserve(graphKey string, nodes int, _ AssetStore) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.graphs[graphKey] != nil {
		return
	}
	if m.sizes == nil || len(m.sizes) >= maxSizes {
		m.sizes = make(map[string]int)
	}
	m.sizes[graphKey] = nodes
}

// memGraph keeps a graph's states in a slice, indexed by node ID: a
// commit that changes a known node writes the slice and not the index,
// and the index's small entries keep its growth cheap. A deleted graph
// leaves its version in MemoryStates.tombs, and its memGraph goes.
type memGraph struct {
	version int64
	index   slotIndex // by node ID
	states  chunks[memState]
}

type memState struct {
	id string
	st dirty.State
}

// NewMemoryStates returns an empty [MemoryStates].
func NewMemoryStates() *MemoryStates {
	return &MemoryStates{graphs: make(map[string]*memGraph)}
}

// Load returns a copy of the graph's states and its version: version 0 and
// an empty map for a graph never committed, and an empty map at the
// tombstone's version for a deleted one. The caller owns the map; later
// commits do not change it. It returns ctx.Err() if ctx is done.
func (m *MemoryStates) Load(ctx context.Context, graphKey string) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	g := m.graphs[graphKey]
	if g == nil {
		return Snapshot{Version: m.tomb(graphKey), States: make(map[string]dirty.State)}, nil
	}
	states := make(map[string]dirty.State, g.states.len())
	for i := range g.states.len() {
		e := g.states.at(i)
		states[e.id] = e.st
	}
	return Snapshot{Version: g.version, States: states}, nil
}

// Commit applies changes atomically if the graph is at version expect,
// and returns expect+1; later changes to the same node win, and nodes not
// in changes keep their states. An empty commit still bumps the version.
// Otherwise it applies nothing and returns a [*ConflictError]. It returns
// ctx.Err(), with no effect, if ctx is done. Commit copies the changes;
// the caller keeps the slice.
func (m *MemoryStates) Commit(ctx context.Context, graphKey string, expect int64, changes []Change) (int64, error) {
	return m.commit(ctx, graphKey, expect, changes, nil)
}

// commit is Commit. With assets, it releases each asset of assets that a
// change stops referring to, under the lock, so that a prune that reads
// the states after the commit finds the asset renewed.
func (m *MemoryStates) commit(ctx context.Context, graphKey string, expect int64, changes []Change, assets *MemoryAssets) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.graphs[graphKey]
	var actual int64
	if g != nil {
		actual = g.version
	} else {
		actual = m.tomb(graphKey)
	}
	if actual != expect {
		return 0, &ConflictError{GraphKey: graphKey, Expected: expect, Actual: actual}
	}
	if g == nil { // new, or deleted
		if m.graphs == nil {
			m.graphs = make(map[string]*memGraph)
		}
		g = &memGraph{version: actual}
		m.graphs[graphKey] = g
		grew(&m.graphsPeak, len(m.graphs))
		size := max(len(changes), m.sizes[graphKey])
		delete(m.sizes, graphKey)
		g.index.reset(size)
		g.states.reserve(size)
	}
	var now time.Time // of the releases, read once
	for _, c := range changes {
		h := keyHash(c.ID)
		if i, ok := g.find(h, c.ID); ok {
			e := g.states.at(i)
			if old := e.st.AssetRef; assets != nil && old != c.State.AssetRef && strings.HasPrefix(old, memRefPrefix) {
				if now.IsZero() {
					now = time.Now()
				}
				assets.release(old, now)
			}
			e.st = c.State
			continue
		}
		g.index.add(h, g.states.push(memState{c.ID, c.State}))
	}
	g.version++
	return g.version, nil
}

// find returns the slot of the node id, whose keyHash is h.
func (g *memGraph) find(h uint64, id string) (int32, bool) {
	return g.index.find(h, id, g.idAt)
}

// idAt returns the ID of the node in slot i.
func (g *memGraph) idAt(i int32) string { return g.states.at(i).id }

// DeleteGraph deletes a graph's states, and reports whether it had any.
// Other graphs are untouched, whatever their keys (a graph "a" is not a
// prefix of "a/b").
//
// The graph's version stays, as a tombstone: DeleteGraph moves it on by
// one, so that a version number is never used twice. A deleted graph
// loads with no states at the tombstone's version, and is re-created by a
// commit at that version. A run that loaded the graph before the deletion
// gets a [*ConflictError] when it commits, however many commits the
// re-created graph has made since; were the version dropped, it would
// start again at 0, and such a commit could succeed once the new graph
// reached the version the run loaded, writing old states over new ones.
// A run of the graph still going finds it deleted at its next commit (it
// conflicts, and the run reloads): it stops, with executor.ErrGraphDeleted,
// and commits nothing more.
//
// A tombstone is kept for good, but it is small: a 64-bit hash of the
// key and the version, about 28 bytes in a map whatever the key's length
// (the graph's key, states and index go; they took 170 bytes with a
// 36-byte key). A graph never committed gets none. Tombstones cannot be
// bounded in number, nor dropped once no run refers to them: the store
// cannot know when no caller still holds a version loaded before the
// deletion (a caller may keep a Snapshot as long as it likes and commit
// at its version later, and a run may be paused that long), and it must
// tell each deleted key from the keys never committed, which load at
// version 0, so it keeps something for each deleted key. Keys with equal
// hashes share one tombstone at the higher version, which keeps the
// guarantee for both, as a version only moves on. The cost of a hash is
// that a key never committed whose hash equals a deleted key's (a chance
// of one in 2^64 for each tombstone) loads at that tombstone's version
// instead of 0, and is made by a commit at that version, as a deleted
// graph is.
//
// The assets the states referred to are not deleted: [MemoryStore]'s
// DeleteGraph deletes the graph's run records too, and its PruneAssets
// then deletes the assets. It returns ctx.Err(), with no effect, if ctx
// is done.
func (m *MemoryStates) DeleteGraph(ctx context.Context, graphKey string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := keyHash(graphKey)
	g := m.graphs[graphKey]
	if g == nil {
		if v, ok := m.tombs[h]; ok {
			m.tombs[h] = v + 1 // deleted again: the version moves on
		}
		return false, nil
	}
	had := g.states.len() > 0
	if m.tombs == nil {
		m.tombs = make(map[uint64]int64)
	}
	m.tombs[h] = max(m.tombs[h], g.version+1)
	delete(m.graphs, graphKey)
	m.graphs = shrunk(m.graphs, &m.graphsPeak)
	// Let the states go now, though a prune may still hold g for a while
	// (see assetRefs).
	g.index, g.states = slotIndex{}, chunks[memState]{}
	return had, nil
}

// tomb returns the version of the deleted graph graphKey, which graphs
// does not hold, or 0 if it has no tombstone. m.mu is held.
func (m *MemoryStates) tomb(graphKey string) int64 {
	if len(m.tombs) == 0 {
		return 0
	}
	return m.tombs[keyHash(graphKey)]
}

// assetRefs returns the set of the references with prefix that the
// states hold. It reads one graph at a time, each under the read lock, so
// that commits wait for one graph's read at most. Each graph is read as of
// one instant after [MemoryStore.PruneAssets] read the clock, which is all
// that its argument needs; a graph first committed after the list of
// graphs was taken is not read, as its commits, being later than the
// clock reading, refer to assets that the age keeps. It returns ctx.Err()
// if ctx ends before the last graph is read.
func (m *MemoryStates) assetRefs(ctx context.Context, prefix string) (map[string]struct{}, error) {
	m.mu.RLock()
	graphs := make([]*memGraph, 0, len(m.graphs))
	for _, g := range m.graphs {
		graphs = append(graphs, g)
	}
	m.mu.RUnlock()
	refs := make(map[string]struct{})
	for _, g := range graphs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.mu.RLock()
		for i := range g.states.len() {
			if ref := g.states.at(i).st.AssetRef; strings.HasPrefix(ref, prefix) {
				refs[ref] = struct{}{}
			}
		}
		m.mu.RUnlock()
	}
	return refs, nil
}

// memRefPrefix starts every reference that [MemoryAssets] returns.
const memRefPrefix = "mem:"

// MemoryAssets is an [AssetStore] that keeps assets in memory: the
// embedded default for one process. It is safe for concurrent use.
//
// Put copies the asset's Data and Meta, so the caller may reuse them. Get
// returns the stored Data without copying, to keep the executor's hot
// path cheap: callers must not modify it. Get copies Meta.
//
// The reference that Put returns for an asset of at most 1 KiB of Data
// shares one allocation with the copy of its Data, so that a Put
// allocates once, not twice: a caller that keeps the reference string
// keeps that copy in memory too, also after the asset is deleted or
// replaced (1 KiB at most; the reference alone for larger Data).
//
// References are "mem:" followed by the key. Nothing is evicted: memory
// grows with the assets put, until [MemoryAssets.Delete], since a
// MemoryAssets of its own does not know which assets node states still
// refer to. A [MemoryStore] does, and its PruneAssets deletes the others.
// Memory is given back as assets go: a deleted asset's data at once, and
// the room its record took (about 100 bytes, and its entry in an index)
// once the assets left fill less than a quarter of the room the store
// made for them, at an amortised O(1) a deletion. The zero value is an
// empty store, ready to use.
type MemoryAssets struct {
	// Assets are spread over shards by a hash of their reference, so that
	// workers on different cores rarely wait for each other.
	shards [assetShards]assetShard
	// base is time.Now at the store's first dated call (see since).
	baseOnce sync.Once
	base     time.Time
}

const assetShards = 8

// assetShard holds the assets whose references hash to it.
type assetShard struct {
	mu     sync.Mutex
	index  slotIndex // by reference, into assets
	assets chunks[memAsset]
	free   []int32 // deleted slots of assets, for reuse
	// walkers counts the prunes that are walking the slots, which shrink
	// must not move meanwhile.
	walkers int
	_       [64]byte // keeps neighbours' locks off this one's cache line
}

// minShrink is the fewest slots that a shard must have for shrink to
// compact it: a smaller one keeps its free slots, a few kilobytes.
const minShrink = 4 * chunkLen

// shrink compacts the shard once its assets fill less than a quarter of
// its slots (and it has minShrink slots or more): it moves them into new
// chunks and a new index, each made for them alone, and drops the free
// slots; a shard left with no asset is made empty, as a new one is. So a
// host that deletes most of its assets (a prune after graphs were
// deleted) gets back the memory of their records, which the slots on the
// free list kept for good.
//
// It costs O(slots), and is amortised O(1) a removal: every free slot
// comes from a removal since the last compaction, and it needs three
// quarters of the slots free. A shard that then grows again, or whose
// size goes up and down around some count, compacts again only once it
// has lost three quarters of its slots anew, not at every removal. It
// does nothing while a prune walks the slots (walkers), which it would
// move under it: the prune calls it when it is done. s.mu is held.
func (s *assetShard) shrink() {
	slots, live := int(s.assets.len()), s.index.len()
	if slots < minShrink || live >= slots/4 || s.walkers > 0 {
		return
	}
	if live == 0 {
		s.index, s.assets, s.free = slotIndex{}, chunks[memAsset]{}, nil
		return
	}
	var moved chunks[memAsset]
	moved.reserve(live)
	s.index.rebuild(func(i int32) int32 { return moved.push(*s.assets.at(i)) })
	s.assets, s.free = moved, nil
}

// memAsset is one slot of a shard.
type memAsset struct {
	ref string // "" for a free slot
	// at is the asset's last Put, or its last release by a commit that
	// stopped referring to it, as MemoryAssets.since gives it: the start
	// of its age for PruneAssets. It is 0 in a MemoryAssets of its own,
	// which never prunes. (A time.Time would cost each slot 16 bytes
	// more.)
	at int64
	a  Asset
}

// since returns t as nanoseconds since the store's base, plus one, or 0
// for the zero time. The base is time.Now at the store's first dated call
// (never a time given, which may be a prune's cutoff far in the past):
// the difference of two readings of time.Now is taken on the monotonic
// clock, so a step of the wall clock does not age an asset (which a
// prune could then delete before its commit). A time too far from the
// base saturates.
func (m *MemoryAssets) since(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	m.baseOnce.Do(func() { m.base = time.Now() })
	return age(t.Sub(m.base))
}

// sinceNow is since(time.Now()), for a Put: it reads only the monotonic
// clock, which costs half what time.Now does.
func (m *MemoryAssets) sinceNow() int64 {
	m.baseOnce.Do(func() { m.base = time.Now() })
	return age(time.Since(m.base))
}

// age turns a duration since the base into a slot's time.
func age(d time.Duration) int64 {
	if d == math.MaxInt64 { // saturated by Sub
		return math.MaxInt64
	}
	if d == math.MinInt64 {
		return math.MinInt64
	}
	return int64(d) + 1
}

// shard returns the shard of ref, and ref's keyHash, h, by which the
// shard finds it.
func (m *MemoryAssets) shard(ref string) (s *assetShard, h uint64) {
	h = keyHash(ref)
	return &m.shards[h%assetShards], h
}

// refAt returns the reference of the asset in slot i. s.mu is held.
func (s *assetShard) refAt(i int32) string { return s.assets.at(i).ref }

// find returns the slot of ref, whose keyHash is h. s.mu is held.
func (s *assetShard) find(h uint64, ref string) (int32, bool) {
	return s.index.find(h, ref, s.refAt)
}

// reserve makes room for n more assets in the shards that hold none
// yet, as many in each as the hash spreads them (a shard that gets more
// grows): a new MemoryStore's first run announces its size (see
// reserver).
func (m *MemoryAssets) reserve(n int) {
	per := (n + assetShards - 1) / assetShards
	for k := range m.shards {
		s := &m.shards[k]
		s.mu.Lock()
		if !s.index.made() {
			s.index.reset(per)
			s.assets.reserve(per)
		}
		s.mu.Unlock()
	}
}

// NewMemoryAssets returns an empty [MemoryAssets].
func NewMemoryAssets() *MemoryAssets {
	return new(MemoryAssets)
}

// Put stores a copy of a under key, replacing any asset already there,
// and returns its reference, "mem:" + key. It returns ctx.Err(), with no
// effect, if ctx is done.
func (m *MemoryAssets) Put(ctx context.Context, key string, a Asset) (string, error) {
	return m.put(ctx, key, a, 0)
}

// put is Put, with at as the asset's time, as since gives it (0: none).
func (m *MemoryAssets) put(ctx context.Context, key string, a Asset, at int64) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// Copy outside the lock: a large asset must not stall readers.
	var ref string
	ref, a.Data = refAndData(key, a.Data)
	a.Meta = maps.Clone(a.Meta)
	s, h := m.shard(ref)
	s.mu.Lock()
	s.put(h, memAsset{ref: ref, at: at, a: a})
	s.mu.Unlock()
	return ref, nil
}

// maxRefData is the most bytes of Data that refAndData copies into the
// allocation of the reference, which a reference then keeps in memory.
const maxRefData = 1 << 10

// refAndData returns the reference of key, "mem:" + key, and a copy of
// data whose capacity is its length, so that an append to the Data that
// Get returns never writes into the stored asset (nil stays nil). For
// data of 1 to maxRefData bytes, both are in one allocation:
// the reference's bytes first, then the copy, whose capacity ends with
// it. The reference's bytes are never written once the string is made,
// and no slice of them escapes (an append to the copy cannot reach them,
// nor can any slicing of it, which only goes forward), so the string may
// share the allocation, as unsafe.String requires. Larger data is copied
// apart, so that a reference kept after its asset went keeps little data
// alive. (Measured, one allocation is as fast as two up to 16 KiB; a
// large one is slower, as make clears it and bytes.Clone does not: 50
// against 38 us for 256 KiB.)
func refAndData(key string, data []byte) (string, []byte) {
	if len(data) == 0 || len(data) > maxRefData {
		d := bytes.Clone(data)
		return memRefPrefix + key, d[:len(d):len(d)]
	}
	n := len(memRefPrefix) + len(key)
	b := make([]byte, n+len(data))
	copy(b, memRefPrefix)
	copy(b[len(memRefPrefix):], key)
	copy(b[n:], data)
	return unsafe.String(&b[0], n), b[n:len(b):len(b)]
}

// put stores e, whose reference's keyHash is h, in the slot of the asset
// with its reference, or else in a free slot or a new one. s.mu is held.
func (s *assetShard) put(h uint64, e memAsset) {
	if i, ok := s.find(h, e.ref); ok {
		*s.assets.at(i) = e
		return
	}
	if !s.index.made() {
		s.index.reset(0)
		// A store's shards are few and fill up: a whole chunk at once,
		// not one that grows (and is copied) as a graph's states' does.
		s.assets.reserve(chunkLen)
	}
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		s.index.add(h, i)
		*s.assets.at(i) = e
		return
	}
	s.index.add(h, s.assets.push(e))
}

func (m *MemoryAssets) local() {} // see localAssets

// Get returns the asset ref points to, or an error wrapping [ErrNotFound].
// The returned Data is the stored slice: the caller must not modify it.
// Meta is a copy. It returns ctx.Err() if ctx is done.
func (m *MemoryAssets) Get(ctx context.Context, ref string) (Asset, error) {
	if err := ctx.Err(); err != nil {
		return Asset{}, err
	}
	s, h := m.shard(ref)
	s.mu.Lock()
	i, ok := s.find(h, ref)
	var a Asset
	if ok {
		a = s.assets.at(i).a
	}
	s.mu.Unlock()
	if !ok {
		return Asset{}, fmt.Errorf("get asset %q: %w", ref, ErrNotFound)
	}
	// A stored Meta map is never modified, only replaced, so it can be
	// copied outside the lock.
	a.Meta = maps.Clone(a.Meta)
	return a, nil
}

// GetMany returns the assets refs point to, in order, as Get does; see
// [AssetBatchGetter]. If one is missing it returns an error wrapping
// [ErrNotFound] that names it. It returns ctx.Err() if ctx is done.
func (m *MemoryAssets) GetMany(ctx context.Context, refs []string) ([]Asset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]Asset, len(refs))
	for i, ref := range refs {
		s, h := m.shard(ref)
		s.mu.Lock()
		j, ok := s.find(h, ref)
		if ok {
			out[i] = s.assets.at(j).a
		}
		s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("get asset %q: %w", ref, ErrNotFound)
		}
		out[i].Meta = maps.Clone(out[i].Meta)
	}
	return out, nil
}

// Exists reports whether ref points to an asset. An unknown reference, of
// any form, gives false and no error. It returns ctx.Err() if ctx is done.
func (m *MemoryAssets) Exists(ctx context.Context, ref string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s, h := m.shard(ref)
	s.mu.Lock()
	_, ok := s.find(h, ref)
	s.mu.Unlock()
	return ok, nil
}

// Missing returns the references among refs that point to no asset, each
// once, in the order of refs; see [AssetChecker]. It allocates for what it
// returns only: a set of the references is made only when more than a few
// are missing, to tell repeats apart. It returns ctx.Err() if ctx is
// done.
func (m *MemoryAssets) Missing(ctx context.Context, refs []string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var missing []string
	var seen map[string]bool // of missing, once it holds more than missingScan
	for _, ref := range refs {
		s, h := m.shard(ref)
		s.mu.Lock()
		_, ok := s.find(h, ref)
		s.mu.Unlock()
		switch {
		case ok:
		case seen != nil:
			if !seen[ref] {
				seen[ref] = true
				missing = append(missing, ref)
			}
		case !slices.Contains(missing, ref):
			missing = append(missing, ref)
			if len(missing) > missingScan {
				seen = make(map[string]bool, len(missing))
				for _, r := range missing {
					seen[r] = true
				}
			}
		}
	}
	return missing, nil
}

// missingScan is how many missing references Missing compares a missing
// reference with, before it makes a set of them.
const missingScan = 16

// Delete removes the asset ref points to, and reports whether there was
// one. Tests use it to simulate a lost asset. A Delete that leaves its
// shard under a quarter full compacts it (see shrink), under its lock.
func (m *MemoryAssets) Delete(ref string) bool {
	s, h := m.shard(ref)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.find(h, ref)
	if ok {
		s.remove(h, i)
		s.shrink()
	}
	return ok
}

// remove deletes the asset in slot i, which holds one whose reference's
// keyHash is h; the caller then calls shrink. s.mu is held.
func (s *assetShard) remove(h uint64, i int32) {
	e := s.assets.at(i)
	s.index.remove(h, i)
	*e = memAsset{} // let the data go
	s.free = append(s.free, i)
}

// release starts the age of the asset ref points to again, at now, if
// there is one: a commit stopped referring to it.
func (m *MemoryAssets) release(ref string, now time.Time) {
	s, h := m.shard(ref)
	s.mu.Lock()
	if i, ok := s.find(h, ref); ok {
		s.assets.at(i).at = m.since(now)
	}
	s.mu.Unlock()
}

// pruneBatch is how many slots of a shard a prune walks under one hold of
// its lock.
const pruneBatch = 1024

// prune deletes the assets not in inUse whose time is before cutoff, and
// returns how many it deleted: an asset whose time is cutoff is kept. It
// walks each shard's slots in batches, each under the shard's lock, so
// that Put and Get wait for one batch at most, except when a shard ends
// under a quarter full: its compaction (see shrink), once, holds its lock
// for O(its assets), about 100 ns an asset left; an asset put or released
// meanwhile has a time after cutoff. It stops at the first batch that
// finds ctx done, returning the count so far and ctx.Err().
func (m *MemoryAssets) prune(ctx context.Context, cutoff time.Time, inUse map[string]struct{}) (int64, error) {
	var n int64
	cut := m.since(cutoff)
	for k := range m.shards {
		d, err := m.shards[k].prune(ctx, cut, inUse)
		n += d
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// prune is MemoryAssets.prune for one shard, with cut the cutoff as
// since gives it. The shard's slots stay where they are until it is done, when it
// compacts the shard if it deleted enough (see shrink).
func (s *assetShard) prune(ctx context.Context, cut int64, inUse map[string]struct{}) (int64, error) {
	s.mu.Lock()
	s.walkers++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.walkers--
		s.shrink()
		s.mu.Unlock()
	}()
	var n int64
	for start, more := int32(0), true; more; start += pruneBatch {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		s.mu.Lock()
		end := min(start+pruneBatch, s.assets.len())
		for i := start; i < end; i++ {
			e := s.assets.at(i)
			if e.ref == "" || e.at >= cut {
				continue
			}
			if _, ok := inUse[e.ref]; ok {
				continue
			}
			s.remove(keyHash(e.ref), i)
			n++
		}
		more = end < s.assets.len()
		s.mu.Unlock()
	}
	return n, nil
}

// Len returns the number of assets stored.
func (m *MemoryAssets) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.index.len()
		s.mu.Unlock()
	}
	return n
}

// MemoryRuns is a [RunStore] that keeps run records in memory: the
// embedded default for one process. It is safe for concurrent use. It
// copies records in and out, so callers cannot change stored records
// through their slices. Records are indexed by graph key too: ListRuns,
// and the deletion of a graph's records by [MemoryStore.DeleteGraph],
// cost O(the graph's records), however many other graphs' records the
// store keeps. [MemoryRuns.PruneRuns] deletes old records. A Go map keeps
// the room it grew to when entries are deleted, so a map that lost three
// quarters of the most entries it held is made anew, at an amortised
// O(1) a deletion: the memory of pruned records is given back. The zero
// value is an empty store, ready to use.
type MemoryRuns struct {
	mu   sync.RWMutex
	runs map[string]Record // by ID
	// byGraph holds the IDs of each graph's records; a graph without
	// records has no entry.
	byGraph map[string]*graphRuns
	// The most entries that runs and byGraph held since they were made.
	runsPeak, graphsPeak int
}

// graphRuns is the IDs of one graph's records.
type graphRuns struct {
	ids  map[string]struct{}
	peak int // the most IDs that ids held since it was made
}

// minShrunk is the fewest entries that a map must have held for shrunk
// to make it anew: a smaller one keeps its room, a few kilobytes.
const minShrunk = 256

// grew records in peak that a map holds n entries.
func grew(peak *int, n int) {
	if n > *peak {
		*peak = n
	}
}

// shrunk returns m, or a copy made for its entries alone if it holds
// fewer than a quarter of peak, the most it held (and peak is minShrunk
// or more), with peak then set to its length. A Go map keeps its room
// when entries are deleted; the copy gives it back. A copy costs
// O(peak), and is amortised O(1) a deletion: it needs three quarters of
// the peak deleted since the map was made, and a map whose size goes up
// and down around some count is not copied again until it has lost three
// quarters of its new peak.
func shrunk[K comparable, V any](m map[K]V, peak *int) map[K]V {
	if *peak < minShrunk || len(m) >= *peak/4 {
		return m
	}
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	*peak = len(c)
	return c
}

// NewMemoryRuns returns an empty [MemoryRuns].
func NewMemoryRuns() *MemoryRuns {
	return &MemoryRuns{runs: make(map[string]Record)}
}

// PutRun stores a copy of r, creating or replacing the record with r.ID.
// It returns ctx.Err(), with no effect, if ctx is done.
func (m *MemoryRuns) PutRun(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r = copyRecord(r)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runs == nil {
		m.runs = make(map[string]Record)
	}
	if old, ok := m.runs[r.ID]; ok && old.GraphKey != r.GraphKey {
		m.unindex(old)
		m.byGraph = shrunk(m.byGraph, &m.graphsPeak)
	}
	m.runs[r.ID] = r
	grew(&m.runsPeak, len(m.runs))
	if m.byGraph == nil {
		m.byGraph = make(map[string]*graphRuns)
	}
	g := m.byGraph[r.GraphKey]
	if g == nil {
		g = &graphRuns{ids: make(map[string]struct{})}
		m.byGraph[r.GraphKey] = g
		grew(&m.graphsPeak, len(m.byGraph))
	}
	g.ids[r.ID] = struct{}{}
	grew(&g.peak, len(g.ids))
	return nil
}

// unindex takes record r off its graph's IDs; the caller then calls
// shrink. m.mu is held.
func (m *MemoryRuns) unindex(r Record) {
	g := m.byGraph[r.GraphKey]
	delete(g.ids, r.ID)
	if len(g.ids) == 0 {
		delete(m.byGraph, r.GraphKey)
		return
	}
	g.ids = shrunk(g.ids, &g.peak)
}

// shrink gives back the room of the records and graphs deleted, if they
// were most of them (see shrunk). m.mu is held.
func (m *MemoryRuns) shrink() {
	m.runs = shrunk(m.runs, &m.runsPeak)
	m.byGraph = shrunk(m.byGraph, &m.graphsPeak)
}

// GetRun returns a copy of the record with that ID, or an error wrapping
// [ErrNotFound]. It returns ctx.Err() if ctx is done.
func (m *MemoryRuns) GetRun(ctx context.Context, id string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	m.mu.RLock()
	r, ok := m.runs[id]
	m.mu.RUnlock()
	if !ok {
		return Record{}, fmt.Errorf("get run %s: %w", quote(id), ErrNotFound)
	}
	return copyRecord(r), nil
}

// ListRuns returns copies of the graph's records, oldest first: by
// StartedAt, then by ID. A graph without records gives an empty slice and
// no error. It returns ctx.Err() if ctx is done.
func (m *MemoryRuns) ListRuns(ctx context.Context, graphKey string) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	var ids map[string]struct{}
	if g := m.byGraph[graphKey]; g != nil {
		ids = g.ids
	}
	out := make([]Record, 0, len(ids))
	for id := range ids {
		out = append(out, m.runs[id])
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b Record) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for i := range out {
		out[i] = copyRecord(out[i])
	}
	return out, nil
}

// RunsByStatus returns copies of the records whose Status is status, of
// every graph, oldest first: by StartedAt, then by ID (see
// [RunStatusLister]). It costs O(records) under the read lock, as a
// memory store is not meant for many: a store of its own is gone with
// its process, so its running records are those of the runs still going
// on. It returns ctx.Err() if ctx is done.
func (m *MemoryRuns) RunsByStatus(ctx context.Context, status RunStatus) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []Record{}
	m.mu.RLock()
	for _, r := range m.runs {
		if r.Status == status {
			out = append(out, r)
		}
	}
	m.mu.RUnlock()
	sortRecords(out)
	for i := range out {
		out[i] = copyRecord(out[i])
	}
	return out, nil
}

// sortRecords sorts rs oldest first: by StartedAt, then by ID.
func sortRecords(rs []Record) {
	slices.SortFunc(rs, func(a, b Record) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// copyRecord returns r with its slices copied.
func copyRecord(r Record) Record {
	r.Marks = slices.Clone(r.Marks)
	r.Failed = slices.Clone(r.Failed)
	return r
}

// PruneRuns deletes the records that ended more than olderThan ago, and
// those that never ended but started more than olderThan ago, and
// returns how many it deleted: a record exactly olderThan old is kept, as
// pgstore keeps it. A record with neither time is kept, and so is every
// record whose Status is [RunRunning], whatever its age: its run may
// still go on (a long run, whose record GetRun and RunsByStatus would
// miss until its end), or its process may have stopped (a crash leaves
// its runs' records running), and the record is what a recovery lists
// and resumes them from ([RunStatusLister], [Executor.Resume]); a host
// settles such a record with Resume or [Executor.Abandon], and its new
// status then ages as any other. Ages are measured
// by time.Now against the records' times, which the executor takes from
// the same clock. A run whose record was deleted while it went on writes
// its record again when it ends. It costs O(records) under the lock. A
// negative olderThan is an error wrapping [ErrInvalidAge]; it returns
// ctx.Err(), with no effect, if ctx is done.
func (m *MemoryRuns) PruneRuns(ctx context.Context, olderThan time.Duration) (int64, error) {
	if err := checkAge("prune runs", olderThan); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cutoff := time.Now().Add(-olderThan)
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for id, r := range m.runs {
		if r.Status == RunRunning {
			continue // see the doc: never a record that says running
		}
		at := r.EndedAt
		if at.IsZero() {
			at = r.StartedAt
		}
		if !at.IsZero() && at.Before(cutoff) {
			delete(m.runs, id)
			m.unindex(r)
			n++
		}
	}
	m.shrink()
	return n, nil
}

// deleteGraph deletes the graph's records and returns how many it
// deleted. m.mu is held.
func (m *MemoryRuns) deleteGraph(graphKey string) int64 {
	g := m.byGraph[graphKey]
	if g == nil {
		return 0
	}
	for id := range g.ids {
		delete(m.runs, id)
	}
	delete(m.byGraph, graphKey)
	m.shrink()
	return int64(len(g.ids))
}
