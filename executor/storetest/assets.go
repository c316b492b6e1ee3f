package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// AssetStore checks an AssetStore against the contract, in one subtest per
// property, each on a store from newStore.
func AssetStore(t *testing.T, newStore func(t *testing.T) executor.AssetStore) {
	t.Helper()
	runChecks(t, newStore, []check[executor.AssetStore]{
		{"RoundTrip", testAssetRoundTrip},
		{"URLOnly", testAssetURLOnly},
		{"BinaryData", testAssetBinary},
		{"LargeAsset", testAssetLarge},
		{"Exists", testAssetExists},
		{"UnknownRef", testAssetUnknownRef},
		{"NearMissRefs", testAssetNearMissRefs},
		{"DistinctKeys", testAssetDistinctKeys},
		{"KeysAreExact", testAssetKeysAreExact},
		{"LongKeys", testAssetLongKeys},
		{"SameKeyAgain", testAssetSameKeyAgain},
		{"SameKeyReplaces", testAssetSameKeyReplaces},
		{"FoundOncePut", testAssetFoundOncePut},
		{"CallerMayReuseInput", testAssetCallerMutation},
		{"CallerMayChangeMeta", testAssetCallerMeta},
		{"Concurrent", testAssetConcurrent},
		{"MissingAgreesWithExists", testAssetMissing},
		{"GetManyAgreesWithGet", testAssetGetMany},
		{"CancelledContext", testAssetCancelled},
	})
}

// assetKey returns an asset key unique to the test, shaped like the
// executor's: graph, node and content hash.
func assetKey(t *testing.T, node, content string) string {
	return Unique(t, "") + "/" + node + "/" + hash(content)
}

// asset returns an asset with every field set, distinct for each seed.
func asset(seed string) executor.Asset {
	return executor.Asset{
		Data: []byte("narration for " + seed + "\x00\x01\xff binary tail"),
		URL:  "https://cdn.example.com/assets/" + seed + "/a%20b.mp3?sig=x&y=ü",
		Hash: hash(seed),
		// Whole microseconds: a store may keep no more.
		Length: 9*time.Second + 870*time.Millisecond + 123*time.Microsecond,
		Meta: map[string]string{
			"voice":   "alloy",
			"seed":    seed,
			"empty":   "",
			"unicode": "ünïcødé ✓ “quotes”",
			"json":    `{"a": [1, 2], "b": "c\"d"}`,
		},
	}
}

// put stores a under key and fails the test on error or an empty ref.
func put(t *testing.T, s executor.AssetStore, key string, a executor.Asset) string {
	t.Helper()
	ref, err := s.Put(t.Context(), key, a)
	require.NoError(t, err, "Put(%s)", short(key))
	require.NotEmpty(t, ref, "Put(%s): reference", short(key))
	return ref
}

// get returns the asset ref points to and fails the test on error.
func get(t *testing.T, s executor.AssetStore, ref string) executor.Asset {
	t.Helper()
	a, err := s.Get(t.Context(), ref)
	require.NoError(t, err, "Get(%s)", short(ref))
	return a
}

// requireAsset fails the test unless ref points to want.
func requireAsset(t *testing.T, s executor.AssetStore, ref string, want executor.Asset) {
	t.Helper()
	got := get(t, s, ref)
	if d := diff(want, got); d != "" {
		t.Fatalf("Get(%s) (-want +got):\n%s", short(ref), d)
	}
}

func testAssetRoundTrip(t *testing.T, s executor.AssetStore) {
	a := asset("round-trip")
	ref := put(t, s, assetKey(t, "asset:narration:segment[3]", "round-trip"), a)
	requireAsset(t, s, ref, a)
	requireAsset(t, s, ref, a) // reading does not consume

	// A whole lecture's timeline: its Length, in microseconds, does not
	// fit in 32 bits.
	long := asset("timeline")
	long.Length = 2*time.Hour + 17*time.Minute + 3*time.Second + 1*time.Microsecond
	ref = put(t, s, assetKey(t, "timeline", "timeline"), long)
	requireAsset(t, s, ref, long)
}

