package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// A host that shuts down tells, from a cancelled run's error alone, who
// cancelled it: errors.Is finds context.Canceled (or DeadlineExceeded, or
// the context's cause) for a cancel of the run's context, ErrCancelled
// alone for Run.Cancel, the cause of Run.CancelCause, and
// ErrGraphReplaced or ErrGraphDeleted for a run stopped because its graph
// was replaced or deleted; each wraps ErrCancelled, and none wraps the
// others' sentinels. (The record keeps the text alone: see Run.Wait.)
func TestCancelledRunErrorTellsWhoCancelled(t *testing.T) {
	errShutdown := errors.New("host shutting down")
	all := []error{context.Canceled, context.DeadlineExceeded, errShutdown, executor.ErrGraphReplaced, executor.ErrGraphDeleted}
	for _, tc := range []struct {
		name string
		// cancel returns the run's context, made from ctx, and what
		// cancels the run once it is under way.
		cancel func(t *testing.T, l *lab, ctx context.Context) (context.Context, func(*executor.Run))
		want   error // besides ErrCancelled; nil for none of all
	}{
		{"the run's context", func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancel(ctx)
			return ctx, func(*executor.Run) { cancel() }
		}, context.Canceled},
		{"the run's context's deadline", func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			return ctx, func(*executor.Run) { time.Sleep(2 * time.Second); cancel() }
		}, context.DeadlineExceeded},
		{"the run's context with a cause", func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func(*executor.Run) { cancel(errShutdown) }
		}, errShutdown},
		{"Run.Cancel", func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, (*executor.Run).Cancel
		}, nil},
		{"Run.CancelCause", func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(r *executor.Run) { r.CancelCause(errShutdown) }
		}, errShutdown},
		{"graph replaced", func(t *testing.T, l *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(*executor.Run) { replaceLecture(t, l) }
		}, executor.ErrGraphReplaced},
		{"graph deleted", func(t *testing.T, l *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(*executor.Run) { deleteLecture(t, l) }
		}, executor.ErrGraphDeleted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{})
				ctx, cancel := tc.cancel(t, l, context.Background())
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				time.Sleep(time.Second) // the script is under way
				cancel(r)
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				assert.Equal(t, executor.RunCancelled, rep.Record.Status)
				for _, other := range all {
					assert.Equal(t, other == tc.want, errors.Is(err, other), "errors.Is(%v, %v)", err, other)
				}
			})
		})
	}
}
