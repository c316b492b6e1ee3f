package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// ownCode is a host's error type that says its cancel code itself.
type ownCode struct{ code string }

func (e *ownCode) Error() string      { return "deploy " + e.code }
func (e *ownCode) CancelCode() string { return e.code }

// panickyCode is a cancel cause whose CancelCode panics.
type panickyCode struct{}

func (panickyCode) Error() string      { return "panicky" }
func (panickyCode) CancelCode() string { panic("no code today") }

// unwrapPanics is a cancel cause whose Unwrap panics: errors.Is and
// errors.As panic on its chain.
type unwrapPanics struct{}

func (unwrapPanics) Error() string { return "half-built cause" }
func (unwrapPanics) Unwrap() error { panic("no chain today") }

// Two teams that resume at start-up the runs that their own shutdown or a
// lost lock cancelled, and not those that a user cancelled, matched
// Record.Error's text by substring: the record said who cancelled a run
// in its text alone. Record.CancelledBy now says it as a code, in the
// Report's record and the stored one alike: the executor's own for
// Run.Cancel, the context's cancel or deadline, a replaced or deleted
// graph and a host's cause without a code, and the host's, given with
// CancelCode (or an error of its own that has a CancelCode method)
// through Run.CancelCause or the cancel of the run's context. The run's
// error is what it was: it wraps ErrCancelled and the cause, with the
// same text. A code that CheckCancelCode refuses does not lose the
// cancel: the record says CancelledByHost, and the error says why,
// wrapping ErrInvalidCancelCode too.
func TestCancelledRunRecordsWhatCancelledIt(t *testing.T) {
	errShutdown := errors.New("host shutting down")
	type cancelFunc = func(t *testing.T, l *lab, ctx context.Context) (context.Context, func(*executor.Run))
	viaCancelCause := func(cause error) cancelFunc {
		return func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(r *executor.Run) { r.CancelCause(cause) }
		}
	}
	viaContext := func(cause error) cancelFunc {
		return func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func(*executor.Run) { cancel(cause) }
		}
	}
	for _, tc := range []struct {
		name   string
		cancel cancelFunc
		want   string
		cause  error // that the error wraps, besides ErrCancelled; nil for none
		text   string
		bad    bool // the code is refused
	}{
		{"Run.Cancel", func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, (*executor.Run).Cancel
		}, executor.CancelledByCancel, nil, "", false},
		{"Run.CancelCause(nil)", viaCancelCause(nil), executor.CancelledByCancel, nil, "", false},
		{"the run's context", func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithCancel(ctx)
			return ctx, func(*executor.Run) { cancel() }
		}, executor.CancelledByContext, context.Canceled, "", false},
		{"the run's context's deadline", func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			return ctx, func(*executor.Run) { time.Sleep(2 * time.Second); cancel() }
		}, executor.CancelledByDeadline, context.DeadlineExceeded, "", false},
		{"the run's context's deadline with a cause", func(_ *testing.T, _ *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			ctx, cancel := context.WithDeadlineCause(ctx, time.Now().Add(time.Second), errShutdown)
			return ctx, func(*executor.Run) { time.Sleep(2 * time.Second); cancel() }
		}, executor.CancelledByDeadline, errShutdown, "", false},
		{"graph replaced", func(t *testing.T, l *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(*executor.Run) { replaceLecture(t, l) }
		}, executor.CancelledByGraphReplaced, executor.ErrGraphReplaced, "", false},
		{"graph deleted", func(t *testing.T, l *lab, ctx context.Context) (context.Context, func(*executor.Run)) {
			return ctx, func(*executor.Run) { deleteLecture(t, l) }
		}, executor.CancelledByGraphDeleted, executor.ErrGraphDeleted, "", false},
		{"a host's cause without a code, by Run.CancelCause", viaCancelCause(errShutdown), executor.CancelledByHost, errShutdown, "", false},
		{"a host's cause without a code, by the context", viaContext(errShutdown), executor.CancelledByHost, errShutdown, "", false},
		{"a host's cause that wraps ErrCancelled", viaCancelCause(fmt.Errorf("by alice: %w", executor.ErrCancelled)),
			executor.CancelledByHost, nil, "", false},
		{"a host's code, by Run.CancelCause", viaCancelCause(executor.CancelCode("shutdown", errShutdown)),
			"shutdown", errShutdown, "host shutting down", false},
		{"a host's code, by the context", viaContext(executor.CancelCode("acme:deploy.v2_1", errShutdown)),
			"acme:deploy.v2_1", errShutdown, "host shutting down", false},
		{"a host's code without a cause", viaCancelCause(executor.CancelCode("shutdown", nil)),
			"shutdown", nil, "", false},
		{"a host's code, wrapped", viaCancelCause(fmt.Errorf("stopping: %w", executor.CancelCode("shutdown", errShutdown))),
			"shutdown", errShutdown, "stopping: host shutting down", false},
		{"a host's error type with a code", viaContext(fmt.Errorf("stopping: %w", &ownCode{"deploy-7"})),
			"deploy-7", nil, "stopping: deploy deploy-7", false},
		{"an empty code", viaCancelCause(executor.CancelCode("", errShutdown)), executor.CancelledByHost, errShutdown, "", true},
		{"a code in capitals", viaContext(executor.CancelCode("Shutdown", errShutdown)), executor.CancelledByHost, errShutdown, "", true},
		{"a code with a space", viaCancelCause(executor.CancelCode("shut down", errShutdown)), executor.CancelledByHost, errShutdown, "", true},
		{"a code too long", viaCancelCause(executor.CancelCode(strings.Repeat("x", executor.MaxCancelCodeBytes+1), errShutdown)),
			executor.CancelledByHost, errShutdown, "", true},
		{"the executor's own code", viaCancelCause(executor.CancelCode(executor.CancelledByCancel, errShutdown)),
			executor.CancelledByHost, errShutdown, "", true},
		{"a code that panics", viaCancelCause(panickyCode{}), executor.CancelledByHost, panickyCode{}, "", true},
		// Causes whose Error or Unwrap panic (a typed nil pointer's that
		// reads its fields): the executor reads them as the run ends,
		// where the panic ended the host's process.
		{"a typed nil cause, by Run.CancelCause", viaCancelCause((*ownCode)(nil)), executor.CancelledByHost, nil,
			"the cancel cause, a *executor_test.ownCode, panicked in its methods", true},
		{"a typed nil cause, by the context", viaContext((*ownCode)(nil)), executor.CancelledByHost, nil,
			"the cancel cause, a *executor_test.ownCode, panicked in its methods", true},
		{"a cause whose Unwrap panics", viaCancelCause(unwrapPanics{}), executor.CancelledByHost, nil,
			"the cancel cause, a executor_test.unwrapPanics, panicked in its methods: no chain today", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{})
				ctx, cancel := tc.cancel(t, l, context.Background())
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				time.Sleep(time.Second) // the script is under way
				cancel(r)
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				if tc.cause != nil {
					assert.ErrorIs(t, err, tc.cause)
				}
				if tc.text != "" {
					assert.Contains(t, err.Error(), tc.text)
				}
				assert.Equal(t, tc.bad, errors.Is(err, executor.ErrInvalidCancelCode), "errors.Is(%v, ErrInvalidCancelCode)", err)
				assert.Equal(t, executor.RunCancelled, rep.Record.Status)
				assert.Equal(t, tc.want, rep.Record.CancelledBy, "Report.Record")
				stored, gerr := l.runs.GetRun(context.Background(), r.ID())
				require.NoError(t, gerr)
				assert.Equal(t, tc.want, stored.CancelledBy, "the stored record")
				assert.Equal(t, rep.Record.Error, stored.Error)
				final := l.eventsOf(progress.RunCancelled)
				require.Len(t, final, 1)
				assert.Equal(t, tc.want, final[0].CancelledBy, "the run.cancelled event")
			})
		})
	}
}

