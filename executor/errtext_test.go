package executor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// An error that wraps two of the package's errors read with the prefix
// twice: "executor: invalid request: executor: graph replaced by a newer
// run: ...". It now says "executor:" once, and errors.Is still finds
// both.
func TestErrorsOfTwoSentinelsSayExecutorOnce(t *testing.T) {
	t.Run("a Resume of a run whose graph was replaced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 30)
			sink := progress.NewMemory(progress.MemoryOptions{})
			rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			e := newExecutor(t, l, sink)
			longer, err := graph.Build(graph.Lecture(), 60)
			require.NoError(t, err)
			_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: longer})
			require.NoError(t, err)
			_, err = e.Resume(ctx, l.g, rec.ID)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			require.ErrorIs(t, err, executor.ErrGraphReplaced)
			assert.True(t, strings.HasPrefix(err.Error(),
				"executor: invalid request: graph replaced by a newer run: the key's graph is now "+executor.Fingerprint(longer)[:12]), err.Error())
			assert.Equal(t, 1, strings.Count(err.Error(), "executor:"), err.Error())
		})
	})
	t.Run("a run whose graph was deleted", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 30)
			e := l.executor(executor.Options{})
			r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			require.NoError(t, err)
			time.Sleep(25 * time.Second) // the script is made: its commit comes next
			synctest.Wait()
			_, err = l.states.DeleteGraph(ctx, "lecture")
			require.NoError(t, err)
			_, err = r.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
			require.ErrorIs(t, err, executor.ErrGraphDeleted)
			assert.Equal(t, `executor: run cancelled: run "`+r.ID()+`": graph deleted during the run`, err.Error())
		})
	})
}

// A host's error whose text happens to start with "executor: " (a cancel
// cause, a validator's refusal) lost those words in the executor's error
// that wraps it, as if they were the package's duplicated prefix: only
// the package's own errors lose it, and the host's text is kept whole.
func TestWrappedHostErrorKeepsItsText(t *testing.T) {
	errHost := errors.New("executor: lock of the worker lost")
	t.Run("a cancel cause", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			e := l.executor(executor.Options{})
			r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			require.NoError(t, err)
			time.Sleep(time.Second)
			r.CancelCause(errHost)
			_, err = r.Wait()
			require.ErrorIs(t, err, errHost)
			assert.Equal(t, `executor: run cancelled: run "`+r.ID()+`": executor: lock of the worker lost`, err.Error())
		})
	})
	t.Run("a validator's refusal", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{
				graph.KindImage: {
					Retry: executor.RetryPolicy{MaxAttempts: 1},
					Validate: func(req executor.Request, _ executor.Asset) error {
						if req.NodeID == "asset:image:segment[1]" {
							return errHost
						}
						return nil
					},
				},
			}})
			_, err := l.run(e)
			var ne *executor.NodeError
			require.ErrorAs(t, err, &ne)
			require.ErrorIs(t, ne, errHost)
			assert.Equal(t, "executor: invalid output: executor: lock of the worker lost", ne.Err.Error())
		})
	})
}

// Some of the executor's errors named a run ID quoted (an Abandon's, a
// GraphOf's) and others bare (a failed or cancelled run's, a refused
// Resume's), so a log search or a reader could not count on one form.
// Every error text quotes it, as keys are quoted, and as pgstore does.
func TestErrorsQuoteRunIDs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// text returns an error text of the executor that names a run,
		// and the run's ID.
		text func(t *testing.T, l *lab) (string, string)
	}{
		{"a failed run", func(t *testing.T, l *lab) (string, string) {
			l.set("asset:image:segment[1]", fail(executor.Permanent(errors.New("provider refused"))))
			rep, err := l.run(l.executor(executor.Options{}))
			require.ErrorIs(t, err, executor.ErrRunFailed)
			assert.Equal(t, err.Error(), rep.Record.Error)
			return err.Error(), rep.Record.ID
		}},
		{"a cancelled run", func(t *testing.T, l *lab) (string, string) {
			r, err := l.executor(executor.Options{}).Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			require.NoError(t, err)
			time.Sleep(time.Second)
			r.Cancel()
			_, err = r.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
			return err.Error(), r.ID()
		}},
		{"a Resume of a run still running", func(t *testing.T, l *lab) (string, string) {
			e := l.executor(executor.Options{})
			r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			require.NoError(t, err)
			time.Sleep(time.Second)
			_, err = e.Resume(ctx, l.g, r.ID())
			require.ErrorIs(t, err, executor.ErrBusy)
			r.Cancel()
			_, _ = r.Wait()
			return err.Error(), r.ID()
		}},
		{"a Resume of an unknown run", func(t *testing.T, l *lab) (string, string) {
			_, err := l.executor(executor.Options{}).Resume(ctx, l.g, "no-such-run")
			require.ErrorIs(t, err, executor.ErrNotFound)
			return err.Error(), "no-such-run"
		}},
		{"a Resume without a graph", func(t *testing.T, l *lab) (string, string) {
			_, err := l.executor(executor.Options{}).Resume(ctx, nil, "r1")
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			return err.Error(), "r1"
		}},
		{"a RerunFailed after Close", func(t *testing.T, l *lab) (string, string) {
			e := l.executor(executor.Options{})
			require.NoError(t, e.Close(ctx))
			_, err := e.RerunFailed(ctx, l.g, "r1")
			require.ErrorIs(t, err, executor.ErrClosed)
			return err.Error(), "r1"
		}},
		{"the final event of a run found interrupted", func(t *testing.T, l *lab) (string, string) {
			sink := progress.NewMemory(progress.MemoryOptions{})
			rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			r, err := newExecutor(t, l, sink).Resume(ctx, l.g, rec.ID)
			require.NoError(t, err)
			_, err = r.Wait()
			require.NoError(t, err)
			evs := replay(t, sink, rec.ID)
			return evs[len(evs)-1].Error, rec.ID
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				text, id := tc.text(t, newLab(t, 30))
				assert.Contains(t, text, `run "`+id+`"`)
				assert.NotContains(t, text, "run "+id)
			})
		})
	}
}
