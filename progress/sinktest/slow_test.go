package sinktest_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// slowSink takes d for each Publish, as a backend on a loaded machine
// does (Postgres and Redis under a -race run of every package at once),
// and busy for one made while another is in flight.
type slowSink struct {
	*progress.Memory
	d, busy  time.Duration
	inflight *atomic.Int32
}

func (s slowSink) Publish(ctx context.Context, events ...progress.Event) error {
	d := s.d
	if s.inflight.Add(1) > 1 {
		d = s.busy
	}
	defer s.inflight.Add(-1)
	if err := take(ctx, d); err != nil {
		return err
	}
	return s.Memory.Publish(ctx, events...)
}

// slowSource delivers each event of a Tail d after the one before.
type slowSource struct {
	*progress.Memory
	d time.Duration
}

func (s slowSource) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return s.Memory.Tail(ctx, run, after, func(e progress.Event) error {
		if err := take(ctx, s.d); err != nil {
			return err
		}
		return fn(e)
	})
}

// take waits d, as a call to a backend does, and returns ctx's cause if
// ctx ends first.
func take(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// slowHistory takes d for each Append made while another is in flight,
// as a database busy with concurrent writers does; an Append alone is
// quick, so that the kit's other subtests stay quick.
type slowHistory struct {
	*progress.MemoryHistory
	d        time.Duration
	inflight *atomic.Int32
}

func (h slowHistory) Append(ctx context.Context, events ...progress.Event) error {
	d := time.Duration(0)
	if h.inflight.Add(1) > 1 {
		d = h.d
	}
	defer h.inflight.Add(-1)
	if err := take(ctx, d); err != nil {
		return err
	}
	return h.MemoryHistory.Append(ctx, events...)
}

// A correct backend whose calls are slow, each far below the kit's
// bound, passes the kit: the bound is on each call and on each event a
// reader waits for, not on a run of them. Before, Seam gave its 1,000
// Publish calls one deadline, ConcurrentRuns each writer's calls one, and the History kit's
// Concurrent each writer's 13 Appends one:
// pghistory's kit failed so under load ("publish seq 2532: context
// deadline exceeded", 15s for 1,000 calls to Postgres and Redis). The
// bound is 3s here, so that the test takes seconds, not minutes.
func TestSlowBackendsPassTheKit(t *testing.T) {
	sinktest.SetWait(t, 3*time.Second)
	t.Run("Run", func(t *testing.T) {
		t.Parallel()
		sinktest.Run(t, func(*testing.T) (progress.Sink, progress.Source) {
			m := progress.NewMemory(progress.MemoryOptions{})
			// Seam: 1,000 calls, 4s; ConcurrentRuns: 6 writers of some
			// 60 calls each, 3.6s.
			return slowSink{m, 4 * time.Millisecond, 60 * time.Millisecond, new(atomic.Int32)}, m
		})
	})
	t.Run("History", func(t *testing.T) {
		t.Parallel()
		sinktest.History(t, func(*testing.T) progress.History {
			return slowHistory{progress.NewMemoryHistory(), 300 * time.Millisecond, new(atomic.Int32)} // Concurrent: 13 calls a writer, 3.9s
		})
	})
}

// Tailer.Next and Tailer.Expect wait up to the kit's bound for each
// event, not for all of them: Seam expects up to 3,000 events of each
// tail, which a loaded machine takes long to deliver.
func TestTailerBoundsEachEvent(t *testing.T) {
	sinktest.SetWait(t, 3*time.Second)
	m := progress.NewMemory(progress.MemoryOptions{})
	run := sinktest.RunID(t)
	require.NoError(t, m.Publish(context.Background(), sinktest.Events(run, 1, 2000)...))
	for name, take := range map[string]func(t *testing.T, tl *sinktest.Tailer){
		"Next":   func(t *testing.T, tl *sinktest.Tailer) { tl.Next(t, 2000) },
		"Expect": func(t *testing.T, tl *sinktest.Tailer) { tl.Expect(t, sinktest.Span(1, 2000)) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tl := sinktest.StartTail(t, slowSource{m, 2 * time.Millisecond}, run, 0) // 4s in all
			take(t, tl)
			tl.Stop(t, context.Canceled)
		})
	}
}

// closingSource is a Source whose Tail, once its context ended, leaves a
// goroutine that ends a second later, as pgx does to close a connection
// whose query was cancelled (it sends Postgres a cancel request, and
// drains the connection, in the background).
type closingSource struct {
	*progress.Memory
	closing *sync.WaitGroup
}

func (s closingSource) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	err := s.Memory.Tail(ctx, run, after, fn)
	if ctx.Err() != nil {
		s.closing.Go(func() { time.Sleep(time.Second) })
	}
	return err
}

// CancelTail requires that nothing a Tail started is left once the pair
// is cleaned up; a goroutine of the backend's driver that ends on its own
// a moment later is not left. Before, the kit looked for a few hundred
// milliseconds only (goleak's retries): pghistory's kit failed so under
// load, with pgx's cleanup of a connection whose query a cancelled Tail
// had cancelled still running.
func TestDriverCleanupAfterACancelPassesTheKit(t *testing.T) {
	sinktest.SetWait(t, 3*time.Second)
	var closing sync.WaitGroup
	t.Cleanup(closing.Wait) // what a later subtest left: for TestMain's goleak
	sinktest.Run(t, func(*testing.T) (progress.Sink, progress.Source) {
		m := progress.NewMemory(progress.MemoryOptions{})
		return m, closingSource{m, &closing}
	})
}
