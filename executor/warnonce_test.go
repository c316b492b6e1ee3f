package executor_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// Options that name kinds or batch keys a run's graph lacks were warned
// of at every run: Courseforge's 500 lectures logged 500 identical
// warnings of each. They are now warned of once per executor for each
// shape of graph (its kinds and their batch keys): lectures of any
// length share one, and a graph of another template is warned of again.
func TestUnknownNamesWarnedOncePerGraphShape(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		tm := graph.Template{Kinds: []graph.Kind{{Name: "a", BatchKey: "k", Concurrency: 2}, {Name: "s"}}}
		other := graph.Template{Kinds: []graph.Kind{{Name: "a"}}}
		gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		})
		h := &logRecorder{}
		e, err := executor.New(executor.Options{
			Generators: executor.Registry{"a": gen, "s": gen},
			Logger:     slog.New(h),
			Kinds:      map[string]executor.KindOptions{"misspelt": {Timeout: time.Minute}, "s": {BatchWindow: time.Second}},
			Limits:     map[string]int{"nokey": 2},
		})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(ctx)) }()
		for i := range 6 {
			g, err := graph.Build(tm, (1+i%3)*graph.SegmentSeconds) // three lengths
			require.NoError(t, err)
			_, err = e.Run(ctx, executor.RunRequest{GraphKey: fmt.Sprint("lecture-", i), Graph: g})
			require.NoError(t, err)
		}
		for _, msg := range []string{"Options.Kinds names kinds the graph does not have",
			"name batch keys no kind of the graph has", "that no bulk call takes"} {
			recs := h.find(msg)
			if assert.Len(t, recs, 1, msg) {
				assert.Equal(t, "lecture-0", recs[0].attrs["graph"], msg)
			}
		}

		g, err := graph.Build(other, graph.SegmentSeconds)
		require.NoError(t, err)
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "other", Graph: g})
		require.NoError(t, err)
		recs := h.find("Options.Kinds names kinds the graph does not have")
		require.Len(t, recs, 2, "another template is warned of again")
		assert.Equal(t, "other", recs[1].attrs["graph"])
		assert.Equal(t, []string{"misspelt", "s"}, recs[1].attrs["kinds"])
	})
}
