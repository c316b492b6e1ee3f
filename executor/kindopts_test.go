package executor_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// New refused a negative Grace or BatchWindow, but took other option
// values out of range as something else, silently (an embedder's
// finding): a NaN BackoffFactor passed the check for a default and made a
// 10ms backoff a minute's wait, a negative Timeout became the 10-minute
// default, a negative MaxAttempts or Estimate their defaults, a Jitter of
// 5 became 1, and a BackoffFactor of 0.5 made backoffs that shrink. New
// now refuses each, in Default and in Kinds, saying what is allowed.
func TestNewRefusesKindOptionsOutOfRange(t *testing.T) {
	gen := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{}, nil
	})
	tests := []struct {
		name string
		ko   executor.KindOptions
		want string
	}{
		{"NaN factor", executor.KindOptions{Retry: executor.RetryPolicy{BackoffFactor: math.NaN()}}, "Retry.BackoffFactor NaN: want 0 (default: 2) or a finite factor of at least 1"},
		{"+Inf factor", executor.KindOptions{Retry: executor.RetryPolicy{BackoffFactor: math.Inf(1)}}, "Retry.BackoffFactor +Inf: want"},
		{"-Inf factor", executor.KindOptions{Retry: executor.RetryPolicy{BackoffFactor: math.Inf(-1)}}, "Retry.BackoffFactor -Inf: want"},
		{"negative factor", executor.KindOptions{Retry: executor.RetryPolicy{BackoffFactor: -2}}, "Retry.BackoffFactor -2: want"},
		{"shrinking factor", executor.KindOptions{Retry: executor.RetryPolicy{BackoffFactor: 0.5}}, "Retry.BackoffFactor 0.5: want"},
		{"jitter above 1", executor.KindOptions{Retry: executor.RetryPolicy{Jitter: 5}}, "Retry.Jitter 5: want from 0 (default: none) to 1"},
		{"negative jitter", executor.KindOptions{Retry: executor.RetryPolicy{Jitter: -0.1}}, "Retry.Jitter -0.1: want"},
		{"NaN jitter", executor.KindOptions{Retry: executor.RetryPolicy{Jitter: math.NaN()}}, "Retry.Jitter NaN: want"},
		{"negative attempts", executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: -1}}, "Retry.MaxAttempts -1: want 0 (default: 3) or more"},
		{"negative initial interval", executor.KindOptions{Retry: executor.RetryPolicy{InitialInterval: -time.Second}}, "Retry.InitialInterval -1s: want 0 (default: 1s) or more"},
		{"negative max interval", executor.KindOptions{Retry: executor.RetryPolicy{MaxInterval: -time.Second}}, "Retry.MaxInterval -1s: want 0 (default) or more"},
		{"negative timeout", executor.KindOptions{Timeout: -time.Second}, "Timeout -1s: want 0 (default: 10m0s) or more"},
		{"negative batch timeout", executor.KindOptions{BatchTimeout: -time.Second}, "BatchTimeout -1s: want 0 (default: the kind's Timeout) or more"},
		{"negative estimate", executor.KindOptions{Estimate: -time.Second}, "Estimate -1s: want 0 (none) or more"},
		{"negative window", executor.KindOptions{BatchWindow: -time.Second}, "BatchWindow -1s: want 0 (no window) or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for where, opts := range map[string]executor.Options{
				"Options.Default.":         {Generators: executor.Registry{"script": gen}, Default: tt.ko},
				`Options.Kinds["script"].`: {Generators: executor.Registry{"script": gen}, Kinds: map[string]executor.KindOptions{"script": tt.ko}},
			} {
				e, err := executor.New(opts)
				assert.Nil(t, e)
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				assert.Contains(t, err.Error(), where+tt.want)
			}
		})
	}
}

// The values at the edges of the ranges are taken: a factor of 1 (a
// backoff that stays), a Jitter of 1, zeros for the defaults.
func TestNewTakesKindOptionsAtTheirBounds(t *testing.T) {
	gen := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{}, nil
	})
	for _, ko := range []executor.KindOptions{
		{},
		{Retry: executor.RetryPolicy{BackoffFactor: 1, Jitter: 1, MaxAttempts: 1}},
		{Retry: executor.RetryPolicy{BackoffFactor: 1e6, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}},
		{Timeout: time.Nanosecond, BatchTimeout: time.Nanosecond, Estimate: time.Nanosecond, BatchWindow: time.Nanosecond},
	} {
		e, err := executor.New(executor.Options{Generators: executor.Registry{"script": gen}, Default: ko,
			Kinds: map[string]executor.KindOptions{"script": ko}})
		require.NoError(t, err, "%+v", ko)
		require.NoError(t, e.Close(context.Background()))
	}
}

// RetryPolicy.Backoff, which has no error to return, takes a value that
// New refuses as its default: a NaN factor made a 10ms backoff a minute.
func TestBackoffTakesValuesOutOfRangeAsDefaults(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -2, 0.5} {
		p := executor.RetryPolicy{InitialInterval: 10 * time.Millisecond, BackoffFactor: f}
		assert.Equal(t, 40*time.Millisecond, p.Backoff(4), "factor %v", f)
	}
}
