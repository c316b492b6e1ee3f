package pghistory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/sinktest"
)

// age sets the last append of run to ago before now, as if it had been
// idle since.
func age(t *testing.T, pg *testenv.Postgres, run string, ago time.Duration) {
	t.Helper()
	tag, err := pg.Pool.Exec(context.Background(),
		"UPDATE "+pgx.Identifier{pg.Schema, "progress_runs"}.Sanitize()+
			" SET last_at = now() - $2::bigint * interval '1 microsecond' WHERE run_id = $1",
		run, ago.Microseconds())
	require.NoError(t, err)
	require.Equal(t, int64(1), tag.RowsAffected(), "run %q has a row", run)
}

func TestDeleteRun(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			h, pg := newHistory(t, mode, pghistory.Options{}, nil)
			ctx := testenv.Context(t, 20*time.Second)
			a := sinktest.RunID(t)
			runs := []string{a, a + "-b", a + "%", a[:len(a)-1]}
			for i, run := range runs {
				require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, uint64(10*(i+1)))...))
			}
			n, err := h.DeleteRun(ctx, a)
			require.NoError(t, err)
			assert.Equal(t, int64(10), n)
			assert.Empty(t, replay(t, h, a, 0))
			_, found, err := h.LastEvent(ctx, a)
			require.NoError(t, err)
			assert.False(t, found, "LastEvent of a deleted run")
			for i, run := range runs[1:] {
				assert.Len(t, replay(t, h, run, 0), 10*(i+2), "run %q is untouched", run)
			}
			n, err = h.DeleteRun(ctx, a)
			require.NoError(t, err)
			assert.Zero(t, n, "a second DeleteRun")
			assert.Equal(t, 3, count(t, pg, "progress_runs"))

			// The run is archived again from its next events.
			require.NoError(t, h.Append(ctx, sinktest.Events(a, 11, 12)...))
			assert.Equal(t, []uint64{11, 12}, sinktest.Seqs(replay(t, h, a, 0)))
		})
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			h, pg := newHistory(t, mode, pghistory.Options{}, nil)
			pghistory.SetPruneBatch(h, 2) // several batches
			ctx := testenv.Context(t, 20*time.Second)
			base := sinktest.RunID(t)
			var old, fresh []string
			for i := range 5 {
				run := base + "-old-" + string(rune('a'+i))
				require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 7)...))
				age(t, pg, run, 2*time.Hour)
				old = append(old, run)
			}
			for i := range 2 {
				run := base + "-fresh-" + string(rune('a'+i))
				require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 3)...))
				fresh = append(fresh, run)
			}
			// A long run: its first events are old, its last append is not.
			long := base + "-long"
			require.NoError(t, h.Append(ctx, sinktest.Events(long, 1, 5)...))
			age(t, pg, long, 3*time.Hour)
			require.NoError(t, h.Append(ctx, sinktest.Events(long, 6, 6)...))
			// A duplicate append does not renew a run.
			require.NoError(t, h.Append(ctx, sinktest.Events(old[0], 1, 7)...))

			_, err := h.Prune(ctx, -time.Second)
			require.ErrorIs(t, err, pghistory.ErrInvalidAge)
			assert.Contains(t, err.Error(), "prune runs older than -1s: want 0 or more")

			n, err := h.Prune(ctx, 3*time.Hour)
			require.NoError(t, err)
			assert.Zero(t, n, "nothing is 3 hours old")
			n, err = h.Prune(ctx, time.Hour)
			require.NoError(t, err)
			assert.Equal(t, int64(5*7), n, "the 5 old runs' events")
			for _, run := range old {
				assert.Empty(t, replay(t, h, run, 0), "old run %q", run)
			}
			for _, run := range fresh {
				assert.Len(t, replay(t, h, run, 0), 3, "fresh run %q", run)
			}
			assert.Equal(t, sinktest.Span(1, 6), sinktest.Seqs(replay(t, h, long, 0)), "a run still appending keeps all its events")
			assert.Equal(t, 3, count(t, pg, "progress_runs"))
			assert.Equal(t, 2*3+6, count(t, pg, "progress_events"))

			n, err = h.Prune(ctx, 0)
			require.NoError(t, err)
			assert.Equal(t, int64(2*3+6), n, "Prune(0) deletes every run appended before it")
			assert.Zero(t, count(t, pg, "progress_runs"))
		})
	}
}

