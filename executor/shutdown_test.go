package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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

// stallStates is a state store that, once stalled, answers no call until
// the call's context ends, as a store does behind a lost connection.
type stallStates struct {
	executor.StateStore
	stalled atomic.Bool
	entered chan struct{} // closed when the first call stalls
	once    sync.Once
}

func newStallStates(s executor.StateStore) *stallStates {
	return &stallStates{StateStore: s, entered: make(chan struct{})}
}

func (s *stallStates) stall(ctx context.Context) error {
	s.once.Do(func() { close(s.entered) })
	<-ctx.Done()
	return ctx.Err()
}

func (s *stallStates) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	if s.stalled.Load() {
		return 0, s.stall(ctx)
	}
	return s.StateStore.Commit(ctx, key, expect, changes)
}

func (s *stallStates) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	if s.stalled.Load() {
		return executor.Snapshot{}, s.stall(ctx)
	}
	return s.StateStore.Load(ctx, key)
}

// ctxSink publishes to the lab unless its context is done, as a sink
// that talks to a server does.
type ctxSink struct{ l *lab }

func (s ctxSink) Publish(ctx context.Context, evs ...progress.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.l.Publish(ctx, evs...)
}

// A cancelled run whose state store stalls mid-commit ends within
// Options.StoreTimeout of the cancel, with its final record stored; before,
// it waited for the store for as long as the store stalled.
func TestCancelWhileTheStoreStalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		states := newStallStates(l.states)
		const bound = 10 * time.Second
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: states, Assets: l.assets,
			Runs: l.runs, Sink: ctxSink{l}, StoreTimeout: bound})
		require.NoError(t, err)
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(21 * time.Second) // the script is committed; narrations run
		states.stalled.Store(true)
		<-states.entered // a narration's commit stalls
		cancelled := time.Now()
		r.Cancel()
		rep, err := r.Wait()
		took := time.Since(cancelled)
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.GreaterOrEqual(t, took, bound, "the stalled commit had its time")
		assert.LessOrEqual(t, took, 2*bound+5*time.Second, "ended within twice StoreTimeout and Grace of the cancel")
		assert.Equal(t, executor.RunCancelled, rep.Record.Status)
		rec, err := l.runs.GetRun(context.Background(), r.ID())
		require.NoError(t, err)
		assert.Equal(t, executor.RunCancelled, rec.Status, "the final record, which has a bound of its own")
		l.requireEventOrder(progress.RunCancelled) // the final event went out too
		require.NoError(t, e.Close(context.Background()))
	})
}

// Close stops new runs and waits for those in flight to end and record
// their outcome, as a host's shutdown needs before it closes its stores.
func TestCloseWaitsForRunsAndRefusesNewOnes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		var runs []*executor.Run
		for _, key := range []string{"a", "b", "c"} {
			r, err := e.Start(ctx, executor.RunRequest{GraphKey: key, Graph: l.g})
			require.NoError(t, err)
			runs = append(runs, r)
		}
		time.Sleep(25 * time.Second)

		// A Close whose context ends first returns its error; the runs go on.
		short, stop := context.WithTimeout(context.Background(), time.Second)
		assert.ErrorIs(t, e.Close(short), context.DeadlineExceeded)
		stop()
		for _, r := range runs {
			select {
			case <-r.Done():
				t.Fatalf("run %s ended", r.ID())
			default:
			}
		}
		_, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "d", Graph: l.g})
		require.ErrorIs(t, err, executor.ErrClosed)
		_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "d", Graph: l.g})
		require.ErrorIs(t, err, executor.ErrClosed)

		cancel() // the host's shutdown: cancel, then close
		require.NoError(t, e.Close(context.Background()))
		for _, r := range runs {
			select {
			case <-r.Done():
			default:
				t.Fatalf("Close returned before run %s ended", r.ID())
			}
			rec, err := l.runs.GetRun(context.Background(), r.ID())
			require.NoError(t, err)
			assert.Equal(t, executor.RunCancelled, rec.Status, "run %s's stored record", r.ID())
		}
		_, err = e.Resume(context.Background(), l.g, runs[0].ID())
		require.ErrorIs(t, err, executor.ErrClosed)
	})
}

