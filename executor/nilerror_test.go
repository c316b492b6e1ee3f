package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// providerError is a host's error type whose methods read its fields, as
// most do: a nil *providerError panics in them.
type providerError struct{ code int }

func (e *providerError) Error() string { return "provider: code " + string(rune('0'+e.code)) }

// typedNil returns a nil *providerError as an error: not a nil error.
func typedNil() error {
	var e *providerError
	return e
}

// A generator, a bulk call's outcome or a validator that returned a
// typed nil error (var e *MyErr; return e, the classic Go slip) whose
// Error method reads its receiver ended the host's process: the executor
// calls Error to report the attempt (node.retrying, node.failed, the
// record), outside any recover, though a generator's panic is to fail its
// node alone. Such an error now fails its node, at once, as a
// *PanicError that says what it was, and the run goes on.
func TestTypedNilErrorFailsItsNodeAlone(t *testing.T) {
	tmpl := graph.Template{Kinds: []graph.Kind{
		{Name: "text", PerSegment: true, BatchKey: "llm", Concurrency: 2},
		{Name: "chart", PerSegment: true, Deps: []graph.Dep{{Kind: "text", Scope: graph.ScopeSameSegment}}},
	}}
	g, err := graph.Build(tmpl, 2*graph.SegmentSeconds)
	require.NoError(t, err)
	ok := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	bad := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		if req.NodeID == "text:segment[1]" {
			return executor.Asset{}, typedNil()
		}
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	for _, tc := range []struct {
		name string
		reg  executor.Registry
		opts func(*executor.Options)
	}{
		{name: "generator", reg: executor.Registry{"text": bad, "chart": ok}},
		{name: "bulk outcome", reg: executor.Registry{"text": bulkOf{bad}, "chart": ok}},
		{name: "validator", reg: executor.Registry{"text": ok, "chart": ok}, opts: func(o *executor.Options) {
			o.Kinds = map[string]executor.KindOptions{"text": {Validate: func(req executor.Request, _ executor.Asset) error {
				if req.NodeID == "text:segment[1]" {
					return typedNil()
				}
				return nil
			}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := progress.NewMemory(progress.MemoryOptions{})
				opts := executor.Options{Generators: tc.reg, Sink: mem}
				if tc.opts != nil {
					tc.opts(&opts)
				}
				e, err := executor.New(opts)
				require.NoError(t, err)
				defer e.Close(context.Background())
				rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "deck", Graph: g})
				require.ErrorIs(t, err, executor.ErrRunFailed)
				var pe *executor.PanicError
				require.ErrorAs(t, err, &pe)
				assert.Contains(t, pe.Error(), "*executor_test.providerError")
				assert.Equal(t, []string{"text:segment[1]"}, rep.Failed)
				assert.Equal(t, []string{"chart:segment[0]", "text:segment[0]"}, rep.Generated)
				assert.Equal(t, []string{"chart:segment[1]"}, rep.Skipped)
				assert.Equal(t, 1, rep.Record.Counts.Attempts-len(rep.Generated), "the node failed at once, with no retry")
				assert.Contains(t, rep.Record.Error, "providerError")
			})
		})
	}
}

// storeError is a store's error type whose Unwrap reads its field, as a
// driver's error that wraps its cause may: a nil *storeError panics in
// errors.Is, which the executor calls on every store error.
type storeError struct{ cause error }

func (e *storeError) Error() string { return "store: " + e.cause.Error() }
func (e *storeError) Unwrap() error { return e.cause }

func typedNilStoreError() error {
	var e *storeError
	return e
}

// nilErrAssets returns a typed nil error from every Put of node's asset.
type nilErrAssets struct {
	*executor.MemoryAssets
	node string
}

func (s *nilErrAssets) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	if string(a.Data) == s.node {
		return "", typedNilStoreError()
	}
	return s.MemoryAssets.Put(ctx, key, a)
}

// nilErrStates returns a typed nil error from every Commit.
type nilErrStates struct{ *executor.MemoryStates }

func (s *nilErrStates) Commit(context.Context, string, int64, []executor.Change) (int64, error) {
	return 0, typedNilStoreError()
}

// A store whose error was a typed nil pointer with an Unwrap that reads
// its fields ended the host's process at the executor's errors.Is of the
// error (in its store retries, its commits' conflict checks). Such an
// error is now a *PanicError (In "store"): the call fails, as after an
// error no retry can fix, and the process goes on.
func TestTypedNilStoreErrorFailsTheCall(t *testing.T) {
	g, err := graph.Build(graph.Template{Kinds: []graph.Kind{
		{Name: "text", PerSegment: true},
		{Name: "chart", PerSegment: true, Deps: []graph.Dep{{Kind: "text", Scope: graph.ScopeSameSegment}}},
	}}, 2*graph.SegmentSeconds)
	require.NoError(t, err)
	gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	})
	reg := executor.Registry{"text": gen, "chart": gen}
	t.Run("asset store", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			assets := &nilErrAssets{MemoryAssets: executor.NewMemoryAssets(), node: "text:segment[1]"}
			e, err := executor.New(executor.Options{Generators: reg, Assets: assets})
			require.NoError(t, err)
			defer e.Close(context.Background())
			rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "deck", Graph: g})
			require.ErrorIs(t, err, executor.ErrRunFailed)
			var pe *executor.PanicError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "store", pe.In)
			assert.Equal(t, []string{"text:segment[1]"}, rep.Failed)
			assert.Equal(t, []string{"chart:segment[1]"}, rep.Skipped)
		})
	})
	t.Run("state store", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e, err := executor.New(executor.Options{Generators: reg, States: &nilErrStates{executor.NewMemoryStates()}})
			require.NoError(t, err)
			defer e.Close(context.Background())
			_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "deck", Graph: g})
			var pe *executor.PanicError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "store", pe.In)
			_, err = e.Edit(context.Background(), g, "deck", "text:segment[0]")
			require.ErrorAs(t, err, &pe)
		})
	})
}
