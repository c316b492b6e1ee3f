package executor_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
)

// crashingSink passes the first n events on to next, and drops the rest:
// the process of their run was killed, and nothing more reached next.
type crashingSink struct {
	next progress.Sink
	mu   sync.Mutex
	left int
}

func (s *crashingSink) Publish(ctx context.Context, events ...progress.Event) error {
	s.mu.Lock()
	n := min(s.left, len(events))
	s.left -= n
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	return s.next.Publish(ctx, events[:n]...)
}

// errViewerEnded ends a viewer's Tail at a final event, as progress/sse's
// Handler ends a stream there.
var errViewerEnded = errors.New("viewer saw the final event")

// A run's process was killed: its stream holds its events up to the
// crash, without a final event, and its record still says running. The
// viewers that follow its stream (an EventSource through progress/sse)
// waited forever, even once another process resumed it, since nothing
// published the run's end. Now a Resume or RerunFailed that records the
// run as interrupted also publishes its final event, run.cancelled, at
// the Seq after its newest one, naming the run that resumed it, when the
// Sink can say what that newest event is (progress.LastEventReader, which
// Memory, Buffered, Fanout and Archive implement); once only, and nothing
// when the sink cannot say.
func TestStoryCrashedRunsViewersEndWhenItIsResumed(t *testing.T) {
	const crashAfter = 10 // events of the run that reached its stream
	tests := []struct {
		name string
		// sink is the resuming executor's Sink, over the run's stream
		// (and, in production wiring, its archive).
		sink      func(t *testing.T, stream *progress.Memory, archive *progress.MemoryHistory) progress.Sink
		wantFinal bool
	}{
		{"progress.Memory", func(t *testing.T, stream *progress.Memory, _ *progress.MemoryHistory) progress.Sink {
			return stream
		}, true},
		{"a Fanout of a Buffered Archive and a Buffered stream", func(t *testing.T, stream *progress.Memory, archive *progress.MemoryHistory) progress.Sink {
			return progress.NewFanout(buffered(t, progress.NewArchive(archive)), buffered(t, stream))
		}, true},
		{"a sink without LastEventReader", func(t *testing.T, stream *progress.Memory, _ *progress.MemoryHistory) progress.Sink {
			return progress.SinkFunc(stream.Publish)
		}, false},
		{"a Buffered over a sink without LastEventReader", func(t *testing.T, stream *progress.Memory, _ *progress.MemoryHistory) progress.Sink {
			return buffered(t, progress.SinkFunc(stream.Publish))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 60)
				stream, archive := progress.NewMemory(progress.MemoryOptions{}), progress.NewMemoryHistory()
				// Its process died before it recorded its outcome.
				rec := crashRun(t, l, progress.NewFanout(stream, progress.NewArchive(archive)), crashAfter,
					executor.RunRequest{GraphKey: "lecture", Graph: l.g, TriggeredBy: "test"})
				before := replay(t, stream, rec.ID)
				require.Len(t, before, crashAfter)

				// A viewer follows the run.
				viewCtx, stopViewer := context.WithCancel(ctx)
				defer stopViewer()
				viewer := make(chan error, 1)
				go func() {
					viewer <- stream.Tail(viewCtx, rec.ID, 0, func(e progress.Event) error {
						if e.Type.Final() {
							return errViewerEnded
						}
						return nil
					})
				}()
				synctest.Wait()

				// Another process resumes it.
				sink := tt.sink(t, stream, archive)
				e := newExecutor(t, l, sink)
				resumed, err := e.Resume(ctx, l.g, rec.ID)
				require.NoError(t, err)
				_, err = resumed.Wait()
				require.NoError(t, err)
				flush(t, sink)
				synctest.Wait()
				rec, err = l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				assert.Equal(t, executor.RunInterrupted, rec.Status)

				ended := false
				select {
				case err := <-viewer:
					ended = true
					assert.ErrorIs(t, err, errViewerEnded)
				default:
				}
				assert.Equal(t, tt.wantFinal, ended, "the viewer ended")
				if !ended {
					stopViewer()
					assert.ErrorIs(t, <-viewer, context.Canceled)
				}
				got := replay(t, stream, rec.ID)
				if !tt.wantFinal {
					assert.Empty(t, cmp.Diff(before, got), "the run's stream (-before +after)")
					return
				}
				want := progress.Event{RunID: rec.ID, GraphKey: "lecture", Seq: crashAfter + 1, Time: rec.EndedAt,
					Type: progress.RunCancelled, Stage: progress.NoStage,
					Message: "interrupted: it ended without recording its outcome; resumed by run " + resumed.ID(),
					Error:   `executor: run cancelled: run "` + rec.ID + `": interrupted`,
					Done:    before[crashAfter-1].Done, Total: before[crashAfter-1].Total,
					ResumedBy: resumed.ID()}
				assert.Empty(t, cmp.Diff(append(before, want), got), "the run's stream (-want +got)")
				assert.Equal(t, rec.Error, want.Message, "the record and the stream say the same")
				if tt.name != "progress.Memory" {
					assert.Empty(t, cmp.Diff(got, replay(t, archive, rec.ID)), "the archive (-stream +archive)")
				}

				// Once only: a Resume or RerunFailed of the run finds it
				// interrupted, and publishes nothing; nor does one that read
				// its record before it said so (another process's), as its
				// stream has ended.
				again, err := e.Resume(ctx, l.g, rec.ID)
				require.NoError(t, err)
				_, err = again.Wait()
				require.NoError(t, err)
				rerun, err := e.RerunFailed(ctx, l.g, rec.ID)
				require.NoError(t, err)
				_, err = rerun.Wait()
				require.NoError(t, err)
				rec.Status, rec.Error = executor.RunRunning, ""
				require.NoError(t, l.runs.PutRun(ctx, rec))
				other := newExecutor(t, l, sink)
				third, err := other.RerunFailed(ctx, l.g, rec.ID)
				require.NoError(t, err)
				_, err = third.Wait()
				require.NoError(t, err)
				rec, err = l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				assert.Contains(t, rec.Error, "resumed by run "+third.ID(), "recorded as interrupted again")
				flush(t, sink)
				assert.Empty(t, cmp.Diff(got, replay(t, stream, rec.ID)), "the run's stream after more resumes (-before +after)")
			})
		})
	}
}