// Resume and RerunFailed refuse a run that is still running in the
// executor: it would pay for its nodes twice. Once it ended, they take it.
func TestResumeRefusesALiveRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(time.Second)
		_, err = e.Resume(context.Background(), l.g, r.ID())
		require.ErrorIs(t, err, executor.ErrBusy)
		assert.ErrorContains(t, err, "still running")
		_, err = e.RerunFailed(context.Background(), l.g, r.ID())
		require.ErrorIs(t, err, executor.ErrBusy)
		r.Cancel()
		_, err = r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		r2, err := e.Resume(context.Background(), l.g, r.ID())
		require.NoError(t, err)
		_, err = r2.Wait()
		require.NoError(t, err)
		l.requireAllClean()
	})
}

// A Resume or RerunFailed of a run that another Resume of this executor
// is finishing is refused: two of them (a retry button pressed twice)
// would each pay for the nodes left. Once that one ended, they take the
// run again.
func TestResumeRefusesARunAlreadyBeingResumed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(time.Second)
		r.Cancel()
		_, err = r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)

		first, err := e.Resume(context.Background(), l.g, r.ID())
		require.NoError(t, err)
		time.Sleep(time.Second)
		_, err = e.Resume(context.Background(), l.g, r.ID())
		require.ErrorIs(t, err, executor.ErrBusy)
		assert.ErrorContains(t, err, `already being finished by run "`+first.ID()+`"`)
		_, err = e.RerunFailed(context.Background(), l.g, r.ID())
		require.ErrorIs(t, err, executor.ErrBusy)
		first.Cancel()
		_, err = first.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)

		again, err := e.Resume(context.Background(), l.g, r.ID())
		require.NoError(t, err, "the first Resume ended")
		_, err = again.Wait()
		require.NoError(t, err)
		l.requireAllClean()
	})
}

// A run recorded as running but not going on (its process crashed) is
// recorded as interrupted once a Resume of it has started; a run that
// recorded its outcome keeps it.
func TestResumeRecordsACrashedRunAsInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		ctx := context.Background()
		started := time.Now().Add(-time.Hour)
		crashed := executor.Record{ID: "crashed", GraphKey: "lecture", Seconds: 60, TriggeredBy: "test",
			Status: executor.RunRunning, StartedAt: started}
		require.NoError(t, l.runs.PutRun(ctx, crashed))
		r, err := e.Resume(ctx, l.g, "crashed")
		require.NoError(t, err)
		rec, err := l.runs.GetRun(ctx, "crashed")
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, rec.Status)
		assert.Contains(t, rec.Error, "resumed by run "+r.ID())
		assert.Equal(t, time.Now(), rec.EndedAt)
		assert.Equal(t, started, rec.StartedAt)
		rep, err := r.Wait()
		require.NoError(t, err)
		assert.Equal(t, "resume of run crashed", rep.Record.Reason)

		// The resume succeeded and recorded it: resuming it again keeps
		// its outcome.
		r2, err := e.Resume(ctx, l.g, r.ID())
		require.NoError(t, err)
		_, err = r2.Wait()
		require.NoError(t, err)
		rec, err = l.runs.GetRun(ctx, r.ID())
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rec.Status)
	})
}

// Close returns only once every run's Done is closed.
func TestCloseReturnsAfterDone(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 10)
	require.NoError(t, err)
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.IdempotencyKey), Length: graph.SegmentLength}, nil
	})
	reg := registryFor(g, gen)
	for round := range 10 {
		e, err := executor.New(executor.Options{Generators: reg})
		require.NoError(t, err)
		var runs []*executor.Run
		for i := range 50 {
			r, err := e.Start(t.Context(), executor.RunRequest{GraphKey: fmt.Sprint("l", i), Graph: g})
			require.NoError(t, err)
			runs = append(runs, r)
		}
		require.NoError(t, e.Close(t.Context()))
		for _, r := range runs {
			select {
			case <-r.Done():
			default:
				t.Fatalf("round %d: Close returned before run %s was done", round, r.ID())
			}
		}
	}
}

