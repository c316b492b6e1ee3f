package executor_test

import (
	"context"
	"sync"
	"sync/atomic"
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

// A single node's generator that returns its output just after the run's
// cancel (its provider had made it, and billed it) had that output thrown
// away: its call was abandoned at once, with no grace, while a bulk
// call's outputs returned within its grace are kept. A Resume then paid
// for the node again. The call now has the bulk call's grace at a
// cancel: the output is stored and committed, and the Resume makes only
// what is left. An output returned past the grace, and one returned
// after the graph was replaced or deleted, are still thrown away.
func TestSingleCallCancelledKeepsTheOutputItReturns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration // how long after the cancel the output comes
		kept  bool
	}{
		{"within the grace", 100 * time.Millisecond, true},
		{"past the grace", 2 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				img := ids(l, graph.KindImage, 0)[0]
				var mu sync.Mutex
				made := map[string]int{}
				var resumed atomic.Bool
				late, started := l.stallAt(img, func(ctx context.Context) {
					<-ctx.Done()
					time.Sleep(tc.after) // the provider's answer, already on its way
				})
				gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
					if req.NodeID == img {
						mu.Lock()
						made[req.NodeID]++
						mu.Unlock()
					}
					if resumed.Load() {
						return l.Generate(ctx, req)
					}
					return late.Generate(ctx, req)
				})
				e := l.executor(executor.Options{Generators: l.registry(gen)})
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				<-started
				r.Cancel()
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				st := l.snapshot().States[img]
				if tc.kept {
					assert.Contains(t, rep.Generated, img)
					require.Equal(t, dirty.StatusClean, st.Status)
					ok, err := l.assets.Exists(context.Background(), st.AssetRef)
					require.NoError(t, err)
					assert.True(t, ok)
					succeeded := false
					for _, ev := range l.eventsOf(progress.NodeSucceeded) {
						succeeded = succeeded || ev.Node == img
					}
					assert.True(t, succeeded, "no node.succeeded for %s", img)
				} else {
					assert.Contains(t, rep.Cancelled, img)
					assert.Equal(t, dirty.StatusCancelled, st.Status)
					assert.Contains(t, st.LastError, executor.ErrCancelled.Error())
				}
				l.requireEventOrder(progress.RunCancelled)

				mu.Lock()
				clear(made)
				mu.Unlock()
				resumed.Store(true)
				res, err := e.Resume(context.Background(), l.g, r.ID())
				require.NoError(t, err)
				_, err = res.Wait()
				require.NoError(t, err)
				mu.Lock()
				if tc.kept {
					assert.Zero(t, made[img], "made again by the Resume")
				} else {
					assert.Equal(t, 1, made[img], "made again by the Resume")
				}
				mu.Unlock()
				l.requireAllClean()
			})
		})
	}
}

// A run stopped because its graph was replaced gives a single call no
// grace, as it gives a bulk call none: the output would be superseded.
func TestSingleCallReplacedGetsNoGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		img := ids(l, graph.KindImage, 0)[0]
		release := make(chan struct{})
		gen, started := l.stallAt(img, func(ctx context.Context) {
			<-ctx.Done()
			<-release
		})
		e := l.executor(executor.Options{Generators: l.registry(gen)})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		<-started
		r.CancelCause(executor.ErrGraphReplaced)
		synctest.Wait()
		close(release) // at once: within a cancel's grace
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrGraphReplaced)
		assert.Contains(t, rep.Cancelled, img)
		assert.NotContains(t, rep.Generated, img)
	})
}
