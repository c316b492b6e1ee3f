package progress_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// recorder is a Sink that records its batches; each call can be held at a
// gate, failed, or both.
type recorder struct {
	mu      sync.Mutex
	batches [][]uint64
	gate    chan struct{} // if non-nil, each call waits for a receive (or ctx)
	fail    func(call int) error
	calls   int
}

func (r *recorder) Publish(ctx context.Context, events ...progress.Event) error {
	r.mu.Lock()
	r.calls++
	call := r.calls
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if r.fail != nil {
		if err := r.fail(call); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, sinktest.Seqs(events))
	return nil
}

func (r *recorder) seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, b := range r.batches {
		out = append(out, b...)
	}
	return out
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestBufferedBatchesWhileDownstreamIsBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &recorder{gate: make(chan struct{})}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), BatchSize: 64})
		all := sinktest.Events("r", 1, 101)
		require.NoError(t, b.Publish(ctx, all[0]))
		synctest.Wait() // the worker holds event 1 at the gate
		for _, e := range all[1:] {
			require.NoError(t, b.Publish(ctx, e), "Publish must not wait for the busy sink")
		}
		assert.Equal(t, 100, b.Stats().Queued)
		close(down.gate)
		require.NoError(t, b.Flush(ctx))
		require.NoError(t, b.Close(ctx))
		want := [][]uint64{{1}, sinktest.Span(2, 65), sinktest.Span(66, 101)}
		assert.Equal(t, want, down.batches, "what accumulated goes in batches of at most BatchSize, in order")
		assert.Equal(t, progress.BufferedStats{Published: 101, Batches: 3}, b.Stats())
	})
}

func TestBufferedDropsOldestWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &recorder{gate: make(chan struct{})}
		var logs bytes.Buffer
		b := progress.NewBuffered(down, progress.BufferedOptions{
			Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
			QueueSize: 10,
		})
		all := sinktest.Events("r", 1, 31)
		require.NoError(t, b.Publish(ctx, all[0]))
		synctest.Wait()
		for _, e := range all[1:] {
			require.NoError(t, b.Publish(ctx, e))
		}
		assert.Equal(t, 10, b.Stats().Queued, "memory is bounded by QueueSize")
		close(down.gate)
		require.NoError(t, b.Close(ctx))
		assert.Equal(t, append([]uint64{1}, sinktest.Span(22, 31)...), down.seqs(), "the newest events, with the final one, survive")
		s := b.Stats()
		assert.Equal(t, uint64(20), s.Dropped)
		assert.Equal(t, uint64(11), s.Published)
		assert.Equal(t, uint64(10), s.Fallback, "QueueSize of the dropped events wait for the fallback, and reach it")
		assert.Equal(t, uint64(10), s.Lost, "the others are lost")
		assert.Equal(t, 1, strings.Count(logs.String(), "queue full"), "one warning per episode:\n%s", logs.String())
	})
}

func TestBufferedFallsBackWhenDownstreamFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &recorder{fail: func(int) error { return errors.New("redis: connection refused") }}
		fallback := &recorder{}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Fallback: fallback, Attempts: 3})
		start := time.Now()
		require.NoError(t, b.Publish(ctx, sinktest.Events("r", 1, 5)...), "the failure never reaches the caller")
		require.NoError(t, b.Flush(ctx))
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "two retries after the default 50ms delay")
		require.NoError(t, b.Close(ctx))
		assert.Equal(t, sinktest.Span(1, 5), fallback.seqs())
		assert.Equal(t, progress.BufferedStats{Errors: 3, Fallback: 5}, b.Stats())
	})
}

func TestBufferedRetrySucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &recorder{fail: func(call int) error {
			if call == 1 {
				return errors.New("timeout")
			}
			return nil
		}}
		fallback := &recorder{}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Fallback: fallback})
		require.NoError(t, b.Publish(ctx, sinktest.Events("r", 1, 5)...))
		require.NoError(t, b.Close(ctx))
		assert.Equal(t, sinktest.Span(1, 5), down.seqs())
		assert.Empty(t, fallback.seqs())
		assert.Equal(t, progress.BufferedStats{Published: 5, Batches: 1, Errors: 1}, b.Stats())
	})
}