// blockStart is a sink that holds the run.started event of run id until
// release is closed, so that a test can act while that run starts.
type blockStart struct {
	id      string
	held    chan struct{}
	release chan struct{}
}

func (s *blockStart) Publish(_ context.Context, evs ...progress.Event) error {
	for _, ev := range evs {
		if ev.RunID == s.id && ev.Type == progress.RunStarted {
			close(s.held)
			<-s.release
		}
	}
	return nil
}

// A Resume of a run that is still starting is refused, as one of a run
// going on is; and a closed executor refuses Resume and RerunFailed with
// ErrClosed, before it asks the run store.
func TestResumeOfAStartingRunAndAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		sink := &blockStart{id: "job-1", held: make(chan struct{}), release: make(chan struct{})}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
			Runs: l.runs, Sink: sink})
		require.NoError(t, err)
		started := make(chan *executor.Run)
		go func() {
			r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "job-1"})
			assert.NoError(t, err)
			started <- r
		}()
		<-sink.held // job-1 is recorded as running, and still starting
		_, err = e.Resume(context.Background(), l.g, "job-1")
		require.ErrorIs(t, err, executor.ErrBusy)
		assert.ErrorContains(t, err, "still running")
		close(sink.release)
		r := <-started
		_, err = r.Wait()
		require.NoError(t, err)
		rec, err := l.runs.GetRun(context.Background(), "job-1")
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rec.Status)

		require.NoError(t, e.Close(context.Background()))
		_, err = e.Resume(context.Background(), l.g, "gone")
		require.ErrorIs(t, err, executor.ErrClosed)
		_, err = e.RerunFailed(context.Background(), l.g, "job-1")
		require.ErrorIs(t, err, executor.ErrClosed)
	})
}

// A node named twice in one Edit is edited once: its revision goes up by
// one, as for a single edit.
func TestEditNamesANodeOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		before := l.snapshot().States["script"].Rev
		_, err = e.Edit(context.Background(), l.g, "lecture", "script", "asset:music", "script", "script")
		require.NoError(t, err)
		snap := l.snapshot()
		assert.Equal(t, before+1, snap.States["script"].Rev)
		assert.Equal(t, dirty.StatusDirty, snap.States["asset:music"].Status)
	})
}

// A graph deleted during a run (DeleteGraph, from another process say):
// the run stops, as cancelled with ErrGraphDeleted, and records nothing
// more, so that the graph stays deleted, with no state made again (not
// even those of the nodes it was running, which it would record as
// cancelled or failed).
func TestDeleteGraphStopsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		gen := l.onceAt("asset:video:segment[0]", func() {
			_, err := l.states.DeleteGraph(context.Background(), "lecture")
			assert.NoError(t, err)
		})
		l.set("asset:video:segment[1]", fail(errors.New("provider down")))
		e := l.executor(executor.Options{Generators: l.registry(gen)})
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrCancelled)
		require.ErrorIs(t, err, executor.ErrGraphDeleted)
		assert.Equal(t, executor.RunCancelled, rep.Record.Status)
		assert.Contains(t, rep.Record.Error, "graph deleted")
		assert.Empty(t, l.snapshot().States, "the run made the deleted graph again")
		l.requireEventOrder(progress.RunCancelled)
		for _, ev := range l.eventsOf(progress.NodeSuperseded) {
			assert.Contains(t, ev.Message, "graph deleted", "%s", ev.Node)
		}
	})
}

