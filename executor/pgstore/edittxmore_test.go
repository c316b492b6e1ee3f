package pgstore_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// EditTx twice in one transaction, a node named twice, after Edit; in a
// transaction that a failed statement aborted (the database's error,
// not bad input, and nothing stored); on a schema not migrated
// (ErrNotMigrated); and the first edits of a new key from many
// transactions at once, which wait for each other and lose none. (Pins;
// they passed before.)
func TestEditTxInTransactionsOfEveryKind(t *testing.T) {
	t.Parallel() // its own schema
	h, e := newEditHost(t)
	ctx := testenv.Context(t, time.Minute)
	before := h.load(ctx)

	t.Run("twice and duplicated", func(t *testing.T) {
		tx, err := h.pg.Pool.Begin(ctx)
		require.NoError(t, err)
		v1, err := h.s.EditTx(ctx, tx, h.g, h.key, "script", "script")
		require.NoError(t, err)
		v2, err := h.s.EditTx(ctx, tx, h.g, h.key, "script")
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		assert.Equal(t, before.Version+1, v1)
		assert.Equal(t, before.Version+2, v2)
		st := h.load(ctx).States["script"]
		assert.Equal(t, before.States["script"].Rev+2, st.Rev)
		assert.Equal(t, dirty.StatusDirty, st.Status)
		v3, err := e.Edit(ctx, h.g, h.key, "script")
		require.NoError(t, err)
		assert.Equal(t, v2+1, v3)
	})
	t.Run("an aborted tx", func(t *testing.T) {
		snap := h.load(ctx)
		tx, err := h.pg.Pool.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `SELECT 1/0`)
		require.Error(t, err)
		_, err = h.s.EditTx(ctx, tx, h.g, h.key, "script")
		require.Error(t, err)
		assert.ErrorContains(t, err, "25P02")
		assert.NotErrorIs(t, err, executor.ErrInvalidRequest)
		require.NoError(t, tx.Rollback(ctx))
		assert.Equal(t, snap, h.load(ctx))
	})
	t.Run("a schema not migrated", func(t *testing.T) {
		other, err := pgstore.New(h.pg.Pool, pgstore.Options{Schema: h.pg.Schema + "_none"})
		require.NoError(t, err)
		tx, err := h.pg.Pool.Begin(ctx)
		require.NoError(t, err)
		_, err = other.EditTx(ctx, tx, h.g, h.key, "script")
		require.ErrorIs(t, err, pgstore.ErrNotMigrated)
		require.NoError(t, tx.Rollback(ctx))
	})
	t.Run("first edits at once", func(t *testing.T) {
		key := h.key + "-new"
		var wg sync.WaitGroup
		vs := make([]int64, 8)
		for i := range vs {
			wg.Go(func() {
				err := pgx.BeginFunc(ctx, h.pg.Pool, func(tx pgx.Tx) error {
					v, err := h.s.EditTx(ctx, tx, h.g, key, "script")
					vs[i] = v
					return err
				})
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		snap, err := h.s.Load(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, int64(8), snap.Version)
		assert.Equal(t, int64(8), snap.States["script"].Rev)
		slices.Sort(vs)
		assert.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7, 8}, vs, "each its own version")
	})
}
