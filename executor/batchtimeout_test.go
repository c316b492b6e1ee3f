package executor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// A bulk call makes many nodes and may take longer than one node's call,
// but the kind's Timeout bounded it whole, whatever its size (an
// embedder's trial): a host had to raise the timeout of every single
// call to let its bulk calls finish. KindOptions.BatchTimeout bounds the
// bulk calls; Timeout still bounds a node retried alone.
func TestBatchTimeoutBoundsBulkCalls(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "slide", PerSegment: true, BatchKey: "img", Concurrency: 4},
	}}
	g, err := graph.Build(tm, 4*graph.SegmentSeconds)
	require.NoError(t, err)
	tests := []struct {
		name       string
		kind       executor.KindOptions
		single     time.Duration // how long Generate takes, alone
		wantErr    bool
		wantDirect int // nodes made by the bulk call
	}{
		{name: "Timeout alone cuts the bulk call", kind: executor.KindOptions{Timeout: time.Minute},
			single: 30 * time.Second, wantDirect: 0},
		{name: "BatchTimeout lets it finish", kind: executor.KindOptions{Timeout: time.Minute, BatchTimeout: 5 * time.Minute},
			single: 30 * time.Second, wantDirect: 4},
		{name: "Timeout still bounds a node alone", kind: executor.KindOptions{Timeout: time.Minute, BatchTimeout: 5 * time.Minute,
			Retry: executor.RetryPolicy{MaxAttempts: 2}},
			single: 2 * time.Minute, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fail := tt.wantErr // the bulk call fails its first node, whose retry is alone
				var gen *batchGen
				gen = &batchGen{
					one: func(ctx context.Context, req executor.Request) (executor.Asset, error) {
						select {
						case <-time.After(tt.single):
							return executor.Asset{Data: []byte("alone " + req.NodeID)}, nil
						case <-ctx.Done():
							return executor.Asset{}, ctx.Err()
						}
					},
					many: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
						out := make([]executor.Outcome, len(reqs))
						select {
						case <-time.After(3 * time.Minute):
						case <-ctx.Done():
							for i := range out {
								out[i].Err = ctx.Err()
							}
							return out
						}
						for i, r := range reqs {
							out[i].Asset = executor.Asset{Data: []byte("bulk " + r.NodeID)}
						}
						gen.made.Add(int32(len(reqs)))
						if fail {
							out[0] = executor.Outcome{Err: errors.New("provider: try again")}
						}
						return out
					},
				}
				e, err := executor.New(executor.Options{Generators: executor.Registry{"slide": gen},
					Kinds: map[string]executor.KindOptions{"slide": tt.kind}})
				require.NoError(t, err)
				defer e.Close(context.Background())
				rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "k", Graph: g})
				if tt.wantErr {
					require.ErrorIs(t, err, executor.ErrRunFailed)
					require.ErrorIs(t, err, executor.ErrTimeout, "the node alone timed out after Timeout")
					var te *executor.TimeoutError
					require.ErrorAs(t, err, &te)
					assert.Equal(t, time.Minute, te.Timeout)
					assert.Len(t, rep.Generated, 3)
					return
				}
				require.NoError(t, err)
				assert.Len(t, rep.Generated, 4)
				assert.Equal(t, tt.wantDirect, int(gen.made.Load()), "nodes made by the bulk call")
			})
		})
	}
}

// batchGen is a bulk generator of two funcs, that counts the nodes its
// bulk calls made.
type batchGen struct {
	one  func(context.Context, executor.Request) (executor.Asset, error)
	many func(context.Context, []executor.Request) []executor.Outcome
	made atomic.Int32
}

func (b *batchGen) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	return b.one(ctx, req)
}

func (b *batchGen) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	return b.many(ctx, reqs)
}
