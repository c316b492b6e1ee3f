package executor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// constJoin is a host's error that joins others, with a text of its own:
// its Error reads none of them.
type constJoin struct{ errs []error }

func (e constJoin) Error() string   { return "several things failed" }
func (e constJoin) Unwrap() []error { return e.errs }

// A host error that holds a permanent error and a nil *PanicError (a
// typed nil of the executor's own type, among errors joined) passed the
// check of host errors, as its Error and Is do not panic and the
// permanent error settles retryable before it looks for a panic; when
// the call had been abandoned at its timeout, the log of a late panic
// found the nil *PanicError and read its In, which ended the host's
// process with a nil pointer dereference. Such an error is now replaced
// by a *PanicError, as any host error whose use panics: the abandoned
// call's result is thrown away, and its node, rescued, is made by its
// retry.
func TestReview12NilPanicErrorOfAbandonedCall(t *testing.T) {
	tmpl := graph.Template{Kinds: []graph.Kind{{Name: "text", PerSegment: true}}}
	g, err := graph.Build(tmpl, graph.SegmentSeconds)
	require.NoError(t, err)
	odd := func() error {
		return constJoin{errs: []error{executor.Permanent(errors.New("refused")), (*executor.PanicError)(nil)}}
	}
	for _, tc := range []struct {
		name     string
		gen      executor.Generator
		validate executor.Validator
	}{
		{name: "generator", gen: executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
			if req.Attempt == 1 {
				time.Sleep(time.Minute) // past its timeout: abandoned
				return executor.Asset{}, odd()
			}
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		})},
		{name: "validator", gen: executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		}), validate: func(req executor.Request, _ executor.Asset) error {
			if req.Attempt == 1 {
				time.Sleep(time.Minute)
				return odd()
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, err := executor.New(executor.Options{Generators: executor.Registry{"text": tc.gen},
					Kinds:  map[string]executor.KindOptions{"text": {Timeout: 10 * time.Second, Validate: tc.validate}},
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				require.NoError(t, err)
				rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "deck", Graph: g})
				require.NoError(t, err)
				assert.Equal(t, []string{"text:segment[0]"}, rep.Generated)
				require.NoError(t, e.Close(context.Background())) // waits for the abandoned call
			})
		})
	}
}
