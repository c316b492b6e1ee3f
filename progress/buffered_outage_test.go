package progress_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// outage is a Sink that refuses every call, as a Redis that is down
// does, until it is brought back; then it records its batches.
type outage struct {
	mu    sync.Mutex
	down  bool
	calls int
	got   []progress.Event
}

func (o *outage) Publish(_ context.Context, events ...progress.Event) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	if o.down {
		return errors.New("redis: connection refused")
	}
	o.got = append(o.got, events...)
	return nil
}

func (o *outage) set(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
}

func (o *outage) seqs() []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return sinktest.Seqs(o.got)
}

// A downstream sink that is down for a while, then back, loses nothing
// behind a Buffered with the default Attempts: the failing batch is
// retried, with a growing pause, while what is published meanwhile
// waits behind it, and every event reaches the sink in order, none the
// fallback. The run's final event, published during the outage, is not
// lost.
func TestBufferedOutageLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   progress.BufferedOptions
		outage time.Duration
		before int // events published before the outage starts
		total  int
	}{
		{name: "4s outage at the run's end", outage: 4 * time.Second, before: 10, total: 12},
		{name: "outage from the start", outage: 30 * time.Second, before: 0, total: 50},
		{name: "batches queue behind the failing one", opts: progress.BufferedOptions{BatchSize: 3},
			outage: 10 * time.Second, before: 5, total: 40},
		{name: "long pauses and a Timeout", opts: progress.BufferedOptions{RetryDelay: time.Second, Timeout: time.Second},
			outage: time.Minute, before: 1, total: 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				down := &outage{}
				fallback := &recorder{}
				opts := tc.opts
				opts.Logger, opts.Fallback = quiet(), fallback
				b := progress.NewBuffered(down, opts)
				all := sinktest.Events("r", 1, uint64(tc.total))
				all[tc.total-1].Type = progress.RunFinished
				require.NoError(t, b.Publish(ctx, all[:tc.before]...))
				require.NoError(t, b.Flush(ctx))
				down.set(true)
				for _, e := range all[tc.before:] {
					require.NoError(t, b.Publish(ctx, e))
					time.Sleep(100 * time.Millisecond) // a run's pace
				}
				time.Sleep(tc.outage)
				down.set(false)
				require.NoError(t, b.Flush(ctx), "Flush waits for the sink to take the events")
				require.NoError(t, b.Close(ctx))
				assert.Equal(t, sinktest.Span(1, uint64(tc.total)), down.seqs(), "every event, in order, once")
				assert.Empty(t, fallback.seqs(), "nothing went to the fallback")
				s := b.Stats()
				assert.Equal(t, uint64(tc.total), s.Published)
				assert.Positive(t, s.Errors)
				assert.Zero(t, s.Fallback+s.Dropped+s.Lost+s.FallbackErrors)
			})
		})
	}
}

// The pause between retries grows, with jitter, up to MaxRetryDelay: a
// long outage costs few calls, and the sink is tried again within
// MaxRetryDelay of its return.
func TestBufferedRetryBackoffIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		down := &outage{down: true}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), MaxRetryDelay: 2 * time.Second})
		require.NoError(t, b.Publish(ctx, sinktest.Events("r", 1, 3)...))
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		down.mu.Lock()
		calls := down.calls
		down.mu.Unlock()
		// Doubling from 50ms to 2s takes 6 pauses; then one every 1-2s.
		assert.Less(t, calls, 10+600, "the pause grows")
		assert.Greater(t, calls, 300, "the pause is capped at MaxRetryDelay")
		down.set(false)
		back := time.Now()
		require.NoError(t, b.Flush(ctx))
		assert.LessOrEqual(t, time.Since(back), 2*time.Second, "tried again within MaxRetryDelay")
		require.NoError(t, b.Close(ctx))
		assert.Equal(t, sinktest.Span(1, 3), down.seqs())
	})
}

