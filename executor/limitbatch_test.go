package executor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// sizedBulk is a bulk generator that records the size of each call.
type sizedBulk struct {
	mu    sync.Mutex
	sizes []int
}

func (b *sizedBulk) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	b.mu.Lock()
	b.sizes = append(b.sizes, 1)
	b.mu.Unlock()
	time.Sleep(30 * time.Second)
	return executor.Asset{Data: []byte(req.NodeID)}, nil
}

func (b *sizedBulk) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(reqs))
	b.mu.Unlock()
	time.Sleep(30 * time.Second)
	out := make([]executor.Outcome, len(reqs))
	for i, r := range reqs {
		out[i].Asset = executor.Asset{Data: []byte(r.NodeID)}
	}
	return out
}

// A batch key whose limit on calls in flight (Options.Limits, 3) is
// below its concurrency (4) ran 4 of its nodes at once all the same: the
// fourth started (its event said so) and then waited for room, and a
// bulk generator got batches of 3 and 1 in turn, 4 calls for 8 nodes
// where 3 would do (an embedder's finding). A run now keeps to the lower
// of the two.
func TestLimitBelowConcurrencyKeepsBatchesWhole(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "notes", PerSegment: true},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "notes", Scope: graph.ScopeSameSegment}}, BatchKey: "tts", Concurrency: 4},
	}}
	g, err := graph.Build(tm, 80)
	require.NoError(t, err)
	for _, mode := range []executor.Mode{executor.Staged, executor.Dataflow} {
		for _, bulk := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v bulk=%v", mode, bulk), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					b := &sizedBulk{}
					var voice executor.Generator = b
					if !bulk {
						voice = executor.GeneratorFunc(b.Generate)
					}
					var mu sync.Mutex
					running, most := 0, 0
					sink := progress.SinkFunc(func(_ context.Context, evs ...progress.Event) error {
						mu.Lock()
						defer mu.Unlock()
						for _, ev := range evs {
							if len(ev.Node) < 5 || ev.Node[:5] != "voice" {
								continue
							}
							switch ev.Type {
							case progress.NodeStarted:
								running++
								most = max(most, running)
							case progress.NodeSucceeded:
								running--
							}
						}
						return nil
					})
					notes := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
						return executor.Asset{Data: []byte("n")}, nil
					})
					e, err := executor.New(executor.Options{Generators: executor.Registry{"notes": notes, "voice": voice},
						Mode: mode, Limits: map[string]int{"tts": 3}, Sink: sink})
					require.NoError(t, err)
					defer func() { require.NoError(t, e.Close(context.Background())) }()
					start := time.Now()
					_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "k", Graph: g})
					require.NoError(t, err)
					// Three rounds of calls of 30 s: 3, 3 and 2 nodes (and
					// the workers' short waits for instant notes).
					assert.InDelta(t, 90*time.Second, time.Since(start), float64(time.Second))
					switch {
					case bulk && mode == executor.Staged:
						assert.Equal(t, []int{3, 3, 2}, b.sizes)
					case bulk:
						// Dataflow takes the voices as their notes end: its
						// batches may be smaller, never over the limit.
						total := 0
						for _, n := range b.sizes {
							assert.LessOrEqual(t, n, 3)
							total += n
						}
						assert.Equal(t, 8, total)
					default:
						assert.Len(t, b.sizes, 8)
					}
					mu.Lock()
					defer mu.Unlock()
					assert.Equal(t, 3, most, "voices started at once")
				})
			})
		}
	}
}

// The executor kept the host's Options.Limits map, not a copy: its
// semaphores were made from the map New was given, while each round read
// the map again for its caps and its batch sizes, so a host that changed
// the map after New (reusing its Options for another executor, say) got
// a run that hung forever (a limit deleted or raised: a bulk call of 4
// nodes waited for 4 calls in flight under a limit of 3), or a panic
// ("executor: schedule: invalid config") for a limit set to 0, besides a
// data race with the runs. New now copies it, as it copies the other maps
// that a run reads.
func TestLimitsAreCopiedByNew(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "notes", PerSegment: true},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "notes", Scope: graph.ScopeSameSegment}}, BatchKey: "tts", Concurrency: 4},
	}}
	g, err := graph.Build(tm, 80)
	require.NoError(t, err)
	for _, change := range []string{"deleted", "set to 0", "raised"} {
		t.Run(change, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := &sizedBulk{}
				notes := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
					return executor.Asset{Data: []byte("n")}, nil
				})
				// Staged: every voice is ready when the first is taken, so
				// the batches are as large as the limit allows.
				opts := executor.Options{Generators: executor.Registry{"notes": notes, "voice": b},
					Limits: map[string]int{"tts": 3}, Mode: executor.Staged}
				e, err := executor.New(opts)
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(context.Background())) }()
				switch change {
				case "deleted":
					delete(opts.Limits, "tts")
				case "set to 0":
					opts.Limits["tts"] = 0
				case "raised":
					opts.Limits["tts"] = 10
				}
				_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "k", Graph: g})
				require.NoError(t, err)
				assert.Equal(t, []int{3, 3, 2}, b.sizes)
			})
		})
	}
}