// newExecutor returns an executor over l's stores and generators that
// publishes to sink: another process of the host.
func newExecutor(t *testing.T, l *lab, sink progress.Sink) *executor.Executor {
	t.Helper()
	e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
		Runs: l.runs, Sink: sink})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	return e
}

// crashRun runs l's lecture on an executor whose sink crashes after left
// events, and then records the run as running again, as a process that
// died before it recorded its outcome leaves it; it returns the record.
func crashRun(t *testing.T, l *lab, sink progress.Sink, left int, req executor.RunRequest) executor.Record {
	t.Helper()
	ctx := context.Background()
	old := newExecutor(t, l, &crashingSink{next: sink, left: left})
	r, err := old.Start(ctx, req)
	require.NoError(t, err)
	_, err = r.Wait()
	require.NoError(t, err)
	rec, err := l.runs.GetRun(ctx, r.ID())
	require.NoError(t, err)
	rec.Status, rec.EndedAt, rec.Error = executor.RunRunning, time.Time{}, ""
	require.NoError(t, l.runs.PutRun(ctx, rec))
	return rec
}

// buffered returns a Buffered over next, closed at the test's end.
func buffered(t *testing.T, next progress.Sink) *progress.Buffered {
	b := progress.NewBuffered(next, progress.BufferedOptions{})
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	return b
}

// flush waits until the Buffered sinks in sink have handed on what they
// were given.
func flush(t *testing.T, sink progress.Sink) {
	t.Helper()
	synctest.Wait()
	if b, ok := sink.(*progress.Buffered); ok {
		require.NoError(t, b.Flush(context.Background()))
	}
	synctest.Wait()
}

// replay returns the events of runID that src holds.
func replay(t *testing.T, src interface {
	Replay(context.Context, string, uint64, func(progress.Event) error) error
}, runID string) []progress.Event {
	t.Helper()
	var out []progress.Event
	require.NoError(t, src.Replay(context.Background(), runID, 0, func(e progress.Event) error {
		out = append(out, e)
		return nil
	}))
	return out
}

// fakeStream is a Sink and a progress.LastEventReader whose answers for
// run "crashed" are set by the test; the events of other runs are taken.
type fakeStream struct {
	last         progress.Event
	lastErr      error
	lastPanics   bool
	stallLast    bool // LastEvent waits for its context to end
	publishErr   error
	stallPublish bool // Publish of run "crashed" waits for its context to end

	mu        sync.Mutex
	published []progress.Event // of run "crashed"
}

