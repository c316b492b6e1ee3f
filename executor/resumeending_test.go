package executor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// endingRun starts a run of l's lecture on an executor whose script
// generator ignores its context for a minute, cancels it once the script
// is called, and returns when the run's record says cancelled (once the
// call's grace has passed: see Options' docs of a cancel): the run
// then waits, up to Options.Grace (5 s), for that call, and its Done is
// not closed yet.
func endingRun(t *testing.T, l *lab) (*executor.Executor, *executor.Run) {
	t.Helper()
	started := make(chan struct{}, 1)
	stuck := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if req.ID.Kind == graph.KindScript {
			select {
			case started <- struct{}{}:
				time.Sleep(time.Minute) // ignores ctx, as a provider's SDK without one
			default:
			}
		}
		return l.Generate(ctx, req)
	})
	e := l.executor(executor.Options{Generators: l.registry(stuck)})
	r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
	require.NoError(t, err)
	<-started
	r.Cancel()
	// The call has its grace, a tenth of its timeout (at most a second),
	// to return its output; it is abandoned then.
	time.Sleep(time.Second)
	synctest.Wait()
	rec, err := l.runs.GetRun(context.Background(), r.ID())
	require.NoError(t, err)
	require.Equal(t, executor.RunCancelled, rec.Status, "the run's record says it ended")
	select {
	case <-r.Done():
		t.Fatal("the run ended at once: the test shows nothing")
	default:
	}
	return e, r
}

// requireEndedBy checks, in a synctest bubble, that run r had ended when
// the call that waited for it returned: its Done closes with no time
// passing (its goroutine may still be closing it).
func requireEndedBy(t *testing.T, r *executor.Run) {
	t.Helper()
	before := time.Now()
	synctest.Wait()
	select {
	case <-r.Done():
	default:
		t.Fatal("the call returned before the run it waits for had ended")
	}
	require.Equal(t, before, time.Now(), "no time passed")
}

// A run's record and final event say that it ended up to Options.Grace
// before its Done closes, when a generator ignores its context; a Resume
// or RerunFailed of the run then, asked for by a user who saw it end, was
// refused as "still running in this executor". It now waits for the run
// to end, and is taken; an Abandon finds the record ended, and returns
// nil; a ctx that ends first ends the wait, with nothing started.
func TestResumeOfARunWhoseRecordEndedWaitsForItsEnd(t *testing.T) {
	for _, resume := range resumers {
		t.Run(resume.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				e, r := endingRun(t, l)
				r2, err := resume.call(e, ctx, l.g, r.ID())
				require.NoError(t, err, "a run whose record says cancelled")
				requireEndedBy(t, r)
				_, err = r2.Wait()
				require.NoError(t, err)
				l.requireAllClean()
			})
		})
	}
	t.Run("the Resume that holds the key", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 30)
			var stick atomic.Bool
			started := make(chan struct{}, 1)
			stuck := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
				if req.ID.Kind == graph.KindScript && stick.CompareAndSwap(true, false) {
					started <- struct{}{}
					time.Sleep(time.Minute) // ignores ctx
				}
				return l.Generate(ctx, req)
			})
			e := l.executor(executor.Options{Generators: l.registry(stuck)})
			first, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			require.NoError(t, err)
			time.Sleep(time.Second)
			first.Cancel()
			_, err = first.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
			stick.Store(true)
			holder, err := e.Resume(ctx, l.g, first.ID())
			require.NoError(t, err)
			<-started
			holder.Cancel()
			time.Sleep(time.Second) // the call's grace
			synctest.Wait()
			rec, err := l.runs.GetRun(ctx, holder.ID())
			require.NoError(t, err)
			require.Equal(t, executor.RunCancelled, rec.Status)

			// The first run again, while its Resume's run, whose record
			// says cancelled, waits for its generator call.
			r, err := e.Resume(ctx, l.g, first.ID())
			require.NoError(t, err)
			requireEndedBy(t, holder)
			_, err = r.Wait()
			require.NoError(t, err)
			l.requireAllClean()
		})
	})
	t.Run("Abandon", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 30)
			e, r := endingRun(t, l)
			require.NoError(t, e.Abandon(ctx, r.ID(), "gone"), "a record that says cancelled is left as it is")
			rec, err := l.runs.GetRun(ctx, r.ID())
			require.NoError(t, err)
			assert.Equal(t, executor.RunCancelled, rec.Status)
			_, err = r.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
		})
	})
	t.Run("a ctx that ends first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			e, r := endingRun(t, l)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := e.Resume(ctx, l.g, r.ID())
			require.ErrorIs(t, err, executor.ErrCancelled)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.NotErrorIs(t, err, executor.ErrBusy)
			assert.ErrorContains(t, err, "wait for it to end")
			select {
			case <-r.Done():
				t.Fatal("the run ended before the ctx did: the test shows nothing")
			default:
			}
			runs, err := l.runs.ListRuns(context.Background(), "lecture")
			require.NoError(t, err)
			assert.Len(t, runs, 1, "nothing started")
			_, err = r.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
		})
	})
}