func testAssetURLOnly(t *testing.T, s executor.AssetStore) {
	// A host that keeps the bytes itself stores only a URL; and an asset
	// may carry no metadata nor length.
	a := executor.Asset{URL: "https://host.example.com/v/1.mp4", Hash: hash("url-only")}
	ref := put(t, s, assetKey(t, "asset:video:segment[0]", "url-only"), a)
	requireAsset(t, s, ref, a)

	b := executor.Asset{Data: []byte{}, Hash: hash("empty")}
	ref = put(t, s, assetKey(t, "asset:video:segment[1]", "empty"), b)
	requireAsset(t, s, ref, b)
}

func testAssetBinary(t *testing.T, s executor.AssetStore) {
	// Every byte value, NUL and invalid UTF-8 included; and text with
	// white space at its ends, which a store that keeps Data as text may
	// trim.
	data := make([]byte, 0, 512)
	for i := range 512 {
		data = append(data, byte(i), byte(255-i%256))
	}
	for i, data := range [][]byte{data, []byte(" \t\r\nWEBVTT\n\n00:00.000 --> 00:01.000\nHello \n\n")} {
		a := executor.Asset{Data: data, Hash: hash(fmt.Sprint("binary-", i))}
		ref := put(t, s, assetKey(t, "asset:image:segment[0]", fmt.Sprint("binary-", i)), a)
		got := get(t, s, ref)
		require.True(t, bytes.Equal(data, got.Data), "Get(%q): data changed (%d bytes stored, %d returned): %s",
			ref, len(data), len(got.Data), short(string(got.Data)))
		assert.Equal(t, a.Hash, got.Hash)
	}
}

func testAssetLarge(t *testing.T, s executor.AssetStore) {
	const size = 1 << 20
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < size; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	a := executor.Asset{Data: data, Hash: hash("large"), Length: 30 * time.Second}
	ref := put(t, s, assetKey(t, "asset:video:segment[2]", "large"), a)
	got := get(t, s, ref)
	require.Len(t, got.Data, size, "Get(%q): length of a 1 MiB asset", ref)
	require.True(t, bytes.Equal(data, got.Data), "Get(%q): a 1 MiB asset's bytes changed", ref)
	assert.Equal(t, a.Hash, got.Hash)
	assert.Equal(t, a.Length, got.Length)
}

func testAssetExists(t *testing.T, s executor.AssetStore) {
	ref := put(t, s, assetKey(t, "script", "exists"), asset("exists"))
	ok, err := s.Exists(t.Context(), ref)
	require.NoError(t, err, "Exists(%q)", ref)
	assert.True(t, ok, "Exists(%q) right after Put", ref)
	for _, unknown := range unknownRefs(t) {
		ok, err := s.Exists(t.Context(), unknown)
		require.NoError(t, err, "Exists(%s) of an unknown reference", short(unknown))
		assert.False(t, ok, "Exists(%s) of an unknown reference", short(unknown))
	}
}

// unknownRefs returns references that no store returned: malformed
// ones too, which a store cannot have returned (not valid UTF-8, with a
// NUL byte, 10,000 bytes long), and whose lookups must find nothing, not
// fail, since the executor checks whatever references the states hold.
func unknownRefs(t *testing.T) []string {
	return []string{"", Unique(t, "never-put"), "storetest:unknown/" + Unique(t, ""),
		"not UTF-8 \xff\xfe" + Unique(t, ""), "NUL \x00 " + Unique(t, ""), Unique(t, strings.Repeat("r", 10000))}
}

