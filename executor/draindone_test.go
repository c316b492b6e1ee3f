package executor_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// Executor.Drain returns once every run has ended, as its doc says: each
// run's Done is closed by then (a host that checks its runs after the
// drain, to cancel those left, finds none left). It returned once the
// runs had left the executor's live set, a moment before their Done was
// closed, so that a run found still running after a drain that had
// waited for it to end (TestExecutorDrain failed about one time in 20).
func TestExecutorDrainReturnsOnceRunsAreDone(t *testing.T) {
	for round := range 40 {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 30)
			e := l.executor(executor.Options{})
			var runs []*executor.Run
			for i := range 8 {
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: fmt.Sprintf("k%d", i), Graph: l.g})
				require.NoError(t, err)
				runs = append(runs, r)
			}
			time.Sleep(time.Second)
			require.NoError(t, e.Drain(ctx, nil))
			for i, r := range runs {
				select {
				case <-r.Done():
				default:
					t.Fatalf("round %d: Drain returned before run %d ended", round, i)
				}
			}
		})
	}
}
