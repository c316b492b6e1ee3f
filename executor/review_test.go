package executor_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
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

// These tests drive the runner through the interleavings that its
// watch, rescuers and group commits must survive: hung and cancelled bulk
// calls, cancels during backoff, nested timeouts, a single worker whose
// generator hangs, edits racing with commits, and the event stream's
// promise that nothing follows the final event.

// batchFunc is a bulk generator for one kind; single retries go to the
// lab's Generate.
type batchFunc struct {
	*lab
	fn func(ctx context.Context, reqs []executor.Request) []executor.Outcome
}

func (b *batchFunc) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	return b.fn(ctx, reqs)
}

// okOutcomes is what a bulk call that succeeds for every node returns.
func okOutcomes(reqs []executor.Request) []executor.Outcome {
	out := make([]executor.Outcome, len(reqs))
	for i, r := range reqs {
		out[i].Asset = executor.Asset{Data: defaultData(r)}
	}
	return out
}

// withSink makes an executor on the lab's stores with another sink.
func (l *lab) withSink(opts executor.Options, sink progress.Sink) *executor.Executor {
	l.t.Helper()
	if opts.Generators == nil {
		opts.Generators = l.registry(l)
	}
	opts.States, opts.Assets, opts.Runs, opts.Sink = l.states, l.assets, l.runs, sink
	e, err := executor.New(opts)
	require.NoError(l.t, err)
	l.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
		defer cancel()
		require.NoError(l.t, e.Close(ctx))
	})
	return e
}

// callsOf returns the attempts made for a node.
func (l *lab) callsOf(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[id]
}

// settleLab runs a first full run, so that a later run can force a few
// nodes.
func settleLab(t *testing.T, l *lab) {
	t.Helper()
	e := l.executor(executor.Options{})
	_, err := l.run(e)
	require.NoError(t, err)
	l.resetCalls()
}

func TestReviewHungBulkCallTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		var bulkCalls atomic.Int32
		b := &batchFunc{lab: l, fn: func(_ context.Context, reqs []executor.Request) []executor.Outcome {
			bulkCalls.Add(1)
			time.Sleep(time.Hour) // ignores its context
			return okOutcomes(reqs)
		}}
		reg := l.registry(l)
		reg[graph.KindImage] = b
		e := l.executor(executor.Options{Generators: reg, Kinds: map[string]executor.KindOptions{
			graph.KindImage: {Timeout: time.Minute}}})
		start := time.Now()
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Len(t, rep.Generated, l.g.Len())
		assert.Less(t, time.Since(start), 10*time.Minute, "a hung bulk call held the run")
		// Every image of the hung calls was retried alone, once.
		for _, id := range ids(l, graph.KindImage, 0, 1, 2, 3, 4, 5) {
			assert.Equal(t, 1, l.callsOf(id), id)
		}
		assert.Equal(t, l.g.Len()+6, rep.Record.Counts.Attempts)
		l.requireAllClean()
		l.requireEventOrder(progress.RunFinished)
	})
}

func TestReviewHungBulkCallWithOneWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		b := &batchFunc{lab: l, fn: func(_ context.Context, reqs []executor.Request) []executor.Outcome {
			if reqs[0].NodeID == "asset:image:segment[1]" {
				time.Sleep(time.Hour) // ignores its context
			}
			time.Sleep(8 * time.Second)
			return okOutcomes(reqs)
		}}
		reg := l.registry(l)
		reg[graph.KindImage] = b
		e := l.executor(executor.Options{Generators: reg, Workers: 1, Kinds: map[string]executor.KindOptions{
			graph.KindImage: {Timeout: time.Minute}}})
		start := time.Now()
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Len(t, rep.Generated, l.g.Len())
		assert.Less(t, time.Since(start), 30*time.Minute)
		l.requireAllClean()
	})
}