func TestBufferedDefaultFallbackIsSlog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		down := &recorder{fail: func(int) error { return errors.New("down") }}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Attempts: 1})
		require.NoError(t, b.Publish(context.Background(), sinktest.Events("r", 1, 2)...))
		require.NoError(t, b.Close(context.Background()))
		out := logs.String()
		assert.Contains(t, out, "downstream publish failed")
		assert.Contains(t, out, "msg=run.started runId=r seq=1")
		assert.Contains(t, out, "runId=r seq=2")
	})
}

func TestBufferedCloseGivesUpAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := &recorder{gate: make(chan struct{})} // never opens
		fallback := &recorder{}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Fallback: fallback, Timeout: time.Hour})
		require.NoError(t, b.Publish(context.Background(), sinktest.Events("r", 1, 1)...))
		synctest.Wait()
		require.NoError(t, b.Publish(context.Background(), sinktest.Events("r", 2, 4)...))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := b.Close(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, sinktest.Span(1, 4), fallback.seqs(), "the cancelled write and the queue went to the fallback")
		assert.Equal(t, uint64(4), b.Stats().Fallback)
		assert.NoError(t, b.Close(context.Background()), "a second Close returns once the worker has exited")
	})
}

func TestBufferedPublishAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fallback := &recorder{}
		b := progress.NewBuffered(&recorder{}, progress.BufferedOptions{Logger: quiet(), Fallback: fallback})
		require.NoError(t, b.Close(context.Background()))
		err := b.Publish(context.Background(), sinktest.Events("r", 1, 2)...)
		assert.ErrorIs(t, err, progress.ErrClosed)
		assert.Equal(t, []uint64{1, 2}, fallback.seqs(), "nothing is lost")
	})
}

func TestBufferedRefusesInvalidEvents(t *testing.T) {
	b := progress.NewBuffered(&recorder{}, progress.BufferedOptions{Logger: quiet()})
	defer b.Close(context.Background())
	assert.ErrorIs(t, b.Publish(context.Background(), progress.Event{RunID: "r"}), progress.ErrInvalidEvent)
	assert.Zero(t, b.Stats().Queued)
}

func TestBufferedFlushHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := &recorder{gate: make(chan struct{})}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet()})
		require.NoError(t, b.Publish(context.Background(), sinktest.Events("r", 1, 1)...))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		assert.ErrorIs(t, b.Flush(ctx), context.DeadlineExceeded)
		close(down.gate)
		require.NoError(t, b.Flush(context.Background()))
		require.NoError(t, b.Close(context.Background()))
	})
}

// Many publishers, a real Memory downstream: nothing lost, per-run order kept.
func TestBufferedConcurrentPublishers(t *testing.T) {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{})
	b := progress.NewBuffered(m, progress.BufferedOptions{Logger: quiet(), BatchSize: 16})
	var wg sync.WaitGroup
	runs := []string{"a", "b", "c", "d"}
	for _, run := range runs {
		wg.Go(func() {
			for _, e := range sinktest.Events(run, 1, 500) {
				assert.NoError(t, b.Publish(ctx, e))
			}
		})
	}
	wg.Wait()
	require.NoError(t, b.Close(ctx))
	for _, run := range runs {
		assert.Equal(t, sinktest.Span(1, 500), sinktest.Seqs(sinktest.Replay(t, m, run, 0)), "run %s", run)
	}
	assert.Equal(t, uint64(2000), b.Stats().Published)
}

