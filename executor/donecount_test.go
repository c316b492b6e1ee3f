package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// An event's Done counts the nodes whose settling events came before it,
// and its own: before, a node.failed (or node.superseded) already counted
// the dependents that it skipped, whose node.skipped came after it, and
// the first node.skipped of an edit during the run counted every node
// that the edit skipped, so that a page showed "6 of 6 done" while a
// row still waited for its event.
func TestDoneCountsTheNodesSettledSoFar(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(l *lab, e **executor.Executor) executor.Registry
		want  func(t *testing.T, rep *executor.Report, err error)
	}{
		{"a node fails for good", func(l *lab, _ **executor.Executor) executor.Registry {
			l.set("asset:narration:segment[1]", fail(executor.Permanent(errors.New("voice banned"))))
			return l.registry(l)
		}, func(t *testing.T, rep *executor.Report, err error) {
			require.Error(t, err)
			assert.NotEmpty(t, rep.Skipped)
		}},
		{"an edit during the run skips what waits on it", func(l *lab, e **executor.Executor) executor.Registry {
			gen := l.onceAt("asset:video:segment[0]", func() {
				_, err := (*e).Edit(context.Background(), l.g, "lecture", "script")
				assert.NoError(l.t, err)
			})
			return l.registry(gen)
		}, func(t *testing.T, rep *executor.Report, err error) {
			require.NoError(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				var e *executor.Executor
				reg := tc.setup(l, &e)
				e = l.executor(executor.Options{Generators: reg})
				rep, err := l.run(e)
				tc.want(t, rep, err)
				settles := map[progress.Type]bool{progress.NodeSucceeded: true, progress.NodeUnchanged: true,
					progress.NodeFailed: true, progress.NodeSkipped: true, progress.NodeSuperseded: true,
					progress.NodeCancelled: true}
				l.mu.Lock()
				defer l.mu.Unlock()
				settled, skips := 0, 0
				for _, ev := range l.events {
					if settles[ev.Type] {
						settled++
					}
					if ev.Type == progress.NodeSkipped {
						skips++
					}
					assert.Equal(t, settled, ev.Done, "Done of event %d, %s %s", ev.Seq, ev.Type, ev.Node)
				}
				assert.Positive(t, skips, "the run skipped no node")
			})
		})
	}
}
