package executor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// With the state store down for 3 s as a node's result was committed, the
// commit gave up after its store retries (1.5 s of waits), and the node
// failed at attempt 1 of 3 ("record result: ..."): the run failed, and
// its resume called the generator again, though the output was made,
// paid for and stored. The node's next attempts now commit the result
// again, after the kind's backoff, each counting as an attempt (a
// node.retrying says so), and the generator is called once; a node whose
// attempts run out with the store still down fails as before, its
// generator still called once. A cancel of the run in the backoff ends
// it: the commit is made again at once, its output still recorded once
// the store is back, within Options.StoreTimeout.
func TestResultsCommitIsRetriedAsTheNodesNextAttempts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outage   time.Duration
		attempts int           // the failed node's, with an outage longer than them
		cancelAt time.Duration // after b's call, in its commit's backoff
	}{
		{name: "outage of 3s", outage: 3 * time.Second},
		{name: "outage of an hour", outage: time.Hour, attempts: 3},
		{name: "cancel in the backoff", outage: 2500 * time.Millisecond, cancelAt: 1600 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "a"},
					{Name: "b", Deps: []graph.Dep{{Kind: "a", Scope: graph.ScopeGlobal}}}}}, graph.SegmentSeconds)
				require.NoError(t, err)
				store := &downFor{MemoryStore: executor.NewMemoryStore(), down: "Commit", span: tc.outage}
				var calls atomic.Int32
				gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					if req.NodeID == "b" {
						calls.Add(1)
						store.armed.Store(true) // down from b's commit on
						if tc.cancelAt > 0 {
							time.AfterFunc(tc.cancelAt, cancel)
						}
					}
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				sink := progress.NewMemory(progress.MemoryOptions{})
				e, err := executor.New(executor.Options{Generators: registryFor(g, gen),
					States: store, Assets: store, Runs: store, Sink: sink, StoreTimeout: 2 * time.Hour,
					Logger: slog.New(slog.DiscardHandler)})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(context.Background())) }()
				rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "key", Graph: g, RunID: "r1"})
				assert.EqualValues(t, 1, calls.Load(), "b made once")
				var retries int
				require.NoError(t, sink.Replay(context.Background(), "r1", 0, func(ev progress.Event) error {
					if ev.Type == progress.NodeRetrying && ev.Node == "b" {
						retries++
					}
					return nil
				}))
				if tc.cancelAt > 0 {
					require.ErrorIs(t, err, executor.ErrCancelled)
					assert.Equal(t, []string{"a", "b"}, rep.Generated, "b's output recorded after the cancel")
					// Its second attempt, its backoff cut short, and its
					// third, at once, if the second's store retries did not
					// outlast the store's outage (they are jittered).
					assert.Contains(t, []int{1, 2}, retries)
					return
				}
				if tc.attempts == 0 {
					require.NoError(t, err)
					assert.Equal(t, []string{"a", "b"}, rep.Generated)
					assert.Greater(t, rep.Record.Counts.Attempts, 2, "b's commit took attempts of its own")
					assert.Equal(t, rep.Record.Counts.Attempts-2, retries, "a node.retrying for each")
					snap, err := store.MemoryStore.Load(context.Background(), "key")
					require.NoError(t, err)
					assert.Equal(t, rep.Record.Counts.Attempts-1, snap.States["b"].Attempts, "b's state counts them")
					return
				}
				var re *executor.RunError
				require.ErrorAs(t, err, &re)
				require.Len(t, re.Failed, 1)
				assert.Equal(t, "b", re.Failed[0].Node)
				assert.Equal(t, tc.attempts, re.Failed[0].Attempt)
				assert.ErrorContains(t, re.Failed[0], "record result")
				assert.True(t, errors.Is(re.Failed[0], errRefused))
				assert.Equal(t, tc.attempts-1, retries)
			})
		})
	}
}

// clearDown is a state store whose commits that make node id clean fail
// with a lost connection for span from the first of them once armed, as
// the state store went down as that node's result was committed; the
// other commits go through.
type clearDown struct {
	*executor.MemoryStore
	id    string
	span  time.Duration
	armed atomic.Bool
	mu    sync.Mutex
	since time.Time
}

