package executor_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// downFor is a MemoryStore whose calls named down fail, as with a
// connection refused, for span from the first of them on (once armed).
type downFor struct {
	*executor.MemoryStore
	down  string // "Put", "Get", "Commit", "PutRun"
	span  time.Duration
	armed atomic.Bool
	mu    sync.Mutex
	since time.Time
}

var errRefused = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func (o *downFor) fail(call string) error {
	if call != o.down || !o.armed.Load() {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		o.since = time.Now()
	}
	if time.Since(o.since) < o.span {
		return errRefused
	}
	return nil
}

func (o *downFor) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	if err := o.fail("Put"); err != nil {
		return "", err
	}
	return o.MemoryStore.Put(ctx, key, a)
}

func (o *downFor) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if err := o.fail("Get"); err != nil {
		return executor.Asset{}, err
	}
	return o.MemoryStore.Get(ctx, ref)
}

func (o *downFor) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	if err := o.fail("Commit"); err != nil {
		return 0, err
	}
	return o.MemoryStore.Commit(ctx, key, expect, changes)
}

func (o *downFor) PutRun(ctx context.Context, r executor.Record) error {
	if err := o.fail("PutRun"); err != nil {
		return err
	}
	return o.MemoryStore.PutRun(ctx, r)
}

// Store calls were retried 5 times with at most 1.5 s of waits, not
// configurable, so a Postgres restart or failover of a few seconds failed
// the runs in flight. Options.StoreRetry now bounds the waits of a run's
// store call in all: with 10 s, an outage of 5 s of each call a run makes
// (a read of an input, a Put of an output, a commit of results) is ridden
// out, each generator called once; with the default, 1.5 s, it is not.
func TestStoreRetryBudget(t *testing.T) {
	for _, call := range []string{"Get", "Put", "Commit"} {
		for _, budget := range []time.Duration{0, 10 * time.Second} {
			t.Run(call+"/"+budget.String(), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ctx := context.Background()
					g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "a"},
						{Name: "b", Deps: []graph.Dep{{Kind: "a", Scope: graph.ScopeGlobal}}}}}, graph.SegmentSeconds)
					require.NoError(t, err)
					store := &downFor{MemoryStore: executor.NewMemoryStore(), down: call, span: 5 * time.Second}
					var calls atomic.Int32
					gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
						calls.Add(1)
						// Get: down from b's read of a's output on; Put and
						// Commit: from b's on.
						if req.NodeID == "b" || call == "Get" {
							store.armed.Store(true)
						}
						return executor.Asset{Data: []byte(req.NodeID)}, nil
					})
					e, err := executor.New(executor.Options{Generators: registryFor(g, gen),
						States: store, Assets: store, Runs: store, StoreRetry: budget,
						Default: executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 1}},
						Logger:  slog.New(slog.DiscardHandler)})
					require.NoError(t, err)
					defer func() { require.NoError(t, e.Close(ctx)) }()
					rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "key", Graph: g})
					if budget == 0 {
						require.Error(t, err, "the default budget does not ride out 5 s")
						assert.True(t, strings.Contains(err.Error(), "connection refused"), "%v", err)
						return
					}
					require.NoError(t, err)
					assert.Equal(t, []string{"a", "b"}, rep.Generated)
					assert.EqualValues(t, 2, calls.Load(), "each node made once")
				})
			})
		}
	}
}

// A negative Options.StoreRetry is refused by New, with what it allows.
func TestStoreRetryRefusesNegative(t *testing.T) {
	g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "a"}}}, graph.SegmentSeconds)
	require.NoError(t, err)
	_, err = executor.New(executor.Options{Generators: registryFor(g, executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) { return executor.Asset{}, nil })), StoreRetry: -time.Second})
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	assert.ErrorContains(t, err, "Options.StoreRetry -1s: want 0 (default: 1.5s) or more")
}
