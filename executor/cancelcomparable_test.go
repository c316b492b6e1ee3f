package executor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// causeList is an error of a type that == cannot compare (it panics): a
// value with a slice, as a host's multi-error may be.
type causeList struct{ errs []error }

func (c causeList) Error() string {
	s := make([]string, len(c.errs))
	for i, err := range c.errs {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (c causeList) Unwrap() []error { return c.errs }

// A cause of a type that == cannot compare, given to Run.CancelCause of a
// live run, was not found to be the handle's (comparing it panicked, which
// counted as another cause), so its code was picked from what it was: one
// that wraps ErrGraphReplaced recorded CancelledByGraphReplaced, as if the
// run's graph had been replaced. It is the host's cancel: "host".
func TestCancelCodeOfAnUncomparableCauseIsTheHandles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
		want  string
	}{
		{"wrapping ErrGraphReplaced", causeList{[]error{errors.New("draining"), executor.ErrGraphReplaced}}, executor.CancelledByHost},
		{"wrapping ErrGraphDeleted", causeList{[]error{executor.ErrGraphDeleted}}, executor.CancelledByHost},
		{"wrapping a code", causeList{[]error{executor.CancelCode("shutdown", nil)}}, "shutdown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{})
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				time.Sleep(time.Second) // the script is under way
				r.CancelCause(tc.cause)
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				assert.Equal(t, executor.RunCancelled, rep.Record.Status)
				assert.Equal(t, tc.want, rep.Record.CancelledBy, "Report.Record (error %v)", err)
			})
		})
	}
}
