package executor_test

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// A run that an edit interrupted ended run.finished, succeeded, while it
// left nodes dirty (the node superseded and its dependents, skipped):
// Report.Dirty said so, but the final event did not, so a host that
// ships on run.finished shipped a lecture with work left. The final
// event's counts now have Dirty, the length of Report.Dirty (its JSON's
// counts.dirty), 0 for a run that left the graph whole, and its message
// says it.
func TestFinalCountsSayWhatTheRunLeftDirty(t *testing.T) {
	const video3 = "asset:video:segment[3]"
	for _, tc := range []struct {
		name      string
		act       func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error)
		final     progress.Type
		wantDirty int
	}{
		{name: "a run made whole", final: progress.RunFinished, act: func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error) {
			return l.run(e, dirty.Mark{ID: video3, Reason: dirty.ReasonEdited})
		}},
		{name: "an edit during the run", final: progress.RunFinished, wantDirty: 2, act: func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error) {
			return editDuringRun(t, l, e, video3)
		}},
		{name: "a failed node", final: progress.RunFailed, wantDirty: 2, act: func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error) {
			l.set(video3, fail(executor.Permanent(errors.New("refused"))))
			return l.run(e, dirty.Mark{ID: video3, Reason: dirty.ReasonEdited})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 60)
				e := l.executor(executor.Options{})
				_, err := l.run(e)
				require.NoError(t, err)

				rep, _ := tc.act(t, l, e)

				require.Len(t, rep.Dirty, tc.wantDirty)
				finals := l.eventsOf(tc.final)
				require.NotEmpty(t, finals)
				last := finals[len(finals)-1]
				require.NotNil(t, last.Counts)
				assert.Equal(t, tc.wantDirty, last.Counts.Dirty, "the final event's counts")
				data, err := last.MarshalJSON()
				require.NoError(t, err)
				assert.Contains(t, string(data), `"cancelled":0,"dirty":`)
				if tc.wantDirty > 0 {
					assert.Contains(t, last.Message, "2 left dirty")
				}
			})
		})
	}
}