// A run of another graph on the same key (the lecture made longer) that
// starts during a run wins: the older run stops, as cancelled with
// ErrGraphReplaced, once it finds the newer graph's fingerprint, and its
// results do not overwrite the newer run's (the timeline of 3 segments
// over the one of 6). Runs of the same graph do not stop each other.
func TestNewerRunOfAnotherGraphReplacesTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		longer, err := graph.Build(graph.Lecture(), 60)
		require.NoError(t, err)
		var newer *executor.Report
		newerDone := make(chan struct{})
		gen := l.onceAt("asset:video:segment[0]", func() {
			defer close(newerDone)
			e2, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets, Runs: l.runs})
			assert.NoError(t, err)
			newer, err = e2.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: longer})
			assert.NoError(t, err)
		})
		e := l.executor(executor.Options{Generators: l.registry(gen)})
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrCancelled)
		require.ErrorIs(t, err, executor.ErrGraphReplaced)
		// The older run stopped as soon as its commits met the newer
		// run's: that one may still be going, in the abandoned call.
		<-newerDone
		assert.Equal(t, executor.RunCancelled, rep.Record.Status)
		assert.Contains(t, rep.Record.Error, "graph replaced")
		assert.NotContains(t, rep.Generated, "timeline")
		require.NotNil(t, newer)
		assert.Contains(t, newer.Generated, "timeline")

		// The store holds the longer lecture, whole and current: a run
		// of it has nothing to do, and one of the shorter graph redoes
		// its timeline.
		e3 := l.executor(executor.Options{})
		again, err := e3.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: longer})
		require.NoError(t, err)
		assert.Empty(t, again.Generated)
		assert.Zero(t, again.Record.Counts.Planned)
		_, set, err := e3.Plan(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		require.Equal(t, 1, set.Len(), "the shorter graph's timeline is not the stored one")
		assert.Equal(t, "timeline", l.g.NodeID(set.Nodes()[0]))

		// A run of the same graph during another shares the key, as before.
		same := l.onceAt("asset:video:segment[1]", func() {
			e4, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets, Runs: l.runs})
			assert.NoError(t, err)
			_, err = e4.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
				Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonForced}}})
			assert.NoError(t, err)
		})
		e5 := l.executor(executor.Options{Generators: l.registry(same)})
		_, err = e5.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
	})
}

// A Resume or RerunFailed of a run whose graph is no longer the key's
// (a run of a longer lecture started since, or the graph was deleted) is
// refused: it would make the older graph the key's again, stopping the
// newer run, or make a deleted graph again. A host that wants the older
// graph back starts a run of it.
func TestResumeOfAReplacedOrDeletedGraphIsRefused(t *testing.T) {
	longer, err := graph.Build(graph.Lecture(), 60)
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		after func(t *testing.T, l *lab, e *executor.Executor)
		want  error
	}{
		{"replaced", func(t *testing.T, l *lab, e *executor.Executor) {
			_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: longer})
			require.NoError(t, err)
		}, executor.ErrGraphReplaced},
		{"deleted", func(t *testing.T, l *lab, e *executor.Executor) {
			_, err := l.states.DeleteGraph(context.Background(), "lecture")
			require.NoError(t, err)
		}, executor.ErrGraphDeleted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				l.set("asset:video:segment[1]", fail(executor.Permanent(errors.New("refused"))))
				e := l.executor(executor.Options{})
				rep, err := l.run(e)
				require.ErrorIs(t, err, executor.ErrRunFailed)
				l.set("asset:video:segment[1]", nil)
				tc.after(t, l, e)
				before := l.snapshot()

				_, err = e.Resume(context.Background(), l.g, rep.Record.ID)
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				require.ErrorIs(t, err, tc.want)
				_, err = e.RerunFailed(context.Background(), l.g, rep.Record.ID)
				require.ErrorIs(t, err, tc.want)
				assert.Equal(t, before, l.snapshot(), "a refused resume changed the states")

				// A new run of the older graph is the host's choice.
				_, err = l.run(e)
				require.NoError(t, err)
			})
		})
	}
}

// An error about a long run ID or graph key quotes its start, not the
// whole of it: a host's keys may be long, and the error would be mostly
// key.
func TestLongKeysAreCutInErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		id := strings.Repeat("r", 1300)
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: id})
		require.NoError(t, err)
		_, err = e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: id})
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.Less(t, len(err.Error()), 400, "the error: %v", err)
		assert.ErrorContains(t, err, "… (1300 bytes)")
		r.Cancel()
		_, err = r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
	})
}
