package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A run stopped because a newer run replaced its graph ends as a
// cancelled run does: a node whose result it did not keep is superseded,
// but the nodes after it, which never started, get no event and are in no
// list of the Report, as the package doc says of a cancelled run. Before,
// they were reported skipped ("upstream ... was superseded"), in events
// and in Report.Skipped, as if the run had gone on.
func TestARunWhoseGraphIsReplacedSkipsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		gen := l.onceAt("asset:video:segment[0]", func() {
			e2, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states,
				Assets: l.assets, Runs: l.runs})
			assert.NoError(t, err)
			longer, err := graph.Build(graph.Lecture(), 60)
			assert.NoError(t, err)
			_, err = e2.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: longer})
			assert.NoError(t, err)
			assert.NoError(t, e2.Close(context.Background()))
		})
		// One worker: the run commits nothing while the newer run goes on.
		e := l.executor(executor.Options{Generators: l.registry(gen), Workers: 1})
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrGraphReplaced)
		assert.Contains(t, rep.Superseded, "asset:video:segment[0]", "its result was not kept")
		assert.Empty(t, rep.Skipped, "nodes that never started")

		l.mu.Lock()
		defer l.mu.Unlock()
		for _, ev := range l.events {
			if ev.RunID == rep.Record.ID {
				assert.NotEqual(t, progress.NodeSkipped, ev.Type, "event %d about %s: %s", ev.Seq, ev.Node, ev.Message)
			}
		}
	})
}
