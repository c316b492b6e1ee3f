package redisstream_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// holdCommand holds a client's commands of one name before they are
// sent, once on is set, until free is called: as a Redis that hangs, on
// a client with a ReadTimeout of -1, holds them for good. held is closed
// once it holds one.
type holdCommand struct {
	name          string
	on            atomic.Bool
	once, freed   sync.Once
	held, release chan struct{}
}

func newHoldCommand(name string) *holdCommand {
	return &holdCommand{name: name, held: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdCommand) free() { h.freed.Do(func() { close(h.release) }) }

func (h *holdCommand) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == h.name && h.on.Load() {
			h.once.Do(func() { close(h.held) })
			<-h.release
		}
		return next(ctx, cmd)
	}
}
func (h *holdCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// heldLookupStream returns a Stream with opts, its KeyTemplate under the
// test's key prefix and its Logger quiet, on a client of the test's Redis
// with a ReadTimeout of -1 (go-redis sets no read deadline), whose
// commands named name the hold it returns holds once turned on; the
// Stream's bound on lookups is 200ms. hold is freed before the Stream is
// closed, which waits for the lookups left in flight, and the client
// after it.
func heldLookupStream(t *testing.T, name string, opts redisstream.Options) (*redisstream.Stream, *holdCommand) {
	t.Helper()
	r := testenv.NewRedis(t)
	copts := *r.Client.Options()
	copts.ReadTimeout = -1
	client := testenv.NewRedisClient(&copts)
	t.Cleanup(func() { client.Close() })
	hold := newHoldCommand(name)
	client.AddHook(hold)
	opts.KeyTemplate = r.Prefix + redisstream.RunIDPlaceholder
	opts.Logger = quiet()
	s, err := redisstream.New(client, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	t.Cleanup(hold.free)
	redisstream.SetLookupWait(s, 200*time.Millisecond)
	return s, hold
}

// On a client with a ReadTimeout of -1 (go-redis sets no read deadline),
// a LastEvent whose XREVRANGE Redis does not answer (it hangs) fails
// once the Stream's bound on such lookups has passed (10s; here 200ms),
// with a context without a deadline: before, it waited as long as Redis
// hung, and with it progress/sse's handler, which looks the run up
// before it opens a stream.
func TestLastEventOnAHungRedisFailsAtItsBound(t *testing.T) {
	s, hold := heldLookupStream(t, "xrevrange", redisstream.Options{})
	ctx, run := context.Background(), sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 3)...))

	hold.on.Store(true)
	done := make(chan error, 1)
	go func() {
		_, _, err := s.LastEvent(ctx, run)
		done <- err
	}()
	<-hold.held
	select {
	case err := <-done:
		assert.ErrorContains(t, err, "no answer from Redis")
	case <-time.After(10 * time.Second):
		t.Fatal("LastEvent still waits for a hung Redis 10s on")
	}
	hold.free()
	e, ok, err := s.LastEvent(ctx, run)
	require.NoError(t, err, "once Redis answers again")
	require.True(t, ok)
	assert.Equal(t, uint64(3), e.Seq)
}

// On a client with a ReadTimeout of -1, a reader that resumes below a
// young gap in the live entries (seqs 3 and 4 missed Redis and, for now,
// the History) looks up whether the stream has an entry at or before
// its position (XREVRANGE): while Redis does not answer that lookup, the
// reader fails it at the Stream's bound, counts a read error and tries
// again with backoff, as for any failed read, and reads on once Redis
// answers. Before, it waited for the lookup as long as Redis hung.
func TestGapCheckOnAHungRedisFailsAtItsBound(t *testing.T) {
	hist := progress.NewMemoryHistory()
	s, hold := heldLookupStream(t, "xrevrange", redisstream.Options{History: hist, HistoryPoll: time.Minute, RetryDelay: 10 * time.Millisecond})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 5)
	all[4].Time = time.Now() // a young gap, which a reader waits for
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(ctx, all[:2]...))
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(ctx, all[4]))

	hold.on.Store(true)
	tl := sinktest.StartTail(t, s, run, 2)
	<-hold.held
	require.Eventually(t, func() bool { return s.Stats().ReadErrors > 0 }, 10*time.Second, time.Millisecond,
		"the reader's lookup still waits for a hung Redis")
	hold.free()
	require.NoError(t, hist.Append(ctx, all[2:4]...)) // the History gets the gap's events
	tl.Expect(t, sinktest.Span(3, 5))
	tl.Stop(t, context.Canceled)
}

// On a client with a ReadTimeout of -1, a reader that starts below the
// stream's first entry, a young one (the run's first events missed Redis
// and, for now, the History), asks XINFO STREAM whether trimming left the
// gap: while Redis does not answer that lookup, the reader fails it at
// the Stream's bound, counts a read error and tries again with backoff,
// and reads on once Redis answers. The XREVRANGE of a reader above the
// stream's first entry has a test of its own (above); this branch had
// none, and could have gone back to waiting as long as Redis hung.
func TestGapCheckXInfoOnAHungRedisFailsAtItsBound(t *testing.T) {
	hist := progress.NewMemoryHistory()
	s, hold := heldLookupStream(t, "xinfo", redisstream.Options{History: hist, HistoryPoll: time.Minute, RetryDelay: 10 * time.Millisecond})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 3)
	all[2].Time = time.Now() // a young gap, which a reader waits for
	require.NoError(t, s.Publish(ctx, all[2]))

	hold.on.Store(true)
	tl := sinktest.StartTail(t, s, run, 0)
	<-hold.held
	require.Eventually(t, func() bool { return s.Stats().ReadErrors > 0 }, 10*time.Second, time.Millisecond,
		"the reader's XINFO STREAM still waits for a hung Redis")
	hold.free()
	require.NoError(t, hist.Append(ctx, all[:2]...)) // the History gets the gap's events
	tl.Expect(t, sinktest.Span(1, 3))
	tl.Stop(t, context.Canceled)
}
