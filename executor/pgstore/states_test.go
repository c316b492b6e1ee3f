package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/testenv"
)

// requireConflict fails the test unless err is a *executor.ConflictError
// for key at expected, wrapping executor.ErrConflict.
func requireConflict(t *testing.T, err error, key string, expected int64) *executor.ConflictError {
	t.Helper()
	require.ErrorIs(t, err, executor.ErrConflict)
	var ce *executor.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, key, ce.GraphKey)
	assert.Equal(t, expected, ce.Expected)
	return ce
}

// TestConcurrentFirstCommits races commits at version 0 on graphs never
// committed: exactly one wins each race, and the losers get a
// *ConflictError, never a unique violation or another error.
func TestConcurrentFirstCommits(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	for _, tc := range []struct {
		name           string
		racers, graphs int
	}{
		{"two racers", 2, 20},
		{"eight racers", 8, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for g := range tc.graphs {
				key := fmt.Sprintf("%s-%d", testenv.UniqueName(t), g)
				errs := make([]error, tc.racers)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range tc.racers {
					wg.Go(func() {
						<-start
						_, errs[i] = s.Commit(t.Context(), key, 0, []executor.Change{
							{ID: "script", State: dirty.State{Status: dirty.StatusClean, Rev: int64(i + 1)}},
						})
					})
				}
				close(start)
				wg.Wait()
				winner := -1
				for i, err := range errs {
					if err == nil {
						require.Equal(t, -1, winner, "graph %s: racers %d and %d both won at version 0", key, winner, i)
						winner = i
						continue
					}
					ce := requireConflict(t, err, key, 0)
					assert.Equal(t, int64(1), ce.Actual)
				}
				require.NotEqual(t, -1, winner, "graph %s: nobody won at version 0", key)
				snap, err := s.Load(t.Context(), key)
				require.NoError(t, err)
				assert.Equal(t, int64(1), snap.Version)
				assert.Equal(t, int64(winner+1), snap.States["script"].Rev, "the winner's change")
			}
		})
	}
}