func testAssetUnknownRef(t *testing.T, s executor.AssetStore) {
	put(t, s, assetKey(t, "script", "other"), asset("other")) // the store is not empty
	for _, ref := range unknownRefs(t) {
		_, err := s.Get(t.Context(), ref)
		assert.ErrorIs(t, err, executor.ErrNotFound, "Get(%s) of an unknown reference", short(ref))
	}
}

func testAssetNearMissRefs(t *testing.T, s executor.AssetStore) {
	// References that look like the store's own, made from one it
	// returned: a store that answers from the prefix alone, or by a prefix
	// scan, or case-insensitively, finds them.
	key := assetKey(t, "asset:image:segment[8]", "near-miss")
	a := asset("near-miss")
	ref := put(t, s, key, a)
	near := []string{ref + "-missing", ref + "/", ref[:len(ref)-1], strings.ToUpper(ref)}
	if prefix, ok := strings.CutSuffix(ref, key); ok {
		// The store's prefix and a key never put.
		near = append(near, prefix+Unique(t, "never-put"))
	}
	for _, n := range near {
		if n == ref {
			continue
		}
		ok, err := s.Exists(t.Context(), n)
		require.NoError(t, err, "Exists(%q) of a reference never returned, made from %q", n, ref)
		assert.False(t, ok, "Exists(%q) of a reference never returned, made from %q", n, ref)
		got, err := s.Get(t.Context(), n)
		assert.ErrorIs(t, err, executor.ErrNotFound, "Get(%q) of a reference never returned, made from %q: got %+v", n, ref, got)
	}
	requireAsset(t, s, ref, a)
}

func testAssetDistinctKeys(t *testing.T, s executor.AssetStore) {
	// Same node, another content hash; another node, same content.
	ka := assetKey(t, "asset:image:segment[4]", "a")
	kb := assetKey(t, "asset:image:segment[4]", "b")
	kc := assetKey(t, "asset:image:segment[5]", "a")
	a, b, c := asset("a"), asset("b"), asset("c")
	ra, rb, rc := put(t, s, ka, a), put(t, s, kb, b), put(t, s, kc, c)
	assert.NotEqual(t, ra, rb, "references of keys %q and %q", ka, kb)
	assert.NotEqual(t, ra, rc, "references of keys %q and %q", ka, kc)
	assert.NotEqual(t, rb, rc, "references of keys %q and %q", kb, kc)
	requireAsset(t, s, ra, a)
	requireAsset(t, s, rb, b)
	requireAsset(t, s, rc, c)
}

func testAssetKeysAreExact(t *testing.T, s executor.AssetStore) {
	// Keys that a case-insensitive or space-padding collation, or a
	// Unicode normalisation ("café" with a combining accent, NFD, and
	// precomposed, NFC), would mix up: each is an asset of its own.
	base := Unique(t, "")
	keys := []string{
		base + "/cafe\u0301", base + "/caf\u00e9", base + "/Caf\u00e9", base + "/CAF\u00c9",
		base + "/caf\u00e9 ", base + "/ caf\u00e9",
	}
	refs := make([]string, len(keys))
	for i, k := range keys {
		refs[i] = put(t, s, k, asset(k))
	}
	for i, k := range keys {
		for j := range i {
			assert.NotEqual(t, refs[j], refs[i], "references of keys %q and %q", keys[j], k)
		}
	}
	for i, k := range keys {
		requireAsset(t, s, refs[i], asset(k))
	}
}

