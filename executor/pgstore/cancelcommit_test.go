package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// TestCommitsCancelledAtRandom commits to one graph from two processes,
// one whose pool cancels a statement by closing its connection (pgx's
// default) and one by a cancel request, each commit under a deadline of
// 0 to 4 ms, so that contexts end at every step of a commit. Each commit
// adds a node of its own: every commit reported done is there, with the
// version it returned, and the graph's version counts its nodes (a
// commit applies whole or not at all). The pools stay sound: commits
// without a deadline then all succeed.
func TestCommitsCancelledAtRandom(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	key := testenv.UniqueName(t)
	stores := []*pgstore.Store{
		poolStore(t, pg.Schema, func(c *pgxpool.Config) { c.MaxConns = 3 }),
		poolStore(t, pg.Schema, func(c *pgxpool.Config) {
			c.MaxConns = 3
			c.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
				return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 30 * time.Second}
			}
		}),
	}
	var (
		mu       sync.Mutex
		done     = map[string]int64{} // node -> version its commit returned
		versions = map[int64]string{}
	)
	var wg sync.WaitGroup
	for p, st := range stores {
		for w := range 3 {
			wg.Go(func() {
				for i := range 60 {
					id := fmt.Sprintf("p%d-w%d-%d", p, w, i)
					ctx, cancel := context.WithTimeout(t.Context(), time.Duration(rand.IntN(4000))*time.Microsecond)
					snap, err := st.Load(ctx, key)
					if err == nil {
						var v int64
						v, err = st.Commit(ctx, key, snap.Version, []executor.Change{{ID: id,
							State: dirty.State{Status: dirty.StatusClean, Rev: 1, OutputHash: id}}})
						if err == nil {
							mu.Lock()
							done[id] = v
							assert.Empty(t, versions[v], "version %d returned twice", v)
							versions[v] = id
							mu.Unlock()
						}
					}
					var conflict *executor.ConflictError
					if err != nil && !errors.As(err, &conflict) {
						assert.ErrorIs(t, err, ctx.Err(), "a commit failed with its context alive")
					}
					cancel()
				}
			})
		}
	}
	wg.Wait()

	snap, err := s.Load(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, int64(len(snap.States)), snap.Version, "the version does not count the commits applied")
	for id := range done {
		assert.Contains(t, snap.States, id, "a commit reported done is not there")
	}
	t.Logf("%d commits done, %d applied", len(done), len(snap.States))
	for _, st := range stores {
		for i := range 10 {
			snap, err := st.Load(t.Context(), key)
			require.NoError(t, err)
			_, err = st.Commit(t.Context(), key, snap.Version, []executor.Change{{ID: fmt.Sprint("after", i),
				State: dirty.State{Status: dirty.StatusDirty}}})
			require.NoError(t, err)
		}
	}
}
