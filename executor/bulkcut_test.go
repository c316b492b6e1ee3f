package executor_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A bulk call whose context ends (its timeout, or the run's cancel) and
// that returns in its grace with the slots of the nodes it did not get to
// left unfilled cut those nodes short, as one that set their Err to the
// context's error did. They were failed as invalid outputs: the node
// cancelled by a Cancel was recorded with "invalid output: ... is empty",
// and the one retried after a timeout said so, blaming an output the
// generator never made. They now get the cut's error: the run's cause,
// or the timeout.
func TestBulkCallsUnfilledSlotInItsGraceIsCutShort(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout bool // the call's timeout ends it, not a cancel
	}{
		{"cancel", false},
		{"timeout", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				images := ids(l, graph.KindImage, 0, 1, 2)
				oneMade := make(chan struct{})
				var once sync.Once
				var calls sync.Map // bulk calls, by their first node
				b := &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
					outs := make([]executor.Outcome, len(reqs))
					if _, again := calls.LoadOrStore(reqs[0].NodeID, true); again {
						return okOutcomes(reqs)
					}
					for i, req := range reqs {
						select {
						case <-time.After(8 * time.Second):
						case <-ctx.Done():
							return outs // the rest left unfilled
						}
						outs[i].Asset = executor.Asset{Data: defaultData(req)}
						once.Do(func() { close(oneMade) })
					}
					return outs
				}}
				reg := l.registry(l)
				reg[graph.KindImage] = b
				opts := executor.Options{Generators: reg}
				if tc.timeout {
					opts.Kinds = map[string]executor.KindOptions{graph.KindImage: {Timeout: 12 * time.Second}}
				}
				e := l.executor(opts)
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				if tc.timeout {
					_, err := r.Wait()
					require.NoError(t, err)
					for _, id := range images[1:] {
						var errs []string
						for _, ev := range l.eventsOf(progress.NodeRetrying) {
							if ev.Node == id {
								errs = append(errs, ev.Error)
							}
						}
						require.Len(t, errs, 1, id)
						assert.Contains(t, errs[0], executor.ErrTimeout.Error(), id)
						assert.NotContains(t, errs[0], "invalid output", id)
					}
					l.requireAllClean()
					return
				}
				<-oneMade
				r.Cancel()
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				assert.Contains(t, rep.Generated, images[0])
				snap := l.snapshot()
				for _, id := range images[1:] {
					assert.Contains(t, rep.Cancelled, id)
					st := snap.States[id]
					assert.Equal(t, dirty.StatusCancelled, st.Status, id)
					assert.Equal(t, executor.ErrCancelled.Error(), st.LastError, id)
				}
				for _, ev := range l.eventsOf(progress.NodeCancelled) {
					assert.NotContains(t, ev.Error, "invalid output", ev.Node)
				}
			})
		})
	}
}
