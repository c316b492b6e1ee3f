package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// A call that took its starts under Options.Rates and was then cancelled
// before its generator was called (its node.started went out as the
// cancel came) kept them: the quota counted provider calls that were
// never made, so a Resume of the run, or any later run of the executor,
// waited out the whole window (an hour here) for a start that the quota
// had room for. The starts of a call never made are now given back.
func TestQuotaStartsOfACallNeverMadeAreGivenBack(t *testing.T) {
	single := graph.Template{Kinds: []graph.Kind{{Name: "x", BatchKey: "k", Concurrency: 1}}}
	bulk := graph.Template{Kinds: []graph.Kind{{Name: "x", BatchKey: "k", Concurrency: 2, PerSegment: true}}}
	for _, tc := range []struct {
		name   string
		tmpl   graph.Template
		bulk   bool
		starts int
	}{
		{name: "single", tmpl: single, starts: 1},
		{name: "bulk", tmpl: bulk, bulk: true, starts: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				g, err := graph.Build(tc.tmpl, 2*graph.SegmentSeconds)
				require.NoError(t, err)
				c := newCallLog()
				c.hold = g.NodeID(0)
				var gen executor.Generator = executor.GeneratorFunc(c.Generate)
				if tc.bulk {
					gen = c
				}
				e, err := executor.New(executor.Options{Generators: registryFor(g, gen), Sink: c,
					Rates: map[string]executor.Rate{"k": {Starts: tc.starts, Per: time.Hour}}})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()

				first, err := e.Start(ctx, executor.RunRequest{GraphKey: "key", Graph: g, RunID: "cancelled"})
				require.NoError(t, err)
				<-c.holding // its node.started is going out: its starts are taken
				first.Cancel()
				close(c.release)
				rep, err := first.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				require.Zero(t, rep.Record.Counts.Attempts, "the cancel came before the call")
				c.mu.Lock()
				require.Empty(t, c.calls["cancelled"], "no generator call")
				c.mu.Unlock()

				t0 := time.Now()
				again, err := e.Resume(ctx, g, "cancelled", executor.ResumeOptions{RunID: "resume"})
				require.NoError(t, err)
				<-c.called
				assert.Less(t, time.Since(t0), time.Minute,
					"the resume's call waited for the starts of a call that was never made")
				again.Cancel()
				_, err = again.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
			})
		})
	}
}
