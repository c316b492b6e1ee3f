package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// A second RerunFailed of the same run forced again the nodes that a
// first one (or any later run) had made clean since, and paid the
// provider for them again, with what depends on them. A rerun now forces
// only the run's failed nodes that are still not clean; its record's
// Marks still name all of them.
func TestRerunFailedAgainKeepsWhatWasMadeCleanSince(t *testing.T) {
	for _, tc := range []struct {
		name string
		// between runs what comes between the failed run and its second
		// rerun, with the provider fixed or not; it returns whether the
		// failed node is clean after it.
		between func(t *testing.T, e *executor.Executor, l *lab) bool
	}{
		{"made clean by a first rerun", func(t *testing.T, e *executor.Executor, l *lab) bool {
			r, err := e.RerunFailed(context.Background(), l.g, "first")
			require.NoError(t, err)
			_, err = r.Wait()
			require.NoError(t, err)
			return true
		}},
		{"made clean by a later run", func(t *testing.T, e *executor.Executor, l *lab) bool {
			_, err := l.run(e)
			require.NoError(t, err)
			return true
		}},
		{"failed again in a first rerun", func(t *testing.T, e *executor.Executor, l *lab) bool {
			l.set(ids(l, graph.KindImage, 1)[0], fail(executor.Permanent(errors.New("refused again"))))
			r, err := e.RerunFailed(context.Background(), l.g, "first")
			require.NoError(t, err)
			_, err = r.Wait()
			require.Error(t, err)
			l.set(ids(l, graph.KindImage, 1)[0], nil)
			return false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				image := ids(l, graph.KindImage, 1)[0]
				video := ids(l, graph.KindVideo, 1)[0]
				e := l.executor(executor.Options{})
				l.set(image, fail(executor.Permanent(errors.New("refused"))))
				_, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "first"})
				require.Error(t, err)
				l.set(image, nil)
				clean := tc.between(t, e, l)
				l.resetCalls()

				r, err := e.RerunFailed(ctx, l.g, "first")
				require.NoError(t, err)
				rep, err := r.Wait()
				require.NoError(t, err)
				assert.Equal(t, []dirty.Mark{{ID: image, Reason: dirty.ReasonForced}}, rep.Record.Marks,
					"the rerun's marks name the run's failed nodes")
				if clean {
					assert.Empty(t, l.calledIDs(), "made again")
					assert.Empty(t, rep.Generated)
				} else {
					assert.Equal(t, 1, l.callsOf(image))
					assert.Contains(t, rep.Generated, video, "what depends on it")
				}
				l.requireAllClean()
			})
		})
	}
}