// testAssetLongKeys puts assets under long keys: a store keeps each
// apart, or refuses the Put with a permanent error; then, if its
// references are a prefix and the key, as the kit's stores' are, a
// reference to the refused key finds nothing.
func testAssetLongKeys(t *testing.T, s executor.AssetStore) {
	probe := assetKey(t, "asset:image:segment[0]", "probe")
	prefix, prefixed := strings.CutSuffix(put(t, s, probe, asset("probe")), probe)
	for _, n := range longKeyLengths {
		ka, kb := longKeys(Unique(t, "")+"/asset:image:segment[1]/", n)
		a, b := asset("long-a"), asset("long-b")
		ra, err := s.Put(t.Context(), ka, a)
		if err != nil {
			assertPermanent(t, err, fmt.Sprintf("Put under a %d-byte key", n))
			if !prefixed {
				continue
			}
			for _, ref := range []string{prefix + ka, prefix + kb} {
				ok, err := s.Exists(t.Context(), ref)
				require.NoError(t, err, "Exists of a reference to a %d-byte key, which the store refuses", n)
				assert.False(t, ok, "Exists of a reference to a %d-byte key, which the store refuses", n)
				_, err = s.Get(t.Context(), ref)
				assert.ErrorIs(t, err, executor.ErrNotFound, "Get of a reference to a %d-byte key, which the store refuses", n)
			}
			continue
		}
		rb := put(t, s, kb, b)
		assert.NotEqual(t, ra, rb, "references of two %d-byte keys that differ in their last byte", n)
		requireAsset(t, s, ra, a)
		requireAsset(t, s, rb, b)
	}
}

func testAssetSameKeyAgain(t *testing.T, s executor.AssetStore) {
	// A retry after a crash puts the same asset under the same key again;
	// that must succeed, and leave the asset readable through both refs.
	key := assetKey(t, "asset:music", "again")
	a := asset("again")
	r1 := put(t, s, key, a)
	r2 := put(t, s, key, a)
	requireAsset(t, s, r2, a)
	requireAsset(t, s, r1, a)
}

func testAssetSameKeyReplaces(t *testing.T, s executor.AssetStore) {
	// A Put under a key already used replaces the asset there, whatever it
	// was: every field, shorter data and fewer fields included. Both
	// references then give the new asset.
	key := assetKey(t, "asset:narration:segment[9]", "replaced")
	first := asset("first")
	second := executor.Asset{Data: []byte("second"), Hash: hash("second"), Meta: map[string]string{"voice": "nova"}}
	r1 := put(t, s, key, first)
	r2 := put(t, s, key, second)
	requireAsset(t, s, r2, second)
	requireAsset(t, s, r1, second)
	// And back: the last Put wins, not the first different one.
	r3 := put(t, s, key, first)
	requireAsset(t, s, r3, first)
	requireAsset(t, s, r1, first)
	// By an asset without Data nor Meta (nil), whose host keeps the bytes:
	// none of the old asset's is left, as an upsert that keeps the old
	// value of a column where the new one is NULL would leave it.
	urlOnly := executor.Asset{URL: "https://host.example.com/replaced.mp3", Hash: hash("url-only")}
	r4 := put(t, s, key, urlOnly)
	requireAsset(t, s, r4, urlOnly)
	requireAsset(t, s, r1, urlOnly)
}