// Events dropped from the queue while an older batch is still being
// written do not settle that batch: Flush waits for every event published
// before it, the one in flight included.
func TestBufferedFlushWaitsForTheBatchInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &recorder{gate: make(chan struct{})}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), QueueSize: 1})
		all := sinktest.Events("r", 1, 4)
		require.NoError(t, b.Publish(ctx, all[0]))
		synctest.Wait() // the worker holds event 1 at the gate
		require.NoError(t, b.Publish(ctx, all[1]))
		flushed := make(chan error, 1)
		go func() { flushed <- b.Flush(ctx) }()
		synctest.Wait() // Flush waits for events 1 and 2
		// Events 3 and 4 drop events 2 and 3 from the queue of one.
		require.NoError(t, b.Publish(ctx, all[2:]...))
		synctest.Wait()
		select {
		case err := <-flushed:
			t.Errorf("Flush returned %v while event 1 was still being written", err)
			flushed <- err
		default:
		}
		close(down.gate)
		require.NoError(t, <-flushed)
		require.NoError(t, b.Close(ctx))
		// Of the two dropped, one waits for the fallback (the limit of
		// QueueSize) and gets there; the other is lost.
		assert.Equal(t, progress.BufferedStats{Published: 2, Batches: 2, Dropped: 2, Fallback: 1, Lost: 1}, b.Stats())
	})
}

// panicky is a Sink that panics.
type panicky struct{}

func (panicky) Publish(context.Context, ...progress.Event) error { panic("sink bug") }

// A downstream sink that panics fails like one that returns an error, that
// retrying cannot fix: its batch goes to the fallback at once, and the
// panic does not crash the process from the Buffered's goroutine, where
// no caller can recover it.
func TestBufferedDownstreamPanicIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fallback := &recorder{}
		b := progress.NewBuffered(panicky{}, progress.BufferedOptions{Logger: quiet(), Fallback: fallback})
		require.NoError(t, b.Publish(ctx, sinktest.Events("r", 1, 3)...))
		require.NoError(t, b.Close(ctx))
		assert.Equal(t, sinktest.Span(1, 3), fallback.seqs())
		assert.Equal(t, progress.BufferedStats{Errors: 1, Fallback: 3}, b.Stats())

		// A panicking fallback loses the events, counted.
		b = progress.NewBuffered(panicky{}, progress.BufferedOptions{Logger: quiet(), Fallback: panicky{}, Attempts: 1})
		require.NoError(t, b.Publish(ctx, sinktest.Events("r", 1, 3)...))
		require.NoError(t, b.Close(ctx))
		assert.Equal(t, progress.BufferedStats{Errors: 1, FallbackErrors: 3}, b.Stats())
	})
}

// gatedHandler is a slog.Handler whose Handle signals entered, then waits
// for gate: a slow log destination.
type gatedHandler struct {
	entered chan struct{}
	gate    chan struct{}
}

func (h *gatedHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *gatedHandler) Handle(context.Context, slog.Record) error {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.gate
	return nil
}
func (h *gatedHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *gatedHandler) WithGroup(string) slog.Handler      { return h }

// A slow log handler delays the Publish that logs the queue-full warning,
// never the others: the warning is logged outside the lock that every
// Publish takes.
func TestBufferedQueueFullWarningDoesNotHoldOtherPublishers(t *testing.T) {
	ctx := context.Background()
	h := &gatedHandler{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	b := progress.NewBuffered(&recorder{}, progress.BufferedOptions{Logger: slog.New(h), QueueSize: 1})
	all := sinktest.Events("r", 1, 4)
	warned := make(chan error, 1)
	go func() { warned <- b.Publish(ctx, all[:3]...) }() // 3 events in a queue of 1: a warning
	<-h.entered                                          // the warning is being logged
	other := make(chan error, 1)
	go func() { other <- b.Publish(ctx, all[3]) }()
	select {
	case err := <-other:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second): // a bound against a hang, not a timing assertion
		t.Error("a Publish waited for another Publish's queue-full warning to be logged")
	}
	close(h.gate)
	require.NoError(t, <-warned)
	require.NoError(t, b.Close(ctx))
}

