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
)

// failingPuts is an AssetStore whose Puts of a kind fail while failing,
// and which counts those that succeed.
type failingPuts struct {
	executor.AssetStore
	kind    string
	mu      sync.Mutex
	failing bool
	failed  func() // called at the first failure
	ok      int
}

func (p *failingPuts) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	if !strings.Contains(key, "/"+p.kind+":") {
		return p.AssetStore.Put(ctx, key, a)
	}
	p.mu.Lock()
	if p.failing {
		f := p.failed
		p.failed = nil
		p.mu.Unlock()
		if f != nil {
			f()
		}
		return "", errors.New("asset store unavailable")
	}
	p.ok++
	p.mu.Unlock()
	return p.AssetStore.Put(ctx, key, a)
}

func (p *failingPuts) puts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok
}

// A node whose output was made but not put, in its retry's backoff when
// the run finds its graph gone, does not put it again: no resume could
// use it (a deleted graph's would be an orphan), as for a bulk call's
// outputs of a graph gone. A host's cancel still puts it once more.
func TestUnputOutputOfAGraphGoneIsNotPut(t *testing.T) {
	for _, tc := range []struct {
		name string
		gone func(t *testing.T, l *lab)
		want error
	}{
		{"deleted", deleteLecture, executor.ErrGraphDeleted},
		{"replaced", replaceLecture, executor.ErrGraphReplaced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				// The narrations end at 35 s, and their commit finds the
				// graph gone; the images, made at 28 s, fail their Puts
				// and are in their backoff (10 s) then.
				l.latency[graph.KindNarration] = 15 * time.Second
				assets := &failingPuts{AssetStore: l.assets, kind: graph.KindImage, failing: true}
				assets.failed = func() {
					go func() {
						time.Sleep(4 * time.Second) // past the store call's own retries
						tc.gone(t, l)
						assets.mu.Lock()
						assets.failing = false
						assets.mu.Unlock()
					}()
				}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets, Runs: l.runs,
					Kinds: map[string]executor.KindOptions{graph.KindImage: {Retry: executor.RetryPolicy{InitialInterval: 10 * time.Second}}}})
				require.NoError(t, err)
				defer func() { assert.NoError(t, e.Close(context.Background())) }()

				rep, err := l.run(e)
				require.ErrorIs(t, err, tc.want)
				assert.Zero(t, assets.puts(), "outputs put for a graph gone")
				assert.ElementsMatch(t, ids(l, graph.KindImage, 0, 1, 2), filterKind(rep.Cancelled, graph.KindImage), "the images cancelled")
				assert.Empty(t, filterKind(rep.Superseded, graph.KindImage), "the images superseded")
			})
		})
	}
}