// testAssetFoundOncePut looks a reference up before its asset is put,
// and again after: Exists, Get, and Missing and GetMany when the store
// has them, find it then, though they found it missing before. A store
// that caches the references its reads found missing, and does not
// forget one at a Put, has the executor make again, at every run, a node
// whose asset was missing once. The kit knows a reference before its Put
// only if the store's references are a prefix and the key, as those of
// the kit's own stores are; it checks nothing of another store.
func testAssetFoundOncePut(t *testing.T, s executor.AssetStore) {
	probe := assetKey(t, "asset:image:segment[0]", "probe")
	prefix, ok := strings.CutSuffix(put(t, s, probe, asset("probe")), probe)
	if !ok {
		t.Log("the store's references are not a prefix and the key: the kit cannot know one before its Put")
		return
	}
	key := assetKey(t, "asset:image:segment[1]", "found-once-put")
	ref := prefix + key
	c, checks := s.(executor.AssetChecker)
	bg, gets := s.(executor.AssetBatchGetter)
	// Each read looks for it before the Put, as the executor's check of
	// the states' references does for an asset that a prune deleted.
	ok, err := s.Exists(t.Context(), ref)
	require.NoError(t, err, "Exists(%q) before its Put", ref)
	require.False(t, ok, "Exists(%q) before its Put", ref)
	_, err = s.Get(t.Context(), ref)
	require.ErrorIs(t, err, executor.ErrNotFound, "Get(%q) before its Put", ref)
	if checks {
		missing, err := c.Missing(t.Context(), []string{ref})
		require.NoError(t, err, "Missing(%q) before its Put", ref)
		require.Equal(t, []string{ref}, missing, "Missing(%q) before its Put", ref)
	}
	if gets {
		_, err := bg.GetMany(t.Context(), []string{ref})
		require.ErrorIs(t, err, executor.ErrNotFound, "GetMany(%q) before its Put", ref)
	}

	a := asset("found-once-put")
	if got := put(t, s, key, a); got != ref {
		t.Logf("Put(%q) returned %q, not the store's prefix and the key: the kit checks nothing more", key, got)
		return
	}
	const why = "a reference that a read found missing before its Put is found after it (a cache of missing references forgets one at a Put)"
	ok, err = s.Exists(t.Context(), ref)
	require.NoError(t, err, "Exists(%q) after its Put", ref)
	assert.True(t, ok, "Exists(%q) after its Put: %s", ref, why)
	if got, err := s.Get(t.Context(), ref); assert.NoError(t, err, "Get(%q) after its Put: %s", ref, why) {
		assert.Empty(t, diff(a, got), "Get(%q) after its Put", ref)
	}
	if checks {
		missing, err := c.Missing(t.Context(), []string{ref})
		require.NoError(t, err, "Missing(%q) after its Put", ref)
		assert.Empty(t, missing, "Missing(%q) after its Put: %s", ref, why)
	}
	if gets {
		got, err := bg.GetMany(t.Context(), []string{ref})
		if assert.NoError(t, err, "GetMany(%q) after its Put: %s", ref, why) {
			assert.Empty(t, diff([]executor.Asset{a}, got), "GetMany(%q) after its Put", ref)
		}
	}
}

func testAssetCallerMutation(t *testing.T, s executor.AssetStore) {
	a := asset("mutation")
	want := asset("mutation")
	ref := put(t, s, assetKey(t, "asset:image:segment[6]", "mutation"), a)
	for i := range a.Data {
		a.Data[i] = 'X'
	}
	a.Meta["voice"] = "changed"
	a.Meta["added"] = "yes"
	got := get(t, s, ref)
	d := diff(want, got)
	if d == "" {
		return
	}
	// What the store kept of the caller's: what shows the caller's
	// changes.
	var kept []string
	if bytes.Equal(a.Data, got.Data) {
		kept = append(kept, "Data slice")
	}
	if diff(a.Meta, got.Meta) == "" {
		kept = append(kept, "Meta map")
	}
	what := "the asset is not the one put"
	if len(kept) > 0 {
		what = "the store kept the caller's " + strings.Join(kept, " and ") +
			", which the caller may reuse after Put; Put copies them"
	}
	t.Errorf("Get(%s) after the caller changed the Data and Meta it had put: %s (-put +got):\n%s", short(ref), what, d)
}

// testAssetCallerMeta checks that the Meta map Get returns is the
// caller's: writing into it changes neither the stored asset nor what
// another Get returned. (Data, which Get may share with the store, the
// caller must not modify.)
func testAssetCallerMeta(t *testing.T, s executor.AssetStore) {
	want := asset("get-meta")
	ref := put(t, s, assetKey(t, "asset:image:segment[7]", "get-meta"), want)
	a, b := get(t, s, ref), get(t, s, ref)
	require.NotNil(t, a.Meta, "Get(%q): Meta of an asset put with Meta", ref)
	a.Meta["voice"] = "changed"
	a.Meta["added"] = "yes"
	delete(a.Meta, "seed")
	got := get(t, s, ref)
	if d := diff(want.Meta, got.Meta); d != "" {
		t.Errorf("Get(%q) returned the store's own Meta map: the caller's writes into it changed the stored asset; "+
			"Get returns a copy (-put +got after the writes):\n%s", ref, d)
	}
	if d := diff(want.Meta, b.Meta); d != "" {
		t.Errorf("Get(%q) returned one Meta map to two calls: the caller's writes into one changed the other "+
			"(-put +got after the writes):\n%s", ref, d)
	}
}