// A code changes neither the run's error nor its record's Error: a host
// that adds one to the cause it gave before reads the same texts.
func TestCancelCodeKeepsTheErrorText(t *testing.T) {
	errShutdown := errors.New("host shutting down")
	texts := map[bool]string{}
	for _, coded := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			e := l.executor(executor.Options{})
			r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "r"})
			require.NoError(t, err)
			time.Sleep(time.Second)
			cause := errShutdown
			if coded {
				cause = executor.CancelCode("shutdown", errShutdown)
			}
			r.CancelCause(cause)
			rep, err := r.Wait()
			require.Error(t, err)
			assert.Equal(t, rep.Record.Error, err.Error())
			texts[coded] = err.Error()
		})
	}
	assert.Equal(t, texts[false], texts[true])
}

// Only a cancelled run has a code: a run that succeeded or failed has
// none, nor has one found interrupted (its process stopped; nothing
// cancelled it), whether Abandon or a Resume records it so.
func TestOnlyCancelledRunsHaveACancelCode(t *testing.T) {
	ctx := context.Background()
	t.Run("succeeded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			rep, err := l.run(l.executor(executor.Options{}))
			require.NoError(t, err)
			assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
			assert.Empty(t, rep.Record.CancelledBy)
		})
	})
	t.Run("failed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 30)
			fail := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
				return executor.Asset{}, executor.Permanent(errors.New("tts: quota"))
			})
			rep, err := l.run(l.executor(executor.Options{Generators: l.registry(fail)}))
			require.ErrorIs(t, err, executor.ErrRunFailed)
			assert.Equal(t, executor.RunFailed, rep.Record.Status)
			assert.Empty(t, rep.Record.CancelledBy)
			stored, err := l.runs.GetRun(ctx, rep.Record.ID)
			require.NoError(t, err)
			assert.Empty(t, stored.CancelledBy)
		})
	})
	for _, by := range []string{"Abandon", "Resume"} {
		t.Run("interrupted by "+by, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				sink := progress.NewMemory(progress.MemoryOptions{})
				rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				// A store that kept a stale code on the running record:
				// the interrupted record says none all the same.
				rec.CancelledBy = "shutdown"
				require.NoError(t, l.runs.PutRun(ctx, rec))
				e := newExecutor(t, l, sink)
				if by == "Abandon" {
					require.NoError(t, e.Abandon(ctx, rec.ID, "template retired"))
				} else {
					r, err := e.Resume(ctx, l.g, rec.ID)
					require.NoError(t, err)
					_, err = r.Wait()
					require.NoError(t, err)
				}
				got, err := l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				assert.Equal(t, executor.RunInterrupted, got.Status)
				assert.Empty(t, got.CancelledBy)
			})
		})
	}
}

// CheckCancelCode takes what a host may give to CancelCode and says what
// is wrong with anything else.
func TestCheckCancelCode(t *testing.T) {
	for _, code := range []string{"shutdown", "acme:deploy.v2_1", "lock-lost", "a", strings.Repeat("z", executor.MaxCancelCodeBytes)} {
		assert.NoError(t, executor.CheckCancelCode(code), code)
	}
	for _, tc := range []struct{ code, says string }{
		{"", "empty"},
		{strings.Repeat("z", executor.MaxCancelCodeBytes+1), "65 bytes long: want at most 64"},
		{"Shutdown", `has 'S' at byte 0`},
		{"shut down", `has ' ' at byte 4`},
		{"shutdown\x00", `has '\x00' at byte 8`},
		{"arrêt", `has 'ê' at byte 3`},
		{executor.CancelledByHost, "the executor's own"},
		{executor.CancelledByDeadline, "the executor's own"},
	} {
		err := executor.CheckCancelCode(tc.code)
		require.ErrorIs(t, err, executor.ErrInvalidCancelCode, "%q", tc.code)
		assert.Contains(t, err.Error(), tc.says)
	}
}
