package executor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// Run.Cancel took no cause, so a host could not tell, from a run's error
// or record, a user's cancel from its own shutdown or a lost lock (an
// embedder's friction); CancelCause gives one, as a context's cause does.
func TestCancelCause(t *testing.T) {
	errShutdown := errors.New("host shutting down")
	// A host's cause may wrap ErrCancelled, so that code that checks
	// for a cancel alone still finds it; it was dropped, as Cancel's.
	errStopping := fmt.Errorf("%w: host stopping", executor.ErrCancelled)
	for _, tc := range []struct {
		name   string
		cancel func(*executor.Run)
		want   error  // in the run's error, besides ErrCancelled
		text   string // in the record's Error
	}{
		{"Cancel", (*executor.Run).Cancel, nil, "run cancelled"},
		{"CancelCause", func(r *executor.Run) { r.CancelCause(errShutdown) }, errShutdown, "host shutting down"},
		{"CancelCause nil", func(r *executor.Run) { r.CancelCause(nil) }, nil, "run cancelled"},
		{"CancelCause wrapping ErrCancelled", func(r *executor.Run) { r.CancelCause(errStopping) }, errStopping, "host stopping"},
		{"first cancel counts", func(r *executor.Run) { r.CancelCause(errShutdown); r.Cancel() }, errShutdown, "host shutting down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{})
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				time.Sleep(time.Second)
				tc.cancel(r)
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				if tc.want != nil {
					require.ErrorIs(t, err, tc.want)
				}
				assert.Equal(t, executor.RunCancelled, rep.Record.Status)
				assert.Contains(t, rep.Record.Error, tc.text)
			})
		})
	}
}