func testAssetConcurrent(t *testing.T, s executor.AssetStore) {
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				seed := fmt.Sprintf("w%d-%d", w, i)
				a := asset(seed)
				key := assetKey(t, fmt.Sprintf("asset:image:segment[%d]", w*each+i), seed)
				ref, err := s.Put(t.Context(), key, a)
				if !assert.NoError(t, err, "Put(%q) while others put", key) {
					return
				}
				got, err := s.Get(t.Context(), ref)
				if !assert.NoError(t, err, "Get(%q) while others put", ref) {
					return
				}
				if d := diff(a, got); d != "" {
					t.Errorf("Get(%q) while others put (-want +got):\n%s", ref, d)
				}
			}
		})
	}
	wg.Wait()
}

func testAssetCancelled(t *testing.T, s executor.AssetStore) {
	a := asset("cancelled")
	key := assetKey(t, "script", "cancelled")
	ref := put(t, s, key, a)
	ctx := cancelled(t)

	_, err := s.Put(ctx, assetKey(t, "script", "cancelled-2"), asset("cancelled-2"))
	assert.ErrorIs(t, err, context.Canceled, "Put with a cancelled context")
	// Under a key already used, whose reference the kit knows: the asset
	// there must stay (checked below).
	_, err = s.Put(ctx, key, asset("cancelled-replacement"))
	assert.ErrorIs(t, err, context.Canceled, "Put with a cancelled context, under a key already used")
	_, err = s.Get(ctx, ref)
	assert.ErrorIs(t, err, context.Canceled, "Get with a cancelled context")
	_, err = s.Exists(ctx, ref)
	assert.ErrorIs(t, err, context.Canceled, "Exists with a cancelled context")
	requireAsset(t, s, ref, a)
}

// testAssetMissing checks the optional AssetChecker against Exists: the
// same references are missing, each listed once.
func testAssetMissing(t *testing.T, s executor.AssetStore) {
	c, ok := s.(executor.AssetChecker)
	if !ok {
		t.Log("the store is not an executor.AssetChecker: Exists alone serves")
		return
	}
	r1 := put(t, s, assetKey(t, "asset:image", "one"), asset("one"))
	r2 := put(t, s, assetKey(t, "asset:video", "two"), asset("two"))
	refs := []string{r1, r2, r1, r1 + "-missing", r2[:len(r2)-1], "", "not a reference", "mem:" + Unique(t, "never"),
		r1 + "-missing", strings.ToUpper(r2)}
	refs = append(refs, unknownRefs(t)...)
	before := slices.Clone(refs)
	var (
		got []string
		err error
	)
	whileReading(t, "Missing", "refs", refs, func() { got, err = c.Missing(t.Context(), refs) })
	require.NoError(t, err, "Missing")
	assertRefsLeft(t, "Missing", before, refs)
	var want []string
	seen := map[string]bool{}
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		exists, err := s.Exists(t.Context(), ref)
		require.NoError(t, err, "Exists(%s)", short(ref))
		if !exists {
			want = append(want, ref)
		}
	}
	if d := missingDiff(want, got); d != "" {
		t.Errorf("Missing of %d references, %s: want the refs Exists reports false, each once, in any order; %s", len(refs), shortList(refs), d)
	}

	// Thousands of references, as the executor checks a long lecture's
	// clean nodes in one call, the missing ones past the first thousand.
	var many, gone []string
	for range 600 {
		many = append(many, r1, r2)
	}
	for i := range 300 {
		gone = append(gone, fmt.Sprintf("%s-gone-%d", r1, i))
	}
	many = append(append(many, gone...), r2, gone[0])
	before = slices.Clone(many)
	whileReading(t, "Missing", "refs", many, func() { got, err = c.Missing(t.Context(), many) })
	require.NoError(t, err, "Missing of %d references", len(many))
	assertRefsLeft(t, fmt.Sprintf("Missing of %d references", len(many)), before, many)
	if d := missingDiff(gone, got); d != "" {
		t.Errorf("Missing of %d references: want the %d after the first 1,200, each once; %s", len(many), len(gone), d)
	}
	none, err := c.Missing(t.Context(), nil)
	require.NoError(t, err, "Missing(nil)")
	assert.Empty(t, none, "Missing(nil)")
	_, err = c.Missing(cancelled(t), []string{r1})
	assert.ErrorIs(t, err, context.Canceled, "Missing with a cancelled context")
}

