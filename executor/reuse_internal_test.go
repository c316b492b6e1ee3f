package executor

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// bulkFunc is a bulk generator from a function.
type bulkFunc struct {
	Generator
	fn func(ctx context.Context, reqs []Request) []Outcome
}

func (b bulkFunc) GenerateBatch(ctx context.Context, reqs []Request) []Outcome {
	return b.fn(ctx, reqs)
}

// An executor reused after hundreds of runs cancelled at every point
// (waiting for a limit's room or a rate's start, in a call, in a bulk
// call, in a call that ignores its context, in a retry's backoff, past a
// timeout) has given everything back: each limit's room whole, no call
// and no run counted, no run ID held; its next run gets all the room of
// its limits at once, and Close returns.
func TestExecutorReusedAfterManyCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Lecture(), 60)
		require.NoError(t, err)
		var n atomic.Int64
		asset := func(req Request) Asset {
			a := Asset{Data: fmt.Appendf(nil, "%s@%d#%d", req.NodeID, req.Rev, n.Add(1))}
			if req.ID.Kind == graph.KindNarration {
				a.Length = 10 * time.Second
			}
			return a
		}
		single := GeneratorFunc(func(ctx context.Context, req Request) (Asset, error) {
			switch c := n.Load(); {
			case c%5 == 0: // ignores its context
				time.Sleep(3 * time.Second)
			case c%7 == 0:
				return Asset{}, fmt.Errorf("provider busy")
			default:
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return Asset{}, ctx.Err()
				}
			}
			return asset(req), nil
		})
		bulk := bulkFunc{Generator: single, fn: func(ctx context.Context, reqs []Request) []Outcome {
			select {
			case <-time.After(2 * time.Second):
			case <-ctx.Done():
			}
			out := make([]Outcome, len(reqs))
			for i, req := range reqs {
				out[i].Asset = asset(req)
			}
			return out
		}}
		reg := Registry{}
		for i := range g.Kinds() {
			reg[g.KindName(i)] = single
		}
		reg[graph.KindImage] = bulk
		limits := map[string]int{graph.KindImage: 3, graph.KindVideo: 2, graph.KindNarration: 2}
		e, err := New(Options{Generators: reg, Limits: limits, Grace: time.Second,
			Rates:   map[string]Rate{graph.KindNarration: {Starts: 2, Per: time.Second}},
			Default: KindOptions{Timeout: 2500 * time.Millisecond, Retry: RetryPolicy{InitialInterval: 500 * time.Millisecond}}})
		require.NoError(t, err)

		var wg sync.WaitGroup
		for i := range 300 {
			wg.Go(func() {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				r, err := e.Start(ctx, RunRequest{GraphKey: "lecture-" + strconv.Itoa(i%20), Graph: g})
				if !assert.NoError(t, err) {
					return
				}
				time.Sleep(time.Duration(i%40) * 250 * time.Millisecond)
				if i%2 == 0 {
					r.Cancel()
				} else {
					cancel()
				}
				_, _ = r.Wait()
			})
		}
		wg.Wait()
		// A run leaves e.runs just after its Done closes: Wait may return
		// before.
		require.NoError(t, e.runs.wait(context.Background()), "runs ended, waited for")
		require.NoError(t, e.calls.wait(context.Background()), "calls abandoned, waited for")

		assert.Zero(t, e.runs.n.Load(), "runs counted")
		assert.Zero(t, e.calls.n.Load(), "calls counted")
		e.startMu.Lock()
		assert.Empty(t, e.live, "run IDs held")
		e.startMu.Unlock()
		for key, limit := range limits {
			sem := e.limits[key].sem
			if assert.True(t, sem.TryAcquire(int64(limit)), "the whole room of %s", key) {
				sem.Release(int64(limit))
			}
			assert.Empty(t, e.limits[key].left, "runs of %s counted for the ETA", key)
		}
		// Some calls fail; the run ends regardless, and settles every node.
		rep, _ := e.Run(context.Background(), RunRequest{GraphKey: "after", Graph: g})
		c := rep.Record.Counts
		assert.Equal(t, g.Len(), c.Generated+c.Failed+c.Skipped, "nodes settled by the run after")
		require.NoError(t, e.Close(context.Background()))
	})
}
