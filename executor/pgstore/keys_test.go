package pgstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// randKey returns a random key of exactly n bytes of valid UTF-8 without
// NUL: characters of 1 to 4 bytes, drawn at random, so that Postgres cannot
// compress the key's index entry.
func randKey(r *rand.Rand, n int) string {
	ranges := [][2]rune{
		{0x21, 0x7e},       // ASCII, 1 byte
		{0xa1, 0x24f},      // Latin, 2 bytes
		{0x4e00, 0x9fff},   // CJK, 3 bytes
		{0x1f300, 0x1faff}, // symbols, 4 bytes
	}
	var b strings.Builder
	for b.Len() < n {
		rg := ranges[r.IntN(len(ranges))]
		c := rg[0] + r.Int32N(rg[1]-rg[0]+1)
		if b.Len()+utf8.RuneLen(c) > n {
			c = 0x21 + r.Int32N(0x7e-0x21+1)
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Keys and IDs at their limits are taken, together in the indexes that hold
// two of them, however incompressible: every index entry fits.
func TestKeyLimits(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(1, 2))
	graphKey := randKey(r, pgstore.MaxGraphKeyBytes)
	nodeIDs := []string{randKey(r, pgstore.MaxNodeIDBytes), randKey(r, pgstore.MaxNodeIDBytes)}
	assetKey := randKey(r, pgstore.MaxAssetKeyBytes)
	runIDs := []string{randKey(r, pgstore.MaxRunIDBytes), randKey(r, pgstore.MaxRunIDBytes)}

	ref, err := s.Put(ctx, assetKey, executor.Asset{Data: []byte("a"), Hash: "h"})
	require.NoError(t, err, "Put with a key of %d bytes", len(assetKey))
	assert.Equal(t, pgstore.RefPrefix+assetKey, ref)
	ok, err := s.Exists(ctx, ref)
	require.NoError(t, err)
	assert.True(t, ok)
	a, err := s.Get(ctx, ref)
	require.NoError(t, err)
	assert.Equal(t, "h", a.Hash)

	st := dirty.State{Status: dirty.StatusClean, Rev: 1, AssetRef: ref}
	want := map[string]dirty.State{nodeIDs[0]: st, nodeIDs[1]: st}
	v, err := s.Commit(ctx, graphKey, 0, []executor.Change{{ID: nodeIDs[0], State: st}, {ID: nodeIDs[1], State: st}})
	require.NoError(t, err, "Commit with a graph key and node IDs of %d bytes", len(graphKey))
	assert.Equal(t, int64(1), v)
	snap, err := s.Load(ctx, graphKey)
	require.NoError(t, err)
	assert.Equal(t, executor.Snapshot{Version: 1, States: want}, snap)

	// A run record's graph key and ID, with and without a start (an index
	// entry with a NULL has a longer header).
	started := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	records := []executor.Record{
		{ID: runIDs[0], GraphKey: graphKey, Status: executor.RunRunning},
		{ID: runIDs[1], GraphKey: graphKey, Status: executor.RunSucceeded, StartedAt: started, EndedAt: started},
	}
	for _, rec := range records {
		require.NoError(t, s.PutRun(ctx, rec), "PutRun with an ID and a graph key of %d bytes", len(rec.ID))
		got, err := s.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		assert.Equal(t, rec, got)
	}
	runs, err := s.ListRuns(ctx, graphKey)
	require.NoError(t, err)
	assert.Equal(t, records, runs)

	deleted, err := s.DeleteGraph(ctx, graphKey)
	require.NoError(t, err)
	assert.True(t, deleted)
}

// A key or ID one byte over its limit is refused with a *KeyError that
// says which, how long and what is allowed, before any SQL: the store's
// pool has no server, so any statement would fail otherwise. A lookup of
// such a key finds nothing, as for a key never stored, without SQL either.
func TestKeyTooLong(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{})
	require.NoError(t, err)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(3, 4))
	over := func(max int) string { return randKey(r, max+1) }

	for _, tc := range []struct {
		name  string
		field string
		max   int
		key   string
		write func(key string) error
	}{
		{"Commit graph key", "graph key", pgstore.MaxGraphKeyBytes, over(pgstore.MaxGraphKeyBytes), func(key string) error {
			v, err := s.Commit(ctx, key, 0, []executor.Change{{ID: "n"}})
			assert.Zero(t, v)
			return err
		}},
		{"Commit graph key at a negative version", "graph key", pgstore.MaxGraphKeyBytes, over(pgstore.MaxGraphKeyBytes), func(key string) error {
			_, err := s.Commit(ctx, key, -1, nil)
			return err
		}},
		{"Commit node ID", "node ID", pgstore.MaxNodeIDBytes, over(pgstore.MaxNodeIDBytes), func(key string) error {
			v, err := s.Commit(ctx, "g", 3, []executor.Change{{ID: "n"}, {ID: key}})
			assert.Zero(t, v)
			return err
		}},
		{"Put asset key", "asset key", pgstore.MaxAssetKeyBytes, over(pgstore.MaxAssetKeyBytes), func(key string) error {
			ref, err := s.Put(ctx, key, executor.Asset{Hash: "h"})
			assert.Empty(t, ref)
			return err
		}},
		{"PutRun ID", "run ID", pgstore.MaxRunIDBytes, over(pgstore.MaxRunIDBytes), func(key string) error {
			return s.PutRun(ctx, executor.Record{ID: key, GraphKey: "g"})
		}},
		{"PutRun graph key", "graph key", pgstore.MaxGraphKeyBytes, over(pgstore.MaxGraphKeyBytes), func(key string) error {
			return s.PutRun(ctx, executor.Record{ID: "r", GraphKey: key})
		}},
		{"PutRun Resumes", "resumed run ID", pgstore.MaxRunIDBytes, over(pgstore.MaxRunIDBytes), func(key string) error {
			return s.PutRun(ctx, executor.Record{ID: "r", GraphKey: "g", Resumes: key})
		}},
		{"LockGraph graph key", "graph key", pgstore.MaxGraphKeyBytes, over(pgstore.MaxGraphKeyBytes), func(key string) error {
			l, err := s.LockGraph(ctx, key)
			assert.Nil(t, l)
			return err
		}},
		{"TryLockGraph graph key", "graph key", pgstore.MaxGraphKeyBytes, over(pgstore.MaxGraphKeyBytes), func(key string) error {
			l, err := s.TryLockGraph(ctx, key)
			assert.Nil(t, l)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.write(tc.key)
			require.ErrorIs(t, err, pgstore.ErrKeyTooLong)
			requireInvalidRequest(t, tc.field, err)
			var ke *pgstore.KeyError
			require.ErrorAs(t, err, &ke)
			var pe *executor.PermanentError
			require.ErrorAs(t, err, &pe, "wrapped in executor.Permanent, so that the executor does not retry it")
			assert.Equal(t, tc.field, ke.Field)
			assert.Equal(t, tc.key, ke.Key)
			assert.Equal(t, tc.max, ke.Max)
			assert.Contains(t, err.Error(), fmt.Sprintf("%s %q...", tc.field, string([]rune(tc.key)[:32])))
			assert.Contains(t, err.Error(), fmt.Sprintf("is %d bytes long: want at most %d bytes", tc.max+1, tc.max),
				"the message says how long the key is and what is allowed")
		})
	}

	t.Run("lookups", func(t *testing.T) {
		graphKey, runID := over(pgstore.MaxGraphKeyBytes), over(pgstore.MaxRunIDBytes)
		ref := pgstore.RefPrefix + over(pgstore.MaxAssetKeyBytes)
		snap, err := s.Load(ctx, graphKey)
		require.NoError(t, err, "Load")
		assert.Equal(t, executor.Snapshot{States: map[string]dirty.State{}}, snap, "Load")
		ok, err := s.Exists(ctx, ref)
		require.NoError(t, err, "Exists")
		assert.False(t, ok, "Exists")
		_, err = s.Get(ctx, ref)
		assert.ErrorIs(t, err, executor.ErrNotFound, "Get")
		_, err = s.GetRun(ctx, runID)
		assert.ErrorIs(t, err, executor.ErrNotFound, "GetRun")
		runs, err := s.ListRuns(ctx, graphKey)
		require.NoError(t, err, "ListRuns")
		assert.Empty(t, runs, "ListRuns")
		deleted, err := s.DeleteGraph(ctx, graphKey)
		require.NoError(t, err, "DeleteGraph")
		assert.False(t, deleted, "DeleteGraph")
	})
}