// TestNoLostUpdate has many goroutines each add to a counter with
// load, modify, commit, and retry on conflict: the counter must end at
// the number of increments, with one version per increment.
func TestNoLostUpdate(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	const workers, each = 8, 6
	key := testenv.UniqueName(t)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				for {
					snap, err := s.Load(t.Context(), key)
					if !assert.NoError(t, err) {
						return
					}
					counter := snap.States["counter"]
					counter.Rev++
					counter.UpdatedAt = time.Now()
					_, err = s.Commit(t.Context(), key, snap.Version, []executor.Change{
						{ID: "counter", State: counter},
						{ID: fmt.Sprintf("worker-%d-%d", w, i), State: dirty.State{Status: dirty.StatusClean, Rev: counter.Rev}},
					})
					if errors.Is(err, executor.ErrConflict) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue
					}
					if !assert.NoError(t, err) {
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	snap, err := s.Load(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, int64(workers*each), snap.Version)
	assert.Equal(t, int64(workers*each), snap.States["counter"].Rev, "lost updates")
	assert.Len(t, snap.States, workers*each+1)
	// Each version was won once: the workers' own nodes carry every
	// counter value from 1 to workers*each exactly once.
	seen := map[int64]bool{}
	for id, st := range snap.States {
		if id != "counter" {
			assert.False(t, seen[st.Rev], "counter value %d committed twice", st.Rev)
			seen[st.Rev] = true
		}
	}
	t.Logf("%d increments, %d conflicts retried", workers*each, conflicts)
}

// TestCommitWaitingForLockHonoursContext holds the graph's row lock in
// another transaction: a Commit waiting for it returns when its context
// ends, with nothing applied, and the graph takes commits afterwards.
func TestCommitWaitingForLockHonoursContext(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, pg := newStore(t)
	key := testenv.UniqueName(t)
	a := executor.Change{ID: "script", State: dirty.State{Status: dirty.StatusClean, Rev: 1}}
	_, err := s.Commit(t.Context(), key, 0, []executor.Change{a})
	require.NoError(t, err)

	tx, err := pg.Pool.Begin(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) }) // if the test fails before the rollback below
	_, err = tx.Exec(t.Context(), "SELECT 1 FROM "+s.Schema()+".graphs WHERE graph_key = $1 FOR UPDATE", key)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Commit(ctx, key, 1, []executor.Change{{ID: "script", State: dirty.State{Status: dirty.StatusDirty, Rev: 2}}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	require.NoError(t, tx.Rollback(t.Context()))

	snap, err := s.Load(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, int64(1), snap.Version)
	assert.Equal(t, a.State, snap.States["script"])
	v, err := s.Commit(t.Context(), key, 1, nil)
	require.NoError(t, err)
	assert.Equal(t, int64(2), v)
}

// TestMalformedKeys checks that keys Postgres cannot hold (NUL, invalid
// UTF-8) read as absent rather than as errors.
func TestMalformedKeys(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	for _, k := range []string{"a\x00b", "\xff\xfe", "pg:\x00", "pg:\xff"} {
		snap, err := s.Load(t.Context(), k)
		require.NoError(t, err, "Load(%q)", k)
		assert.Zero(t, snap.Version)
		ok, err := s.Exists(t.Context(), k)
		require.NoError(t, err, "Exists(%q)", k)
		assert.False(t, ok)
		_, err = s.Get(t.Context(), k)
		assert.ErrorIs(t, err, executor.ErrNotFound, "Get(%q)", k)
		_, err = s.GetRun(t.Context(), k)
		assert.ErrorIs(t, err, executor.ErrNotFound, "GetRun(%q)", k)
		rs, err := s.ListRuns(t.Context(), k)
		require.NoError(t, err, "ListRuns(%q)", k)
		assert.Empty(t, rs)
	}
}

// Statuses and mark reasons are stored by name: stored data must not
// depend on the order of dirty's constants. An unknown name reads as a
// status that dirty.States records as dirty.
func TestStoredByName(t *testing.T) {
	s, pg := newStore(t)
	ctx := t.Context()
	_, err := s.Commit(ctx, "g", 0, []executor.Change{
		{ID: "script", State: dirty.State{Status: dirty.StatusClean}},
		{ID: "music", State: dirty.State{Status: dirty.StatusCancelled}},
	})
	require.NoError(t, err)
	table := pgx.Identifier{pg.Schema, "node_states"}.Sanitize()
	rows, err := pg.Pool.Query(ctx, "SELECT node_id, status FROM "+table+" ORDER BY node_id")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ ID, Status string }])
	require.NoError(t, err)
	assert.Equal(t, []struct{ ID, Status string }{{"music", "cancelled"}, {"script", "clean"}}, got)

	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "r1", GraphKey: "g", Status: executor.RunSucceeded,
		Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonAssetMissing}}}))
	var marks string
	require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT marks::text FROM "+pgx.Identifier{pg.Schema, "runs"}.Sanitize()+
		" WHERE id = 'r1'").Scan(&marks))
	assert.JSONEq(t, `[{"id": "script", "reason": "asset missing"}]`, marks)

	_, err = pg.Pool.Exec(ctx, "UPDATE "+table+" SET status = 'archived' WHERE node_id = 'script'")
	require.NoError(t, err)
	snap, err := s.Load(ctx, "g")
	require.NoError(t, err)
	states := dirty.NewStates(1)
	states.Set(0, snap.States["script"])
	assert.Equal(t, dirty.StatusDirty, states.Status(0), "an unknown status is not trusted")
}

// TestCommitRoundTrips counts a commit's round trips, in each query mode
// a host may configure: two for a commit that wins, the first of a graph
// included (BEGIN with the statement, then COMMIT), three for one that
// loses (and the version found, then ROLLBACK).
func TestCommitRoundTrips(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			_, pg := newStore(t)
			var trips tripCounter
			s := poolStore(t, pg.Schema, func(cfg *pgxpool.Config) {
				cfg.ConnConfig.DefaultQueryExecMode = mode
				cfg.ConnConfig.Tracer = &trips
			})
			key := testenv.UniqueName(t)
			changes := []executor.Change{
				{ID: "script", State: dirty.State{Status: dirty.StatusClean, Rev: 1, AssetRef: "pg:a"}},
				{ID: "music", State: dirty.State{Status: dirty.StatusClean, Rev: 1}},
			}
			commit := func(expect int64) (int64, error) {
				t.Helper()
				start := trips.count()
				_, err := s.Commit(t.Context(), key, expect, changes)
				return trips.count() - start, err
			}
			n, err := commit(0)
			require.NoError(t, err)
			assert.Equal(t, int64(2), n, "first commit")
			changes[0].State.AssetRef = "pg:b" // releases pg:a
			n, err = commit(1)
			require.NoError(t, err)
			assert.Equal(t, int64(2), n, "later commit")
			n, err = commit(1)
			requireConflict(t, err, key, 1)
			assert.Equal(t, int64(3), n, "lost commit")
		})
	}
}
