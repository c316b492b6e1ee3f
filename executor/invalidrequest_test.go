package executor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// Bad input did not share one sentinel: an empty Edit, an empty graph key
// or a run ID taken wrapped ErrInvalidRequest, but a bad mark of a
// RunRequest or a Plan gave a bare *dirty.MarkError, and an Edit of an
// unknown or malformed node ID a bare graph error, so that a host that
// answers bad input with a 400 had to know them all. Every refusal of the
// caller's input now wraps ErrInvalidRequest, the specific error still
// reachable, and its text says the sentinel once.
func TestEveryRefusalOfInputWrapsErrInvalidRequest(t *testing.T) {
	// f is the lecture of 30 s, run once (ran), and a longer graph.
	type f struct {
		ctx    context.Context
		e      *executor.Executor
		l      *lab
		ran    string
		longer *graph.Graph
	}
	start := func(f f, req executor.RunRequest) error {
		r, err := f.e.Start(f.ctx, req)
		if err == nil {
			_, _ = r.Wait()
		}
		return err
	}
	plan := func(f f, req executor.RunRequest) error {
		_, _, err := f.e.Plan(f.ctx, req)
		return err
	}
	edit := func(other bool, key string, ids ...string) func(f) error {
		return func(f f) error {
			g := f.l.g
			if other {
				g = f.longer
			}
			_, err := f.e.Edit(f.ctx, g, key, ids...)
			return err
		}
	}
	mark := func(id string, reason dirty.Reason) []dirty.Mark { return []dirty.Mark{{ID: id, Reason: reason}} }

	for _, tc := range []struct {
		name string
		call func(f f) error
		// as checks that the specific error is reachable, if any.
		as func(t *testing.T, err error)
	}{
		{"Start: a mark of an unknown node", func(f f) error {
			return start(f, executor.RunRequest{GraphKey: "lecture", Graph: f.l.g, Marks: mark("asset:image:segment[7]", dirty.ReasonEdited)})
		}, isMarkError(graph.ErrUnknownNode)},
		{"Start: a mark of a malformed ID", func(f f) error {
			return start(f, executor.RunRequest{GraphKey: "lecture", Graph: f.l.g, Marks: mark("image[", dirty.ReasonEdited)})
		}, isMarkError(graph.ErrMalformedID)},
		{"Start: a mark of a reason that cannot be marked", func(f f) error {
			return start(f, executor.RunRequest{GraphKey: "lecture", Graph: f.l.g, Marks: mark("script", dirty.ReasonFailed)})
		}, isMarkError(nil)},
		{"Run: a mark of an unknown node", func(f f) error {
			_, err := f.e.Run(f.ctx, executor.RunRequest{GraphKey: "lecture", Graph: f.l.g, Marks: mark("asset:image:segment[7]", dirty.ReasonForced)})
			return err
		}, isMarkError(graph.ErrUnknownNode)},
		{"Start: an empty graph key", func(f f) error { return start(f, executor.RunRequest{Graph: f.l.g}) }, nil},
		{"Start: a run ID taken", func(f f) error {
			return start(f, executor.RunRequest{GraphKey: "lecture", Graph: f.l.g, RunID: f.ran})
		}, nil},
		{"Plan: a mark of an unknown node", func(f f) error {
			return plan(f, executor.RunRequest{GraphKey: "lecture", Graph: f.l.g, Marks: mark("asset:image:segment[7]", dirty.ReasonEdited)})
		}, isMarkError(graph.ErrUnknownNode)},
		{"Plan: a mark of a malformed ID", func(f f) error {
			return plan(f, executor.RunRequest{GraphKey: "lecture", Graph: f.l.g, Marks: mark("", dirty.ReasonEdited)})
		}, isMarkError(graph.ErrMalformedID)},
		{"Plan: a nil graph", func(f f) error { return plan(f, executor.RunRequest{GraphKey: "lecture"}) }, nil},
		{"Edit: an unknown node", edit(false, "lecture", "asset:image:segment[7]"), isIDError(graph.ErrUnknownNode)},
		{"Edit: a malformed node ID", edit(false, "lecture", "script", "video[x]"), isIDError(graph.ErrMalformedID)},
		{"Edit: no node", edit(false, "lecture"), nil},
		{"Edit: an empty graph key", edit(false, "", "script"), nil},
		{"Edit: not the key's graph, and a node it has not", edit(true, "lecture", "script", "asset:image:segment[5]"), isGraphMismatch},
		{"Forget: not the key's graph", func(f f) error {
			_, err := f.e.Forget(f.ctx, f.longer, "lecture")
			return err
		}, nil},
		{"Resume: not the run's graph", func(f f) error {
			_, err := f.e.Resume(f.ctx, f.longer, f.ran)
			return err
		}, nil},
		{"RerunFailed: two ResumeOptions", func(f f) error {
			_, err := f.e.RerunFailed(f.ctx, f.l.g, f.ran, executor.ResumeOptions{}, executor.ResumeOptions{})
			return err
		}, nil},
		{"Abandon: an empty reason", func(f f) error { return f.e.Abandon(f.ctx, f.ran, "") }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{})
				rep, err := l.run(e)
				require.NoError(t, err)
				longer, err := graph.Build(graph.Lecture(), 60)
				require.NoError(t, err)
				before := l.snapshot()

				err = tc.call(f{ctx: context.Background(), e: e, l: l, ran: rep.Record.ID, longer: longer})
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				assert.Equal(t, 1, strings.Count(err.Error(), executor.ErrInvalidRequest.Error()), "the sentinel once: %v", err)
				if tc.as != nil {
					tc.as(t, err)
				}
				assert.Equal(t, before, l.snapshot(), "the refusal committed nothing")
				assert.Equal(t, rep.Record, mustGetRun(t, l, rep.Record.ID), "the refusal changed no record")
			})
		})
	}
}

// isMarkError checks that err reaches a *dirty.MarkError, wrapping
// dirty.ErrInvalidMark and, if not nil, want.
func isMarkError(want error) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		var me *dirty.MarkError
		require.ErrorAs(t, err, &me)
		require.ErrorIs(t, err, dirty.ErrInvalidMark)
		if want != nil {
			require.ErrorIs(t, err, want)
		}
		assert.Equal(t, 1, strings.Count(err.Error(), dirty.ErrInvalidMark.Error()), "%v", err)
	}
}

// isGraphMismatch checks that err is a *GraphMismatchError that names
// the node the key's graph has not.
func isGraphMismatch(t *testing.T, err error) {
	var me *executor.GraphMismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []string{"asset:image:segment[5]"}, me.Missing)
}

// isIDError checks that err reaches a *graph.IDError wrapping want.
func isIDError(want error) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		var ie *graph.IDError
		require.ErrorAs(t, err, &ie)
		require.True(t, errors.Is(ie, want), "%v: want %v", ie, want)
		assert.Equal(t, 1, strings.Count(err.Error(), want.Error()), "%v", err)
	}
}

func mustGetRun(t *testing.T, l *lab, id string) executor.Record {
	t.Helper()
	rec, err := l.runs.GetRun(context.Background(), id)
	require.NoError(t, err)
	return rec
}
