package executor_test

import (
	"context"
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

// assetPuts is an AssetStore that logs the keys of its Puts.
type assetPuts struct {
	executor.AssetStore
	mu   sync.Mutex
	keys []string
}

func (p *assetPuts) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	p.mu.Lock()
	p.keys = append(p.keys, key)
	p.mu.Unlock()
	return p.AssetStore.Put(ctx, key, a)
}

// puts returns the keys put that hold s.
func (p *assetPuts) puts(s string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, k := range p.keys {
		if strings.Contains(k, s) {
			out = append(out, k)
		}
	}
	return out
}

// A bulk call cancelled because its run's graph was replaced or deleted
// had the grace of a cancel by the host (a tenth of its timeout, at most a
// second) to return what it had made, and those outputs were then stored
// and superseded: the grace is there so that a Resume does not pay for
// them again, and no Resume of such a run can use them (a deleted graph's
// assets were orphans). The call is now abandoned at once, as a single
// generator's is: its context ends, and its late outputs are thrown away
// unstored; its nodes are cancelled.
func TestBulkCallOfAGraphGoneGetsNoGrace(t *testing.T) {
	for _, tc := range []struct {
		name string
		bulk bool
		gone func(t *testing.T, l *lab)
		want error
	}{
		{"bulk, graph deleted", true, deleteLecture, executor.ErrGraphDeleted},
		{"bulk, graph replaced", true, replaceLecture, executor.ErrGraphReplaced},
		{"single, graph deleted", false, deleteLecture, executor.ErrGraphDeleted},
		{"single, graph replaced", false, replaceLecture, executor.ErrGraphReplaced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				var once sync.Once
				// The images' calls make the key's graph gone, and return
				// their outputs once their context ends; the narrations'
				// commits meanwhile find the graph gone.
				goneThenWait := func(ctx context.Context) {
					once.Do(func() { tc.gone(t, l) })
					<-ctx.Done()
				}
				reg := l.registry(l)
				if tc.bulk {
					reg[graph.KindImage] = &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
						goneThenWait(ctx)
						return okOutcomes(reqs)
					}}
				} else {
					reg[graph.KindImage] = executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
						goneThenWait(ctx)
						return executor.Asset{Data: defaultData(req)}, nil
					})
				}
				assets := &assetPuts{AssetStore: l.assets}
				e, err := executor.New(executor.Options{Generators: reg, States: l.states, Assets: assets, Runs: l.runs})
				require.NoError(t, err)
				defer func() { assert.NoError(t, e.Close(context.Background())) }()

				rep, err := l.run(e)
				require.ErrorIs(t, err, tc.want)
				images := ids(l, graph.KindImage, 0, 1, 2)
				assert.Empty(t, assets.puts(graph.KindImage), "outputs stored for a graph gone")
				assert.ElementsMatch(t, images, filterKind(rep.Cancelled, graph.KindImage), "the images cancelled")
				assert.Empty(t, filterKind(rep.Superseded, graph.KindImage), "the images superseded")
			})
		})
	}
}

// A bulk call already in the grace of its timeout when the run finds its
// graph gone is taken back from it: what it returns later is not stored.
func TestBulkCallInItsTimeoutGraceWhenTheGraphGoes(t *testing.T) {
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
				// The images' call times out at 10 s and has a grace of 1 s;
				// the narrations' commits, at 10.5 s, find the graph gone.
				l.latency[graph.KindNarration] = 10500 * time.Millisecond
				var once sync.Once
				reg := l.registry(l)
				reg[graph.KindImage] = &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
					once.Do(func() { tc.gone(t, l) })
					<-ctx.Done()
					time.Sleep(900 * time.Millisecond) // within its grace
					return okOutcomes(reqs)
				}}
				assets := &assetPuts{AssetStore: l.assets}
				e, err := executor.New(executor.Options{Generators: reg, States: l.states, Assets: assets, Runs: l.runs,
					Kinds: map[string]executor.KindOptions{graph.KindImage: {BatchTimeout: 10 * time.Second}}})
				require.NoError(t, err)
				defer func() { assert.NoError(t, e.Close(context.Background())) }()

				rep, err := l.run(e)
				require.ErrorIs(t, err, tc.want)
				assert.Empty(t, assets.puts(graph.KindImage), "outputs stored for a graph gone")
				assert.ElementsMatch(t, ids(l, graph.KindImage, 0, 1, 2), filterKind(rep.Cancelled, graph.KindImage), "the images cancelled")
			})
		})
	}
}

// deleteLecture deletes the lab's graph.
func deleteLecture(t *testing.T, l *lab) {
	_, err := l.states.DeleteGraph(context.Background(), "lecture")
	assert.NoError(t, err)
}

// replaceLecture commits another graph's fingerprint on the lab's key, as
// a run of another graph does.
func replaceLecture(t *testing.T, l *lab) {
	ctx := context.Background()
	snap, err := l.states.Load(ctx, "lecture")
	if !assert.NoError(t, err) {
		return
	}
	other := snap.States[executor.GraphStateID]
	other.InputHash = "another graph"
	_, err = l.states.Commit(ctx, "lecture", snap.Version, []executor.Change{{ID: executor.GraphStateID, State: other}})
	assert.NoError(t, err)
}

// filterKind returns the IDs of ids that are of kind.
func filterKind(ids []string, kind string) []string {
	var out []string
	for _, id := range ids {
		if strings.HasPrefix(id, kind+":") {
			out = append(out, id)
		}
	}
	return out
}