// assertRefsLeft checks that call, Missing or GetMany, left the caller's
// refs, after, as they were before it: the executor reads them after the
// call. (The kit makes the call inside whileReading, for the race
// detector to catch a write into them that the call undid.)
func assertRefsLeft(t *testing.T, call string, before, after []string) {
	t.Helper()
	if !slices.Equal(before, after) {
		t.Errorf("%s modified the caller's refs, which the caller reads after it returns "+
			"(a store that sorts or otherwise rearranges them works on a copy); before: %s\nafter: %s",
			call, shortList(before), shortList(after))
	}
}

// missingDiff returns what is wrong with got, the answer of Missing, if
// want (which holds each reference once) is the right one, or "".
func missingDiff(want, got []string) string {
	listed := map[string]int{}
	for _, ref := range got {
		listed[ref]++
	}
	var twice, absent, extra []string
	for _, ref := range want {
		switch n := listed[ref]; {
		case n == 0:
			absent = append(absent, ref)
		case n > 1:
			twice = append(twice, ref)
		}
		delete(listed, ref)
	}
	for _, ref := range got {
		if listed[ref] > 0 {
			extra = append(extra, ref)
			delete(listed, ref)
		}
	}
	var d []string
	if len(absent) > 0 {
		d = append(d, fmt.Sprintf("%d missing references not listed: %s", len(absent), shortList(absent)))
	}
	if len(twice) > 0 {
		d = append(d, fmt.Sprintf("%d listed more than once: %s", len(twice), shortList(twice)))
	}
	if len(extra) > 0 {
		d = append(d, fmt.Sprintf("%d listed that are not missing (or not asked for): %s", len(extra), shortList(extra)))
	}
	return strings.Join(d, "; ")
}