func TestReviewCancelDuringBulkCall(t *testing.T) {
	for _, ignores := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignores ctx %v", ignores), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 60)
				var inBulk atomic.Int32
				b := &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
					inBulk.Add(1)
					defer inBulk.Add(-1)
					if ignores {
						time.Sleep(time.Minute)
						return okOutcomes(reqs)
					}
					select {
					case <-time.After(time.Minute):
						return okOutcomes(reqs)
					case <-ctx.Done():
						out := make([]executor.Outcome, len(reqs))
						for i := range out {
							out[i].Err = ctx.Err()
						}
						return out
					}
				}}
				reg := l.registry(l)
				reg[graph.KindImage] = b
				e := l.executor(executor.Options{Generators: reg})
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				time.Sleep(25 * time.Second) // script done at 20s; the images' bulk call runs
				synctest.Wait()
				require.Positive(t, inBulk.Load())
				r.Cancel()
				start := time.Now()
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				assert.Less(t, time.Since(start), 10*time.Second, "the cancel waited for the bulk call")
				assert.Empty(t, rep.Failed)
				for _, id := range ids(l, graph.KindImage, 0, 1, 2, 3, 4) {
					assert.Contains(t, rep.Cancelled, id)
				}
				snap := l.snapshot()
				for _, id := range rep.Cancelled {
					assert.Equal(t, dirty.StatusCancelled, snap.States[id].Status, id)
				}
				// Nothing was retried alone after the cancel.
				for _, id := range ids(l, graph.KindImage, 0, 1, 2, 3, 4, 5) {
					assert.Zero(t, l.callsOf(id), id)
				}
				l.requireEventOrder(progress.RunCancelled)
			})
		})
	}
}

func TestReviewCancelDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		l.set("asset:image:segment[1]", fail(errors.New("provider: 503")))
		e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{
			graph.KindImage: {Retry: executor.RetryPolicy{InitialInterval: 10 * time.Minute, MaxInterval: time.Hour}}}})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(40 * time.Second) // image 1 failed at 28s and waits 10 minutes
		synctest.Wait()
		require.Equal(t, 1, l.callsOf("asset:image:segment[1]"))
		r.Cancel()
		start := time.Now()
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Less(t, time.Since(start), time.Minute, "the cancel waited for the backoff")
		assert.Contains(t, rep.Cancelled, "asset:image:segment[1]")
		assert.Empty(t, rep.Failed)
		st := l.snapshot().States["asset:image:segment[1]"]
		assert.Equal(t, dirty.StatusCancelled, st.Status)
		assert.Equal(t, 1, st.Attempts)
		assert.Equal(t, 1, l.callsOf("asset:image:segment[1]"))
	})
}

func TestReviewCancelWhileRescuerBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		l.set("asset:image:segment[1]", func(_ context.Context, req executor.Request) ([]byte, error) {
			if req.Attempt == 1 {
				time.Sleep(time.Hour) // ignores its context
			}
			return nil, nil
		})
		e := l.executor(executor.Options{Workers: 1, Kinds: map[string]executor.KindOptions{
			graph.KindImage: {Timeout: time.Minute, Retry: executor.RetryPolicy{InitialInterval: 10 * time.Minute, MaxInterval: time.Hour}}}})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		// Workers: 1 runs the nodes one by one; image 1's first attempt
		// times out a minute after it starts, then its rescuer waits.
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		require.Equal(t, 1, l.callsOf("asset:image:segment[1]"))
		r.Cancel()
		start := time.Now()
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Less(t, time.Since(start), time.Minute)
		assert.Equal(t, []string{"asset:image:segment[1]"}, rep.Cancelled)
		assert.Empty(t, rep.Failed)
		st := l.snapshot().States["asset:image:segment[1]"]
		assert.Equal(t, dirty.StatusCancelled, st.Status)
		assert.Equal(t, 1, st.Attempts)
		l.requireEventOrder(progress.RunCancelled)
	})
}

func TestReviewPanicOnRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		l.set("asset:image:segment[1]", func(_ context.Context, req executor.Request) ([]byte, error) {
			if req.Attempt == 1 {
				return nil, errors.New("provider: 503")
			}
			panic("retry exploded")
		})
		e := l.executor(executor.Options{})
		rep, err := l.run(e)
		var pe *executor.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "retry exploded", pe.Value)
		var ne *executor.NodeError
		require.ErrorAs(t, err, &ne)
		assert.Equal(t, 2, ne.Attempt)
		assert.Equal(t, []string{"asset:image:segment[1]"}, rep.Failed)
		assert.Equal(t, 2, l.callsOf("asset:image:segment[1]"))
		assert.Len(t, rep.Generated, l.g.Len()-3)
	})
}

func TestReviewPanicOnRetryAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		l.set("asset:image:segment[1]", func(_ context.Context, req executor.Request) ([]byte, error) {
			if req.Attempt == 1 {
				time.Sleep(time.Hour) // ignores its context
				return nil, nil
			}
			panic("retry exploded")
		})
		e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{graph.KindImage: {Timeout: time.Minute}}})
		rep, err := l.run(e)
		var pe *executor.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, []string{"asset:image:segment[1]"}, rep.Failed)
		assert.Len(t, rep.Generated, l.g.Len()-3)
	})
}

