package redisstream_test

import (
	"context"
	"errors"
	"slices"
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

// A write that waits for one that gives up waiting for a write left in
// flight, and then fails, waits in turn for the held write, and writes
// its events first, as a write that comes after the failure does (see
// TestPublishAfterAFailedResendStillWaitsForTheHeldWrite). Before, it
// found the write it waited for ended, and went out at once: its events
// reached Redis first, and the held write's, landing after them, were
// refused as older than the stream's newest (the stream held seq 7 to
// 9). The test ends the writes' waits (see leftTimers).
func TestPublishWaitingForAFailedResendThenWaitsForTheHeldWrite(t *testing.T) {
	ctx := context.Background()
	s, hold := failingResendStream(t)
	timers := newLeftTimers(s)
	handed := make(chan struct{}, 4)
	redisstream.OnHanding(s, func() { handed <- struct{}{} })
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 9)

	gone, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, s.Publish(gone, all[:3]...), context.Canceled)
	<-hold.held
	assert.ErrorIs(t, s.Publish(gone, all[3:6]...), context.Canceled, "left waiting for the held write")
	require.Equal(t, uint64(2), <-timers.started)
	third := make(chan error, 1)
	go func() { third <- s.Publish(ctx, all[6:]...) }()
	require.Equal(t, uint64(3), <-timers.started, "the third write waits for the second")
	timers.end(2) // the second gives up on the held write; its resend fails
	<-handed
	assert.Equal(t, uint64(6), s.Stats().Dropped, "the second write, which gave up on the held one, failed")
	timers.end(3)
	require.NoError(t, <-third, "gives up on the held write, and writes its events first")
	require.Equal(t, []uint64{1, 2, 3, 7, 8, 9}, replaySeqs(t, s, run), "the run's stream, the held write still on its way")
	hold.free() // the held write lands
	require.Eventually(t, func() bool { return s.Stats().Duplicates == 3 }, 10*time.Second, time.Millisecond,
		"the held write's events, written again by the third write, land")
	assert.Equal(t, []uint64{1, 2, 3, 7, 8, 9}, replaySeqs(t, s, run), "the run's stream")
}

// A write that gives up waiting for one that is itself still waiting,
// for a write left in flight that a failed write before it had given up
// on, sends the held write's events too, first. Before, it took those of
// the writes that the one it gave up on waited for as its call came,
// and the failed write, ended, sent nothing: its events (seq 7 to 12)
// reached Redis before the held write's, which were then refused as
// older than the stream's newest. The test ends the writes' waits (see
// leftTimers).
func TestPublishResendTakesTheHeldWriteThatAFailedOneGaveUpOn(t *testing.T) {
	ctx := context.Background()
	s, hold := failingResendStream(t)
	timers := newLeftTimers(s)
	handed := make(chan struct{}, 4)
	redisstream.OnHanding(s, func() { handed <- struct{}{} })
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 12)

	gone, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, s.Publish(gone, all[:3]...), context.Canceled)
	<-hold.held
	assert.ErrorIs(t, s.Publish(gone, all[3:6]...), context.Canceled, "left waiting for the held write")
	require.Equal(t, uint64(2), <-timers.started)
	assert.ErrorIs(t, s.Publish(gone, all[6:9]...), context.Canceled, "left waiting for the second write")
	require.Equal(t, uint64(3), <-timers.started)
	fourth := make(chan error, 1)
	go func() { fourth <- s.Publish(ctx, all[9:]...) }()
	require.Equal(t, uint64(4), <-timers.started, "the fourth write waits for the third")
	timers.end(2) // the second gives up on the held write; its resend fails
	<-handed
	assert.Equal(t, uint64(6), s.Stats().Dropped, "the second write, which gave up on the held one, failed")
	timers.end(4) // the fourth gives up on the third, still waiting
	require.NoError(t, <-fourth, "gives up on the third write, and writes the held write's events first")
	<-handed // the fourth's, before its call returned
	require.Equal(t, []uint64{1, 2, 3, 7, 8, 9, 10, 11, 12}, replaySeqs(t, s, run), "the run's stream, the held write still on its way")
	timers.end(3) // the third gives up on the held write, and writes its events again with its own
	<-handed      // before the held write lands: else the third finds it ended, and writes its own alone
	hold.free()   // the held write lands
	require.Eventually(t, func() bool { return s.Stats().Duplicates == 9 }, 10*time.Second, time.Millisecond,
		"the third write's events and the held write's, written by the fourth, land")
	assert.Equal(t, []uint64{1, 2, 3, 7, 8, 9, 10, 11, 12}, replaySeqs(t, s, run), "the run's stream")
}

