package pgstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// A host's keys may be long (a URL, a document's hash), up to the limits.
// The executor quotes at most 64 bytes of a graph key or run ID in its
// errors, with the length, so that an error is not mostly key; but the
// store's errors, which it wraps, quoted the key whole: a Put that failed
// said "pgstore: put asset "<2,600 bytes>": ...". Each error of the store
// now quotes a key, ID or reference as the executor does. Here the pool
// has no server, so every call fails in the driver, or before it for a
// text Postgres cannot hold.
func TestLongKeysAreCutInErrors(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{})
	require.NoError(t, err)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(7, 8))
	graphKey := randKey(r, pgstore.MaxGraphKeyBytes)
	nodeID := randKey(r, pgstore.MaxNodeIDBytes)
	assetKey := randKey(r, pgstore.MaxAssetKeyBytes)
	runID := randKey(r, pgstore.MaxRunIDBytes)
	ref := pgstore.RefPrefix + assetKey
	bad := dirty.State{LastError: "\x00"}

	for _, tc := range []struct {
		name string
		keys []string // the long keys the error is about
		call func() error
	}{
		{"Load", []string{graphKey}, func() error { _, err := s.Load(ctx, graphKey); return err }},
		{"Commit", []string{graphKey}, func() error { _, err := s.Commit(ctx, graphKey, 1, nil); return err }},
		{"Commit first", []string{graphKey}, func() error { _, err := s.Commit(ctx, graphKey, 0, nil); return err }},
		{"Commit negative", []string{graphKey}, func() error { _, err := s.Commit(ctx, graphKey, -1, nil); return err }},
		{"Commit text", []string{graphKey, nodeID}, func() error {
			_, err := s.Commit(ctx, graphKey, 1, []executor.Change{{ID: nodeID, State: bad}})
			return err
		}},
		{"Put", []string{assetKey}, func() error { _, err := s.Put(ctx, assetKey, executor.Asset{}); return err }},
		{"Put text", []string{assetKey}, func() error {
			_, err := s.Put(ctx, assetKey, executor.Asset{URL: "\x00"})
			return err
		}},
		{"Get", []string{ref}, func() error { _, err := s.Get(ctx, ref); return err }},
		{"Exists", []string{ref}, func() error { _, err := s.Exists(ctx, ref); return err }},
		{"PutRun", []string{runID}, func() error {
			return s.PutRun(ctx, executor.Record{ID: runID, GraphKey: graphKey})
		}},
		{"PutRun text", []string{runID}, func() error {
			return s.PutRun(ctx, executor.Record{ID: runID, GraphKey: "g", Error: "\x00"})
		}},
		{"PutRun graph key", []string{runID}, func() error {
			return s.PutRun(ctx, executor.Record{ID: runID, GraphKey: graphKey + "x"})
		}},
		{"GetRun", []string{runID}, func() error { _, err := s.GetRun(ctx, runID); return err }},
		{"ListRuns", []string{graphKey}, func() error { _, err := s.ListRuns(ctx, graphKey); return err }},
		{"DeleteGraph", []string{graphKey}, func() error { _, err := s.DeleteGraph(ctx, graphKey); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			msg := err.Error()
			for _, key := range tc.keys {
				assert.NotContains(t, msg, key[:200], "the key is cut")
				assert.Contains(t, msg, fmt.Sprintf("(%d bytes)", len(key)), "the key's length is given")
			}
			assert.Less(t, len(msg), 700, "%s", msg)
		})
	}
}
