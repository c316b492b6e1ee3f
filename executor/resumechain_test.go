package executor_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// A Resume or RerunFailed was refused while another one finished the same
// run, but not along a chain: with Y the resume of X (cancelled), a
// Resume of Y and a Resume of X could run at once, in either order, and
// each paid its providers for the nodes X left. Every Resume and
// RerunFailed of a graph key finishes the same work, the key's nodes that
// are not clean: a second one of the key is now refused, with the error
// of the same-run check, while the first starts or runs, whichever run of
// the chain each names; once it ended, the others are taken again.
func TestResumeRefusesTheChainOfARunBeingFinished(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first string // "X" or "Y": the run the Resume that goes on finishes
		then  string // the run of the second one, refused
	}{
		{name: "X while the resume of Y runs", first: "Y", then: "X"},
		{name: "Y while a second resume of X runs", first: "X", then: "Y"},
		// V, an earlier run of the key, left nothing: its resume would
		// make the same nodes, those X left.
		{name: "an earlier run of the key while the resume of Y runs", first: "Y", then: "V"},
	} {
		for _, first := range resumers {
			for _, then := range resumers {
				t.Run(tc.name+"/"+first.name+" then "+then.name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						ctx := context.Background()
						l := newLab(t, 60)
						e := l.executor(executor.Options{})
						v, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
						require.NoError(t, err)
						x, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
							Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}})
						require.NoError(t, err)
						time.Sleep(time.Second)
						x.Cancel()
						_, err = x.Wait()
						require.ErrorIs(t, err, executor.ErrCancelled)
						y, err := e.Resume(ctx, l.g, x.ID())
						require.NoError(t, err)
						time.Sleep(21 * time.Second) // the script is made; narrations run
						y.Cancel()
						_, err = y.Wait()
						require.ErrorIs(t, err, executor.ErrCancelled)
						ids := map[string]string{"V": v.Record.ID, "X": x.ID(), "Y": y.ID()}

						running, err := first.call(e, ctx, l.g, ids[tc.first])
						require.NoError(t, err)
						time.Sleep(time.Second)
						_, err = then.call(e, ctx, l.g, ids[tc.then])
						require.ErrorIs(t, err, executor.ErrBusy, "a second run would pay for the same nodes")
						assert.ErrorContains(t, err, `already being finished by run "`+running.ID()+`"`)
						_, err = e.Runs().GetRun(ctx, running.ID())
						require.NoError(t, err)
						recs, err := e.Runs().ListRuns(ctx, "lecture")
						require.NoError(t, err)
						assert.Len(t, recs, 4, "the refused one recorded no run")

						_, err = running.Wait()
						require.NoError(t, err)
						l.requireAllClean()
						again, err := then.call(e, ctx, l.g, ids[tc.then])
						require.NoError(t, err, "the first one ended")
						_, err = again.Wait()
						require.NoError(t, err)
					})
				})
			}
		}
	}
}

// A Resume refused because a run of the key, or the run itself, was
// still going on told the user to "wait for it to end, or cancel it
// first": a host that did cancel it (Run.Cancel, which does not wait)
// and then pressed retry was refused again with the same advice, since
// the cancelled run still counts until it has ended. The refusal now
// says to wait for its end, after a cancel too.
func TestResumeRefusalAfterACancelSaysToWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		var hang atomic.Bool
		script := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if hang.Load() {
				time.Sleep(time.Hour) // ignores its context: the run ends after Options.Grace
			}
			return l.Generate(ctx, req)
		})
		reg := l.registry(l)
		reg["script"] = script
		// The resume's cancelled record waits: a Resume while it waits
		// finds the run running, as one that comes before the run has seen
		// its cancel (once written, a Resume waits for the run's end
		// instead, see TestResumeOfARunWhoseRecordEndedWaitsForItsEnd).
		runs := &heldRuns{MemoryRuns: l.runs, held: make(chan struct{}), release: make(chan struct{}),
			hold: func(r executor.Record) bool { return r.Resumes != "" && r.Status == executor.RunCancelled }}
		e, err := executor.New(executor.Options{Generators: reg, States: l.states, Assets: l.assets, Runs: runs,
			Sink: l, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
		t.Cleanup(runs.free) // before Close, were the test to fail
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		hang.Store(true)
		x, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}})
		require.NoError(t, err)
		time.Sleep(time.Second)
		x.Cancel()
		_, err = x.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		y, err := e.Resume(ctx, l.g, x.ID())
		require.NoError(t, err)
		time.Sleep(time.Second)
		y.Cancel() // as the user asked; the run ends once its generator's grace is over
		<-runs.held
		for _, id := range []string{x.ID(), y.ID()} {
			_, err = e.Resume(ctx, l.g, id)
			require.ErrorIs(t, err, executor.ErrBusy)
			assert.NotContains(t, err.Error(), "or cancel it first")
			assert.ErrorContains(t, err, "wait for it to end")
		}
		runs.free()
		_, err = y.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		hang.Store(false)
		again, err := e.Resume(ctx, l.g, y.ID())
		require.NoError(t, err, "it ended")
		_, err = again.Wait()
		require.NoError(t, err)
	})
}
