package executor_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// New's refusal of a value of Options.Kinds gave the built-in default as
// what 0 gives ("want 0 (default: 3) or more"), though a zero there
// takes Options.Default's value: with a Default of 5 attempts, the host
// told to write 0 for 3 attempts got 5. The refusal now gives what 0
// gives in that place, Options.Default's value when it has one.
func TestRefusalOfKindsGivesTheDefaultOfItsPlace(t *testing.T) {
	gen := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{}, nil
	})
	def := executor.KindOptions{Timeout: time.Minute, Estimate: 2 * time.Second, BatchWindow: time.Second,
		Retry: executor.RetryPolicy{MaxAttempts: 5, InitialInterval: 3 * time.Second, BackoffFactor: 1.5, Jitter: 0.25}}
	tests := []struct {
		name string
		ko   executor.KindOptions
		want string
	}{
		{"attempts", executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: -1}}, "Retry.MaxAttempts -1: want 0 (Options.Default's: 5) or more"},
		{"initial interval", executor.KindOptions{Retry: executor.RetryPolicy{InitialInterval: -time.Second}}, "Retry.InitialInterval -1s: want 0 (Options.Default's: 3s) or more"},
		{"factor", executor.KindOptions{Retry: executor.RetryPolicy{BackoffFactor: 0.5}}, "Retry.BackoffFactor 0.5: want 0 (Options.Default's: 1.5) or a finite factor of at least 1"},
		{"jitter", executor.KindOptions{Retry: executor.RetryPolicy{Jitter: 2}}, "Retry.Jitter 2: want from 0 (Options.Default's: 0.25) to 1"},
		{"timeout", executor.KindOptions{Timeout: -time.Second}, "Timeout -1s: want 0 (Options.Default's: 1m0s) or more"},
		{"estimate", executor.KindOptions{Estimate: -time.Second}, "Estimate -1s: want 0 (Options.Default's: 2s) or more"},
		{"window", executor.KindOptions{BatchWindow: -time.Second}, "BatchWindow -1s: want 0 (Options.Default's: 1s) or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := executor.New(executor.Options{Generators: executor.Registry{"script": gen}, Default: def,
				Kinds: map[string]executor.KindOptions{"script": tt.ko}})
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.Contains(t, err.Error(), `Options.Kinds["script"].`+tt.want)
		})
	}
}
