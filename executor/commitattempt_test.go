package executor_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
