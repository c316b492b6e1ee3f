package executor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// wrapError is a host's wrapping error whose Error is safe on a nil
// receiver but whose Unwrap reads its field: a nil *wrapError panics
// only when errors.Is or errors.As walk its chain.
type wrapError struct{ inner error }

func (e *wrapError) Error() string {
	if e == nil {
		return "wrap: <nil>"
	}
	return "wrap: " + e.inner.Error()
}

func (e *wrapError) Unwrap() error { return e.inner }

// Host errors whose own methods panic, returned on every path a host's
// error comes back by: a generator's (the first attempt's, a retry's, a
// call's abandoned at its timeout and rescued, a nil *PanicError), a bulk
// call's outcome (in time, or in the grace after its timeout) and a
// validator's. Each fails its node (or, from an abandoned call, is
// thrown away), and the run goes on: none ends the test binary.
func TestReview12TypedNilHostErrors(t *testing.T) {
	tmpl := graph.Template{Kinds: []graph.Kind{
		{Name: "text", PerSegment: true, BatchKey: "llm", Concurrency: 2},
		{Name: "chart", PerSegment: true, Deps: []graph.Dep{{Kind: "text", Scope: graph.ScopeSameSegment}}},
	}}
	g, err := graph.Build(tmpl, 2*graph.SegmentSeconds)
	require.NoError(t, err)
	const bad = "text:segment[1]"
	ok := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	// returning makes a generator whose bad node returns err at its
	// attempt number at, and before it fails with a retryable error.
	returning := func(err func() error, at int) executor.GeneratorFunc {
		return func(_ context.Context, req executor.Request) (executor.Asset, error) {
			if req.NodeID == bad && req.Attempt == at {
				return executor.Asset{}, err()
			}
			if req.NodeID == bad && req.Attempt < at {
				return executor.Asset{}, errors.New("flaky")
			}
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		}
	}
	wrapNil := func() error { var e *wrapError; return e }
	panicNil := func() error { var e *executor.PanicError; return e }
	var mu sync.Mutex
	late := 0
	// stubborn's bad node ignores its context past its timeout at its
	// first attempt, then returns a typed nil: the call was abandoned, and
	// its node rescued (retried, and made by its second attempt).
	stubborn := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if req.NodeID == bad && req.Attempt == 1 {
			time.Sleep(time.Minute)
			mu.Lock()
			late++
			mu.Unlock()
			return executor.Asset{}, typedNil()
		}
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	// graced's bulk calls wait for their context to end at their timeout,
	// then return a typed nil for the bad node, within their grace.
	graced := bulkOf{func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if req.NodeID == bad && req.Attempt == 1 {
			<-ctx.Done()
			return executor.Asset{}, typedNil()
		}
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	}}
	type want struct {
		failed   []string
		attempts int // of the bad node
	}
	failedAlone := want{failed: []string{bad}, attempts: 1}
	for _, tc := range []struct {
		name string
		reg  executor.Registry
		kind executor.KindOptions
		want want
	}{
		{name: "generator, Unwrap panics", reg: executor.Registry{"text": returning(wrapNil, 1), "chart": ok}, want: failedAlone},
		{name: "generator, nil *PanicError", reg: executor.Registry{"text": returning(panicNil, 1), "chart": ok}, want: failedAlone},
		{name: "generator, at a retry", reg: executor.Registry{"text": returning(typedNil, 2), "chart": ok},
			want: want{failed: []string{bad}, attempts: 2}},
		{name: "bulk outcome, Unwrap panics", reg: executor.Registry{"text": bulkOf{returning(wrapNil, 1)}, "chart": ok}, want: failedAlone},
		{name: "bulk outcome, at a retry alone", reg: executor.Registry{"text": bulkOf{returning(typedNil, 2)}, "chart": ok},
			want: want{failed: []string{bad}, attempts: 2}},
		{name: "bulk outcome in the grace of its timeout", reg: executor.Registry{"text": graced, "chart": ok},
			kind: executor.KindOptions{BatchTimeout: 10 * time.Second}, want: failedAlone},
		{name: "abandoned call, rescued", reg: executor.Registry{"text": stubborn, "chart": ok},
			kind: executor.KindOptions{Timeout: 10 * time.Second}, want: want{attempts: 2}},
		{name: "validator, Unwrap panics", reg: executor.Registry{"text": ok, "chart": ok},
			kind: executor.KindOptions{Validate: func(req executor.Request, _ executor.Asset) error {
				if req.NodeID == bad {
					return wrapNil()
				}
				return nil
			}}, want: failedAlone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := progress.NewMemory(progress.MemoryOptions{})
				opts := executor.Options{Generators: tc.reg, Sink: mem, Kinds: map[string]executor.KindOptions{"text": tc.kind},
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
				e, err := executor.New(opts)
				require.NoError(t, err)
				defer e.Close(context.Background())
				rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "deck", Graph: g})
				if tc.want.failed == nil {
					require.NoError(t, err)
					assert.Empty(t, rep.Failed)
					assert.Contains(t, rep.Generated, bad)
					return
				}
				assert.Equal(t, tc.want.failed, rep.Failed)
				require.ErrorIs(t, err, executor.ErrRunFailed)
				var pe *executor.PanicError
				require.ErrorAs(t, err, &pe)
				require.NotNil(t, pe)
				var ne *executor.NodeError
				require.ErrorAs(t, err, &ne)
				assert.Equal(t, tc.want.attempts, ne.Attempt)
				assert.Equal(t, []string{"chart:segment[1]"}, rep.Skipped)
			})
		})
	}
	assert.Equal(t, 1, late, "the abandoned call returned")
}
