package redisstream_test

import (
	"context"
	"errors"
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

// slowReads makes the reads of Redis that do not block (XRANGE,
// XREVRANGE) fail while fail is set, and otherwise answer after delay:
// a Redis that is busy, not hung.
type slowReads struct {
	fail  atomic.Bool
	delay atomic.Int64
}

func (o *slowReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (o *slowReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "xrange", "xrevrange":
			if o.fail.Load() {
				err := errors.New("dial tcp: connect: connection refused")
				cmd.SetErr(err)
				return err
			}
			time.Sleep(time.Duration(o.delay.Load())) // Redis busy
		}
		return next(ctx, cmd)
	}
}
func (o *slowReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Once Redis answers again after a failed read, the reads that queue for
// a token of reads that do not block wait their turn, however long the
// queue, as while no read has failed: every read that ends answers, so
// the tokens come back, one a round trip. Before, each read of LastEvent,
// of a Tail, and since Replay reads so too with a History, of a Replay,
// that began to wait while the last read had failed gave up after a
// second (readWait) with errReadsBusy, though Redis had answered since:
// a burst of Replays as Redis came back (browsers reconnecting together)
// failed all but the first few.
func TestReadsQueuedBehindReadsThatRedisAnswersWaitTheirTurn(t *testing.T) {
	r := testenv.NewRedis(t)
	reads := &slowReads{}
	client := testenv.NewRedisClient(r.Client.Options())
	client.AddHook(reads)
	t.Cleanup(func() { client.Close() })
	s, err := redisstream.New(client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
		History: progress.NewMemoryHistory(), BlockTime: 100 * time.Millisecond,
		MaxBlockingReads: 2, Logger: quiet()}) // one token of reads that do not block
	require.NoError(t, err)
	redisstream.SetReadWait(s, 500*time.Millisecond)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 30)...))

	reads.fail.Store(true)
	_, _, err = s.LastEvent(ctx, run) // its lookup in Redis fails
	require.Error(t, err)
	reads.fail.Store(false)
	reads.delay.Store(int64(150 * time.Millisecond)) // 8 reads queue for 1.2s
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			var got []uint64
			err := s.Replay(ctx, run, 0, func(e progress.Event) error {
				got = append(got, e.Seq)
				return nil
			})
			if err == nil && len(got) != 30 {
				err = errors.New("a Replay missed events")
			}
			errs <- err
		}()
	}
	for range n {
		assert.NoError(t, <-errs)
	}
}