// A write whose bound passes while it waits for a write left in flight
// gives up, too, on the write that a failed write it waited for gave up
// on: their events go first. Here the fourth call has events of two
// runs, C's first: its write waits for C's held write, while A's second
// write gives up on A's held write, and fails. Before, the fourth write
// took only the writes it waited for that had not ended (C's) as those
// it gave up on, and A's seq 7 to 9 reached Redis before the held 1 to
// 3, which were then refused as older than the stream's newest. The
// test ends the writes' waits (see leftTimers).
func TestPublishGivingUpTakesTheHeldWriteThatAFailedOneGaveUpOn(t *testing.T) {
	ctx := context.Background()
	s, r := newStream(t, redisstream.Options{Logger: quiet()})
	pipes := &pipelineScript{hold: map[int]chan struct{}{1: nil, 2: nil}, fail: 3}
	pipes.init()
	r.Client.AddHook(pipes)
	t.Cleanup(pipes.freeAll)
	timers := newLeftTimers(s)
	handed := make(chan struct{}, 8)
	redisstream.OnHanding(s, func() { handed <- struct{}{} })
	runA, runC := sinktest.RunID(t)+"-a", sinktest.RunID(t)+"-c"
	a, c := sinktest.Events(runA, 1, 9), sinktest.Events(runC, 1, 6)

	gone, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, s.Publish(gone, a[:3]...), context.Canceled)
	<-pipes.held(1)
	assert.ErrorIs(t, s.Publish(gone, a[3:6]...), context.Canceled, "left waiting for A's held write")
	require.Equal(t, uint64(2), <-timers.started)
	assert.ErrorIs(t, s.Publish(gone, c[:3]...), context.Canceled)
	<-pipes.held(2)
	fourth := make(chan error, 1)
	go func() { fourth <- s.Publish(ctx, append(slices.Clone(c[3:]), a[6:]...)...) }()
	require.Equal(t, uint64(4), <-timers.started, "the fourth write waits for C's held write and A's second")
	timers.end(2) // A's second write gives up on A's held write; its resend fails
	<-handed
	assert.Equal(t, uint64(6), s.Stats().Dropped, "A's second write, which gave up on the held one, failed")
	timers.end(4) // the fourth gives up on C's held write, and A's second has ended
	require.NoError(t, <-fourth, "writes both held writes' events first")
	require.Equal(t, []uint64{1, 2, 3, 7, 8, 9}, replaySeqs(t, s, runA), "run A's stream, the held writes still on their way")
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6}, replaySeqs(t, s, runC), "run C's stream")
	pipes.freeAll() // the held writes land
	require.Eventually(t, func() bool { return s.Stats().Duplicates == 6 }, 10*time.Second, time.Millisecond,
		"the held writes' events, written again by the fourth write, land")
	assert.Equal(t, []uint64{1, 2, 3, 7, 8, 9}, replaySeqs(t, s, runA), "run A's stream")
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6}, replaySeqs(t, s, runC), "run C's stream")
}

// pipelineScript holds or fails a client's pipelines by their number (1
// for the first): one whose number is a key of hold waits until freeAll,
// and then goes out whatever became of its context (held(n) is closed
// once pipeline n is held); the one numbered fail fails without being
// sent; the others go out.
type pipelineScript struct {
	hold    map[int]chan struct{} // made by init
	fail    int
	n       atomic.Int32
	release chan struct{}
	freed   sync.Once
}

func (p *pipelineScript) init() {
	p.release = make(chan struct{})
	for n := range p.hold {
		p.hold[n] = make(chan struct{})
	}
}

func (p *pipelineScript) held(n int) <-chan struct{} { return p.hold[n] }
func (p *pipelineScript) freeAll()                   { p.freed.Do(func() { close(p.release) }) }

func (p *pipelineScript) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipelineScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelineScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := int(p.n.Add(1))
		if n == p.fail {
			for _, c := range cmds {
				c.SetErr(errNetworkDown)
			}
			return errNetworkDown
		}
		if held, ok := p.hold[n]; ok {
			close(held)
			<-p.release
			ctx = context.WithoutCancel(ctx) // on the wire already
		}
		return next(ctx, cmds)
	}
}

