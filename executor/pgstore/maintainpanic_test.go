package pgstore_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// maintainPanics runs s.Maintain with opts until its second pass has
// ended, and returns its passes, what it logged, and the value it
// panicked with, if it did.
func maintainPanics(t *testing.T, ctx context.Context, s *pgstore.Store, e *executor.Executor,
	graphOf func(executor.Record) (*graph.Graph, error), opts pgstore.MaintainOptions) (passes []pgstore.Pass, logs string, panicked any) {
	t.Helper()
	mctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	buf := new(testenv.LogBuffer)
	opts.Logger = slog.New(slog.NewTextHandler(buf, nil))
	onPass := opts.OnPass
	var mu sync.Mutex
	opts.OnPass = func(p pgstore.Pass) {
		mu.Lock()
		passes = append(passes, p)
		n := len(passes)
		mu.Unlock()
		if n == 2 {
			cancel(errors.New("two passes"))
		}
		if onPass != nil {
			onPass(p)
		}
	}
	if opts.Every > 0 && opts.Every < pgstore.MinMaintainEvery {
		pgstore.SetMinMaintainEvery(s, opts.Every) // many passes, fast
	}
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		_ = s.Maintain(mctx, e, graphOf, opts)
	}()
	select {
	case panicked = <-done:
	case <-ctx.Done():
		t.Fatalf("Maintain did not return: %v", context.Cause(ctx))
	}
	mu.Lock()
	defer mu.Unlock()
	return passes, buf.String(), panicked
}

// The host's code that Maintain calls (graphOf, a Pruner, OnPass) may
// panic: the panic ended Maintain's goroutine, and so the host's
// process, the runs resumed by the pass before it cut off, and, once it
// was recovered, the deferred wait for the resumed runs held it as long
// as they ran. A panic of graphOf makes the run not resumed, with a
// *executor.PanicError, one of a Pruner is that Pruner's error in
// Pass.Err, and one of OnPass is logged as an error: the loop goes on.
func TestMaintainSurvivesPanicsOfTheHostsCode(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 10)
	key := testenv.UniqueName(t)
	leftRunning(t, ctx, s, "dead", key, g, time.Now().Add(-time.Minute))
	e := newExecutor(t, s, newProvider().registry())

	t.Run("graphOf", func(t *testing.T) {
		passes, logs, panicked := maintainPanics(t, ctx, s, e, func(executor.Record) (*graph.Graph, error) {
			panic("no template")
		}, pgstore.MaintainOptions{Every: time.Millisecond})
		require.Nil(t, panicked, "Maintain panicked")
		require.Len(t, passes, 2)
		for _, p := range passes {
			require.Equal(t, []outcome{{"dead", pgstore.NotResumed}}, outcomes(p.LeftRunning))
			var pe *executor.PanicError
			require.ErrorAs(t, p.LeftRunning[0].Err, &pe)
			assert.Equal(t, "no template", pe.Value)
			var ge *pgstore.GraphOfError
			assert.ErrorAs(t, p.LeftRunning[0].Err, &ge)
		}
		assert.Contains(t, logs, "panicked")
		assert.Zero(t, lockSessionsOf(t, s, key), "the key unlocked")
	})
	t.Run("Pruner", func(t *testing.T) {
		pr := pgstore.PrunerFunc(func(context.Context, time.Duration) (int64, error) { panic("history gone") })
		passes, _, panicked := maintainPanics(t, ctx, s, e, failGraphOf, pgstore.MaintainOptions{Every: time.Millisecond,
			Retain: time.Hour, PruneEvery: time.Nanosecond, Pruners: []pgstore.Pruner{pr}})
		require.Nil(t, panicked, "Maintain panicked")
		require.Len(t, passes, 2)
		for _, p := range passes {
			var pe *executor.PanicError
			require.ErrorAs(t, p.Err, &pe)
			assert.Equal(t, "history gone", pe.Value)
			assert.Contains(t, p.Err.Error(), "Pruners[0]")
		}
	})
	t.Run("OnPass", func(t *testing.T) {
		passes, logs, panicked := maintainPanics(t, ctx, s, e, failGraphOf, pgstore.MaintainOptions{Every: time.Millisecond,
			OnPass: func(pgstore.Pass) { panic("metrics down") }})
		require.Nil(t, panicked, "Maintain panicked")
		require.Len(t, passes, 2, "the loop went on")
		assert.Contains(t, logs, "level=ERROR")
		assert.Contains(t, logs, "metrics down")
		assert.Contains(t, logs, "stack=", "the panic's stack, for the host to mend it")
	})
}

// failGraphOf fails for every run: the run left running stays so.
func failGraphOf(executor.Record) (*graph.Graph, error) { return nil, errors.New("not now") }

// lockSessionsOf returns how many sessions hold key's lock.
func lockSessionsOf(t *testing.T, s *pgstore.Store, key string) int {
	t.Helper()
	locked, err := s.GraphLocked(t.Context(), key)
	require.NoError(t, err)
	if locked {
		return 1
	}
	return 0
}