// TestPruneWhileAppending prunes with an age of 0 (every run is old)
// and deletes a run while runs go on appending: no call fails or
// deadlocks, no event is left without its run's row (Prune would never
// find it), and a run archived after that is whole from there on.
func TestPruneWhileAppending(t *testing.T) {
	t.Parallel()
	h, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, nil)
	ctx := testenv.Context(t, 60*time.Second)
	base := sinktest.RunID(t)
	runs := []string{base + "-a", base + "-b", base + "-c"}
	done := make(chan error, 1)
	go func() {
		for seq := uint64(1); seq <= 300; seq += 3 {
			var batch []progress.Event
			for _, run := range runs {
				batch = append(batch, sinktest.Events(run, seq, seq+2)...)
			}
			if err := h.Append(ctx, batch...); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	prunes := 0
	for appending := true; appending; prunes++ {
		select {
		case err := <-done:
			require.NoError(t, err)
			appending = false
		default:
		}
		_, err := h.Prune(ctx, 0)
		require.NoError(t, err)
		_, err = h.DeleteRun(ctx, runs[2])
		require.NoError(t, err)
	}
	t.Logf("%d prunes while appending", prunes)
	// Nothing left behind without its run: every event left has a run row.
	var orphans int
	require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{pg.Schema, "progress_events"}.Sanitize()+
		" e WHERE NOT EXISTS (SELECT 1 FROM "+pgx.Identifier{pg.Schema, "progress_runs"}.Sanitize()+" r WHERE r.run_id = e.run_id)").Scan(&orphans))
	assert.Zero(t, orphans, "events without a run row would never be pruned")
	require.NoError(t, h.Append(ctx, sinktest.Events(runs[0], 301, 303)...))
	got := sinktest.Seqs(replay(t, h, runs[0], 0))
	require.NotEmpty(t, got)
	assert.Equal(t, uint64(303), got[len(got)-1])
	for i := 1; i < len(got); i++ {
		require.Less(t, got[i-1], got[i], "Seqs in order")
	}
}

// TestPruneEndsWhileRunsStart prunes with an age of 0, one run a batch,
// while a new run starts after each batch: the age is measured once, when
// Prune starts, so it deletes the runs older than that and ends; taken
// again by each batch, it would go on deleting the runs that start.
func TestPruneEndsWhileRunsStart(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			h, pg := newHistory(t, mode, pghistory.Options{}, nil)
			pghistory.SetPruneBatch(h, 1)
			ctx := testenv.Context(t, 20*time.Second)
			base := sinktest.RunID(t)
			for i := range 3 {
				require.NoError(t, h.Append(ctx, sinktest.Events(fmt.Sprintf("%s-old-%d", base, i), 1, 2)...))
			}
			started := 0
			pghistory.SetAfterPruneBatch(h, func() {
				if started < 20 { // bounded, so that a prune that does not end fails rather than hangs
					require.NoError(t, h.Append(ctx, sinktest.Events(fmt.Sprintf("%s-new-%d", base, started), 1, 1)...))
					started++
				}
			})
			n, err := h.Prune(ctx, 0)
			require.NoError(t, err)
			assert.Equal(t, int64(3*2), n, "the 3 runs older than the prune")
			assert.Equal(t, 4, started, "3 batches of one run, then one that found none")
			assert.Equal(t, started, count(t, pg, "progress_runs"), "the runs started during the prune are kept")
		})
	}
}

// TestPruneBesideAnAppendStillStoring prunes an idle run while an append
// of it is in flight but has not renewed the run's row yet (it waits for
// an uncommitted event of another transaction), as Prune's doc says: the
// run's older events go, and the append's stay, with their run.
func TestPruneBesideAnAppendStillStoring(t *testing.T) {
	t.Parallel()
	h, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, nil)
	ctx := testenv.Context(t, 30*time.Second)
	run := sinktest.RunID(t)
	require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 3)...))
	age(t, pg, run, 2*time.Hour)
	blocker, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = blocker.Rollback(context.Background()) }()
	_, err = blocker.Exec(ctx, "INSERT INTO "+pgx.Identifier{pg.Schema, "progress_events"}.Sanitize()+
		" (run_id, seq, event) VALUES ($1, 4, '\\x7b7d')", run)
	require.NoError(t, err)
	appended := make(chan error, 1)
	go func() { appended <- h.Append(ctx, sinktest.Events(run, 4, 5)...) }()
	review7WaitFor(t, ctx, pg, "wait_event_type = 'Lock'", "unnest", pg.Schema)

	n, err := h.Prune(ctx, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, int64(3), n, "the run's older events go")
	require.NoError(t, blocker.Rollback(ctx))
	require.NoError(t, <-appended)
	assert.Equal(t, []uint64{4, 5}, sinktest.Seqs(replay(t, h, run, 0)), "the append in flight keeps its events")
	assert.Zero(t, review7Orphans(t, ctx, pg), "and they have their run's row")
}
