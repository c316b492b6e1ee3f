package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A bulk call's Outcome that is entirely zero (no Data, URL or Hash, and
// no Err: an orchestrator that forgot to fill a slot) was committed as a
// clean, empty asset. It is now a failed attempt, an invalid output that
// names the node and says what is expected: the node is retried alone,
// and fails with it when it has no attempt left.
func TestBulkCallsEmptyOutcomeIsAFailedAttempt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		attempts int
	}{
		{"retried alone", 0},
		{"no attempt left", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				image := ids(l, graph.KindImage, 1)[0]
				b := &batchFunc{lab: l, fn: func(_ context.Context, reqs []executor.Request) []executor.Outcome {
					outs := okOutcomes(reqs)
					for k, req := range reqs {
						if req.NodeID == image {
							outs[k] = executor.Outcome{} // the slot left unfilled
						}
					}
					return outs
				}}
				reg := l.registry(l)
				reg[graph.KindImage] = b
				opts := executor.Options{Generators: reg}
				if tc.attempts > 0 {
					opts.Kinds = map[string]executor.KindOptions{graph.KindImage: {Retry: executor.RetryPolicy{MaxAttempts: tc.attempts}}}
				}
				e := l.executor(opts)
				rep, err := l.run(e)
				if tc.attempts == 1 {
					require.ErrorIs(t, err, executor.ErrInvalidOutput)
					assert.ErrorContains(t, err, "node "+image)
					assert.ErrorContains(t, err, "empty")
					assert.Equal(t, []string{image}, rep.Failed)
					st := l.snapshot().States[image]
					assert.Equal(t, dirty.StatusFailed, st.Status)
					assert.Empty(t, st.AssetRef)
					return
				}
				require.NoError(t, err)
				assert.Equal(t, 1, l.callsOf(image), "retried alone with Generate")
				var retrying []progress.Event
				for _, ev := range l.eventsOf(progress.NodeRetrying) {
					if ev.Node == image {
						retrying = append(retrying, ev)
					}
				}
				require.Len(t, retrying, 1)
				assert.Contains(t, retrying[0].Error, "invalid output")
				assert.Contains(t, retrying[0].Error, image)
				l.requireAllClean()
			})
		})
	}
}
