package executor_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// activeAll returns the node IDs whose calls are running, sorted.
func (l *lab) activeAll() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.active {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// requireStoredClean checks that each node is stored clean, with its
// asset.
func (l *lab) requireStoredClean(ids []string) {
	l.t.Helper()
	snap := l.snapshot()
	for _, id := range ids {
		st := snap.States[id]
		require.Equal(l.t, dirty.StatusClean, st.Status, "node %s", id)
		ok, err := l.assets.Exists(context.Background(), st.AssetRef)
		require.NoError(l.t, err)
		require.True(l.t, ok, "asset of %s", id)
	}
}

// An outside SRE team's trial: a shutdown cancelled the paid calls under
// way and threw their outputs away, and there was no drain. Run.Drain
// starts no node more, lets the calls under way end and records their
// outputs, and then ends the run as cancelled, with the code of its
// cause, CancelledByDrain by default.
func TestDrainLetsRunningCallsFinish(t *testing.T) {
	errDeploy := errors.New("deploying")
	for _, tc := range []struct {
		name  string
		cause error
		want  error // in the run's error, besides ErrCancelled
		code  string
		text  string // in the record's Error and the final event's
	}{
		{"nil cause", nil, executor.ErrDrained, executor.CancelledByDrain, "drained"},
		{"cause without a code", errDeploy, errDeploy, executor.CancelledByDrain, "deploying"},
		{"host's code", executor.CancelCode("shutdown", errDeploy), errDeploy, "shutdown", "deploying"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l, _, r := startLecture(t)
				time.Sleep(time.Second)
				running := l.activeAll()
				require.NotEmpty(t, running)
				r.Drain(tc.cause)
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				require.ErrorIs(t, err, tc.want)
				assert.Equal(t, executor.RunCancelled, rep.Record.Status)
				assert.Equal(t, tc.code, rep.Record.CancelledBy)
				assert.Contains(t, rep.Record.Error, tc.text)
				assert.Equal(t, running, rep.Generated, "the calls under way end and are kept")
				assert.Empty(t, rep.Cancelled)
				assert.Equal(t, running, l.calledIDs(), "no call starts after the drain")
				assert.Equal(t, len(running), rep.Record.Counts.Attempts)
				l.requireStoredClean(running)
				assert.Len(t, l.eventsOf(progress.NodeStarted), len(running))
				assert.Len(t, l.eventsOf(progress.NodeSucceeded), len(running))
				l.requireEventOrder(progress.RunCancelled)
				final := l.eventsOf(progress.RunCancelled)
				require.Len(t, final, 1)
				assert.Contains(t, final[0].Error, tc.text)
				// A viewer tells a shutdown's drain from a user's cancel
				// by the event's code, as the record does.
				assert.Equal(t, tc.code, final[0].CancelledBy, "the run.cancelled event's code")
			})
		})
	}
}

// A Resume (or ResumeCancelled) of a drained run makes only what the
// drain left: the outputs made during the drain are not paid for again.
func TestResumeAfterDrainRunsWhatWasLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "drained"})
		require.NoError(t, err)
		time.Sleep(25 * time.Second) // some nodes made, others under way
		r.Drain(nil)
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		made := rep.Generated
		require.NotEmpty(t, made)
		require.Less(t, len(made), l.g.Len())
		l.resetCalls()

		rr, err := e.Resume(ctx, l.g, "drained")
		require.NoError(t, err)
		rep2, err := rr.Wait()
		require.NoError(t, err)
		assert.Len(t, rep2.Generated, l.g.Len()-len(made))
		for _, id := range made {
			assert.NotContains(t, l.calledIDs(), id, "made during the drain, then made again")
		}
		l.requireAllClean()
	})
}

// A cancel during a drain cuts it short, as a cancel does: the calls under
// way are cancelled, and the run records the cancel's code.
func TestCancelDuringDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, _, r := startLecture(t)
		time.Sleep(time.Second)
		running := l.activeAll()
		require.NotEmpty(t, running)
		r.Drain(nil)
		time.Sleep(time.Second)
		start := time.Now()
		r.Cancel()
		rep, err := r.Wait()
		assert.Equal(t, start, time.Now(), "the cancel waited for the calls")
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.NotErrorIs(t, err, executor.ErrDrained)
		assert.Equal(t, executor.CancelledByCancel, rep.Record.CancelledBy)
		assert.Equal(t, running, rep.Cancelled)
		assert.Empty(t, rep.Generated)
		assert.Equal(t, running, l.calledIDs())
	})
}