// A key or ID to write that is not valid UTF-8 without NUL is refused
// with a *KeyError wrapping ErrKeyNotText, in executor.Permanent, before
// any SQL: the store's pool has no server. Postgres would refuse it with
// SQLSTATE 22021 however often it is sent, and the executor took that
// for a lost connection and retried it.
func TestKeyNotText(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{})
	require.NoError(t, err)
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		field string
		key   string
		write func(key string) error
	}{
		{"Commit graph key with NUL", "graph key", "g\x00h", func(key string) error {
			_, err := s.Commit(ctx, key, 0, []executor.Change{{ID: "n"}})
			return err
		}},
		{"Commit graph key not UTF-8 at a negative version", "graph key", "g\xff", func(key string) error {
			_, err := s.Commit(ctx, key, -1, nil)
			return err
		}},
		{"Commit node ID", "node ID", "n\x00", func(key string) error {
			_, err := s.Commit(ctx, "g", 3, []executor.Change{{ID: "n"}, {ID: key}})
			return err
		}},
		{"Put asset key", "asset key", "g/n/\xc3(", func(key string) error {
			_, err := s.Put(ctx, key, executor.Asset{Hash: "h"})
			return err
		}},
		{"PutRun ID", "run ID", "r\xed\xa0\x80", func(key string) error {
			return s.PutRun(ctx, executor.Record{ID: key, GraphKey: "g"})
		}},
		{"PutRun graph key", "graph key", "\x00", func(key string) error {
			return s.PutRun(ctx, executor.Record{ID: "r", GraphKey: key})
		}},
		{"PutRun Resumes", "resumed run ID", "q\xff", func(key string) error {
			return s.PutRun(ctx, executor.Record{ID: "r", GraphKey: "g", Resumes: key})
		}},
		{"TryLockGraph graph key", "graph key", "g\x00", func(key string) error {
			_, err := s.TryLockGraph(ctx, key)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.write(tc.key)
			require.ErrorIs(t, err, pgstore.ErrKeyNotText)
			requireInvalidRequest(t, tc.field, err)
			assert.NotErrorIs(t, err, pgstore.ErrKeyTooLong)
			var ke *pgstore.KeyError
			require.ErrorAs(t, err, &ke)
			var pe *executor.PermanentError
			require.ErrorAs(t, err, &pe, "wrapped in executor.Permanent, so that the executor does not retry it")
			assert.Equal(t, pgstore.KeyError{Field: tc.field, Key: tc.key, Max: ke.Max, NotText: true}, *ke)
			assert.Contains(t, err.Error(), fmt.Sprintf("%s %q is not valid UTF-8 without NUL: Postgres text holds only that", tc.field, tc.key))
		})
	}
}

// requireInvalidRequest checks that err, a refused key's, wraps
// executor.ErrInvalidRequest, which a host answers as bad input (400),
// when the key is one a request names (a graph key, a node ID of its
// graph, a run ID), and not for an asset key, which the executor makes
// of the graph key, the node ID and the hash a generator gives.
func requireInvalidRequest(t *testing.T, field string, err error) {
	t.Helper()
	if field == "asset key" {
		assert.NotErrorIs(t, err, executor.ErrInvalidRequest, "an asset key is the executor's and a generator's, not the request's")
		return
	}
	assert.ErrorIs(t, err, executor.ErrInvalidRequest, "a %s is the request's: a host answers it 400", field)
}
