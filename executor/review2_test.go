package executor_test

import (
	"context"
	"math"
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

// Tests from a review of this file's neighbours' fixes (lifecycle_test.go,
// shutdown_test.go): each failed before its fix.

// The context of a call that returned stays done while the same worker's
// next call runs: each call has a context of its own.
func TestReturnedCallContextStaysDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Lecture(), 30)
		require.NoError(t, err)
		var (
			mu    sync.Mutex
			prev  context.Context
			bad   []string
			calls int
		)
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			mu.Lock()
			calls++
			if prev != nil {
				if prev.Err() == nil {
					bad = append(bad, req.NodeID+": the previous call's ctx.Err() is nil")
				}
				select {
				case <-prev.Done():
				default:
					bad = append(bad, req.NodeID+": the previous call's ctx.Done() is open")
				}
			}
			prev = ctx
			mu.Unlock()
			return executor.Asset{Data: []byte(req.IdempotencyKey), Length: graph.SegmentLength}, nil
		})
		reg := registryFor(g, gen)
		e, err := executor.New(executor.Options{Generators: reg, Workers: 1})
		require.NoError(t, err)
		_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "l", Graph: g})
		require.NoError(t, err)
		require.NoError(t, e.Close(context.Background()))
		mu.Lock()
		defer mu.Unlock()
		assert.Empty(t, bad, "of %d calls", calls)
	})
}

// A goroutine a generator started to watch its ctx, which asks for Done
// only after the worker's next call began, ends at once (its call
// returned), not when the next call ends.
func TestLateWatcherEndsWithItsCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Lecture(), 30)
		require.NoError(t, err)
		var (
			n       atomic.Int64
			began   = make(chan struct{}) // the second call began
			watcher = make(chan struct{}) // the first call's watcher ended
			stuck   atomic.Bool
		)
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			switch n.Add(1) {
			case 1:
				go func() {
					<-began
					<-ctx.Done() // asked late, after the return
					close(watcher)
				}()
			case 2:
				close(began)
				select {
				case <-watcher:
				case <-time.After(time.Minute):
					stuck.Store(true)
				}
			}
			return executor.Asset{Data: []byte(req.IdempotencyKey), Length: graph.SegmentLength}, nil
		})
		reg := registryFor(g, gen)
		e, err := executor.New(executor.Options{Generators: reg, Workers: 1})
		require.NoError(t, err)
		_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "l", Graph: g})
		require.NoError(t, err)
		require.NoError(t, e.Close(context.Background()))
		assert.False(t, stuck.Load(), "the first call's watcher waited on the second call's context")
	})
}

// gatedRuns blocks the first GetRun of one ID until released.
type gatedRuns struct {
	*executor.MemoryRuns
	id      string
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *gatedRuns) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if id == g.id {
		first := false
		g.once.Do(func() { first = true })
		if first {
			close(g.entered)
			<-g.release
		}
	}
	return g.MemoryRuns.GetRun(ctx, id)
}

// A run that starts while a Resume of it reads its record is still
// refused: Resume checks that the run is live after the read.
func TestResumeRacingStartOfTheSameRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		runs := &gatedRuns{MemoryRuns: l.runs, id: "X", entered: make(chan struct{}), release: make(chan struct{})}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets, Runs: runs})
		require.NoError(t, err)
		type res struct {
			r   *executor.Run
			err error
		}
		resumed := make(chan res, 1)
		go func() {
			r, err := e.Resume(context.Background(), l.g, "X")
			resumed <- res{r, err}
		}()
		<-runs.entered // Resume passed its live check, reading X's record
		x, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "X"})
		require.NoError(t, err)
		time.Sleep(time.Second) // X runs its script
		close(runs.release)
		got := <-resumed
		if got.err == nil {
			rec, _ := l.runs.GetRun(context.Background(), "X")
			t.Errorf("Resume of run X, running in this executor, started run %s; X's record now says %s", got.r.ID(), rec.Status)
			got.r.Cancel()
			got.r.Wait()
		}
		x.Cancel()
		x.Wait()
		require.NoError(t, e.Close(context.Background()))
	})
}

// Each settlement event, in Seq order, counts at least the settlements so
// far, across Converge rounds: the emitter lifts only the counts of
// events sent from workers, so a count that goes wrong (a round that
// forgets the one before) is not hidden.
func TestSettlementEventsCountExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var e *executor.Executor
		gen := l.onceAt("asset:video:segment[0]", func() {
			_, err := e.Edit(context.Background(), l.g, "lecture", "asset:music")
			assert.NoError(t, err)
		})
		e = l.executor(executor.Options{Generators: l.registry(gen), Converge: 1})
		rep, err := l.run(e)
		require.NoError(t, err)
		require.Equal(t, 2, rep.Rounds)
		settles := map[progress.Type]bool{progress.NodeSucceeded: true, progress.NodeUnchanged: true,
			progress.NodeFailed: true, progress.NodeSkipped: true, progress.NodeSuperseded: true, progress.NodeCancelled: true}
		l.mu.Lock()
		defer l.mu.Unlock()
		n := 0
		for _, ev := range l.events {
			if settles[ev.Type] {
				n++
				// A transition may settle dependents (skipped) before their
				// events go out: Done may run ahead, never behind.
				assert.GreaterOrEqual(t, ev.Done, n, "seq %d %s %s", ev.Seq, ev.Type, ev.Node)
			}
		}
	})
}

// A graph deleted and its script edited again during a run: the edit
// does not bring the graph back for the run, which stops as for a delete,
// and leaves the store with the edit alone.
func TestDeleteAndReEditStopsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var e *executor.Executor
		gen := l.onceAt("asset:video:segment[0]", func() {
			_, err := l.states.DeleteGraph(context.Background(), "lecture")
			assert.NoError(t, err)
			_, err = e.Edit(context.Background(), l.g, "lecture", "script")
			assert.NoError(t, err)
		})
		e = l.executor(executor.Options{Generators: l.registry(gen)})
		_, err := e.Edit(context.Background(), l.g, "lecture", "script") // script at revision 1
		require.NoError(t, err)
		_, err = l.run(e)
		require.ErrorIs(t, err, executor.ErrGraphDeleted)
		snap := l.snapshot()
		require.Len(t, snap.States, 1)
		st := snap.States["script"]
		assert.Equal(t, dirty.StatusDirty, st.Status)
		assert.Equal(t, int64(1), st.Rev, "the edit after the delete")
	})
}

// A store whose first dated call is a PruneAssets with a very long age
// ("forever") does not take its base time from that cutoff, 292 years
// back and without a monotonic reading: an asset put just now then
// saturated and overflowed, and a prune of one hour deleted it.
func TestPruneForeverFirstThenFreshAssetSurvives(t *testing.T) {
	ctx := context.Background()
	m := executor.NewMemoryStore()
	n, err := m.PruneAssets(ctx, math.MaxInt64)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = m.Put(ctx, "g/node/h", executor.Asset{Data: []byte("x")})
	require.NoError(t, err)
	n, err = m.PruneAssets(ctx, time.Hour)
	require.NoError(t, err)
	assert.Zero(t, n, "an asset put just now was pruned as older than an hour")
}
