package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// An output whose URL, Hash or Meta is not valid UTF-8 without NUL (a
// hash's raw bytes, a URL built with a stray byte) was refused, and the
// attempt retried, up to the kind's MaxAttempts, as after a validator's
// refusal: such an output is a bug of the host's generator, made again
// at every attempt, so each retry paid the provider for nothing. The node
// now fails at once, its error a PermanentError wrapping ErrInvalidOutput,
// alone and in a bulk call. A validator's refusal is still a failed
// attempt, retried.
func TestOutputTextRefusalIsNotRetried(t *testing.T) {
	refused := errors.New("blurry")
	for _, tc := range []struct {
		name      string
		a         executor.Asset
		validate  bool // a validator refuses the image
		attempts  int
		permanent bool
	}{
		{"NUL in the URL", executor.Asset{URL: "https://cdn.example/\x00img.png"}, false, 1, true},
		{"raw bytes as the Hash", executor.Asset{Data: []byte("x"), Hash: "\xe3\xb0\xc4\x42"}, false, 1, true},
		{"invalid UTF-8 in a Meta value", executor.Asset{Data: []byte("x"), Meta: map[string]string{"seed": "\xff"}}, false, 1, true},
		{"refused by the validator", executor.Asset{Data: []byte("x")}, true, 3, false},
	} {
		for _, bulk := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: ", alone", true: ", bulk"}[bulk], func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					l := newLab(t, 10)
					image := ids(l, graph.KindImage, 0)[0]
					var mu sync.Mutex
					calls := 0
					gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
						if req.NodeID == image {
							mu.Lock()
							calls++
							mu.Unlock()
							return tc.a, nil
						}
						return l.Generate(ctx, req)
					})
					reg := l.registry(gen)
					if bulk {
						reg[graph.KindImage] = bulkOf{gen}
					}
					opts := executor.Options{Generators: reg}
					if tc.validate {
						opts.Kinds = map[string]executor.KindOptions{graph.KindImage: {
							Validate: func(executor.Request, executor.Asset) error { return refused }}}
					}
					rep, err := l.run(l.executor(opts))
					require.ErrorIs(t, err, executor.ErrInvalidOutput)
					assert.Equal(t, []string{image}, rep.Failed)
					var ne *executor.NodeError
					require.ErrorAs(t, err, &ne)
					assert.Equal(t, tc.attempts, ne.Attempt, "the node's attempts")
					mu.Lock()
					assert.Equal(t, tc.attempts, calls, "the generator's calls")
					mu.Unlock()
					var pe *executor.PermanentError
					assert.Equal(t, tc.permanent, errors.As(err, &pe), "a PermanentError: %v", err)
				})
			})
		}
	}
}
