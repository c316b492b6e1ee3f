package redisstream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Readers of one run come and go, at every position, while events flow:
// Redis misses some batches (Publish failed, the Buffered's fallback took
// them) that the History, a moment behind Redis, gets. Each reader gets
// every event after its start once, in order, and none is skipped.
func TestChurnAcrossHeldGaps(t *testing.T) {
	mem := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: mem, HistoryPoll: 5 * time.Second, RetryDelay: 5 * time.Millisecond, BlockTime: 50 * time.Millisecond})
	run := sinktest.RunID(t)
	const n = 240
	all := recent(sinktest.Events(run, 1, n))
	for i := range all {
		all[i].Type = progress.Message
	}
	all[n-1].Type = progress.RunFinished
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))

	var archived sync.WaitGroup
	errs := make(chan error, 64)
	var readers sync.WaitGroup
	startReader := func(after uint64, leaveAt uint64) {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			next := after + 1
			errDone := errors.New("done")
			err := s.Tail(rctx, run, after, func(e progress.Event) error {
				if e.Seq != next {
					return fmt.Errorf("reader from %d: got seq %d, want %d", after, e.Seq, next)
				}
				next++
				if e.Seq == leaveAt || e.Type.Final() {
					return errDone
				}
				return nil
			})
			if !errors.Is(err, errDone) {
				errs <- fmt.Errorf("reader from %d (leaving at %d): %w (next %d)", after, leaveAt, err, next)
			}
		}()
	}
	for i := 0; i < n; {
		k := min(1+rng.IntN(4), n-i)
		batch := all[i : i+k]
		if rng.IntN(6) != 0 || batch[k-1].Type.Final() {
			require.NoError(t, s.Publish(ctx, batch...))
		}
		archived.Add(1)
		delay := time.Duration(10+rng.IntN(30)) * time.Millisecond
		go func() {
			defer archived.Done()
			time.Sleep(delay)
			_ = mem.Append(ctx, batch...)
		}()
		i += k
		for range rng.IntN(3) {
			after := uint64(rng.IntN(i + 1))
			leave := uint64(n)
			if rng.IntN(2) == 0 {
				leave = after + 1 + uint64(rng.IntN(n-int(after)))
			}
			startReader(after, leave)
		}
		time.Sleep(time.Duration(rng.IntN(8)) * time.Millisecond)
	}
	archived.Wait()
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Zero(t, s.Stats().Skipped)
}
