package executor_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// requireBusy checks that err is a refusal for what is under way, to
// retry later, and no bad input: it wraps ErrBusy, once, and not
// ErrInvalidRequest, and its text says want.
func requireBusy(t *testing.T, err error, want string) {
	t.Helper()
	require.ErrorIs(t, err, executor.ErrBusy)
	assert.NotErrorIs(t, err, executor.ErrInvalidRequest, "a busy state is no bad input")
	assert.Equal(t, 1, strings.Count(err.Error(), executor.ErrBusy.Error()), "the sentinel once: %v", err)
	assert.ErrorContains(t, err, want)
}

// ErrInvalidRequest's doc told a host to answer every refusal that wraps
// it as bad input (HTTP 400), but a Resume, RerunFailed or Abandon of a
// run still going on, a second Resume of a key, and a call about a run
// that an Abandon holds wrapped it too: the request was good, and the
// same call a moment later is taken. They now wrap ErrBusy instead, and a
// host answers them as a conflict (HTTP 409); the refusals of bad input
// still wrap ErrInvalidRequest alone.
func TestRefusalsForWhatIsUnderWayWrapErrBusy(t *testing.T) {
	t.Run("a run going on", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 60)
			e := l.executor(executor.Options{})
			r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			require.NoError(t, err)
			time.Sleep(time.Second)
			for _, resume := range resumers {
				_, err = resume.call(e, ctx, l.g, r.ID())
				requireBusy(t, err, "still running in this executor")
			}
			requireBusy(t, e.Abandon(ctx, r.ID(), "gone"), "still running in this executor")
			r.Cancel()
			_, err = r.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
		})
	})
	t.Run("another Resume of the key", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 60)
			e := l.executor(executor.Options{})
			r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			require.NoError(t, err)
			time.Sleep(time.Second)
			r.Cancel()
			_, err = r.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
			first, err := e.Resume(ctx, l.g, r.ID())
			require.NoError(t, err)
			time.Sleep(time.Second)
			for _, resume := range resumers {
				_, err = resume.call(e, ctx, l.g, r.ID())
				requireBusy(t, err, "already being finished by run")
			}
			first.Cancel()
			_, err = first.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
		})
	})
	t.Run("an Abandon under way", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 30)
			rec, e, runs := crashedAndHeld(t, l, progress.NewMemory(progress.MemoryOptions{}))
			abandoned := make(chan error, 1)
			go func() { abandoned <- e.Abandon(ctx, rec.ID, "template podcast-v1 was retired") }()
			<-runs.held
			for _, resume := range resumers {
				_, err := resume.call(e, ctx, l.g, rec.ID)
				requireBusy(t, err, "being abandoned")
			}
			requireBusy(t, e.Abandon(ctx, rec.ID, "again"), "being abandoned")
			runs.free()
			require.NoError(t, <-abandoned)

			// Abandoned now: a Resume is refused for good, as bad input.
			_, err := e.Resume(ctx, l.g, rec.ID)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.NotErrorIs(t, err, executor.ErrBusy)
		})
	})
	t.Run("a Resume that resumes the run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			l := newLab(t, 30)
			rec, e, runs := crashedAndHeld(t, l, progress.NewMemory(progress.MemoryOptions{}))
			type resumed struct {
				run *executor.Run
				err error
			}
			first := make(chan resumed, 1)
			go func() {
				run, err := e.Resume(ctx, l.g, rec.ID)
				first <- resumed{run, err}
			}()
			<-runs.held
			requireBusy(t, e.Abandon(ctx, rec.ID, "gone"), "is being resumed by run")
			runs.free()
			got := <-first
			require.NoError(t, got.err)
			_, err := got.run.Wait()
			require.NoError(t, err)
		})
	})
}