// failingResendStream returns a Stream whose client holds its first
// pipeline until hold.free, and fails its second (see
// holdFirstFailSecond).
func failingResendStream(t *testing.T) (*redisstream.Stream, *holdFirstFailSecond) {
	s, r := newStream(t, redisstream.Options{Logger: quiet()})
	hold := &holdFirstFailSecond{
		holdFirstPipeline: holdFirstPipeline{release: make(chan struct{}), held: make(chan struct{})},
		failing:           make(chan struct{}),
	}
	close(hold.failing)
	r.Client.AddHook(hold)
	t.Cleanup(hold.free)
	return s, hold
}

// leftTimers ends the waits of a Stream's writes for those left in
// flight before them when the test says, in place of their bound (see
// redisstream.OnLeftWait): started gets each waiting write's number as
// it starts waiting, and end(n) ends write n's wait. The test's cleanup
// ends them all, before the Stream's Close.
type leftTimers struct {
	started chan uint64
	mu      sync.Mutex
	ends    map[uint64]chan time.Time
	ended   map[uint64]bool
}

func newLeftTimers(s *redisstream.Stream) *leftTimers {
	l := &leftTimers{started: make(chan uint64, 16), ends: make(map[uint64]chan time.Time), ended: make(map[uint64]bool)}
	redisstream.OnLeftWait(s, func(n uint64) <-chan time.Time {
		l.started <- n
		return l.of(n)
	})
	return l
}

func (l *leftTimers) of(n uint64) chan time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.ends[n]
	if !ok {
		c = make(chan time.Time)
		l.ends[n] = c
	}
	return c
}

func (l *leftTimers) end(n uint64) {
	c := l.of(n)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ended[n] {
		l.ended[n] = true
		close(c)
	}
}

// A write that waits for a failed write with events of several runs
// waits in its place only for the stand-ins with events of its own runs:
// the others' events are not its to keep in order, and it would not
// send them. Here A's held write is the stand-in of a failed write of A
// and C, which a write of C alone waited for. Before, the write of C
// waited for A's held write too, up to its bound (30s, as long as A's
// write was held): C's events reached Redis that much later, and a
// caller whose context ended meanwhile (a progress.Buffered's Timeout)
// left it in flight, for C's next writes to wait for in turn. The test
// ends the writes' waits (see leftTimers), and never the C write's.
func TestPublishWaitsOnlyForTheStandInsOfItsRuns(t *testing.T) {
	ctx := context.Background()
	s, r := newStream(t, redisstream.Options{Logger: quiet()})
	pipes := &pipelineScript{hold: map[int]chan struct{}{1: nil}, fail: 2}
	pipes.init()
	r.Client.AddHook(pipes)
	t.Cleanup(pipes.freeAll)
	timers := newLeftTimers(s)
	t.Cleanup(func() { timers.end(3) })
	handed := make(chan struct{}, 8)
	redisstream.OnHanding(s, func() { handed <- struct{}{} })
	runA, runC := sinktest.RunID(t)+"-a", sinktest.RunID(t)+"-c"
	a, c := sinktest.Events(runA, 1, 6), sinktest.Events(runC, 1, 6)

	gone, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, s.Publish(gone, a[:3]...), context.Canceled)
	<-pipes.held(1)
	assert.ErrorIs(t, s.Publish(gone, append(slices.Clone(a[3:]), c[:3]...)...), context.Canceled,
		"left waiting for A's held write")
	require.Equal(t, uint64(2), <-timers.started)
	third := make(chan error, 1)
	go func() { third <- s.Publish(ctx, c[3:]...) }()
	require.Equal(t, uint64(3), <-timers.started, "the write of C waits for the write of A and C")
	timers.end(2) // it gives up on A's held write; its resend fails
	<-handed
	assert.Equal(t, uint64(9), s.Stats().Dropped, "the write of A and C, which gave up on A's held write, failed")
	select {
	case err := <-third:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the write of C still waits, for A's held write, once the write of A and C it waited for failed")
	}
	assert.Equal(t, []uint64{4, 5, 6}, replaySeqs(t, s, runC), "run C's stream")
	<-handed        // the write of C's
	pipes.freeAll() // A's held write lands
	<-handed
	assert.Equal(t, []uint64{1, 2, 3}, replaySeqs(t, s, runA), "run A's stream")
}