// When the queue is full during an outage, what must leave it goes to
// the fallback rather than vanishing: with the default Attempts, the
// batch being retried, the oldest; with a positive Attempts, as before
// it was the default, the oldest waiting events (newer than the batch
// retried meanwhile), dropped. Every event reaches exactly one of the
// two sinks, each in order, and the counters add up.
func TestBufferedFullQueueHandsOldestToFallback(t *testing.T) {
	for _, tc := range []struct {
		name             string
		opts             progress.BufferedOptions
		oldestToFallback bool // every event in the fallback is older than those downstream
		dropped          bool // the queue dropped events
	}{
		{name: "retry while the queue holds", opts: progress.BufferedOptions{QueueSize: 10, BatchSize: 4}, oldestToFallback: true},
		{name: "a fixed number of attempts", opts: progress.BufferedOptions{QueueSize: 10, BatchSize: 4, Attempts: 2}, dropped: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				down := &outage{down: true}
				fallback := &recorder{}
				opts := tc.opts
				opts.Logger, opts.Fallback = quiet(), fallback
				b := progress.NewBuffered(down, opts)
				for _, e := range sinktest.Events("r", 1, 30) {
					require.NoError(t, b.Publish(ctx, e))
					time.Sleep(5 * time.Millisecond) // faster than the sink is retried
				}
				down.set(false)
				cctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
				defer cancel()
				require.NoError(t, b.Close(cctx))
				got, lost := down.seqs(), fallback.seqs()
				assert.True(t, slices.IsSorted(got) && slices.IsSorted(lost), "each sink in order: %v, %v", got, lost)
				assert.Equal(t, sinktest.Span(1, 30), slices.Sorted(slices.Values(append(slices.Clone(lost), got...))), "each event once, in one sink or the other")
				require.NotEmpty(t, lost)
				require.NotEmpty(t, got)
				if tc.oldestToFallback {
					assert.Less(t, lost[len(lost)-1], got[0], "the fallback has the oldest: %v, %v", lost, got)
				}
				assert.Equal(t, uint64(30), got[len(got)-1], "the newest reached the sink")
				s := b.Stats()
				assert.Equal(t, uint64(len(got)), s.Published)
				assert.Equal(t, uint64(len(lost)), s.Fallback)
				assert.Equal(t, tc.dropped, s.Dropped > 0, "Dropped: %d", s.Dropped)
				assert.Zero(t, s.Lost+s.FallbackErrors)
			})
		})
	}
}

// Close during an outage keeps offering the queue to the downstream
// sink until its ctx ends, then hands what is left to the fallback, in
// order, and returns by its deadline.
func TestBufferedCloseDuringOutageHandsQueueToFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := &outage{down: true}
		fallback := &recorder{}
		b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Fallback: fallback, BatchSize: 4})
		require.NoError(t, b.Publish(context.Background(), sinktest.Events("r", 1, 10)...))
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.ErrorIs(t, b.Close(ctx), context.DeadlineExceeded, "Close waited for the sink until its deadline")
		assert.Equal(t, 10*time.Second, time.Since(start), "and not past it")
		assert.Empty(t, down.seqs())
		assert.Equal(t, sinktest.Span(1, 10), fallback.seqs(), "the queue went to the fallback, in order")
		s := b.Stats()
		assert.Equal(t, uint64(10), s.Fallback)
		assert.Zero(t, s.Queued)
	})
}

// invalidFor is a Sink that refuses, as pghistory does a run ID it
// cannot store, every call with an event of run bad, with an error
// wrapping progress.ErrInvalidEvent, before storing anything.
type invalidFor struct {
	recorder
	bad string
	err error
}

func (s *invalidFor) Publish(ctx context.Context, events ...progress.Event) error {
	for _, e := range events {
		if e.RunID == s.bad {
			s.recorder.mu.Lock()
			s.recorder.calls++
			s.recorder.mu.Unlock()
			return s.err
		}
	}
	return s.recorder.Publish(ctx, events...)
}

// An error that retrying cannot fix sends the events at once to the
// fallback: a refused event (progress.ErrInvalidEvent, which the sink
// returns before storing anything: the events of the call that it does
// take still reach it, in order), a closed sink (progress.ErrClosed),
// a sink that panics.
func TestBufferedPermanentErrorGoesToFallbackAtOnce(t *testing.T) {
	mixed := []progress.Event{}
	for i, e := range sinktest.Events("ok", 1, 6) {
		mixed = append(mixed, e)
		if i == 2 {
			mixed = append(mixed, sinktest.Events("bad", 1, 1)...)
		}
	}
	for _, tc := range []struct {
		name     string
		err      error
		panics   bool
		down     []uint64 // Seqs of run "ok" that reach the sink
		fallback []string // "run/seq" that reach the fallback
	}{
		{name: "invalid event", err: fmt.Errorf("pghistory: run ID too long: %w", progress.ErrInvalidEvent),
			down: sinktest.Span(1, 6), fallback: []string{"bad/1"}},
		{name: "closed sink", err: fmt.Errorf("archive: %w", progress.ErrClosed),
			fallback: []string{"ok/1", "ok/2", "ok/3", "bad/1", "ok/4", "ok/5", "ok/6"}},
		{name: "panic", panics: true,
			fallback: []string{"ok/1", "ok/2", "ok/3", "bad/1", "ok/4", "ok/5", "ok/6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				var down progress.Sink = &invalidFor{bad: "bad", err: tc.err}
				if tc.panics {
					down = panicky{}
				}
				fb, fallback := collectIDs()
				b := progress.NewBuffered(down, progress.BufferedOptions{Logger: quiet(), Fallback: fb})
				start := time.Now()
				require.NoError(t, b.Publish(ctx, mixed...))
				require.NoError(t, b.Flush(ctx))
				assert.Zero(t, time.Since(start), "no pause before the fallback")
				require.NoError(t, b.Close(ctx))
				if d, ok := down.(*invalidFor); ok {
					assert.Equal(t, tc.down, d.seqs())
				}
				assert.Equal(t, tc.fallback, fallback())
				s := b.Stats()
				assert.Equal(t, uint64(len(tc.down)), s.Published)
				assert.Equal(t, uint64(len(tc.fallback)), s.Fallback)
			})
		})
	}
}
