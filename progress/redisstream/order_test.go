package redisstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A Publish whose context ends before its write reaches Redis leaves the
// write in flight, and the run's next Publish, which may go out on
// another connection, waits for it: before, the later events could reach
// Redis first, so that the stream's newest entry was above the earlier
// ones, which Redis then refused as older (counted as Duplicates): a
// live reader never saw them. Here the first write is held on its way
// (as a network that delays one connection would), and the next call's
// write went out at once, took seq 4 to 6, and left 1 to 3 out of the
// stream.
func TestPublishKeepsTheOrderOfAWriteLeftInFlight(t *testing.T) {
	ctx := context.Background()
	s, hold := heldStream(t)
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 6)

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Publish(short, all[:3]...), context.DeadlineExceeded)
	<-hold.held
	second := make(chan error, 1)
	go func() { second <- s.Publish(ctx, all[3:]...) }()
	select {
	case err := <-second:
		t.Errorf("the next Publish returned (%v) while the write before it was still on its way", err)
		second <- err
	case <-time.After(300 * time.Millisecond):
	}
	hold.free()
	require.NoError(t, <-second)

	var seqs []uint64
	require.NoError(t, s.Replay(ctx, run, 0, func(e progress.Event) error {
		seqs = append(seqs, e.Seq)
		return nil
	}))
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6}, seqs, "the run's stream")
	assert.Zero(t, s.Stats().Duplicates, "events refused as older than the stream's newest")
}

// heldStream returns a Stream whose client holds its first pipeline
// until hold.free (see holdFirstPipeline), which the test's cleanup
// calls before the Stream's Close, which waits for the write.
func heldStream(t *testing.T) (*redisstream.Stream, *holdFirstPipeline) {
	s, r := newStream(t, redisstream.Options{Logger: quiet()})
	hold := &holdFirstPipeline{release: make(chan struct{}), held: make(chan struct{})}
	r.Client.AddHook(hold)
	t.Cleanup(hold.free)
	return s, hold
}

// holdFirstPipeline holds a client's first pipeline until free is
// called, as a network that delays one connection would, and then sends
// it whatever became of its context; held is closed once it holds it.
type holdFirstPipeline struct {
	once, freed   sync.Once
	held, release chan struct{}
}

func (h *holdFirstPipeline) free() { h.freed.Do(func() { close(h.release) }) }

func (h *holdFirstPipeline) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *holdFirstPipeline) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *holdFirstPipeline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		first := false
		h.once.Do(func() { first = true })
		if first {
			close(h.held)
			<-h.release
			// On the wire already: its call's end no longer stops it.
			ctx = context.WithoutCancel(ctx)
		}
		return next(ctx, cmds)
	}
}

// A Publish whose context ends while its write waits for one left in
// flight before it leaves its own write in flight too: that write still
// goes out, once the one before it has ended, as a write whose call
// returned while it was on its way does. Before, it went out with its
// call's ended context, which go-redis refuses before sending anything:
// its events were never written (the stream held seq 1 to 3 and 7 to 9).
func TestPublishLeftWaitingStillWrites(t *testing.T) {
	ctx := context.Background()
	s, hold := heldStream(t)
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 9)

	first, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Publish(first, all[:3]...), context.DeadlineExceeded)
	<-hold.held
	second, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	assert.ErrorIs(t, s.Publish(second, all[3:6]...), context.DeadlineExceeded, "the second write waits for the first")
	hold.free()
	require.NoError(t, s.Publish(ctx, all[6:]...))

	var seqs []uint64
	require.NoError(t, s.Replay(ctx, run, 0, func(e progress.Event) error {
		seqs = append(seqs, e.Seq)
		return nil
	}))
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}, seqs, "the run's stream")
	assert.Zero(t, s.Stats().Dropped, "events not written")
}

// A write left in flight that never ends (a connection cut without a
// reset, with a client's ReadTimeout of -1, holds it until TCP gives up)
// holds the run's next write for a bound only, not for good: the next
// write then goes out with the events of the write it waited for first,
// in one pipeline, so that whichever reaches Redis first, the stream
// holds the run's events in order, and the late one's are duplicates.
// Before, the next Publish waited for the held write for as long as it
// was held (every later event of the run missed Redis meanwhile); and a
// bound alone would have let the held write's events, landing after the
// next write's, be refused as older than the stream's newest.
func TestPublishWaitsForAWriteLeftInFlightForABoundOnly(t *testing.T) {
	ctx := context.Background()
	s, hold := heldStream(t)
	redisstream.SetLeftWait(s, 100*time.Millisecond)
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 6)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Publish(short, all[:3]...), context.DeadlineExceeded)
	<-hold.held
	second := make(chan error, 1)
	go func() { second <- s.Publish(ctx, all[3:]...) }()
	select {
	case err := <-second:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the next Publish still waits for the write left in flight before it")
	}
	hold.free() // the held write lands last
	require.Eventually(t, func() bool { return s.Stats().Duplicates == 3 }, 10*time.Second, time.Millisecond,
		"the held write's events, written by the next one already, are duplicates when it lands")

	var seqs []uint64
	require.NoError(t, s.Replay(ctx, run, 0, func(e progress.Event) error {
		seqs = append(seqs, e.Seq)
		return nil
	}))
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6}, seqs, "the run's stream")
	assert.Equal(t, uint64(6), s.Stats().Published)
}