func (s *fakeStream) LastEvent(ctx context.Context, runID string) (progress.Event, bool, error) {
	if runID != "crashed" {
		return progress.Event{}, false, nil
	}
	switch {
	case s.lastPanics:
		panic("sink bug")
	case s.stallLast:
		<-ctx.Done()
		return progress.Event{}, false, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.last.Seq != 0, s.lastErr
}

func (s *fakeStream) Publish(ctx context.Context, events ...progress.Event) error {
	for _, e := range events {
		if e.RunID != "crashed" {
			continue
		}
		s.mu.Lock()
		s.published = append(s.published, e)
		s.mu.Unlock()
		if s.stallPublish {
			<-ctx.Done()
			return ctx.Err()
		}
		return s.publishErr
	}
	return nil
}

// The final event of a run found interrupted never fails, nor holds for
// long, the Resume that found it: a sink that fails or panics is logged,
// and one that stalls is given up after Options.StoreTimeout.
func TestResumeOfACrashedRunNeverFailsForItsSink(t *testing.T) {
	const storeTimeout = 7 * time.Second
	last := progress.Event{RunID: "crashed", GraphKey: "lecture", Seq: 4, Type: progress.NodeStarted, Stage: 0, Done: 1, Total: 9}
	tests := []struct {
		name      string
		sink      *fakeStream
		took      time.Duration // Resume's time
		published bool          // the final event was offered to the sink
		log       string        // in the warning
	}{
		{"LastEvent fails", &fakeStream{lastErr: errors.New("redis: down")}, 0, false,
			`msg="regen: read the last event of an interrupted run; its stream gets no final event" run=crashed graph=lecture resumed_by=`},
		{"LastEvent panics", &fakeStream{lastPanics: true}, 0, false, `err="sink panicked: sink bug"`},
		{"LastEvent stalls", &fakeStream{stallLast: true}, storeTimeout, false, `err="context deadline exceeded"`},
		{"Publish fails", &fakeStream{last: last, publishErr: errors.New("redis: down")}, 0, true,
			`msg="regen: progress sink failed the final event of an interrupted run" run=crashed graph=lecture seq=5 resumed_by=`},
		{"Publish stalls", &fakeStream{last: last, stallPublish: true}, storeTimeout, true, `err="context deadline exceeded"`},
		{"the last event is final already", &fakeStream{last: progress.Event{RunID: "crashed", Seq: 9, Type: progress.RunFailed}}, 0, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 60)
				logs := &testenv.LogBuffer{}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
					Runs: l.runs, Sink: tt.sink, StoreTimeout: storeTimeout, Logger: slog.New(slog.NewTextHandler(logs, nil))})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				require.NoError(t, l.runs.PutRun(ctx, executor.Record{ID: "crashed", GraphKey: "lecture", Seconds: 60,
					Status: executor.RunRunning, StartedAt: time.Now().Add(-time.Hour)}))

				start := time.Now()
				r, err := e.Resume(ctx, l.g, "crashed")
				require.NoError(t, err, "the sink never fails the Resume")
				assert.Equal(t, tt.took, time.Since(start), "Resume's time, in the bubble's clock")
				_, err = r.Wait()
				require.NoError(t, err)
				rec, err := l.runs.GetRun(ctx, "crashed")
				require.NoError(t, err)
				assert.Equal(t, executor.RunInterrupted, rec.Status)

				tt.sink.mu.Lock()
				published := tt.sink.published
				tt.sink.mu.Unlock()
				if tt.published {
					require.Len(t, published, 1)
					assert.Equal(t, uint64(5), published[0].Seq)
					assert.Equal(t, progress.RunCancelled, published[0].Type)
					assert.Equal(t, r.ID(), published[0].ResumedBy)
					assert.Equal(t, 1, published[0].Done)
					assert.Equal(t, 9, published[0].Total)
				} else {
					assert.Empty(t, published)
				}
				if tt.log == "" {
					assert.NotContains(t, logs.String(), "interrupted run")
				} else {
					assert.Contains(t, logs.String(), "level=WARN")
					assert.Contains(t, logs.String(), tt.log)
				}
			})
		})
	}
}

