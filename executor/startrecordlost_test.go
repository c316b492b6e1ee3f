package executor_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// wroteRecord stores the running record of run "lost" and then fails the
// call, as a store does whose reply is lost (a connection reset after
// the write) or that writes the record as the caller's context ends.
type wroteRecord struct {
	executor.RunStore
	mu     sync.Mutex
	how    string // "reply", "cancel" or "shutdown"
	cancel func() // cancels the Start's context, for "cancel" and "shutdown"
}

func (l *wroteRecord) PutRun(ctx context.Context, rec executor.Record) error {
	if rec.ID != "lost" || rec.Status != executor.RunRunning {
		return l.RunStore.PutRun(ctx, rec)
	}
	if err := l.RunStore.PutRun(context.WithoutCancel(ctx), rec); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.how != "reply" {
		l.cancel() // the client that called Start went away as the write went through
		return ctx.Err()
	}
	return errors.New("runs table: connection reset by peer")
}

// A Start whose first PutRun went through but failed all the same (its
// reply lost at every try, or its context ended as the write went
// through) returned an error and left the record saying running, of a
// run that never ran: RunsByStatus listed it as running for good, and a
// host that resumes at start-up what it lists resumed a run that had
// never started; Start's doc says a Start that failed after recording
// its run leaves a record that says failed or cancelled. Such a record
// is now recorded as failed, or cancelled if the Start's context ended;
// a store that did not keep it is left without one. A cancelled one says
// what cancelled it (Record.CancelledBy), as a run that ends cancelled
// does.
func TestStartWhoseRecordReplyWasLost(t *testing.T) {
	for _, tc := range []struct {
		how  string
		want executor.RunStatus
		code string
	}{
		{how: "reply", want: executor.RunFailed},
		{how: "cancel", want: executor.RunCancelled, code: executor.CancelledByContext},
		{how: "shutdown", want: executor.RunCancelled, code: "shutdown"},
		// A code that CheckCancelCode refuses: recorded as the host's,
		// and Start's error says why, as a run's error would.
		{how: "bad-code", want: executor.RunCancelled, code: executor.CancelledByHost},
	} {
		t.Run(tc.how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "x"}}}, graph.SegmentSeconds)
				require.NoError(t, err)
				runs := &wroteRecord{RunStore: executor.NewMemoryRuns(), how: tc.how}
				gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				e, err := executor.New(executor.Options{Generators: registryFor(g, gen), Runs: runs})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()

				sctx, cancelCause := context.WithCancelCause(ctx)
				cancel := func() { cancelCause(nil) }
				switch tc.how {
				case "shutdown":
					cancel = func() { cancelCause(executor.CancelCode("shutdown", errors.New("host stopping"))) }
				case "bad-code":
					cancel = func() { cancelCause(executor.CancelCode("Shutdown", errors.New("host stopping"))) }
				}
				defer cancel()
				runs.mu.Lock()
				runs.cancel = cancel
				runs.mu.Unlock()
				_, err = e.Start(sctx, executor.RunRequest{GraphKey: "key", Graph: g, RunID: "lost"})
				require.Error(t, err)
				startErr := err

				rec, err := runs.GetRun(ctx, "lost")
				require.NoError(t, err)
				assert.Equal(t, tc.want, rec.Status, "the record of a Start that failed")
				assert.Equal(t, tc.code, rec.CancelledBy)
				assert.NotEmpty(t, rec.Error)
				bad := tc.how == "bad-code"
				assert.Equal(t, bad, errors.Is(startErr, executor.ErrInvalidCancelCode), "Start's error: %v", startErr)
				assert.Equal(t, bad, strings.Contains(rec.Error, `recorded as cancelled by "host": executor: invalid cancel code: code "Shutdown"`),
					"the record's Error: %s", rec.Error)
				assert.False(t, rec.EndedAt.IsZero())
				running, err := runs.RunStore.(executor.RunStatusLister).RunsByStatus(ctx, executor.RunRunning)
				require.NoError(t, err)
				assert.Empty(t, running, "runs listed as running")
				snap, err := e.States().Load(ctx, "key")
				require.NoError(t, err)
				assert.Empty(t, snap.States, "a Start that failed committed nothing")
			})
		})
	}
}
