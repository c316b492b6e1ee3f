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

// While Redis does not answer the run's shared reader (its connection is
// cut without a reset, or Redis hangs), the reader polls the History,
// and a gap there (the archive's write of seq 6 failed, while Redis got
// it) is not passed over: Redis may hold the gap's events, and the
// readers that passed over them would skip them for good. They wait for
// Redis, and get 6 to 8 in order once it answers. Before, the second
// poll that found the gap passed over it, the readers got 7 and 8, and
// the 6 that the XREAD then brought was dropped as older than the
// window (counted in Skipped).
func TestHistoryGapWhileRedisDoesNotAnswer(t *testing.T) {
	ctx := context.Background()
	hist := &countingHistory{MemoryHistory: progress.NewMemoryHistory()}
	writer, r := newStream(t, redisstream.Options{History: hist})
	readerClient := testenv.NewRedisClient(r.Client.Options())
	t.Cleanup(func() { readerClient.Close() })
	hold := &holdXRead{release: make(chan struct{}), held: make(chan struct{})}
	readerClient.AddHook(hold)
	t.Cleanup(hold.free) // before the Stream's Close, which waits for the XREAD
	s, err := redisstream.New(readerClient, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
		History: hist, BlockTime: 100 * time.Millisecond, HistoryPoll: 300 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 8)
	require.NoError(t, progress.NewFanout(progress.NewArchive(hist), writer).Publish(ctx, all[:5]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 5))

	hold.on.Store(true)
	<-hold.held                                         // the shared reader's next XREAD gets no answer
	require.NoError(t, writer.Publish(ctx, all[5:]...)) // Redis has 6 to 8
	require.NoError(t, hist.Append(ctx, all[6:]...))    // the History lacks 6
	polls := hist.replays.Load()
	require.Eventually(t, func() bool { return hist.replays.Load() >= polls+3 }, 10*time.Second, time.Millisecond,
		"the shared reader polls the History while its XREAD hangs")
	hold.free()
	tl.Expect(t, sinktest.Span(6, 8))
	assert.Zero(t, s.Stats().Skipped, "events skipped")
	tl.Stop(t, context.Canceled)
}

// holdXRead holds a client's XREADs before they are sent, once on is
// set, until free is called, as a connection cut without a reset would
// (but for the error that ends them then); held is closed once it holds
// one.
type holdXRead struct {
	on            atomic.Bool
	once, freed   sync.Once
	held, release chan struct{}
}

func (h *holdXRead) free() { h.freed.Do(func() { close(h.release) }) }

func (h *holdXRead) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdXRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "xread" && h.on.Load() {
			h.once.Do(func() { close(h.held) })
			<-h.release
		}
		return next(ctx, cmd)
	}
}
func (h *holdXRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