// A drain of a run with no call under way ends it at once: a node
// waiting out its retry's backoff is not retried (a retry is a new paid
// call), and is recorded as cancelled, so that a Resume makes it.
func TestDrainWithNothingRunningEndsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		// Every call fails: the first nodes wait out their backoff.
		for n := range l.g.Len() {
			l.set(l.g.NodeID(graph.Node(n)), fail(errors.New("provider down")))
		}
		e := l.executor(executor.Options{Default: executor.KindOptions{
			Retry: executor.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Hour, MaxInterval: time.Hour}}})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "drained"})
		require.NoError(t, err)
		time.Sleep(time.Minute)
		require.Empty(t, l.activeAll())
		called := l.calledIDs()
		require.NotEmpty(t, called)
		start := time.Now()
		r.Drain(nil)
		rep, err := r.Wait()
		assert.Equal(t, start, time.Now(), "the drain waited")
		require.ErrorIs(t, err, executor.ErrDrained)
		assert.Equal(t, executor.CancelledByDrain, rep.Record.CancelledBy)
		assert.Equal(t, called, rep.Cancelled)
		assert.Empty(t, rep.Failed)
		assert.Equal(t, called, l.calledIDs(), "no retry after the drain")
		assert.Equal(t, len(called), rep.Record.Counts.Attempts)

		// The Resume makes them, and the rest.
		for n := range l.g.Len() {
			l.set(l.g.NodeID(graph.Node(n)), nil)
		}
		rr, err := e.Resume(context.Background(), l.g, "drained")
		require.NoError(t, err)
		_, err = rr.Wait()
		require.NoError(t, err)
		l.requireAllClean()
	})
}

// A drain of a run that has ended, or a second drain, changes nothing.
func TestDrainAfterEndOrTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, r := startLecture(t)
		time.Sleep(time.Second)
		r.Drain(executor.CancelCode("shutdown", nil))
		r.Drain(nil)
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, "shutdown", rep.Record.CancelledBy, "the first drain counts")
		r.Drain(nil)
		r.Cancel()
		rep2, err2 := r.Wait()
		assert.Equal(t, rep, rep2)
		assert.Equal(t, err, err2)
	})
}

// Executor.Drain drains every run of the executor, and returns once they
// have ended; a ctx that ends first returns its error, and the host
// cancels what is left.
func TestExecutorDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		var runs []*executor.Run
		for _, key := range []string{"a", "b"} {
			r, err := e.Start(ctx, executor.RunRequest{GraphKey: key, Graph: l.g})
			require.NoError(t, err)
			runs = append(runs, r)
		}
		time.Sleep(time.Second)
		require.NotEmpty(t, l.activeAll())
		require.NoError(t, e.Drain(ctx, nil))
		for _, r := range runs {
			select {
			case <-r.Done():
			default:
				t.Fatal("Drain returned before a run ended")
			}
			rep, err := r.Wait()
			require.ErrorIs(t, err, executor.ErrDrained)
			assert.Equal(t, executor.CancelledByDrain, rep.Record.CancelledBy)
			assert.NotEmpty(t, rep.Generated)
		}
		// Nothing to drain: it returns at once.
		require.NoError(t, e.Drain(ctx, nil))
	})
}

func TestExecutorDrainBoundedByCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l, e, r := startLecture(t)
		time.Sleep(time.Second)
		running := l.activeAll()
		require.NotEmpty(t, running)
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		err := e.Drain(dctx, executor.CancelCode("shutdown", nil))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		r.CancelCause(executor.CancelCode("shutdown", nil))
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, "shutdown", rep.Record.CancelledBy)
		assert.Equal(t, running, rep.Cancelled)
		assert.Equal(t, running, l.calledIDs(), "no call started during the drain")
	})
}

// "drain" is the executor's own code.
func TestDrainCodeIsBuiltin(t *testing.T) {
	require.ErrorIs(t, executor.CheckCancelCode(executor.CancelledByDrain), executor.ErrInvalidCancelCode)
}

