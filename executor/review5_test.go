package executor_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// Tests from a fifth review: a new user embedding the library.

// TestReview5SupersededByUpstreamEditSaysSo edits, with Executor.Edit, a
// node that already succeeded in the run while its dependent runs: the
// dependent's result is not kept, and its node.superseded event names the
// edited input rather than blaming another run, which there is none of.
func TestReview5SupersededByUpstreamEditSaysSo(t *testing.T) {
	ctx := context.Background()
	tmpl := graph.Template{Kinds: []graph.Kind{
		{Name: "text", PerSegment: true},
		{Name: "chart", PerSegment: true, Deps: []graph.Dep{{Kind: "text", Scope: graph.ScopeSameSegment}}},
	}}
	g, err := graph.Build(tmpl, 2*graph.SegmentSeconds)
	require.NoError(t, err)
	started, release := make(chan struct{}), make(chan struct{})
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if req.NodeID == "chart:segment[1]" && req.Attempt == 1 {
			close(started)
			select {
			case <-release:
			case <-ctx.Done():
				return executor.Asset{}, ctx.Err()
			}
		}
		return executor.Asset{Data: fmt.Appendf(nil, "%s rev %d", req.NodeID, req.Rev)}, nil
	})
	mem := progress.NewMemory(progress.MemoryOptions{})
	e, err := executor.New(executor.Options{Generators: executor.Registry{"text": gen, "chart": gen}, Sink: mem})
	require.NoError(t, err)
	defer e.Close(ctx)

	r, err := e.Start(ctx, executor.RunRequest{GraphKey: "deck", Graph: g})
	require.NoError(t, err)
	<-started
	_, err = e.Edit(ctx, g, "deck", "text:segment[1]")
	require.NoError(t, err)
	close(release)
	rep, err := r.Wait()
	require.NoError(t, err)
	require.Equal(t, []string{"chart:segment[1]"}, rep.Superseded)

	var msg string
	require.NoError(t, mem.Replay(ctx, r.ID(), 0, func(ev progress.Event) error {
		if ev.Type == progress.NodeSuperseded && ev.Node == "chart:segment[1]" {
			msg = ev.Message
		}
		return nil
	}))
	require.Contains(t, msg, "text:segment[1]")
	require.NotContains(t, msg, "another run")
}