func TestReviewNestedTimeouts(t *testing.T) {
	for _, workers := range []int{0, 1} {
		t.Run(fmt.Sprintf("workers %d", workers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				l.set("asset:image:segment[1]", func(_ context.Context, req executor.Request) ([]byte, error) {
					if req.Attempt < 3 {
						time.Sleep(time.Hour) // ignores its context
						return []byte("late"), nil
					}
					return nil, nil
				})
				e := l.executor(executor.Options{Workers: workers, Kinds: map[string]executor.KindOptions{
					graph.KindImage: {Timeout: time.Minute}}})
				start := time.Now()
				rep, err := l.run(e)
				require.NoError(t, err)
				assert.Less(t, time.Since(start), 30*time.Minute)
				assert.Len(t, rep.Generated, l.g.Len())
				assert.Equal(t, 3, l.callsOf("asset:image:segment[1]"))
				st := l.snapshot().States["asset:image:segment[1]"]
				assert.Equal(t, 3, st.Attempts)
				a, err := l.assets.Get(context.Background(), st.AssetRef)
				require.NoError(t, err)
				assert.NotEqual(t, "late", string(a.Data), "a late result was kept")
				retries := 0
				for _, ev := range l.eventsOf(progress.NodeRetrying) {
					if ev.Node == "asset:image:segment[1]" {
						retries++
						assert.Contains(t, ev.Error, "timed out")
					}
				}
				assert.Equal(t, 2, retries)
				l.requireAllClean()
				l.requireEventOrder(progress.RunFinished)
			})
		})
	}
}

func TestReviewWorkersOneHungGenerator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		l.set("asset:narration:segment[2]", func(_ context.Context, req executor.Request) ([]byte, error) {
			if req.Attempt == 1 {
				time.Sleep(time.Hour) // ignores its context
			}
			return nil, nil
		})
		e := l.executor(executor.Options{Workers: 1, Kinds: map[string]executor.KindOptions{
			graph.KindNarration: {Timeout: time.Minute}}})
		start := time.Now()
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Len(t, rep.Generated, l.g.Len())
		// One worker, one node at a time: the sum of the latencies, plus
		// the minute and the backoff of the hung attempt.
		assert.Less(t, time.Since(start), time.Hour)
		l.mu.Lock()
		assert.LessOrEqual(t, l.maxRun[graph.KindNarration], 2, "the rescuer and the hung call")
		l.mu.Unlock()
		l.requireAllClean()
	})
}

func TestReviewReturnAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var calls atomic.Int32
		gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
			calls.Add(1)
			time.Sleep(time.Minute) // exactly the timeout; ignores its context
			return executor.Asset{Data: defaultData(req)}, nil
		})
		reg := l.registry(l)
		reg[graph.KindImage] = gen
		e := l.executor(executor.Options{Generators: reg, Kinds: map[string]executor.KindOptions{
			graph.KindImage: {Timeout: time.Minute, Retry: executor.RetryPolicy{MaxAttempts: 5}}}})
		rep, err := l.run(e)
		// Whether the call beat its deadline is a coin toss at the same
		// instant; either way the books must balance.
		if err != nil {
			require.ErrorIs(t, err, executor.ErrTimeout)
		}
		snap := l.snapshot()
		for _, id := range ids(l, graph.KindImage, 0, 1, 2) {
			st := snap.States[id]
			switch st.Status {
			case dirty.StatusClean:
				ok, err := l.assets.Exists(context.Background(), st.AssetRef)
				require.NoError(t, err)
				assert.True(t, ok, id)
			case dirty.StatusFailed:
				assert.Contains(t, rep.Failed, id)
				assert.Contains(t, st.LastError, "timed out")
			default:
				t.Errorf("%s is %s", id, st.Status)
			}
		}
		made := 0
		for _, id := range ids(l, graph.KindImage, 0, 1, 2) {
			made += snap.States[id].Attempts
		}
		assert.Equal(t, int(calls.Load()), made, "every call counts as an attempt")
	})
}

func TestReviewRateLimitThenCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{Rates: map[string]executor.Rate{
			graph.KindImage: {Starts: 1, Per: 10 * time.Minute}}})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(time.Minute) // one image ran at 20s; the others wait for the rate
		synctest.Wait()
		r.Cancel()
		start := time.Now()
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Less(t, time.Since(start), time.Second, "waited for the rate limit")
		assert.Empty(t, rep.Failed)
		n := 0
		for _, id := range ids(l, graph.KindImage, 0, 1, 2, 3, 4, 5) {
			n += l.callsOf(id)
		}
		assert.Equal(t, 1, n)
		// Nothing starts after the cancel, even once the rate allows it.
		time.Sleep(time.Hour)
		synctest.Wait()
		n = 0
		for _, id := range ids(l, graph.KindImage, 0, 1, 2, 3, 4, 5) {
			n += l.callsOf(id)
		}
		assert.Equal(t, 1, n)
	})
}

// TestReviewNothingAfterFinalEvent: progress.Type.Final says no event of
// a run follows its final one. A generator that outlives its timeout and
// then reports a note must not break that.
func TestReviewNothingAfterFinalEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		settleLab(t, l)
		l.set("timeline", func(_ context.Context, req executor.Request) ([]byte, error) {
			time.Sleep(time.Minute) // ignores its context, past the timeout
			req.Progress.Report(executor.Note{Message: "late note"})
			return nil, nil
		})
		e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{
			graph.KindTimeline: {Timeout: 30 * time.Second, Retry: executor.RetryPolicy{MaxAttempts: 1}}}})
		_, err := l.run(e, dirty.Mark{ID: "timeline", Reason: dirty.ReasonForced})
		require.ErrorIs(t, err, executor.ErrTimeout)
		synctest.Wait()
		require.NoError(t, e.Close(context.Background()))
		l.requireEventOrder(progress.RunFailed)
		for _, ev := range l.eventsOf(progress.Message) {
			assert.NotEqual(t, "late note", ev.Message, "a note of an abandoned call was published")
		}
	})
}

// cancelOn is a sink that cancels a run when a node starts.
type cancelOn struct {
	*lab
	node   string
	cancel context.CancelFunc
}

func (c *cancelOn) Publish(ctx context.Context, evs ...progress.Event) error {
	for _, ev := range evs {
		if ev.Type == progress.NodeStarted && ev.Node == c.node {
			c.cancel()
			// Let the cancel take effect before the worker goes on.
			time.Sleep(time.Second)
		}
	}
	return c.lab.Publish(ctx, evs...)
}

// TestReviewNoCallAfterCancel: once the run is cancelled, no generator
// call starts, not even for a node whose worker was on its way to it.
func TestReviewNoCallAfterCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		settleLab(t, l)
		var calledCancelled atomic.Int32
		reg := l.registry(l)
		reg[graph.KindTimeline] = executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if ctx.Err() != nil {
				calledCancelled.Add(1)
			}
			return l.Generate(ctx, req)
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e := l.withSink(executor.Options{Generators: reg}, &cancelOn{lab: l, node: "timeline", cancel: cancel})
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "timeline", Reason: dirty.ReasonForced}}})
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, []string{"timeline"}, rep.Cancelled)
		assert.Zero(t, calledCancelled.Load(), "a generator was called after the cancel")
		assert.Zero(t, l.callsOf("timeline"))
		assert.Equal(t, dirty.StatusCancelled, l.snapshot().States["timeline"].Status)
		assert.Zero(t, rep.Record.Counts.Attempts, "no attempt was made")
	})
}

// TestReviewValidatorPanic: a validator is host code, like a generator;
// its panic must fail that node alone, not the process.
func TestReviewValidatorPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{
			graph.KindImage: {Validate: func(req executor.Request, _ executor.Asset) error {
				if req.NodeID == "asset:image:segment[1]" {
					panic("validator exploded")
				}
				return nil
			}}}})
		rep, err := l.run(e)
		var pe *executor.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "validator exploded", pe.Value)
		assert.Equal(t, []string{"asset:image:segment[1]"}, rep.Failed)
		assert.Len(t, rep.Generated, l.g.Len()-3)
	})
}

