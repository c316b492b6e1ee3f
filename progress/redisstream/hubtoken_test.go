package redisstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// hangKeys holds the reads of the streams it was given (XRANGE,
// XREVRANGE, XREAD) until released, as a Redis that does not answer
// does, and tells when each first holds one; other commands go through.
type hangKeys struct {
	mu      sync.Mutex
	keys    map[string]chan struct{} // closed at the first read held
	release chan struct{}
	freed   sync.Once
}

func (h *hangKeys) free() { h.freed.Do(func() { close(h.release) }) }

// hang holds the reads of key from now on, and returns a channel closed
// once one is held.
func (h *hangKeys) hang(key string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(chan struct{})
	h.keys[key] = c
	return c
}

func (h *hangKeys) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *hangKeys) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "xrange", "xrevrange", "xread":
			for _, a := range cmd.Args() {
				k, _ := a.(string)
				h.mu.Lock()
				c, ok := h.keys[k]
				h.mu.Unlock()
				if ok {
					select {
					case <-c:
					default:
						close(c)
					}
					<-h.release
					break
				}
			}
		}
		return next(ctx, cmd)
	}
}
func (h *hangKeys) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// While Redis does not answer, the shared reader of a run that reads
// without blocking (MaxBlockingReads runs block already) polls the
// History every HistoryPoll also while it waits for one of the tokens of
// reads that do not block, which reads that Redis does not answer hold
// until the client's ReadTimeout: so its readers get the events that only
// the History holds. Before, it waited for the token without polling,
// and its readers got nothing while other reads held the tokens (one
// ReadTimeout after another, with many replays queued).
func TestSharedReaderPollsTheHistoryWhileItWaitsForARead(t *testing.T) {
	r := testenv.NewRedis(t)
	hk := &hangKeys{keys: map[string]chan struct{}{}, release: make(chan struct{})}
	client := testenv.NewRedisClient(r.Client.Options())
	client.AddHook(hk)
	t.Cleanup(func() { client.Close() })
	hist := progress.NewMemoryHistory()
	s, err := redisstream.New(client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
		History: hist, BlockTime: 100 * time.Millisecond, RetryDelay: 20 * time.Millisecond,
		HistoryPoll: 200 * time.Millisecond, MaxBlockingReads: 1, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	t.Cleanup(hk.free) // before the Stream's Close, which waits for the reads
	ctx := context.Background()
	sink := progress.NewFanout(progress.NewArchive(hist), s)
	base := sinktest.RunID(t)
	blocking, watched, replayed := base+"-b", base+"-w", base+"-r"
	for _, run := range []string{blocking, watched, replayed} {
		require.NoError(t, sink.Publish(ctx, sinktest.Events(run, 1, 3)...))
	}

	// The one blocking read: the shared reader of blocking, held.
	b := sinktest.StartTail(t, s, blocking, 0)
	b.Expect(t, sinktest.Span(1, 3))
	held := hk.hang(s.Key(blocking))
	<-held
	w := sinktest.StartTail(t, s, watched, 0) // its shared reader reads without blocking
	w.Expect(t, sinktest.Span(1, 3))
	require.Eventually(t, func() bool { return s.Stats().Runs == 2 }, 10*time.Second, time.Millisecond)
	// The one token of reads that do not block: a replay, held.
	held = hk.hang(s.Key(replayed))
	rp := sinktest.StartTail(t, s, replayed, 0)
	<-held
	// Events that reached the History alone.
	all := sinktest.Events(watched, 1, 6)
	require.NoError(t, hist.Append(ctx, all[3:5]...))
	w.Expect(t, sinktest.Span(4, 5)) // the one poll it may make before it waits
	require.NoError(t, hist.Append(ctx, all[5:]...))
	w.Expect(t, sinktest.Span(6, 6))
	hk.free()
	rp.Expect(t, sinktest.Span(1, 3)) // its replay, held until now
	for _, tl := range []*sinktest.Tailer{b, w, rp} {
		tl.Stop(t, context.Canceled)
	}
}