// Events published after Close, while the queue is still being drained,
// reach the fallback after the drained events that the downstream sink
// failed to take: the fallback gets them all in order.
func TestBufferedPublishDuringCloseKeepsFallbackOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &recorder{gate: make(chan struct{}), fail: func(int) error { return errors.New("redis: connection refused") }}
		fallback := &recorder{}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Fallback: fallback, Attempts: 1})
		all := sinktest.Events("r", 1, 5)
		require.NoError(t, b.Publish(ctx, all[0]))
		synctest.Wait() // the worker holds event 1 at the gate
		require.NoError(t, b.Publish(ctx, all[1:3]...))
		closed := make(chan error, 1)
		go func() { closed <- b.Close(ctx) }()
		synctest.Wait() // Close waits for the queue to drain
		assert.ErrorIs(t, b.Publish(ctx, all[3]), progress.ErrClosed)
		close(down.gate)
		require.NoError(t, <-closed)
		assert.ErrorIs(t, b.Publish(ctx, all[4]), progress.ErrClosed)
		assert.Equal(t, sinktest.Span(1, 5), fallback.seqs(), "the fallback gets the events in order")
		assert.Equal(t, progress.BufferedStats{Errors: 2, Fallback: 5}, b.Stats())
	})
}

// The events published after Close while the queue drains are bounded by
// QueueSize too.
func TestBufferedPublishDuringCloseIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &recorder{gate: make(chan struct{})}
		fallback := &recorder{}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Fallback: fallback, QueueSize: 2})
		all := sinktest.Events("r", 1, 4)
		require.NoError(t, b.Publish(ctx, all[0]))
		synctest.Wait() // the worker holds event 1 at the gate
		closed := make(chan error, 1)
		go func() { closed <- b.Close(ctx) }()
		synctest.Wait()
		assert.ErrorIs(t, b.Publish(ctx, all[1:]...), progress.ErrClosed)
		close(down.gate)
		require.NoError(t, <-closed)
		assert.Equal(t, []uint64{1}, down.seqs())
		assert.Equal(t, []uint64{3, 4}, fallback.seqs())
		assert.Equal(t, progress.BufferedStats{Published: 1, Batches: 1, Fallback: 2, Dropped: 1, Lost: 1}, b.Stats())
	})
}

// Close returns once its ctx ends, even when the downstream sink ignores
// its context: the write is abandoned, and what is left, the abandoned
// batch first, goes to the fallback.
// A downstream sink that honours its context, and returns a moment after
// Close's ctx ended cancelled it, is waited for: it is not still writing
// (to a client the host closes next) once Close returned.
func TestBufferedCloseWaitsForASinkThatHonoursItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var returned atomic.Bool
		down := progress.SinkFunc(func(ctx context.Context, _ ...progress.Event) error {
			<-ctx.Done()
			time.Sleep(time.Millisecond) // the driver's cancel takes a moment
			returned.Store(true)
			return ctx.Err()
		})
		fallback := &recorder{}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Fallback: fallback, Timeout: time.Hour})
		require.NoError(t, b.Publish(context.Background(), sinktest.Events("r", 1, 2)...))
		synctest.Wait() // the worker is in the downstream sink
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		assert.ErrorIs(t, b.Close(ctx), context.DeadlineExceeded)
		assert.True(t, returned.Load(), "the downstream call had returned when Close did")
		assert.Equal(t, sinktest.Span(1, 2), fallback.seqs())
	})
}

func TestBufferedCloseDoesNotWaitForASinkThatIgnoresItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck := make(chan struct{})
		down := progress.SinkFunc(func(context.Context, ...progress.Event) error {
			<-stuck // ignores its context
			return nil
		})
		fallback := &recorder{}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Fallback: fallback})
		require.NoError(t, b.Publish(context.Background(), sinktest.Events("r", 1, 1)...))
		synctest.Wait() // the worker is stuck in the downstream sink
		require.NoError(t, b.Publish(context.Background(), sinktest.Events("r", 2, 4)...))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		closed := make(chan error, 1)
		go func() { closed <- b.Close(ctx) }()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case err := <-closed:
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, sinktest.Span(1, 4), fallback.seqs(), "the abandoned batch and the queue went to the fallback")
			assert.Equal(t, progress.BufferedStats{Errors: 1, Fallback: 4}, b.Stats())
		default:
			t.Error("Close still waits, past its ctx's end, for a sink that ignores its context")
		}
		close(stuck) // the abandoned call returns; its goroutine ends
		synctest.Wait()
		assert.NoError(t, b.Close(context.Background()))
	})
}
