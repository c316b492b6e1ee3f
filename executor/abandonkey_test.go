package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// Two runs of one key left running by a crash. An Abandon of the one
// was refused while a Resume of the other was under way, with the
// refusal meant for a second Resume ("each one of a graph key makes the
// same nodes"), which Abandon does not make: the two write two records,
// and the Resume's run makes what the key's states say. It is now
// allowed. An Abandon of the run that the Resume resumes is refused, as
// before, with a message that fits it: a retry once that call has
// returned finds the run interrupted, and returns nil.
func TestAbandonDuringAResumeOfTheKey(t *testing.T) {
	for _, resumer := range resumers {
		t.Run(resumer.name, func(t *testing.T) {
			for _, tc := range []struct {
				name      string
				same      bool // the Abandon is of the run the Resume resumes
				wantError string
			}{
				{name: "of another run of the key"},
				{name: "of the run it resumes", same: true,
					wantError: "is being resumed by run"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						ctx := context.Background()
						l := newLab(t, 30)
						sink := progress.NewMemory(progress.MemoryOptions{})
						abandoned := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
						resumed := abandoned
						if !tc.same {
							resumed = crashRun(t, l, sink, 3, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
								Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonForced}}})
						}
						runs := &heldRuns{MemoryRuns: l.runs, hold: recordsAs(resumed.ID, executor.RunInterrupted), held: make(chan struct{}), release: make(chan struct{})}
						e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
							Runs: runs, Sink: sink})
						require.NoError(t, err)
						t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
						t.Cleanup(runs.free)

						type result struct {
							run *executor.Run
							err error
						}
						resuming := make(chan result, 1)
						go func() {
							r, err := resumer.call(e, ctx, l.g, resumed.ID)
							resuming <- result{r, err}
						}()
						<-runs.held // the Resume records the run it resumes
						abandonErr := e.Abandon(ctx, abandoned.ID, "template podcast-v1 was retired")
						runs.free()
						res := <-resuming
						require.NoError(t, res.err)
						_, err = res.run.Wait()
						require.NoError(t, err)

						if tc.wantError != "" {
							require.ErrorIs(t, abandonErr, executor.ErrBusy)
							assert.ErrorContains(t, abandonErr, tc.wantError)
							assert.ErrorContains(t, abandonErr, res.run.ID())
							assert.ErrorContains(t, abandonErr, "retry once that call has returned")
							assert.NotContains(t, abandonErr.Error(), "same nodes")
							// The retry finds the run interrupted, resumed.
							require.NoError(t, e.Abandon(ctx, abandoned.ID, "template podcast-v1 was retired"))
							got, err := l.runs.GetRun(ctx, abandoned.ID)
							require.NoError(t, err)
							assert.Equal(t, "interrupted: it ended without recording its outcome; resumed by run "+res.run.ID(), got.Error)
							return
						}
						require.NoError(t, abandonErr, "an Abandon of another run of the key")
						got, err := l.runs.GetRun(ctx, abandoned.ID)
						require.NoError(t, err)
						assert.Equal(t, "interrupted: it ended without recording its outcome; not resumed: template podcast-v1 was retired", got.Error)
						events := replay(t, sink, abandoned.ID)
						require.Len(t, events, 6, "the abandoned run's final event")
						assert.Equal(t, got.Error, events[5].Message)
						other, err := l.runs.GetRun(ctx, resumed.ID)
						require.NoError(t, err)
						assert.Equal(t, "interrupted: it ended without recording its outcome; resumed by run "+res.run.ID(), other.Error)
					})
				})
			}
		})
	}
}
