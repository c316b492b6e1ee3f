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

// An outside team's trial (F3): CancelCode("shutdown", nil) read
// "executor: run cancelled", so that a host's log of a shutdown's cause
// (pgstore's Maintain returns its ctx's context.Cause) read as if a run
// had failed, and named no code. A coded cause without an error of the
// host's now says its code, and is still ErrCancelled and a CancelCoder;
// a run cancelled or drained with it says the code in its error and its
// record's Error.
func TestCancelCodeWithoutACauseSaysItsCode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
		text  string
	}{
		{"nil", executor.CancelCode("shutdown", nil), `executor: cancelled (code "shutdown")`},
		{"ErrCancelled", executor.CancelCode("acme:deploy", executor.ErrCancelled), `executor: cancelled (code "acme:deploy")`},
		{"a refused code", executor.CancelCode("Shut down", nil), `executor: cancelled (code "Shut down")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.text, tc.cause.Error())
			assert.ErrorIs(t, tc.cause, executor.ErrCancelled)
			var c executor.CancelCoder
			require.ErrorAs(t, tc.cause, &c)
		})
	}
	for _, drain := range []bool{false, true} {
		name := map[bool]string{false: "cancelled", true: "drained"}[drain]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{})
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "r"})
				require.NoError(t, err)
				time.Sleep(time.Second)
				cause := executor.CancelCode("shutdown", nil)
				if drain {
					r.Drain(cause)
				} else {
					r.CancelCause(cause)
				}
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				assert.True(t, errors.Is(err, cause))
				assert.Equal(t, `run "r": executor: cancelled (code "shutdown")`, err.Error())
				assert.Equal(t, err.Error(), rep.Record.Error)
				assert.Equal(t, "shutdown", rep.Record.CancelledBy)
			})
		})
	}
}