// TestReviewEditsRacingCommits edits random nodes while runs go on, and
// checks that no edit is lost: every node's stored revision counts its
// edits, and a clean node's asset was made from that revision.
func TestReviewEditsRacingCommits(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 60)
				e := l.executor(executor.Options{Converge: 1})
				rng := rand.New(rand.NewPCG(seed, 7))
				edits := map[string]int64{}
				var mu sync.Mutex
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					for {
						select {
						case <-stop:
							return
						case <-time.After(time.Duration(rng.IntN(5000)) * time.Millisecond):
						}
						id := l.g.NodeID(graph.Node(rng.IntN(l.g.Len())))
						_, err := e.Edit(context.Background(), l.g, "lecture", id)
						assert.NoError(t, err)
						mu.Lock()
						edits[id]++
						mu.Unlock()
					}
				}()
				for range 3 {
					_, err := l.run(e)
					if err != nil {
						require.NotErrorIs(t, err, executor.ErrCancelled)
					}
				}
				close(stop)
				<-done
				snap := l.snapshot()
				mu.Lock()
				defer mu.Unlock()
				for n := range l.g.Len() {
					id := l.g.NodeID(graph.Node(n))
					st := snap.States[id]
					assert.Equal(t, edits[id], st.Rev, "%s: an edit was lost", id)
					if st.Status != dirty.StatusClean {
						continue
					}
					a, err := l.assets.Get(context.Background(), st.AssetRef)
					require.NoError(t, err, id)
					assert.True(t, strings.HasPrefix(string(a.Data), fmt.Sprintf("%s@%d", id, st.Rev)),
						"%s is clean at rev %d with an asset made from %q", id, st.Rev, a.Data)
				}
			})
		})
	}
}

// TestReviewStressDeadlinesAndCancels runs in real time, with timeouts
// as short as the calls, so that ends race with abandons, retries with
// cancels and bulk calls with both. It checks the books balance.
func TestReviewStressDeadlinesAndCancels(t *testing.T) {
	if testing.Short() {
		t.Skip("stress")
	}
	for i := range 40 {
		l := newLab(t, 60)
		for k := range l.latency {
			l.latency[k] = 0
		}
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		var rmu sync.Mutex
		jitter := func() time.Duration {
			rmu.Lock()
			defer rmu.Unlock()
			return time.Duration(rng.IntN(4000)) * time.Microsecond
		}
		ignore := i%2 == 0
		slow := func(ctx context.Context) {
			d := jitter()
			if ignore {
				time.Sleep(d)
				return
			}
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		single := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			slow(ctx)
			a, err := l.Generate(ctx, req)
			if err == nil && jitter() < 400*time.Microsecond {
				err = errors.New("flaky")
			}
			return a, err
		})
		b := &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
			slow(ctx)
			out := okOutcomes(reqs)
			for k, r := range reqs {
				if r.ID.Kind == graph.KindNarration {
					out[k].Asset.Length = 10 * time.Second
				}
				if jitter() < 800*time.Microsecond {
					out[k] = executor.Outcome{Err: errors.New("partial")}
				}
			}
			return out
		}}
		reg := l.registry(single)
		reg[graph.KindImage] = &struct {
			executor.Generator
			*batchFunc
		}{single, b}
		reg[graph.KindNarration] = reg[graph.KindImage]
		e := l.withSink(executor.Options{Generators: reg, Workers: i % 3, Grace: time.Second,
			Default: executor.KindOptions{Timeout: 2 * time.Millisecond,
				Retry: executor.RetryPolicy{InitialInterval: 100 * time.Microsecond, MaxAttempts: 4}}}, l)
		ctx, cancel := context.WithCancel(context.Background())
		if i%4 == 1 {
			time.AfterFunc(jitter()*2, cancel)
		}
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		cancel()
		if rep == nil {
			// Cancelled before it started.
			require.ErrorIs(t, err, context.Canceled)
			continue
		}
		c := rep.Record.Counts
		settled := c.Generated + c.Unchanged + c.Failed + c.Skipped + c.Superseded + c.Cancelled
		if rep.Record.Status == executor.RunCancelled {
			assert.LessOrEqual(t, settled, c.Planned)
		} else {
			assert.Equal(t, c.Planned, settled, "%+v", c)
		}
		snap := l.snapshot()
		for _, id := range rep.Generated {
			st := snap.States[id]
			assert.Equal(t, dirty.StatusClean, st.Status, id)
			ok, err := l.assets.Exists(context.Background(), st.AssetRef)
			require.NoError(t, err)
			assert.True(t, ok, id)
		}
		for _, id := range rep.Failed {
			assert.Equal(t, dirty.StatusFailed, snap.States[id].Status, id)
		}
		for _, id := range rep.Cancelled {
			assert.Equal(t, dirty.StatusCancelled, snap.States[id].Status, id)
		}
		if err == nil {
			l.requireAllClean()
		}
		l.requireEventOrder(map[executor.RunStatus]progress.Type{executor.RunSucceeded: progress.RunFinished,
			executor.RunFailed: progress.RunFailed, executor.RunCancelled: progress.RunCancelled}[rep.Record.Status])
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, e.Close(cctx))
		ccancel()
	}
}