// testAssetGetMany checks the optional AssetBatchGetter against Get: the
// same assets, in order, repeats included, each the caller's own; a
// missing or malformed reference fails the call with ErrNotFound.
func testAssetGetMany(t *testing.T, s executor.AssetStore) {
	bg, ok := s.(executor.AssetBatchGetter)
	if !ok {
		t.Log("the store is not an executor.AssetBatchGetter: Get alone serves")
		return
	}
	one, two := asset("many-one"), asset("many-two")
	url := executor.Asset{URL: "https://cdn.example.com/many/three.mp4", Hash: hash("many-three")}
	k1 := assetKey(t, "asset:image:segment[1]", "many-one")
	r1 := put(t, s, k1, one)
	r2 := put(t, s, assetKey(t, "asset:narration:segment[1]", "many-two"), two)
	r3 := put(t, s, assetKey(t, "asset:video:segment[1]", "many-three"), url)
	refs := []string{r2, r1, r3, r1}
	before := slices.Clone(refs)
	var (
		got []executor.Asset
		err error
	)
	whileReading(t, "GetMany", "refs", refs, func() { got, err = bg.GetMany(t.Context(), refs) })
	require.NoError(t, err, "GetMany(%q)", refs)
	assertRefsLeft(t, "GetMany", before, refs)
	refs = before
	require.Len(t, got, len(refs), "GetMany(%q): one asset for each ref", refs)
	for i, ref := range refs {
		if d := diff(get(t, s, ref), got[i]); d != "" {
			t.Errorf("GetMany(%q)[%d] is not Get(%q) (-Get +GetMany):\n%s", refs, i, ref, d)
		}
	}
	// The repeated ref's two assets are the caller's: changing one's
	// Meta changes neither the other nor the store.
	got[1].Meta["voice"] = "changed"
	assert.Equal(t, "alloy", got[3].Meta["voice"], "GetMany(%q): Meta of a repeated ref, after the caller changed the other", refs)
	requireAsset(t, s, r1, one)

	none, err := bg.GetMany(t.Context(), nil)
	require.NoError(t, err, "GetMany(nil)")
	assert.Empty(t, none, "GetMany(nil)")
	for _, bad := range append(unknownRefs(t), r1+"-missing", strings.ToUpper(r2)) {
		refs := []string{r1, bad, r2}
		got, err := bg.GetMany(t.Context(), refs)
		assert.ErrorIs(t, err, executor.ErrNotFound, "GetMany(%s) with a reference never returned: got %d assets", shortList(refs), len(got))
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("GetMany(%s): the error %s does not name the missing reference, quoted", shortList(refs), short(err.Error()))
		}
	}

	// A Put under a key already used replaces the asset for GetMany too:
	// a run must not read a result that was replaced.
	replaced := asset("many-one-replaced")
	put(t, s, k1, replaced)
	got, err = bg.GetMany(t.Context(), []string{r1, r2, r1})
	require.NoError(t, err, "GetMany after a Put replaced an asset")
	if d := diff([]executor.Asset{replaced, two, replaced}, got); d != "" {
		t.Errorf("GetMany(%q) after a Put under %q replaced the asset (-want +got):\n%s", []string{r1, r2, r1}, k1, d)
	}

	// Hundreds of references, as a timeline over every segment's video
	// and narration reads: each in its place, repeats included.
	const distinct, reads = 40, 600
	refs, want := make([]string, distinct), make([]executor.Asset, distinct)
	for i := range distinct {
		want[i] = executor.Asset{Data: fmt.Appendf(nil, "segment %d", i), Hash: hash(fmt.Sprint("many-", i)),
			Length: time.Duration(i) * time.Second}
		refs[i] = put(t, s, assetKey(t, fmt.Sprintf("asset:video:segment[%d]", i), fmt.Sprint("many-", i)), want[i])
	}
	r := rand.New(rand.NewPCG(3, 4))
	order := make([]int, reads)
	manyRefs := make([]string, reads)
	for i := range order {
		order[i] = r.IntN(distinct)
		manyRefs[i] = refs[order[i]]
	}
	before = slices.Clone(manyRefs)
	whileReading(t, "GetMany", "refs", manyRefs, func() { got, err = bg.GetMany(t.Context(), manyRefs) })
	require.NoError(t, err, "GetMany of %d references", reads)
	assertRefsLeft(t, fmt.Sprintf("GetMany of %d references", reads), before, manyRefs)
	manyRefs = before
	require.Len(t, got, reads, "GetMany of %d references: one asset for each", reads)
	for i, j := range order {
		if d := diff(want[j], got[i]); d != "" {
			t.Fatalf("GetMany of %d references: asset %d, of %q (-want +got):\n%s", reads, i, manyRefs[i], d)
		}
	}

	_, err = bg.GetMany(cancelled(t), []string{r1, r2})
	assert.ErrorIs(t, err, context.Canceled, "GetMany with a cancelled context")
}
