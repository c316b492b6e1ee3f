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

// The upgrade of a schema made before versions (the drop of archived_at)
// happens while older processes still write (a rolling deploy). An
// append locks progress_events, then progress_runs; a DeleteRun or a
// Prune progress_runs, then progress_events; Migrate's DDL locks
// progress_runs (CREATE INDEX IF NOT EXISTS takes a share lock even when
// the index exists), and the drop progress_events. Before, the drop came
// after the DDL, in the same transaction: an append that started between
// the two held progress_events and waited for progress_runs, while
// Migrate held progress_runs and waited for progress_events, and
// Postgres aborted one of them as a deadlock. (The drop first, in the
// same transaction, would close the same cycle with a delete.) Here a
// holder keeps Migrate waiting for a lock until the other writer waits
// behind it, which makes that order certain; both must succeed.
func TestMigrateUpgradeBesideWriters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		holder string // a write that Migrate waits for, %[1]s the schema
		write  func(ctx context.Context, h *pghistory.History, run string) error
		want   []uint64 // the run's events after
	}{
		{"an append", "INSERT INTO %[1]s.progress_runs (run_id) VALUES ('holder')",
			func(ctx context.Context, h *pghistory.History, run string) error {
				return h.Append(ctx, sinktest.Events(run, 3, 4)...)
			}, []uint64{1, 2, 3, 4}},
		{"a delete", "INSERT INTO %[1]s.progress_events (run_id, seq, event) VALUES ('holder', 1, '{}')",
			func(ctx context.Context, h *pghistory.History, run string) error {
				_, err := h.DeleteRun(ctx, run)
				return err
			}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pg := testenv.NewPostgres(t)
			ctx := testenv.Context(t, 30*time.Second)
			schema := pgx.Identifier{pg.Schema}.Sanitize()
			_, err := pg.Pool.Exec(ctx, fmt.Sprintf("CREATE SCHEMA %[1]s;"+unversionedDDL, schema))
			require.NoError(t, err)
			h, err := pghistory.New(pg.Pool, pghistory.Options{Schema: pg.Schema})
			require.NoError(t, err)
			run := sinktest.RunID(t)
			require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 2)...))

			holder, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer holder.Rollback(ctx) //nolint:errcheck // committed below
			_, err = holder.Exec(ctx, fmt.Sprintf(tt.holder, schema))
			require.NoError(t, err)

			// waiting waits until n statements on the test's schema wait
			// for a table lock.
			waiting := func(n int) {
				t.Helper()
				for {
					var got int
					require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND position($1 in query) > 0`, pg.Schema).Scan(&got))
					if got >= n {
						return
					}
					require.NoError(t, ctx.Err(), "statements waiting for a lock: %d, want %d", got, n)
					time.Sleep(5 * time.Millisecond) // polling the server, bounded by ctx
				}
			}
			migrated, written := make(chan error, 1), make(chan error, 1)
			go func() { migrated <- h.Migrate(ctx) }()
			waiting(1) // Migrate, behind the holder
			go func() { written <- tt.write(ctx, h, run) }()
			waiting(2) // the writer, behind Migrate
			require.NoError(t, holder.Commit(ctx))

			assert.NoError(t, <-migrated, "Migrate")
			assert.NoError(t, <-written, "the writer")
			var got []progress.Event
			require.NoError(t, h.Replay(ctx, run, 0, func(e progress.Event) error {
				got = append(got, e)
				return nil
			}))
			assert.Equal(t, tt.want, sinktest.Seqs(got))
			assert.Equal(t, []int{pghistory.SchemaVersion}, versions(t, pg))
			rows, err := pg.Pool.Query(ctx, "SELECT column_name FROM information_schema.columns "+
				"WHERE table_schema = $1 AND table_name = 'progress_events' ORDER BY ordinal_position", pg.Schema)
			require.NoError(t, err)
			columns, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			assert.Equal(t, []string{"run_id", "seq", "event"}, columns, "archived_at dropped")
		})
	}
}