// A run found interrupted recorded "resumed by run <ID>" whole in its
// Record.Error, which its doc says is cut to MaxEventText bytes, as every
// error text the executor records is: with ResumeOptions.RunID, the ID
// is the host's, of any length (a store without a limit on IDs keeps a
// long one), and the record then held it all, and said another text than
// the final event of its stream, whose Message is cut.
func TestInterruptedRecordOfALongResumingRunIDIsCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		stream := progress.NewMemory(progress.MemoryOptions{})
		rec := crashRun(t, l, stream, 3, executor.RunRequest{GraphKey: "lecture", Graph: l.g})

		e := newExecutor(t, l, stream)
		long := strings.Repeat("r", executor.MaxEventText+100)
		resumed, err := e.Resume(ctx, l.g, rec.ID, executor.ResumeOptions{RunID: long})
		require.NoError(t, err)
		_, err = resumed.Wait()
		require.NoError(t, err)
		rec, err = l.runs.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, rec.Status)
		assert.LessOrEqual(t, len(rec.Error), executor.MaxEventText)
		assert.True(t, strings.HasPrefix(rec.Error, "interrupted: it ended without recording its outcome; resumed by run rrr"), rec.Error[:100])
		got := replay(t, stream, rec.ID)
		require.Len(t, got, 4)
		assert.Equal(t, progress.RunCancelled, got[3].Type)
		assert.Equal(t, rec.Error, got[3].Message, "the record and the stream say the same")
		assert.Equal(t, long, got[3].ResumedBy)
	})
}

// heldRuns is a RunStore whose first PutRun of a record that hold
// matches waits until release is closed.
type heldRuns struct {
	*executor.MemoryRuns
	hold        func(executor.Record) bool
	held        chan struct{} // closed once that PutRun waits
	release     chan struct{}
	once        sync.Once
	releaseOnce sync.Once
}

// free lets the held PutRun go on; it may be called again.
func (s *heldRuns) free() { s.releaseOnce.Do(func() { close(s.release) }) }

// crashedAndHeld crashes a run of l's lecture, its events on sink (see
// crashRun), and returns its record and a new executor whose run store
// holds the first PutRun that records it as interrupted until free.
// The executor is closed at the test's end, the store freed first.
func crashedAndHeld(t *testing.T, l *lab, sink progress.Sink) (executor.Record, *executor.Executor, *heldRuns) {
	t.Helper()
	rec := crashRun(t, l, sink, 5, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
	runs := &heldRuns{MemoryRuns: l.runs, hold: recordsAs(rec.ID, executor.RunInterrupted), held: make(chan struct{}), release: make(chan struct{})}
	e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
		Runs: runs, Sink: sink})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	t.Cleanup(runs.free) // before Close, were the test to fail
	return rec, e, runs
}

// recordsAs matches the records of run id with that status.
func recordsAs(id string, status executor.RunStatus) func(executor.Record) bool {
	return func(r executor.Record) bool { return r.ID == id && r.Status == status }
}

func (s *heldRuns) PutRun(ctx context.Context, r executor.Record) error {
	if s.hold(r) {
		first := false
		s.once.Do(func() { first = true })
		if first {
			close(s.held)
			<-s.release
		}
	}
	return s.MemoryRuns.PutRun(ctx, r)
}

// A Resume of a crashed run is refused while another Resume or
// RerunFailed of its graph key is under way, but the refusal ended with
// the other's run: when that run had nothing left to make (the process
// crashed after its last node, before its record), it ended at once,
// while its Resume still recorded the crashed run as interrupted and
// ended its stream. A second Resume (a retry pressed twice) was then
// taken: both recorded the run as interrupted, each naming itself, and
// the record ended up naming one run while the stream's final event
// (ResumedBy) named the other. The second is now refused until the
// first Resume has returned too.
func TestResumeRefusedUntilTheOtherResumeReturns(t *testing.T) {
	for _, second := range resumers {
		t.Run(second.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				stream := progress.NewMemory(progress.MemoryOptions{})
				rec, e, runs := crashedAndHeld(t, l, stream)
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
				synctest.Wait() // its run, with nothing to make, has ended
				_, err := second.call(e, ctx, l.g, rec.ID)
				require.ErrorIs(t, err, executor.ErrBusy, "a second one while the first is under way")
				assert.ErrorContains(t, err, "already being finished by run")
				runs.free()
				got := <-first
				require.NoError(t, got.err)
				_, err = got.run.Wait()
				require.NoError(t, err)

				rec, err = l.runs.GetRun(ctx, rec.ID)
				require.NoError(t, err)
				assert.Equal(t, "interrupted: it ended without recording its outcome; resumed by run "+got.run.ID(), rec.Error)
				evs := replay(t, stream, rec.ID)
				require.Len(t, evs, 6)
				assert.Equal(t, got.run.ID(), evs[5].ResumedBy, "the record and the stream name the same run")

				// Once it returned, the key is free again.
				again, err := second.call(e, ctx, l.g, rec.ID)
				require.NoError(t, err)
				_, err = again.Wait()
				require.NoError(t, err)
			})
		})
	}
}
