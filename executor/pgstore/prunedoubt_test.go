package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/pgschema"
	"github.com/regengraph/regen/internal/testenv"
)

// TestCancelledPruneInDoubt ends the context of a PruneAssets whose
// batch waits for an asset that a concurrent Put holds, and of a
// PruneRuns whose batch waits for the runs table (a long transaction
// locked it, once the prune's statement was prepared): the batch may
// have been deleted or not, and the error says what the batch would have
// deleted and that pruning again is safe, as the package's doc says of a
// prune, rather than that it "may have committed it". Nothing is deleted
// once the wait ends, after the call returned.
func TestCancelledPruneInDoubt(t *testing.T) {
	t.Parallel() // its own schema
	// One connection, whose statement each case prepares first: a lock of
	// the runs table blocks the parse of a statement that deletes from
	// it, before the batch is sent, where the prune is not in doubt.
	s, pg, app := lateStore(t, func(c *pgxpool.Config) { c.MaxConns = 1 })
	ctx := testenv.Context(t, 60*time.Second)
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "old", GraphKey: "g", Status: executor.RunSucceeded,
		StartedAt: time.Now().Add(-time.Hour), EndedAt: time.Now().Add(-time.Hour)}))
	for _, tc := range []struct {
		name, lock, done string
		prune            func(ctx context.Context, olderThan time.Duration) error
		olderThan        time.Duration
		kept             func() error
	}{
		{"PruneAssets", `SELECT 1 FROM {s}.assets WHERE key = 'a' FOR UPDATE`, "deleted a batch of old assets",
			func(ctx context.Context, age time.Duration) error { _, err := s.PruneAssets(ctx, age); return err }, 0,
			func() error { _, err := s.Get(ctx, pgstore.RefPrefix+"a"); return err }},
		{"PruneRuns", `LOCK TABLE {s}.runs IN SHARE MODE`, "deleted a batch of old run records",
			func(ctx context.Context, age time.Duration) error { _, err := s.PruneRuns(ctx, age); return err }, time.Minute,
			func() error { _, err := s.GetRun(ctx, "old"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.prune(ctx, 24*time.Hour)) // prepares its statement, deleting nothing
			rollback, pid := holdLock(t, ctx, pg, tc.lock)
			cause := errors.New("the host gave up")
			cctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			done := make(chan error, 1)
			go func() { done <- tc.prune(cctx, tc.olderThan) }()
			pg.WaitBlockedBy(t, ctx, pid, done)
			cancel(cause)
			err := <-done

			require.NoError(t, rollback()) // the wait ends
			pg.WaitIdle(t, ctx, app)
			assert.NoError(t, tc.kept(), "a prune that returned an error deleted later")

			var d *pgschema.InDoubtError
			require.ErrorAs(t, err, &d)
			assert.ErrorIs(t, err, cause)
			assert.ErrorIs(t, err, pgstore.ErrInDoubt)
			assert.Contains(t, err.Error(), "the context ended while the statement ran, which may have "+tc.done+
				" or not (pruning again is safe)")
		})
	}
}
