package executor_test

import (
	"context"
	"errors"
	"slices"
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

// A bulk call that honours its context returns at a cancel what it has
// made. Those outputs were thrown away (the call was abandoned at once,
// and every node of it reported cancelled), so that a Resume paid for
// them again, while the same call's outputs were kept after a timeout.
// They are now stored and committed, as a single generator's output
// returned before the cancel is, and the nodes without an output are
// cancelled; a Resume makes only those.
func TestBulkCallCancelledKeepsTheOutputsItReturns(t *testing.T) {
	errLockLost := errors.New("lost the lecture's lock")
	for _, tc := range []struct {
		name     string
		cancel   func(*executor.Run)
		validate bool // a validator refuses image 1
		kept     []int
		cause    error
	}{
		{"Cancel", (*executor.Run).Cancel, false, []int{0, 1}, executor.ErrCancelled},
		{"CancelCause", func(r *executor.Run) { r.CancelCause(errLockLost) }, false, []int{0, 1}, errLockLost},
		{"refused by the validator", (*executor.Run).Cancel, true, []int{0}, executor.ErrCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				images := ids(l, graph.KindImage, 0, 1, 2)
				twoMade := make(chan struct{})
				var once sync.Once
				var mu sync.Mutex
				made := map[string]int{} // outputs made (paid for), by node
				b := &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
					outs := make([]executor.Outcome, len(reqs))
					for i, req := range reqs {
						select {
						case <-time.After(8 * time.Second):
						case <-ctx.Done():
							for k := i; k < len(reqs); k++ {
								outs[k].Err = ctx.Err()
							}
							return outs
						}
						outs[i].Asset = executor.Asset{Data: defaultData(req)}
						mu.Lock()
						made[req.NodeID]++
						n := len(made)
						mu.Unlock()
						if n == 2 {
							once.Do(func() { close(twoMade) })
						}
					}
					return outs
				}}
				reg := l.registry(l)
				reg[graph.KindImage] = b
				opts := executor.Options{Generators: reg}
				var refuse atomic.Bool // the first run's image 1
				refuse.Store(true)
				if tc.validate {
					opts.Kinds = map[string]executor.KindOptions{graph.KindImage: {Validate: func(req executor.Request, _ executor.Asset) error {
						if req.NodeID == images[1] && refuse.Load() {
							return errors.New("blurry")
						}
						return nil
					}}}
				}
				e := l.executor(opts)
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				<-twoMade
				tc.cancel(r)
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)

				var kept, cancelled []string
				for i, id := range images {
					if slices.Contains(tc.kept, i) {
						kept = append(kept, id)
					} else {
						cancelled = append(cancelled, id)
					}
				}
				for _, id := range kept {
					assert.Contains(t, rep.Generated, id)
				}
				for _, id := range cancelled {
					assert.Contains(t, rep.Cancelled, id)
				}
				assert.Equal(t, len(rep.Generated), rep.Record.Counts.Generated)
				snap := l.snapshot()
				for _, id := range kept {
					st := snap.States[id]
					require.Equal(t, dirty.StatusClean, st.Status, id)
					ok, err := l.assets.Exists(context.Background(), st.AssetRef)
					require.NoError(t, err)
					assert.True(t, ok, "asset of %s", id)
				}
				for _, id := range cancelled {
					st := snap.States[id]
					assert.Equal(t, dirty.StatusCancelled, st.Status, id)
					want := tc.cause.Error() // cut short by the cancel
					if id == images[1] {
						want = "blurry" // the refused output's error, as a single node's
					}
					assert.Contains(t, st.LastError, want, id)
				}
				l.requireEventOrder(progress.RunCancelled)
				for _, ev := range l.eventsOf(progress.NodeSucceeded) {
					assert.NotContains(t, cancelled, ev.Node)
				}

				// The Resume pays only for the images not kept.
				mu.Lock()
				clear(made)
				mu.Unlock()
				refuse.Store(false)
				res, err := e.Resume(context.Background(), l.g, r.ID())
				require.NoError(t, err)
				_, err = res.Wait()
				require.NoError(t, err)
				mu.Lock()
				for _, id := range kept {
					assert.Zero(t, made[id]+l.callsOf(id), "%s made again", id)
				}
				mu.Unlock()
				l.requireAllClean()
			})
		})
	}
}