// drainBulk is a bulk generator whose calls take took, and fail the
// nodes of fail (with an error a retry may fix); it records its calls'
// node IDs and run IDs.
type drainBulk struct {
	took  time.Duration
	fail  map[string]bool
	mu    sync.Mutex
	calls [][]string
	runs  []string
}

func (b *drainBulk) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	out := b.GenerateBatch(ctx, []executor.Request{req})
	return out[0].Asset, out[0].Err
}

func (b *drainBulk) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.NodeID)
	}
	b.mu.Lock()
	b.calls = append(b.calls, ids)
	b.runs = append(b.runs, reqs[0].RunID)
	b.mu.Unlock()
	time.Sleep(b.took)
	out := make([]executor.Outcome, len(reqs))
	for i, r := range reqs {
		if b.fail[r.NodeID] {
			out[i].Err = errors.New("provider busy")
			continue
		}
		out[i].Asset = executor.Asset{Data: []byte(r.NodeID)}
	}
	return out
}

func (b *drainBulk) called() ([][]string, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls), slices.Clone(b.runs)
}

// A drain lets a bulk call under way end and keeps its outputs, retries
// none of its nodes that failed, and starts no call that waits for a
// start under Options.Rates or for room under Options.Limits, which
// another run's call holds: a run with no call under way ends at once.
func TestDrainBulkCalls(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "voice", PerSegment: true, BatchKey: "tts", Concurrency: 4},
	}}
	g, err := graph.Build(tm, 4*graph.SegmentSeconds)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		opts executor.Options
	}{
		{"rate", executor.Options{MaxBatch: 2, Rates: map[string]executor.Rate{"tts": {Starts: 2, Per: time.Hour}}}},
		{"limit", executor.Options{Limits: map[string]int{"tts": 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				first := g.NodeID(0)
				gen := &drainBulk{took: 10 * time.Second, fail: map[string]bool{first: true}}
				opts := tc.opts
				opts.Generators = executor.Registry{"voice": gen}
				opts.States, opts.Assets, opts.Runs = executor.NewMemoryStates(), executor.NewMemoryAssets(), executor.NewMemoryRuns()
				e, err := executor.New(opts)
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(ctx)) })
				runs := map[string]*executor.Run{}
				for _, id := range []string{"a", "b"} {
					r, err := e.Start(ctx, executor.RunRequest{GraphKey: id, RunID: id, Graph: g})
					require.NoError(t, err)
					runs[id] = r
				}
				time.Sleep(time.Second)
				calls, callers := gen.called()
				require.Len(t, calls, 1, "one call under way, the other run's waits")
				busy, waiting := runs[callers[0]], runs["a"]
				if busy == waiting {
					waiting = runs["b"]
				}

				// The run whose call waits ends at once.
				start := time.Now()
				waiting.Drain(nil)
				rep, err := waiting.Wait()
				require.ErrorIs(t, err, executor.ErrDrained)
				assert.Equal(t, start, time.Now(), "the drain of a run without a call under way waited")
				assert.Equal(t, executor.CancelledByDrain, rep.Record.CancelledBy)
				assert.Empty(t, rep.Generated)
				assert.Empty(t, rep.Cancelled)

				// The other's call ends and is kept, but its failed node is
				// not retried.
				require.NoError(t, e.Drain(ctx, nil))
				assert.Equal(t, 9*time.Second, time.Since(start), "the drain waits for the call under way alone")
				got, _ := gen.called()
				assert.Equal(t, calls, got, "no call after the drain, nor a retry")
				rep, err = busy.Wait()
				require.ErrorIs(t, err, executor.ErrDrained)
				assert.Equal(t, executor.CancelledByDrain, rep.Record.CancelledBy)
				assert.ElementsMatch(t, slices.DeleteFunc(slices.Clone(calls[0]), func(id string) bool { return id == first }), rep.Generated)
				assert.Equal(t, []string{first}, rep.Cancelled, "its retry is not made")
			})
		})
	}
}

// startLecture starts a run of a 30-second lecture, graph key "lecture",
// on a new lab's executor with the default options, for the drain tests.
func startLecture(t *testing.T) (*lab, *executor.Executor, *executor.Run) {
	t.Helper()
	l := newLab(t, 30)
	e := l.executor(executor.Options{})
	r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
	require.NoError(t, err)
	return l, e, r
}
