package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// A trial's host passed a request's ctx.Err() to Run.CancelCause: the
// record said CancelledByContext (or CancelledByDeadline for
// context.DeadlineExceeded), as if the run's own context had ended, and a
// ResumeCancelled(..., "context") picked such runs up. The executor's
// codes now follow where the cancel came from, as their docs say: a
// cause given to Run.CancelCause without a code is the host's, whatever
// it is (context.Canceled, context.DeadlineExceeded, ErrGraphReplaced),
// and "context" and "deadline" are the run's context's alone. Only the
// first cancel counts: a run cancelled by its context and then by
// Run.CancelCause says "context", and the other way round "host".
func TestCancelCodeFollowsWhereTheCancelCameFrom(t *testing.T) {
	errBusy := errors.New("host busy")
	for _, tc := range []struct {
		name string
		// cancel derives the run's context from ctx and returns it, with
		// what cancels the run once it is under way.
		cancel func(ctx context.Context) (context.Context, func(*executor.Run))
		want   string
	}{
		{"Run.CancelCause(context.Canceled)", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(r *executor.Run) { r.CancelCause(context.Canceled) }
		}, executor.CancelledByHost},
		{"Run.CancelCause(context.DeadlineExceeded)", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(r *executor.Run) { r.CancelCause(context.DeadlineExceeded) }
		}, executor.CancelledByHost},
		{"Run.CancelCause(ErrGraphReplaced)", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(r *executor.Run) { r.CancelCause(executor.ErrGraphReplaced) }
		}, executor.CancelledByHost},
		{"Run.CancelCause(ErrCancelled)", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(r *executor.Run) { r.CancelCause(executor.ErrCancelled) }
		}, executor.CancelledByCancel},
		{"Run.Cancel", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, (*executor.Run).Cancel
		}, executor.CancelledByCancel},
		{"the run's context cancelled", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancel(ctx)
			return ctx, func(*executor.Run) { cancel() }
		}, executor.CancelledByContext},
		{"the run's context cancelled with context.Canceled", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func(*executor.Run) { cancel(context.Canceled) }
		}, executor.CancelledByContext},
		{"the run's context past its deadline", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			return ctx, func(*executor.Run) { time.Sleep(2 * time.Second); cancel() }
		}, executor.CancelledByDeadline},
		{"the run's context cancelled with context.DeadlineExceeded", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func(*executor.Run) { cancel(context.DeadlineExceeded) }
		}, executor.CancelledByHost},
		{"the run's context cancelled with ErrCancelled", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func(*executor.Run) { cancel(executor.ErrCancelled) }
		}, executor.CancelledByHost},
		{"the run's context cancelled with a code", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func(*executor.Run) { cancel(executor.CancelCode("shutdown", context.Canceled)) }
		}, "shutdown"},
		{"the run's context cancelled, then Run.CancelCause", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancel(ctx)
			return ctx, func(r *executor.Run) { cancel(); r.CancelCause(context.Canceled) }
		}, executor.CancelledByContext},
		{"Run.CancelCause, then the run's context cancelled", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancel(ctx)
			return ctx, func(r *executor.Run) { r.CancelCause(context.Canceled); cancel() }
		}, executor.CancelledByHost},
		{"the run's context past its deadline, then Run.Cancel", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			return ctx, func(r *executor.Run) { time.Sleep(2 * time.Second); r.Cancel(); cancel() }
		}, executor.CancelledByDeadline},
		{"Run.CancelCause with a cause of the host's, then the run's context", func(ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancel(ctx)
			return ctx, func(r *executor.Run) { r.CancelCause(errBusy); cancel() }
		}, executor.CancelledByHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{})
				ctx, cancel := tc.cancel(context.Background())
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				time.Sleep(time.Second) // the script is under way
				cancel(r)
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				assert.Equal(t, executor.RunCancelled, rep.Record.Status)
				assert.Equal(t, tc.want, rep.Record.CancelledBy, "Report.Record (error %v)", err)
				stored, gerr := l.runs.GetRun(context.Background(), r.ID())
				require.NoError(t, gerr)
				assert.Equal(t, tc.want, stored.CancelledBy, "the stored record")
			})
		})
	}
}