// slowSink takes a while to publish a node's start, as a remote sink
// without a buffer does.
type slowSink struct{ *lab }

func (s slowSink) Publish(ctx context.Context, evs ...progress.Event) error {
	for _, ev := range evs {
		if ev.Type == progress.NodeStarted {
			time.Sleep(3 * time.Second)
		}
	}
	return s.lab.Publish(ctx, evs...)
}

// TestReviewDeadlineMatchesDone: the deadline a generator sees is when
// its context is done, a timeout after the call starts, so that contexts
// it derives (context.WithTimeout) do not end before the executor's.
func TestReviewDeadlineMatchesDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		settleLab(t, l)
		var left, took time.Duration
		reg := l.registry(l)
		reg[graph.KindTimeline] = executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			start := time.Now()
			d, ok := ctx.Deadline()
			require.True(t, ok)
			left = d.Sub(start)
			<-ctx.Done()
			took = time.Since(start)
			return executor.Asset{}, ctx.Err()
		})
		e := l.withSink(executor.Options{Generators: reg, Kinds: map[string]executor.KindOptions{
			graph.KindTimeline: {Timeout: 10 * time.Second, Retry: executor.RetryPolicy{MaxAttempts: 1}}}}, slowSink{l})
		_, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "timeline", Reason: dirty.ReasonForced}}})
		require.ErrorIs(t, err, executor.ErrTimeout)
		assert.Equal(t, 10*time.Second, left, "the deadline the generator sees")
		assert.Equal(t, 10*time.Second, took, "when its context is done")
	})
}

// TestReviewLongInitialInterval: "InitialInterval is the wait before the
// second attempt"; the default cap must not cut it short.
func TestReviewLongInitialInterval(t *testing.T) {
	p := executor.RetryPolicy{InitialInterval: 10 * time.Minute}
	assert.Equal(t, 10*time.Minute, p.Backoff(2))
	assert.Equal(t, 10*time.Minute, p.Backoff(3), "capped at the longest wait asked for")
	assert.Equal(t, time.Minute, executor.RetryPolicy{}.Backoff(9))
	assert.Equal(t, 2*time.Minute, executor.RetryPolicy{InitialInterval: 10 * time.Minute, MaxInterval: 2 * time.Minute}.Backoff(2))
}

// nilStates is a conforming state store that gives a graph never
// committed nil States, as the storetest kit allows.
type nilStates struct{ *executor.MemoryStates }

func (s nilStates) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	snap, err := s.MemoryStates.Load(ctx, key)
	if err == nil && snap.Version == 0 {
		snap.States = nil
	}
	return snap, err
}

// TestReviewEditNeverCommittedGraph: Edit on a graph never committed,
// with a store that returns nil States for it, must not panic.
func TestReviewEditNeverCommittedGraph(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: nilStates{executor.NewMemoryStates()}})
		require.NoError(t, err)
		v, err := e.Edit(context.Background(), l.g, "fresh", "asset:image:segment[1]", "asset:image:segment[1]")
		require.NoError(t, err)
		assert.Equal(t, int64(1), v)
		snap, err := e.States().Load(context.Background(), "fresh")
		require.NoError(t, err)
		st := snap.States["asset:image:segment[1]"]
		assert.Equal(t, int64(1), st.Rev, "named twice in one call, edited once")
		assert.Equal(t, dirty.StatusDirty, st.Status)
		rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "fresh", Graph: l.g})
		require.NoError(t, err)
		assert.Len(t, rep.Generated, l.g.Len())
	})
}

// TestReviewWorkersBeyondThePlan: a large Workers cap ("as many as you
// like") must not start more goroutines than the plan can use.
func TestReviewWorkersBeyondThePlan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{Workers: 50000})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Less(t, runtime.NumGoroutine(), 1000, "goroutines for a plan of %d nodes", l.g.Len())
		_, err = r.Wait()
		require.NoError(t, err)
	})
}

// TestReviewEditBadInput: bad input is refused at the door, never a
// panic (STYLE 11), as Start does.
func TestReviewEditBadInput(t *testing.T) {
	l := newLab(t, 30)
	e, err := executor.New(executor.Options{Generators: l.registry(l)})
	require.NoError(t, err)
	_, err = e.Edit(context.Background(), nil, "lecture", "timeline")
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	_, err = e.Edit(context.Background(), l.g, "", "timeline")
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
}
