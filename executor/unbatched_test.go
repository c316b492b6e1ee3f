package executor_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// A BatchGenerator registered for a kind without a batch key was called
// node by node with Generate, silently: a host that wrote GenerateBatch
// for it never learnt that it goes unused. The first run of a graph with
// such a kind warns, once per kind for the executor's life; a
// BatchGenerator of a kind with a batch key is not warned of.
func TestBatchGeneratorOfAKindWithoutBatchKeyWarns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		reg := l.registry(l)
		for _, kind := range []string{graph.KindScript, graph.KindMusic, graph.KindImage} {
			reg[kind] = &bulk{lab: l}
		}
		logs := &testenv.LogBuffer{}
		e := l.executor(executor.Options{Generators: reg, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		const warning = "regen: Options.Generators gives a BatchGenerator to kinds without a batch key"
		r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		_, err = r.Wait()
		require.NoError(t, err)
		require.Equal(t, 1, strings.Count(logs.String(), warning), logs.String())
		assert.Contains(t, logs.String(), `run=`+r.ID()+` graph=lecture kinds="[asset:music script]"`)
		l.mu.Lock()
		for _, call := range l.batches {
			assert.True(t, strings.HasPrefix(call[0], "asset:image:"), "a bulk call of a kind without a batch key: %v", call)
		}
		l.mu.Unlock()

		longer, err := graph.Build(graph.Lecture(), 60)
		require.NoError(t, err)
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "other", Graph: longer})
		require.NoError(t, err)
		assert.Equal(t, 1, strings.Count(logs.String(), warning), "warned once per kind: %s", logs.String())
	})
}
