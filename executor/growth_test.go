package executor_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// These tests check what a host that embeds one executor for weeks keeps:
// the memory held is bounded by what is live (graphs, their states and
// assets, the records not pruned), never by the runs that came and went.
// They measure the heap after a collection, against bounds proportional
// to the live objects, never times.

// heapNow returns the bytes of live heap objects, after a collection.
func heapNow() int64 {
	runtime.GC()
	runtime.GC() // the first may leave finalizers' objects for the second
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// A MemoryStates holding many small graphs (the states of short
// lectures) costs memory in proportion to their states. Before, each
// graph's states sat in a chunk of 128 slots whatever its size: about
// 18 KB for a 30-second lecture's 12 states, 1.5 KB a state.
func TestMemoryStatesCostPerState(t *testing.T) {
	const graphs, nodes = 2000, 12
	ids := make([]string, nodes)
	for i := range ids {
		ids[i] = fmt.Sprintf("asset:image:segment[%d]", i)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		store func() executor.StateStore
	}{
		{"MemoryStates", func() executor.StateStore { return executor.NewMemoryStates() }},
		{"MemoryStore", func() executor.StateStore { return executor.NewMemoryStore() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := heapNow()
			s := tc.store()
			for g := range graphs {
				changes := make([]executor.Change, nodes)
				for i, id := range ids {
					changes[i] = executor.Change{ID: id, State: dirty.State{Status: dirty.StatusClean, Rev: 1,
						InputHash: "in", OutputHash: "out", AssetRef: "mem:ref"}}
				}
				_, err := s.Commit(ctx, "lecture-"+strconv.Itoa(g), 0, changes)
				require.NoError(t, err)
			}
			perState := (heapNow() - before) / (graphs * nodes)
			runtime.KeepAlive(s)
			t.Logf("%d bytes a state", perState)
			// A state's slot is 144 bytes, its index entry a few dozen,
			// and a graph's map and headers shared by its 12 states.
			assert.Less(t, perState, int64(400), "bytes of heap a stored state")
		})
	}
}

// flakySink fails every seventh publish, as a progress sink that goes
// down now and then does.
type flakySink struct{ n atomic.Int64 }

func (s *flakySink) Publish(context.Context, ...progress.Event) error {
	if s.n.Add(1)%7 == 0 {
		return errors.New("sink down")
	}
	return nil
}

// soak runs n short runs of g over keys graph keys, eight at a time, as a
// host does over weeks: some after an edit, some cancelled and then
// resumed, some with a node that fails and is then rerun, some after the
// graph was deleted; the rest plain. It then deletes every graph and
// prunes every record and asset, as a host's retention does once they
// are old. ctx is the host's, which lives as long as the executor: a run
// must not leave anything hanging on it.
func soak(ctx context.Context, t *testing.T, e *executor.Executor, ms *executor.MemoryStore, g *graph.Graph, keys, n, from int) {
	t.Helper()
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8)
	for i := from; i < from+n; i++ {
		key := "lecture-" + strconv.Itoa(i%keys)
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			switch i % 10 {
			case 1:
				_, err := e.Edit(ctx, g, key, "asset:narration:segment[1]")
				assert.NoError(t, err)
			case 5:
				_, err := ms.DeleteGraph(ctx, key)
				assert.NoError(t, err)
			}
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			r, err := e.Start(rctx, executor.RunRequest{GraphKey: key, Graph: g, TriggeredBy: "soak"})
			if err != nil {
				// Another run of the key committed between this one's
				// load and its commit, 65 times: rare, and no leak.
				assert.ErrorIs(t, err, executor.ErrConflict)
				return
			}
			if i%10 == 3 {
				cancel()
			}
			_, err = r.Wait()
			var again *executor.Run
			var re *executor.RunError
			switch {
			case i%10 == 3:
				again, err = e.Resume(ctx, g, r.ID())
			case errors.As(err, &re):
				again, err = e.RerunFailed(ctx, g, r.ID())
			default:
				return
			}
			if err == nil {
				_, _ = again.Wait()
			}
		})
	}
	wg.Wait()
	for k := range keys {
		_, err := ms.DeleteGraph(ctx, "lecture-"+strconv.Itoa(k))
		require.NoError(t, err)
	}
	_, err := ms.PruneRuns(ctx, 0)
	require.NoError(t, err)
	_, err = ms.PruneAssets(ctx, 0)
	require.NoError(t, err)
}

// An executor that has run 8,000 runs (edits, cancels and resumes,
// failures and reruns, deletes, a sink that fails, rates and limits)
// holds nothing more for them once their graphs are deleted and their
// records and assets pruned: no goroutine, and less than a few bytes of
// heap a run, whatever the number of runs. A map kept by run ID, a
// watcher, a timer or a semaphore's waiter left behind by each run would
// hold more.
func TestLongLivedExecutorKeepsNothingPerRun(t *testing.T) {
	const keys, runs = 100, 2000
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	var calls atomic.Int64
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		c := calls.Add(1)
		if req.ID.Kind == graph.KindVideo && c%13 == 0 {
			return executor.Asset{}, executor.Permanent(errors.New("provider refused"))
		}
		if err := ctx.Err(); err != nil {
			return executor.Asset{}, err
		}
		a := executor.Asset{Data: fmt.Appendf(nil, "%s@%d#%d", req.NodeID, req.Rev, c%3)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second
		}
		return a, nil
	})
	ms := executor.NewMemoryStore()
	e, err := executor.New(executor.Options{Generators: registryFor(g, gen), States: ms, Assets: ms, Runs: ms,
		Sink: &flakySink{}, Limits: map[string]int{graph.KindImage: 3},
		Rates: map[string]executor.Rate{graph.KindNarration: {Starts: 64, Per: time.Microsecond}}})
	require.NoError(t, err)
	ignore := goleak.IgnoreCurrent()

	host, stop := context.WithCancel(context.Background())
	defer stop()
	// Two rounds warm up: the tombstones, the pools, and the stores' maps
	// and slices at the size of their busiest moment.
	soak(host, t, e, ms, g, keys, runs, 0)
	soak(host, t, e, ms, g, keys, runs, runs)
	warm := heapNow()
	soak(host, t, e, ms, g, keys, runs, 2*runs)
	soak(host, t, e, ms, g, keys, runs, 3*runs)
	grown := heapNow() - warm
	t.Logf("heap grew %d bytes over %d runs", grown, 2*runs)
	// A busier moment than any before may still grow a map or a slice of
	// the stores by some 100 KB; a map entry by run ID alone would add 40
	// bytes a run.
	assert.Less(t, grown, int64(2*runs*20), "bytes of heap kept over %d runs", 2*runs)
	require.NoError(t, e.Close(context.Background()))
	goleak.VerifyNone(t, ignore)
}
