package executor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// firstStarts records the first attempts of the nodes a generator is
// called for (retries are not counted by Options.Rates), and fails the
// first attempt of the nodes failFirst picks, so that retries mix in.
type firstStarts struct {
	took      time.Duration
	failFirst func(id string) bool
	mu        sync.Mutex
	starts    []time.Time
}

func (f *firstStarts) one(req executor.Request) executor.Outcome {
	if req.Attempt == 1 {
		f.mu.Lock()
		f.starts = append(f.starts, time.Now())
		f.mu.Unlock()
		if f.failFirst != nil && f.failFirst(req.NodeID) {
			return executor.Outcome{Err: errors.New("flaky")}
		}
	}
	return executor.Outcome{Asset: executor.Asset{Data: []byte(req.NodeID)}}
}

func (f *firstStarts) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	time.Sleep(f.took)
	o := f.one(req)
	return o.Asset, o.Err
}

func (f *firstStarts) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	out := make([]executor.Outcome, len(reqs))
	for i, r := range reqs {
		out[i] = f.one(r)
	}
	time.Sleep(f.took)
	return out
}

func (f *firstStarts) sorted() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.SortedFunc(slices.Values(f.starts), time.Time.Compare)
}

// Many runs at once, of two rated keys (one with a bulk generator and a
// limit, one with singles), with retries and runs cancelled part way:
// the first attempts of each key keep to its rate in any window, every
// run ends, and nothing is left waiting (goleak, in TestMain).
func TestQuotaHoldsUnderManyRuns(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 4},
		{Name: "image", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "img", Concurrency: 3},
		{Name: "mix", Deps: []graph.Dep{{Kind: "voice", Scope: graph.ScopeAllSegments}, {Kind: "image", Scope: graph.ScopeAllSegments}}},
	}}
	g, err := graph.Build(tm, 6*graph.SegmentSeconds)
	require.NoError(t, err)
	plain := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	rates := map[string]executor.Rate{"tts": {Starts: 3, Per: 200 * time.Millisecond}, "img": {Starts: 2, Per: 70 * time.Millisecond}}
	for _, maxBatch := range []int{0, 2} {
		t.Run(fmt.Sprint("maxBatch=", maxBatch), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				odd := func(id string) bool { return strings.HasSuffix(id, "1") || strings.HasSuffix(id, "3") }
				tts := &firstStarts{took: 20 * time.Millisecond, failFirst: odd}
				img := &firstStarts{took: 5 * time.Millisecond, failFirst: odd}
				e, err := executor.New(executor.Options{
					Generators: executor.Registry{"brief": plain, "mix": plain, "voice": tts, "image": img},
					Rates:      rates,
					Limits:     map[string]int{"tts": 2},
					MaxBatch:   maxBatch,
					Default:    executor.KindOptions{Retry: executor.RetryPolicy{InitialInterval: 10 * time.Millisecond}},
				})
				require.NoError(t, err)
				const runs = 6
				var wg sync.WaitGroup
				for i := range runs {
					wg.Go(func() {
						ctx, cancel := context.WithCancel(context.Background())
						defer cancel()
						if i%3 == 2 { // cancelled part way, some waiting for the quota
							time.AfterFunc(time.Duration(100*i)*time.Millisecond, cancel)
						}
						_, err := e.Run(ctx, executor.RunRequest{GraphKey: fmt.Sprint("g", i), Graph: g})
						if i%3 != 2 {
							assert.NoError(t, err)
						}
					})
				}
				wg.Wait()
				require.NoError(t, e.Close(context.Background()))
				for key, f := range map[string]*firstStarts{"tts": tts, "img": img} {
					r := rates[key]
					starts := f.sorted()
					assert.NotEmpty(t, starts)
					assert.LessOrEqual(t, mostInWindow(starts, r.Per), r.Starts, "%s: first attempts within %v", key, r.Per)
				}
			})
		})
	}
}

// callSizes records the size of each bulk call.
type callSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (c *callSizes) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	return executor.Asset{Data: []byte(req.NodeID)}, nil
}

func (c *callSizes) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	c.mu.Lock()
	c.sizes = append(c.sizes, len(reqs))
	c.mu.Unlock()
	out := make([]executor.Outcome, len(reqs))
	for i, r := range reqs {
		out[i].Asset = executor.Asset{Data: []byte(r.NodeID)}
	}
	return out
}

// A bulk call never takes more nodes than its key's Rate.Starts, however
// many slots the key has free (the quota counts a larger call as
// Rate.Starts, which would break the window rule): each run's schedule
// allows at most Starts starts of the key in a window, a call's nodes
// included.
func TestBulkCallsNoLargerThanTheRate(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 8},
	}}
	g, err := graph.Build(tm, 12*graph.SegmentSeconds)
	require.NoError(t, err)
	plain := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	for _, mode := range []executor.Mode{executor.Dataflow, executor.Staged} {
		synctest.Test(t, func(t *testing.T) {
			voice := &callSizes{}
			e, err := executor.New(executor.Options{Mode: mode,
				Generators: executor.Registry{"brief": plain, "voice": voice},
				Rates:      map[string]executor.Rate{"tts": {Starts: 3, Per: time.Second}},
			})
			require.NoError(t, err)
			var wg sync.WaitGroup
			for i := range 3 {
				wg.Go(func() {
					_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: fmt.Sprint("g", i), Graph: g})
					assert.NoError(t, err)
				})
			}
			wg.Wait()
			require.NoError(t, e.Close(context.Background()))
			require.NotEmpty(t, voice.sizes)
			assert.Equal(t, 3, slices.Max(voice.sizes), "mode %v: call sizes %v: want calls of 3 at most, and some of 3", mode, voice.sizes)
		})
	}
}