func (o *clearDown) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	for _, c := range changes {
		if c.ID == o.id && c.State.Status == dirty.StatusClean && o.armed.Load() {
			o.mu.Lock()
			if o.since.IsZero() {
				o.since = time.Now()
			}
			down := time.Since(o.since) < o.span
			o.mu.Unlock()
			if down {
				return 0, errRefused
			}
		}
	}
	return o.MemoryStore.Commit(ctx, key, expect, changes)
}

// A node whose commit failed past its store retries waited out its kind's
// backoff before its next attempt committed it again holding the run's
// commits: the results of the other nodes, made meanwhile with the state
// store back, were not committed, and the nodes that depend on them did
// not start, until that backoff ended (a minute here: d started after
// 61 s, not 3 s). The results that queue meanwhile are now committed as
// they come; a run whose graph such a commit finds replaced stops, the
// node waiting to commit again superseded, its output not committed into
// the new graph's states.
func TestCommitBackoffHoldsNoOtherCommits(t *testing.T) {
	for _, replaced := range []bool{false, true} {
		t.Run(fmt.Sprintf("replaced=%v", replaced), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				kinds := []graph.Kind{{Name: "a"}, {Name: "b", Deps: []graph.Dep{{Kind: "a", Scope: graph.ScopeGlobal}}},
					{Name: "c"}, {Name: "d", Deps: []graph.Dep{{Kind: "c", Scope: graph.ScopeGlobal}}}}
				g, err := graph.Build(graph.Template{Kinds: kinds}, graph.SegmentSeconds)
				require.NoError(t, err)
				g2, err := graph.Build(graph.Template{Kinds: append(slices.Clone(kinds), graph.Kind{Name: "e"})}, graph.SegmentSeconds)
				require.NoError(t, err)
				store := &clearDown{MemoryStore: executor.NewMemoryStore(), id: "b", span: 2 * time.Second}
				start := time.Now()
				var dAt time.Time
				gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					switch req.NodeID {
					case "b":
						store.armed.Store(true)
					case "c":
						time.Sleep(3 * time.Second) // done with the state store back
					case "d":
						dAt = time.Now()
					}
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				// The new graph's run makes a as this one did, and fails b.
				gen2 := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					if req.NodeID == "b" {
						return executor.Asset{}, executor.Permanent(errors.New("refused"))
					}
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				e2, err := executor.New(executor.Options{Generators: registryFor(g2, gen2),
					States: store, Assets: store, Runs: store, Logger: slog.New(slog.DiscardHandler)})
				require.NoError(t, err)
				defer func() { require.NoError(t, e2.Close(ctx)) }()
				var once sync.Once
				var wg sync.WaitGroup
				sink := progress.SinkFunc(func(_ context.Context, evs ...progress.Event) error {
					for _, ev := range evs {
						if replaced && ev.Type == progress.NodeRetrying && ev.Node == "b" {
							once.Do(func() {
								wg.Go(func() {
									_, err := e2.Run(ctx, executor.RunRequest{GraphKey: "key", Graph: g2, RunID: "r2"})
									assert.Error(t, err, "b fails in the new graph's run")
								})
							})
						}
					}
					return nil
				})
				e, err := executor.New(executor.Options{Generators: registryFor(g, gen),
					States: store, Assets: store, Runs: store, Sink: sink, Logger: slog.New(slog.DiscardHandler),
					Kinds: map[string]executor.KindOptions{"b": {Retry: executor.RetryPolicy{InitialInterval: time.Minute}}}})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "key", Graph: g, RunID: "r1"})
				wg.Wait()
				snap, lerr := store.MemoryStore.Load(ctx, "key")
				require.NoError(t, lerr)
				if replaced {
					require.ErrorIs(t, err, executor.ErrGraphReplaced)
					assert.Contains(t, rep.Superseded, "b")
					assert.Equal(t, dirty.StatusFailed, snap.States["b"].Status, "the new graph's run's b, not this run's")
					return
				}
				require.NoError(t, err)
				assert.Equal(t, []string{"a", "b", "c", "d"}, rep.Generated)
				assert.Equal(t, dirty.StatusClean, snap.States["b"].Status)
				assert.Less(t, dAt.Sub(start), 10*time.Second, "d started once c's result was committed, not after b's backoff")
			})
		})
	}
}
