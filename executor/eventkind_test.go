package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// Every event about a node names the node's kind, so that a view groups
// nodes by kind (a progress bar per kind) without parsing their IDs:
// starts, retries, notes, successes, failures and skips alike. Events
// that are about no node have none.
func TestEventsNameTheNodesKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := everyNodeEvent(t)

		l.mu.Lock()
		defer l.mu.Unlock()
		seen := map[progress.Type]bool{}
		for _, ev := range l.events {
			if ev.Node == "" {
				assert.Empty(t, ev.Kind, "event %d, %s, about no node", ev.Seq, ev.Type)
				continue
			}
			id, err := graph.ParseID(ev.Node)
			require.NoError(t, err)
			assert.Equal(t, id.Kind, ev.Kind, "event %d, %s %s", ev.Seq, ev.Type, ev.Node)
			seen[ev.Type] = true
		}
		for _, typ := range []progress.Type{progress.NodeStarted, progress.NodeRetrying, progress.Message,
			progress.NodeSucceeded, progress.NodeFailed, progress.NodeSkipped} {
			assert.True(t, seen[typ], "no %s event about a node", typ)
		}
	})
}

// everyNodeEvent runs a lab of 30 s whose run has every kind of event
// about a node: starts, a retry (an image's), notes, successes, a
// failure (a narration's) and the skips it makes.
func everyNodeEvent(t *testing.T) *lab {
	t.Helper()
	l := newLab(t, 30)
	flaky := 0
	l.set("asset:image:segment[1]", func(context.Context, executor.Request) ([]byte, error) {
		if flaky++; flaky == 1 {
			return nil, errors.New("image api: 503")
		}
		return nil, nil
	})
	l.set("asset:narration:segment[2]", fail(executor.Permanent(errors.New("voice banned"))))
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if req.Progress != nil {
			req.Progress.Report(executor.Note{Message: "working"})
		}
		return l.Generate(ctx, req)
	})
	e := l.executor(executor.Options{Generators: l.registry(gen),
		Kinds: map[string]executor.KindOptions{graph.KindImage: {Retry: executor.RetryPolicy{MaxAttempts: 2}}}})
	_, err := l.run(e)
	require.Error(t, err)
	return l
}