// cancelAfterRecord stores a run's first record and then cancels the
// Start's context, with the cause that cancel gives, as a client that
// goes away while its Start commits the plan: Start fails after its
// record was stored.
type cancelAfterRecord struct {
	executor.RunStore
	mu     sync.Mutex
	cancel func()
}

func (c *cancelAfterRecord) PutRun(ctx context.Context, rec executor.Record) error {
	err := c.RunStore.PutRun(ctx, rec)
	if err == nil && rec.Status == executor.RunRunning {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.cancel != nil {
			c.cancel()
			c.cancel = nil
		}
	}
	return err
}

// A Start whose context ends after its record was stored records its run
// as cancelled with the code of its context's end, as a run does: the
// context's cancel says "context", a cause of the host's without a code
// "host" (context.DeadlineExceeded among them: the context did not pass
// a deadline), a code that code; a record whose reply was lost as the
// context ended says the same (see TestStartWhoseRecordReplyWasLost).
func TestCancelledStartRecordsWhereTheCancelCameFrom(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
		want  string
	}{
		{"cancel", nil, executor.CancelledByContext},
		{"context.Canceled", context.Canceled, executor.CancelledByContext},
		{"context.DeadlineExceeded", context.DeadlineExceeded, executor.CancelledByHost},
		{"ErrCancelled", executor.ErrCancelled, executor.CancelledByHost},
		{"a code", executor.CancelCode("shutdown", nil), "shutdown"},
	} {
		for _, lost := range []bool{false, true} {
			name := tc.name
			if lost {
				name += ", its reply lost"
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ctx := context.Background()
					g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "x"}}}, graph.SegmentSeconds)
					require.NoError(t, err)
					sctx, cancelCause := context.WithCancelCause(ctx)
					defer cancelCause(nil)
					cancel := func() { cancelCause(tc.cause) }
					var runs executor.RunStore
					if lost {
						runs = &wroteRecord{RunStore: executor.NewMemoryRuns(), how: "cancel", cancel: cancel}
					} else {
						runs = &cancelAfterRecord{RunStore: executor.NewMemoryRuns(), cancel: cancel}
					}
					gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
						return executor.Asset{Data: []byte(req.NodeID)}, nil
					})
					e, err := executor.New(executor.Options{Generators: registryFor(g, gen), Runs: runs})
					require.NoError(t, err)
					defer func() { require.NoError(t, e.Close(ctx)) }()
					_, err = e.Start(sctx, executor.RunRequest{GraphKey: "key", Graph: g, RunID: "lost"})
					require.Error(t, err)
					rec, err := runs.GetRun(ctx, "lost")
					require.NoError(t, err)
					assert.Equal(t, executor.RunCancelled, rec.Status)
					assert.Equal(t, tc.want, rec.CancelledBy)
				})
			})
		}
	}
}

// A run whose context is cancelled as Run.CancelCause cancels it records
// the code of the cancel that counted, the one whose cause its error
// wraps: "host" with the host's cause, "context" with context.Canceled,
// never the one with the other's cause.
func TestCancelCodeOfRacingCancelsIsTheFirstOnes(t *testing.T) {
	errBusy := errors.New("host busy")
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			e := l.executor(executor.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			require.NoError(t, err)
			time.Sleep(time.Second) // the script is under way
			var wg sync.WaitGroup
			wg.Go(cancel)
			wg.Go(func() { r.CancelCause(errBusy) })
			wg.Wait()
			rep, err := r.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
			if errors.Is(err, errBusy) {
				assert.Equal(t, executor.CancelledByHost, rep.Record.CancelledBy, "error %v", err)
			} else {
				require.ErrorIs(t, err, context.Canceled)
				assert.Equal(t, executor.CancelledByContext, rep.Record.CancelledBy, "error %v", err)
			}
		})
	}
}
