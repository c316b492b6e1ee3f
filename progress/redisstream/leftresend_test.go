package redisstream_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// replaySeqs returns the seqs of run's stream, in order.
func replaySeqs(t *testing.T, s *redisstream.Stream, run string) []uint64 {
	t.Helper()
	var seqs []uint64
	require.NoError(t, s.Replay(context.Background(), run, 0, func(e progress.Event) error {
		seqs = append(seqs, e.Seq)
		return nil
	}))
	return seqs
}

// A write that gave up waiting for one left in flight before it sends
// that write's events first, then its own: an event that both hold goes
// at its place among the earlier write's, not among the later call's.
// Before, the events of the later call that the held write also held
// were taken out of the held write's and sent after them, so that a call
// of seq 2 and 4, after a held write of 1 to 3, sent 1, 3, 2, 4: Redis
// refused 2 as older than the stream's newest, and counted it as a
// duplicate, and the held write, landing last, could not bring it back.
func TestPublishResendKeepsTheOrderOfEventsBothWritesHold(t *testing.T) {
	ctx := context.Background()
	s, hold := heldStream(t)
	redisstream.SetLeftWait(s, 50*time.Millisecond)
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 4)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Publish(short, all[:3]...), context.DeadlineExceeded)
	<-hold.held
	require.NoError(t, s.Publish(ctx, all[1], all[3]))
	assert.Equal(t, []uint64{1, 2, 3, 4}, replaySeqs(t, s, run), "the run's stream, the held write still on its way")
	hold.free()
}

// Once a write that gave up waiting for one left in flight has written
// that write's events of its runs, the runs' next writes no longer wait
// for it. Before, the held write stayed the one that the run's next
// writes waited for, as long as it was held, when the write that gave
// up on it was not itself left in flight (its call's context outlived
// the wait): each next Publish of the run waited the bound (30s) again,
// and then wrote the held write's events again, duplicates all. And
// they no longer wait for it once its call has returned: before, the
// write handed its result to its call first and recorded that it had
// written after, so that the call's next Publish, made at once, could
// still find the held write waited for (under load, 2 runs in 5 failed
// so); a hook looks as the write hands its result.
func TestPublishNoLongerWaitsForAWriteAlreadyResent(t *testing.T) {
	ctx := context.Background()
	s, hold := heldStream(t)
	redisstream.SetLeftWait(s, 50*time.Millisecond)
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 9)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Publish(short, all[:3]...), context.DeadlineExceeded)
	<-hold.held
	waits := make(chan bool, 1)
	redisstream.OnHanding(s, func() { // the second write's first
		select {
		case waits <- redisstream.WaitsForALeftWrite(s, run):
		default:
		}
	})
	require.NoError(t, s.Publish(ctx, all[3:6]...), "gives up on the held write, and writes its events")
	assert.False(t, <-waits, "as the call that wrote the held write's events returns, the run's next write still waits for it")
	require.NoError(t, s.Publish(ctx, all[6:]...))
	assert.Zero(t, s.Stats().Duplicates, "events written again, the held write still on its way")
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}, replaySeqs(t, s, run), "the run's stream")
	hold.free()
}

// A write that gives up waiting for one left in flight that is itself
// still waiting for a write before it (their bounds passing at about
// the same time, the later call's write may give up first) sends the
// events of both: the one it waited for has yet to add the earlier
// write's events to its own. Before, it sent only those of the write it
// waited for, and its own: they reached Redis before the held write's,
// which Redis then refused as older than the stream's newest (the
// stream held seq 4 to 9). The test makes the middle write wait for an
// hour, as a scheduler that runs it late would.
func TestPublishResendTakesTheEventsOfAWriteStillWaiting(t *testing.T) {
	ctx := context.Background()
	s, hold := heldStream(t)
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 9)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Publish(short, all[:3]...), context.DeadlineExceeded)
	<-hold.held
	redisstream.SetLeftWait(s, time.Hour)
	gone, cancel2 := context.WithCancel(ctx)
	cancel2()
	assert.ErrorIs(t, s.Publish(gone, all[3:6]...), context.Canceled, "left waiting for the held write")
	redisstream.SetLeftWait(s, 50*time.Millisecond)
	require.NoError(t, s.Publish(ctx, all[6:]...))
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}, replaySeqs(t, s, run), "the run's stream, the held write still on its way")
	hold.free()
}

// A write that gave up waiting for one left in flight, and failed (the
// network still down for its new connection), leaves the held write
// the one that the run's next writes wait for, and write first: the
// held write's events may still reach Redis. (The failed write was
// itself left in flight, its call's context ended as it waited, as a
// progress.Buffered's Timeout ends it.) Before, the failed write
// ended as one that had written, and the next write went out at once:
// its events reached Redis first, and the held write's, landing after
// them, were refused as older than the stream's newest (the stream held
// seq 7 to 9). Hooks order the calls: the failed write's resend fails
// once its call has returned, and the next call comes once that write
// has ended (a call that comes while it waits is another case).
func TestPublishAfterAFailedResendStillWaitsForTheHeldWrite(t *testing.T) {
	ctx := context.Background()
	s, r := newStream(t, redisstream.Options{Logger: quiet()})
	hold := &holdFirstFailSecond{
		holdFirstPipeline: holdFirstPipeline{release: make(chan struct{}), held: make(chan struct{})},
		failing:           make(chan struct{}),
	}
	r.Client.AddHook(hold)
	t.Cleanup(hold.free)
	fail := sync.OnceFunc(func() { close(hold.failing) })
	t.Cleanup(fail)
	redisstream.SetLeftWait(s, 50*time.Millisecond)
	handed := make(chan struct{}, 1)
	redisstream.OnHanding(s, func() { // the second write's first: the held one hands last
		select {
		case handed <- struct{}{}:
		default:
		}
	})
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 9)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Publish(short, all[:3]...), context.DeadlineExceeded)
	<-hold.held
	short2, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	// Its resend fails only once the call has returned.
	assert.ErrorIs(t, s.Publish(short2, all[3:6]...), context.DeadlineExceeded, "left waiting for the held write")
	fail()
	<-handed // the write that gave up on the held one has ended
	assert.Equal(t, uint64(6), s.Stats().Dropped, "the write that gave up on the held one failed")
	require.NoError(t, s.Publish(ctx, all[6:]...), "gives up on the held write, and writes its events first")
	hold.free() // the held write lands
	require.Eventually(t, func() bool { return s.Stats().Duplicates == 3 }, 10*time.Second, time.Millisecond,
		"the held write's events, written again by the third write, land")
	assert.Equal(t, []uint64{1, 2, 3, 7, 8, 9}, replaySeqs(t, s, run), "the run's stream")
}

var errNetworkDown = errors.New("network down")

// holdFirstFailSecond holds the first pipeline, as holdFirstPipeline
// does, and fails the second without sending it, once failing is
// closed.
type holdFirstFailSecond struct {
	holdFirstPipeline
	n       atomic.Int32
	failing chan struct{}
}

func (h *holdFirstFailSecond) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	held := h.holdFirstPipeline.ProcessPipelineHook(next)
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.n.Add(1) == 2 {
			<-h.failing
			for _, c := range cmds {
				c.SetErr(errNetworkDown)
			}
			return errNetworkDown
		}
		return held(ctx, cmds)
	}
}
