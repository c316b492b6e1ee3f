package executor_test

import (
	"context"
	"errors"
	"strings"
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

// putFailures is an AssetStore whose first n Puts of keys holding match
// fail.
type putFailures struct {
	executor.AssetStore
	match string
	mu    sync.Mutex
	n     int
}

func (p *putFailures) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	if strings.Contains(key, p.match) {
		p.mu.Lock()
		fail := p.n > 0
		p.n--
		p.mu.Unlock()
		if fail {
			return "", errors.New("asset store: 503")
		}
	}
	return p.AssetStore.Put(ctx, key, a)
}

// A node whose output is made but whose Put kept failing retries the Put
// alone, after its backoff: no generator call, and no start of its batch
// key's quota. Since 3e9b2fc the ETA took every node in a backoff as one
// whose retry takes a start of its key, and so, under a quota whose
// window was full, added the rest of the window (55 s here) to an upload
// that takes a moment.
func TestETAOfAPutRetryTakesNoStart(t *testing.T) {
	const (
		voice = 5 * time.Second
		per   = time.Minute
	)
	for _, bulk := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "bulk"}[bulk], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, err := graph.Build(graph.Template{Kinds: []graph.Kind{
					{Name: "brief"},
					{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}},
						BatchKey: "tts", Concurrency: 2},
				}}, 2*graph.SegmentSeconds)
				require.NoError(t, err)
				sink := new(eventLog)
				gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					if req.ID.Kind == "voice" {
						time.Sleep(voice)
					}
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				var tts executor.Generator = gen
				if bulk {
					tts = bulkOf{gen}
				}
				// The first voice's Put fails until the store call's
				// retries are used up (5 calls): its node retries the Put.
				assets := &putFailures{AssetStore: executor.NewMemoryAssets(), match: "/voice:segment[0]/", n: 5}
				e, err := executor.New(executor.Options{
					Generators: executor.Registry{"brief": gen, "voice": tts},
					Assets:     assets,
					Rates:      map[string]executor.Rate{"tts": {Starts: 2, Per: per}},
					Kinds:      map[string]executor.KindOptions{"voice": {Estimate: voice}, "brief": {Estimate: time.Millisecond}},
					Default:    executor.KindOptions{Retry: executor.RetryPolicy{InitialInterval: 10 * time.Millisecond}},
					Sink:       sink,
				})
				require.NoError(t, err)
				_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "g", Graph: g})
				require.NoError(t, err)
				require.NoError(t, e.Close(context.Background()))
				evs := sink.events()
				at := firstEvent(evs, func(ev progress.Event) bool { return ev.Type == progress.NodeRetrying })
				require.NotNil(t, at, "the Put's retry")
				end := evs[len(evs)-1]
				require.Equal(t, progress.RunFinished, end.Type)
				// The run ends a moment after the retry: the ETA then is the
				// estimate of the voice at most, not the quota's window.
				assert.Less(t, at.ETA, per/2, "the ETA at the Put's retry (the run ended %v later)", end.Time.Sub(at.Time))
			})
		})
	}
}
