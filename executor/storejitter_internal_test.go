package executor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Each wait of a store call's retries is jittered within its backoff:
// from half of it to all of it, 100 ms before the second call and twice
// as long before each next one, so that the documented bounds (5 calls in
// all, about 1.5 s of waits at most) hold.
func TestStoreWaitStaysWithinItsBackoff(t *testing.T) {
	for failures := 1; failures < maxCommitFailures; failures++ {
		d := time.Duration(1<<failures) * 50 * time.Millisecond
		seen := map[time.Duration]bool{}
		for range 1000 {
			w := storeWait(failures)
			require.GreaterOrEqual(t, w, d/2, "wait after %d failures", failures)
			require.LessOrEqual(t, w, d, "wait after %d failures", failures)
			seen[w] = true
		}
		require.Greater(t, len(seen), 900, "waits after %d failures drawn from a wide range", failures)
	}
}

// A store call that keeps failing is made 5 times in all with the
// default Options.StoreRetry, and its retries' waits take at most 1.5 s
// (at least 0.75 s) however they are drawn; a ctx that ends in a wait ends the retries at once.
func TestRetryStoreKeepsItsBounds(t *testing.T) {
	e := &Executor{log: slog.New(slog.NewTextHandler(io.Discard, nil)), opts: Options{StoreRetry: defaultStoreRetry}}
	down := errors.New("store: connection reset")
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			calls := 1
			start := time.Now()
			err := e.retryStore(context.Background(), "r", "", down, "read", "x", func() error {
				calls++
				return down
			})
			took := time.Since(start)
			require.ErrorIs(t, err, down)
			require.Equal(t, maxCommitFailures, calls)
			require.LessOrEqual(t, took, 1500*time.Millisecond)
			require.GreaterOrEqual(t, took, 750*time.Millisecond)
		})
	}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
		defer cancel()
		calls := 1
		start := time.Now()
		err := e.retryStore(ctx, "r", "", down, "read", "x", func() error {
			calls++
			return down
		})
		require.ErrorIs(t, err, down)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.LessOrEqual(t, time.Since(start), 120*time.Millisecond)
		require.LessOrEqual(t, calls, 2)
	})
}

// Past its fifth, a store call's backoff stays at maxStoreBackoff (3.2 s),
// and a call retried under a longer Options.StoreRetry waits no more
// than it in all, nor less than one backoff short of it.
func TestStoreRetryBudgetBoundsTheWaits(t *testing.T) {
	for failures := 6; failures < 12; failures++ {
		w := storeWait(failures)
		require.GreaterOrEqual(t, w, maxStoreBackoff/2, "wait after %d failures", failures)
		require.LessOrEqual(t, w, maxStoreBackoff, "wait after %d failures", failures)
	}
	budget := 20 * time.Second
	e := &Executor{log: slog.New(slog.DiscardHandler), opts: Options{StoreRetry: budget}}
	down := errors.New("store: connection refused")
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			err := e.retryStore(context.Background(), "r", "", down, "read", "x", func() error { return down })
			took := time.Since(start)
			require.ErrorIs(t, err, down)
			require.LessOrEqual(t, took, budget)
			require.Greater(t, took, budget-maxStoreBackoff)
		})
	}
}
