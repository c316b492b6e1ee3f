package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// A cancel, or the end of the run's context, at the instant a drain's
// calls end: the run's error, its record's code and its final event agree
// on which stop counted, whichever it was.
func TestCancelRacingTheDrainsEnd(t *testing.T) {
	for i := range 30 {
		for _, byCtx := range []bool{false, true} {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{})
				ctx, stop := context.WithCancel(context.Background())
				defer stop()
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				time.Sleep(time.Second)
				require.NotEmpty(t, l.activeAll())
				r.Drain(executor.CancelCode("shutdown", nil))
				time.Sleep(19 * time.Second) // the script's call ends now
				if i%2 == 0 {
					synctest.Wait()
				}
				if byCtx {
					stop()
				} else {
					r.Cancel()
				}
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				final := l.eventsOf(progress.RunCancelled)
				require.Len(t, final, 1)
				assert.Equal(t, rep.Record.Error, final[0].Error)
				switch rep.Record.CancelledBy {
				case "shutdown":
					assert.NotErrorIs(t, err, context.Canceled)
					assert.Equal(t, []string{"script"}, rep.Generated, "the drain's call was not kept")
				case executor.CancelledByCancel:
					assert.False(t, byCtx)
					assert.NotContains(t, err.Error(), "shutdown")
				case executor.CancelledByContext:
					assert.True(t, byCtx)
					assert.ErrorIs(t, err, context.Canceled)
				default:
					t.Fatalf("code %q", rep.Record.CancelledBy)
				}
			})
		}
	}
}
